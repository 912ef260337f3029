//! Build and sign Cosmos txs with a k256 key (feature `testkit`): what a wallet does, in Rust.
//!
//! Shared by this crate's tests and benches and by `magnetd` (`tx bank send`, the embedded
//! node's tests). Everything is real: SIGN_MODE_DIRECT over a `SignDoc`, low-S secp256k1.
//!
//! ```
//! use magnet_app::testkit::{Signer, TxBuilder};
//! let alice = Signer::from_seed(1);
//! let bob = Signer::from_seed(2);
//! let tx: Vec<u8> = TxBuilder::new("magnet-test", 0, 0)
//!     .fee(2_000, 200_000)
//!     .send(&alice, &bob.address(), 1_000, "umag")
//!     .sign(&alice);
//! assert!(!tx.is_empty());
//! ```

use cosmrs::proto::cosmos::bank::v1beta1::MsgSend;
use cosmrs::proto::cosmos::base::v1beta1::Coin;
use cosmrs::proto::cosmos::tx::v1beta1 as txpb;
use k256::ecdsa::SigningKey;
use magnet_core::Address;
use prost::Message;

/// A secp256k1 key and its address.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl Signer {
    /// Wrap a signing key.
    pub fn new(key: SigningKey) -> Signer {
        Signer { key }
    }
    /// A deterministic key from a small seed (tests only: `SHA256("magnet-testkit" ‖ seed)`).
    pub fn from_seed(seed: u64) -> Signer {
        let mut material = b"magnet-testkit".to_vec();
        material.extend_from_slice(&seed.to_be_bytes());
        let mut h = magnet_core::sha256(&material);
        loop {
            if let Ok(key) = SigningKey::from_slice(&h) {
                return Signer { key };
            }
            h = magnet_core::sha256(&h);
        }
    }
    /// The 32 secret bytes (tests sign work claims with them).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.key.to_bytes().into()
    }

    /// Compressed public key (33 bytes).
    pub fn pub_key(&self) -> Vec<u8> {
        self.key
            .verifying_key()
            .to_encoded_point(true)
            .as_bytes()
            .to_vec()
    }
    /// The account address.
    pub fn address(&self) -> Address {
        Address::from_pubkey(&self.pub_key())
    }
    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }
    /// Sign `bytes` (SHA-256 prehash, low-S), as SIGN_MODE_DIRECT does.
    pub fn sign_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        use k256::ecdsa::signature::hazmat::PrehashSigner;
        let digest = magnet_core::sha256(bytes);
        let sig: k256::ecdsa::Signature = match self.key.sign_prehash(&digest) {
            Ok(s) => s,
            // Signing a 32-byte prehash with a valid key cannot fail.
            Err(_) => return Vec::new(),
        };
        let sig = sig.normalize_s().unwrap_or(sig);
        sig.to_bytes().to_vec()
    }
}

/// A `MsgSend` as an `Any`.
pub fn msg_send(from: &Address, to: &str, amount: u128, denom: &str) -> cosmrs::Any {
    cosmrs::Any {
        type_url: crate::bank::MSG_SEND_URL.to_string(),
        value: MsgSend {
            from_address: from.to_bech32(),
            to_address: to.to_string(),
            amount: vec![Coin {
                denom: denom.to_string(),
                amount: amount.to_string(),
            }],
        }
        .encode_to_vec(),
    }
}

/// Builds one tx: messages, fee, memo; then signs it.
#[derive(Clone, Debug)]
pub struct TxBuilder {
    /// Chain id in the SignDoc.
    pub chain_id: String,
    /// Signer's account number.
    pub account_number: u64,
    /// Signer's sequence.
    pub sequence: u64,
    /// Messages.
    pub msgs: Vec<cosmrs::Any>,
    /// Fee amount in umag.
    pub fee_umag: u128,
    /// Gas limit.
    pub gas_limit: u64,
    /// Memo.
    pub memo: String,
    /// Include the public key in the signer info (needed on an account's first tx).
    pub include_pub_key: bool,
    /// Timeout height (0 = none).
    pub timeout_height: u64,
}

