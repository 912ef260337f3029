//! Account keys: BIP-39 mnemonic → BIP-32 `m/44'/118'/0'/0/0` → secp256k1 → `magnet1…`.
//!
//! The derivation is the Cosmos Hub's (coin type 118), so a mnemonic imported into any Cosmos
//! wallet configured with the `magnet` prefix shows the same address.

use crate::ClientError;
use magnet_core::Address;

/// The HD path every MAGNET account key uses.
pub const HD_PATH: &str = "m/44'/118'/0'/0/0";

/// An account key: the mnemonic it came from and the derived secp256k1 key.
pub struct Key {
    mnemonic: bip39::Mnemonic,
    signing: cosmrs::crypto::secp256k1::SigningKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the mnemonic or the secret key.
        write!(f, "Key({})", self.address())
    }
}

impl Key {
    /// A fresh key from 256 bits of OS randomness (a 24-word mnemonic).
    pub fn generate() -> Result<Key, ClientError> {
        use rand::RngCore;
        let mut entropy = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut entropy);
        let mnemonic = bip39::Mnemonic::from_entropy(&entropy)
            .map_err(|e| ClientError::Mnemonic(e.to_string()))?;
        Key::from_mnemonic_parsed(mnemonic)
    }

    /// The key for `words` (12–24 BIP-39 English words; case and extra spaces are ignored).
    pub fn from_mnemonic(words: &str) -> Result<Key, ClientError> {
        let normalized = words
            .split_whitespace()
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
            .join(" ");
        let mnemonic = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &normalized)
            .map_err(|e| ClientError::Mnemonic(e.to_string()))?;
        Key::from_mnemonic_parsed(mnemonic)
    }

    fn from_mnemonic_parsed(mnemonic: bip39::Mnemonic) -> Result<Key, ClientError> {
        let seed = mnemonic.to_seed("");
        let path: cosmrs::bip32::DerivationPath = HD_PATH
            .parse()
            .map_err(|e: cosmrs::bip32::Error| ClientError::Key(e.to_string()))?;
        let signing = cosmrs::crypto::secp256k1::SigningKey::derive_from_path(seed, &path)
            .map_err(|e| ClientError::Key(e.to_string()))?;
        Ok(Key { mnemonic, signing })
    }

    /// The mnemonic words (secret!).
    pub fn mnemonic(&self) -> String {
        self.mnemonic.to_string()
    }

    /// The signing key.
    pub fn signing_key(&self) -> &cosmrs::crypto::secp256k1::SigningKey {
        &self.signing
    }

    /// The compressed (33-byte) public key.
    pub fn public_key_bytes(&self) -> Vec<u8> {
        self.signing.public_key().to_bytes()
    }

    /// The 32-byte secret scalar (secret!), for programs that use the same key as their p2p
    /// identity (a worker's node key signs both its chain work and its p2p requests).
    pub fn secret_bytes(&self) -> Result<[u8; 32], ClientError> {
        let seed = self.mnemonic.to_seed("");
        let path: cosmrs::bip32::DerivationPath = HD_PATH
            .parse()
            .map_err(|e: cosmrs::bip32::Error| ClientError::Key(e.to_string()))?;
        let xprv = cosmrs::bip32::XPrv::derive_from_path(seed, &path)
            .map_err(|e| ClientError::Key(e.to_string()))?;
        Ok(xprv.private_key().to_bytes().into())
    }

    /// The account address, `RIPEMD160(SHA256(pubkey))`.
    pub fn address(&self) -> Address {
        Address::from_pubkey(&self.public_key_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The standard all-"abandon … about" test mnemonic; its m/44'/118'/0'/0/0 address on
    // the Cosmos Hub is cosmos19rl4cm2hmr8afy4kldpxz3fka4jguq0auqdal4 (a well-known vector).
    const ABANDON: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

    #[test]
    fn the_abandon_mnemonic_gives_the_known_cosmos_address_under_the_magnet_prefix() {
        let key = Key::from_mnemonic(ABANDON).unwrap();
        let cosmos = bech32::encode::<bech32::Bech32>(
            bech32::Hrp::parse_unchecked("cosmos"),
            key.address().as_bytes(),
        )
        .unwrap();
        assert_eq!(cosmos, "cosmos19rl4cm2hmr8afy4kldpxz3fka4jguq0auqdal4");
        assert!(key.address().to_bech32().starts_with("magnet1"));
    }

    #[test]
    fn the_secret_bytes_are_the_signing_key() {
        let k = Key::generate().unwrap();
        let sk = k256::ecdsa::SigningKey::from_slice(&k.secret_bytes().unwrap()).unwrap();
        assert_eq!(
            sk.verifying_key().to_encoded_point(true).as_bytes(),
            k.public_key_bytes().as_slice()
        );
    }

    #[test]
    fn generated_keys_recover_from_their_mnemonic() {
        let key = Key::generate().unwrap();
        assert_eq!(key.mnemonic().split(' ').count(), 24);
        let again = Key::from_mnemonic(&key.mnemonic().to_uppercase()).unwrap();
        assert_eq!(again.address(), key.address());
    }

    #[test]
    fn bad_mnemonics_are_rejected() {
        for bad in ["", "abandon", "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon", "notaword ".repeat(12).as_str()] {
            assert!(matches!(Key::from_mnemonic(bad), Err(ClientError::Mnemonic(_))), "{bad:?}");
        }
    }
}
