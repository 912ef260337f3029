//! SHA-256 digests used as shard hashes and object content addresses.
//!
//! A [`Hash32`] is a plain 32-byte SHA-256 digest. Its text form is 64 lowercase hex digits;
//! a [`ContentAddress`] prints as `sha256:<hex>` and parses with or without that prefix.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Hash32(Sha256::digest(bytes).into())
    }

    /// Lowercase hex form (64 characters).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, HashParseError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| HashParseError(s.to_string()))?;
        Ok(Hash32(out))
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..16])
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Hash32::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// A string that is not a 64-digit hex SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 digest (expected 64 hex digits, optionally prefixed `sha256:`): {0:?}")]
pub struct HashParseError(pub String);

/// The content address of a stored object: SHA-256 of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentAddress(pub Hash32);

impl ContentAddress {
    /// The text prefix of a content address.
    pub const PREFIX: &'static str = "sha256:";
}

impl fmt::Debug for ContentAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{:?}", self.0)
    }
}

impl fmt::Display for ContentAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.0)
    }
}

impl FromStr for ContentAddress {
    type Err = HashParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hexpart = s.strip_prefix(Self::PREFIX).unwrap_or(s);
        Hash32::from_hex(hexpart)
            .map(ContentAddress)
            .map_err(|_| HashParseError(s.to_string()))
    }
}

/// Incremental SHA-256 (a thin wrapper so callers need not name `sha2`).
#[derive(Default, Clone)]
pub struct Hasher(Sha256);

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    /// The digest of everything fed so far.
    pub fn finish(self) -> Hash32 {
        Hash32(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_address_round_trips_through_text() {
        let a = ContentAddress(Hash32::of(b"abc"));
        let s = a.to_string();
        assert_eq!(
            s,
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(s.parse::<ContentAddress>().unwrap(), a);
        assert_eq!(s[7..].parse::<ContentAddress>().unwrap(), a);
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        for bad in ["", "sha256:", "zz", &"0".repeat(63), &"g".repeat(64)] {
            assert!(bad.parse::<ContentAddress>().is_err(), "{bad:?}");
        }
    }
}