impl TxBuilder {
    /// A tx for `chain_id` from an account with `account_number` at `sequence`.
    pub fn new(chain_id: &str, account_number: u64, sequence: u64) -> TxBuilder {
        TxBuilder {
            chain_id: chain_id.to_string(),
            account_number,
            sequence,
            msgs: Vec::new(),
            fee_umag: 0,
            gas_limit: 200_000,
            memo: String::new(),
            include_pub_key: true,
            timeout_height: 0,
        }
    }
    /// Set the fee (umag) and gas limit.
    pub fn fee(mut self, fee_umag: u128, gas_limit: u64) -> TxBuilder {
        self.fee_umag = fee_umag;
        self.gas_limit = gas_limit;
        self
    }
    /// Add a message.
    pub fn msg(mut self, any: cosmrs::Any) -> TxBuilder {
        self.msgs.push(any);
        self
    }
    /// Add a `MsgSend` from `from` to `to`.
    pub fn send(self, from: &Signer, to: &Address, amount: u128, denom: &str) -> TxBuilder {
        let m = msg_send(&from.address(), &to.to_bech32(), amount, denom);
        self.msg(m)
    }
    /// Set the memo.
    pub fn memo(mut self, memo: &str) -> TxBuilder {
        self.memo = memo.to_string();
        self
    }
    /// The body and auth-info bytes this builder signs.
    pub fn body_and_auth_info(&self, signer: &Signer) -> (Vec<u8>, Vec<u8>) {
        let body = txpb::TxBody {
            messages: self.msgs.clone(),
            memo: self.memo.clone(),
            timeout_height: self.timeout_height,
            extension_options: Vec::new(),
            non_critical_extension_options: Vec::new(),
        }
        .encode_to_vec();
        let public_key = self.include_pub_key.then(|| cosmrs::Any {
            type_url: crate::auth::SECP256K1_PUBKEY_URL.to_string(),
            value: cosmrs::proto::cosmos::crypto::secp256k1::PubKey {
                key: signer.pub_key(),
            }
            .encode_to_vec(),
        });
        #[allow(deprecated)]
        let auth_info = txpb::AuthInfo {
            signer_infos: vec![txpb::SignerInfo {
                public_key,
                mode_info: Some(txpb::ModeInfo {
                    sum: Some(txpb::mode_info::Sum::Single(txpb::mode_info::Single {
                        mode: cosmrs::proto::cosmos::tx::signing::v1beta1::SignMode::Direct as i32,
                    })),
                }),
                sequence: self.sequence,
            }],
            fee: Some(txpb::Fee {
                amount: if self.fee_umag > 0 {
                    vec![Coin {
                        denom: magnet_core::NATIVE_DENOM.to_string(),
                        amount: self.fee_umag.to_string(),
                    }]
                } else {
                    Vec::new()
                },
                gas_limit: self.gas_limit,
                payer: String::new(),
                granter: String::new(),
            }),
            tip: None,
        }
        .encode_to_vec();
        (body, auth_info)
    }
    /// Sign with SIGN_MODE_DIRECT and return the `TxRaw` bytes to broadcast.
    pub fn sign(&self, signer: &Signer) -> Vec<u8> {
        let (body_bytes, auth_info_bytes) = self.body_and_auth_info(signer);
        let doc = txpb::SignDoc {
            body_bytes: body_bytes.clone(),
            auth_info_bytes: auth_info_bytes.clone(),
            chain_id: self.chain_id.clone(),
            account_number: self.account_number,
        }
        .encode_to_vec();
        let sig = signer.sign_bytes(&doc);
        txpb::TxRaw {
            body_bytes,
            auth_info_bytes,
            signatures: vec![sig],
        }
        .encode_to_vec()
    }
    /// The unsigned tx with an empty signature, as cosmjs sends to Simulate.
    pub fn for_simulation(&self, signer: &Signer) -> Vec<u8> {
        let (body_bytes, auth_info_bytes) = self.body_and_auth_info(signer);
        txpb::TxRaw {
            body_bytes,
            auth_info_bytes,
            signatures: vec![Vec::new()],
        }
        .encode_to_vec()
    }
}

/// A `SimulateRequest` query body for `tx_bytes`.
pub fn simulate_request(tx_bytes: Vec<u8>) -> Vec<u8> {
    #[allow(deprecated)]
    txpb::SimulateRequest { tx: None, tx_bytes }.encode_to_vec()
}

/// A genesis `app_state` (Cosmos shape) with `accounts` numbered 0, 1, … in order and funded
/// with umag. Its auth params are the defaults except a zero minimum gas price, so tests that
/// are not about fees need not price them; fee tests set `auth.params` themselves (or use
/// [`genesis_app_state_with_fees`]).
pub fn genesis_app_state(accounts: &[(Address, u128)]) -> serde_json::Value {
    let balances: Vec<serde_json::Value> = accounts
        .iter()
        .map(|(a, amt)| {
            serde_json::json!({
                "address": a.to_bech32(),
                "coins": [{"denom": magnet_core::NATIVE_DENOM, "amount": amt.to_string()}],
            })
        })
        .collect();
    let auth_accounts: Vec<serde_json::Value> = accounts
        .iter()
        .map(|(a, _)| {
            serde_json::json!({
                "@type": "/cosmos.auth.v1beta1.BaseAccount",
                "address": a.to_bech32(),
            })
        })
        .collect();
    let params = crate::auth::AuthParams {
        min_gas_price: "0".into(),
        ..Default::default()
    };
    serde_json::json!({
        "auth": {"params": params, "accounts": auth_accounts},
        "bank": {"balances": balances},
    })
}

