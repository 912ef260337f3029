//! Account addresses: 20 bytes, shown as bech32 with the `magnet` prefix.
//!
//! An account address is `RIPEMD160(SHA256(compressed secp256k1 pubkey))`, as in the Cosmos
//! SDK, so wallets derive the same address. Module accounts are `SHA256("module" ‖ name)[..20]`.
//! Addresses order by their bytes, which is the order used everywhere in state.

use borsh::{BorshDeserialize, BorshSerialize};
use std::fmt;
use std::str::FromStr;

/// Human-readable prefix of account addresses.
pub const BECH32_PREFIX: &str = "magnet";

/// Why a string is not a valid `magnet1…` address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not bech32 at all (bad checksum, bad characters, mixed case).
    #[error("invalid bech32 address {input:?}: {reason}; addresses look like magnet1…")]
    Bech32 {
        /// The rejected input.
        input: String,
        /// What the decoder said.
        reason: String,
    },
    /// Valid bech32 but another chain's prefix.
    #[error("address {input:?} has prefix {found:?}, expected \"magnet\"")]
    WrongPrefix {
        /// The rejected input.
        input: String,
        /// The prefix found.
        found: String,
    },
    /// Payload is not 20 bytes.
    #[error("address {input:?} holds {len} bytes, expected 20")]
    WrongLength {
        /// The rejected input.
        input: String,
        /// Payload length found.
        len: usize,
    },
}

/// A 20-byte account address.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// Address of a module account (`SHA256("module" ‖ name)[..20]`); nobody holds its key.
    pub fn module(name: &str) -> Address {
        let h = crate::sha256(&[b"module".as_slice(), name.as_bytes()].concat());
        let mut a = [0u8; 20];
        a.copy_from_slice(&h[..20]);
        Address(a)
    }

    /// Address of a compressed secp256k1 public key (33 bytes): RIPEMD160(SHA256(pk)).
    pub fn from_pubkey(compressed: &[u8]) -> Address {
        use ripemd_like::ripemd160;
        Address(ripemd160(&crate::sha256(compressed)))
    }

    /// Build from raw bytes; errors unless exactly 20 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Address, AddressError> {
        let arr: [u8; 20] = bytes.try_into().map_err(|_| AddressError::WrongLength {
            input: hex::encode(bytes),
            len: bytes.len(),
        })?;
        Ok(Address(arr))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// bech32 form, `magnet1…`.
    pub fn to_bech32(&self) -> String {
        let hrp = bech32::Hrp::parse_unchecked(BECH32_PREFIX);
        // Encoding 20 bytes with a valid prefix cannot fail.
        bech32::encode::<bech32::Bech32>(hrp, &self.0).unwrap_or_default()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_bech32())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.to_bech32())
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (hrp, data) = bech32::decode(s).map_err(|e| AddressError::Bech32 {
            input: s.to_string(),
            reason: e.to_string(),
        })?;
        if hrp.as_str() != BECH32_PREFIX {
            return Err(AddressError::WrongPrefix {
                input: s.to_string(),
                found: hrp.to_string(),
            });
        }
        let arr: [u8; 20] = data
            .as_slice()
            .try_into()
            .map_err(|_| AddressError::WrongLength {
                input: s.to_string(),
                len: data.len(),
            })?;
        Ok(Address(arr))
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_bech32())
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// RIPEMD-160, used only for Cosmos-compatible address derivation.
mod ripemd_like {
    pub fn ripemd160(data: &[u8]) -> [u8; 20] {
        use ripemd::Digest;
        ripemd::Ripemd160::digest(data).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bech32_round_trips() {
        let a = Address([7u8; 20]);
        let s = a.to_bech32();
        assert!(s.starts_with("magnet1"));
        assert_eq!(s.parse::<Address>(), Ok(a));
    }

    #[test]
    fn bad_addresses_are_rejected_with_their_reason() {
        assert!(matches!(
            "magnet1qqqq".parse::<Address>(),
            Err(AddressError::Bech32 { .. })
        ));
        let cosmos =
            bech32::encode::<bech32::Bech32>(bech32::Hrp::parse_unchecked("cosmos"), &[1u8; 20])
                .unwrap();
        assert!(matches!(
            cosmos.parse::<Address>(),
            Err(AddressError::WrongPrefix { .. })
        ));
        let short =
            bech32::encode::<bech32::Bech32>(bech32::Hrp::parse_unchecked("magnet"), &[1u8; 19])
                .unwrap();
        assert!(matches!(
            short.parse::<Address>(),
            Err(AddressError::WrongLength { len: 19, .. })
        ));
    }

    #[test]
    fn module_addresses_differ_by_name() {
        assert_ne!(Address::module("bank"), Address::module("community_pool"));
    }
}