/// A test-only module whose messages misbehave (issue 17, ADR 0094): it never ships in
/// `magnetd`; tests add it with [`crate::MagnetApp::open_with_modules`].
pub mod hazard {
    use magnet_core::{Address, Coins, Ctx, Module, ModuleError, MsgResult, QueryCtx};

    /// Panics while delivering.
    pub const PANIC_URL: &str = "/magnet.test.v1.MsgPanic";
    /// Adds 1 to the u64 in the message without a check.
    pub const OVERFLOW_URL: &str = "/magnet.test.v1.MsgOverflow";
    /// Query path answering the bytes of the `hazard/touched` key (empty: never written).
    pub const TOUCHED_PATH: &str = "/hazard/touched";

    /// Both messages first move 1 umag from the signer to [`sink`] and write `hazard/touched`
    /// (so a kept write would show), then: [`PANIC_URL`] panics; [`OVERFLOW_URL`] computes
    /// `round + 1` on the u64 in the message without a check (the shape of issue 17's
    /// `r.round + 1`), which panics at `u64::MAX` when overflow checks are on (tests, and
    /// release builds of the consensus crates).
    pub struct Hazard {
        /// Misbehave in CheckTx too; when false, CheckTx accepts the tx (so it reaches a block
        /// through a real mempool) and only FinalizeBlock-mode execution misbehaves.
        pub in_check_tx: bool,
    }

    /// Where [`Hazard`]'s messages send 1 umag before misbehaving.
    pub fn sink() -> Address {
        Address([0x5Au8; 20])
    }

    /// A message for `signer`: its 20 address bytes, then `n` big-endian.
    pub fn hazard_msg(url: &str, signer: &Address, n: u64) -> cosmrs::Any {
        let mut value = signer.0.to_vec();
        value.extend_from_slice(&n.to_be_bytes());
        cosmrs::Any {
            type_url: url.into(),
            value,
        }
    }

    impl Module for Hazard {
        fn name(&self) -> &'static str {
            "hazard"
        }
        fn msg_type_urls(&self) -> Vec<&'static str> {
            vec![PANIC_URL, OVERFLOW_URL]
        }
        fn validate_msg(&self, msg: &prost_types::Any) -> Result<Address, ModuleError> {
            let a: [u8; 20] = msg
                .value
                .get(..20)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| ModuleError::invalid_request("hazard: short message"))?;
            Ok(Address(a))
        }
        fn deliver(&self, ctx: &mut Ctx, msg: &prost_types::Any) -> Result<MsgResult, ModuleError> {
            let signer = self.validate_msg(msg)?;
            let bank = ctx.services().bank;
            bank.send(ctx, &signer, &sink(), &Coins::umag(1))?;
            ctx.set(b"hazard/touched", vec![1])?;
            if ctx.check_only && !self.in_check_tx {
                return Ok(MsgResult::default());
            }
            if msg.type_url == PANIC_URL {
                panic!("a deliberately panicking message");
            }
            let mut n = [0u8; 8];
            n.copy_from_slice(msg.value.get(20..28).unwrap_or(&[0; 8]));
            let round = u64::from_be_bytes(std::hint::black_box(n));
            // Deliberately unchecked: this is the bug the app must survive.
            #[allow(clippy::arithmetic_side_effects)]
            let next = round + 1;
            ctx.set(b"hazard/next", next.to_be_bytes().to_vec())?;
            Ok(MsgResult::default())
        }
        fn query(
            &self,
            ctx: &QueryCtx,
            path: &str,
            _data: &[u8],
        ) -> Option<Result<Vec<u8>, ModuleError>> {
            (path == TOUCHED_PATH).then(|| Ok(ctx.store.get(b"hazard/touched").unwrap_or_default()))
        }
    }
}

/// [`genesis_app_state`] with the default auth params, the non-zero minimum gas price
/// included ([`crate::auth::DEFAULT_MIN_GAS_PRICE`]).
pub fn genesis_app_state_with_fees(accounts: &[(Address, u128)]) -> serde_json::Value {
    let mut s = genesis_app_state(accounts);
    s["auth"]["params"] = serde_json::Value::Null;
    s
}

/// The smallest fee (umag) that pays `gas_limit` at `min_gas_price` (umag per gas, decimal):
/// `ceil(gas_limit × min_gas_price)`, what a client computes from the chain's params so a
/// user never prices gas by hand. An unparsable price is an error.
pub fn fee_for(gas_limit: u64, min_gas_price: &str) -> Result<u128, magnet_core::ModuleError> {
    Ok(crate::auth::GasPrice::parse(min_gas_price)?.fee_for(gas_limit))
}
