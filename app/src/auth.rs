//! The `auth` module: accounts (number, sequence, public key) and the tx-pipeline params.
//!
//! Accounts follow the Cosmos SDK: an account is created the first time an address receives
//! coins (or appears in genesis) and gets the next account number; its sequence counts the txs
//! it signed; its public key is recorded by its first signed tx. Wallets read it with
//! `/cosmos.auth.v1beta1.Query/Account`, which answers a `BaseAccount` packed in an `Any`.
//!
//! # State (all keys of this module)
//! * `auth/acct/<addr:20>` → borsh [`Account`]
//! * `auth/next_num` → borsh `u64`, the next account number
//! * `auth/params` → borsh [`AuthParams`]
//!
//! # Security
//! Guarantees: account numbers are never reused; a sequence only grows (by one per tx that
//! passed the ante checks, even when its messages fail). Does not check signatures itself: the
//! ante handler in [`crate::ante`] does, against the key recorded here.

use crate::error::{codes, TxError};
use base64::Engine;
use borsh::{BorshDeserialize, BorshSerialize};
use cosmrs::proto::cosmos::auth::v1beta1 as authpb;
use magnet_core::{Address, Ctx, KvStore, Module, ModuleError, QueryCtx};
use prost::Message;

/// Key of an account.
pub fn account_key(addr: &Address) -> Vec<u8> {
    [b"auth/acct/".as_slice(), addr.as_bytes().as_slice()].concat()
}
/// Key of the next account number.
pub const NEXT_NUM_KEY: &[u8] = b"auth/next_num";
/// Key of the params.
pub const PARAMS_KEY: &[u8] = b"auth/params";
/// Prefix of all accounts.
pub const ACCOUNT_PREFIX: &[u8] = b"auth/acct/";

/// Module accounts created at genesis (after the genesis accounts, in this order).
pub const MODULE_ACCOUNTS: &[&str] = &[
    crate::exec::FEE_COLLECTOR,
    magnet_core::services::COMMUNITY_POOL,
];

/// Type URL of a secp256k1 public key.
pub const SECP256K1_PUBKEY_URL: &str = "/cosmos.crypto.secp256k1.PubKey";

/// An account.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Account {
    /// Assigned at creation, never reused.
    pub account_number: u64,
    /// Number of txs signed so far (the next tx must carry this value).
    pub sequence: u64,
    /// Compressed secp256k1 key (33 bytes), set by the first signed tx.
    pub pub_key: Option<Vec<u8>>,
}

/// Tx-pipeline parameters (consensus: every validator applies the same).
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(deny_unknown_fields)]
pub struct AuthParams {
    /// Largest accepted tx, in bytes.
    pub max_tx_bytes: u64,
    /// Longest accepted memo, in characters.
    pub max_memo_characters: u64,
    /// Largest gas limit one tx may ask for.
    pub max_tx_gas: u64,
    /// Consensus minimum gas price in umag per gas, decimal (e.g. `"0.025"`); a node's own
    /// `AppConfig::min_gas_price` may be higher for its mempool. Default
    /// [`DEFAULT_MIN_GAS_PRICE`] (ADR 0097): every tx pays for the work its gas measures.
    pub min_gas_price: String,
}

/// The default consensus minimum gas price, umag per gas (ADR 0097): the Cosmos ecosystem's
/// customary `0.025`, the price `magnetd tx` and the cosmjs examples already paid, so a
/// 200,000-gas tx costs 5,000 umag (0.005 MAG).
pub const DEFAULT_MIN_GAS_PRICE: &str = "0.025";

impl Default for AuthParams {
    fn default() -> Self {
        AuthParams {
            max_tx_bytes: 65_536,
            max_memo_characters: 256,
            max_tx_gas: 50_000_000,
            min_gas_price: DEFAULT_MIN_GAS_PRICE.to_string(),
        }
    }
}

impl AuthParams {
    /// Reject params no chain can run with.
    pub fn validate(&self) -> Result<(), ModuleError> {
        if self.max_tx_bytes < 256 {
            return Err(ModuleError::invalid_request(
                "auth.max_tx_bytes must be at least 256",
            ));
        }
        if self.max_tx_gas == 0 {
            return Err(ModuleError::invalid_request("auth.max_tx_gas must be > 0"));
        }
        GasPrice::parse(&self.min_gas_price)?;
        Ok(())
    }
}

pub use magnet_core::gas::GasPrice;

/// Read an account (unmetered; `Err` on corrupt bytes).
pub fn get_account(store: &dyn KvStore, addr: &Address) -> Result<Option<Account>, ModuleError> {
    let k = account_key(addr);
    magnet_core::store::get_borsh(store, &k).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
}

/// Read an account through the metered context.
pub fn load_account(ctx: &mut Ctx, addr: &Address) -> Result<Option<Account>, ModuleError> {
    ctx.get_borsh(&account_key(addr))
}

/// Write an account through the metered context.
pub fn store_account(ctx: &mut Ctx, addr: &Address, acct: &Account) -> Result<(), ModuleError> {
    ctx.set_borsh(&account_key(addr), acct)?;
    Ok(())
}

/// The params (defaults if genesis set none).
pub fn params(store: &dyn KvStore) -> Result<AuthParams, ModuleError> {
    Ok(magnet_core::store::get_borsh(store, PARAMS_KEY)
        .map_err(|e| ModuleError::corrupt(PARAMS_KEY, &e.to_string()))?
        .unwrap_or_default())
}

/// Create the account of `addr` with the next number if it does not exist (metered).
pub fn ensure_account(ctx: &mut Ctx, addr: &Address) -> Result<Account, ModuleError> {
    if let Some(a) = load_account(ctx, addr)? {
        return Ok(a);
    }
    let num: u64 = ctx.get_borsh(NEXT_NUM_KEY)?.unwrap_or(0);
    let acct = Account {
        account_number: num,
        sequence: 0,
        pub_key: None,
    };
    let next = num
        .checked_add(1)
        .ok_or_else(|| ModuleError::new("sdk", 1, "account numbers exhausted"))?;
    ctx.set_borsh(NEXT_NUM_KEY, &next)?;
    store_account(ctx, addr, &acct)?;
    Ok(acct)
}

/// A `BaseAccount` as wallets expect it.
pub fn base_account(addr: &Address, acct: &Account) -> authpb::BaseAccount {
    authpb::BaseAccount {
        address: addr.to_bech32(),
        pub_key: acct.pub_key.as_ref().map(|k| cosmrs::Any {
            type_url: SECP256K1_PUBKEY_URL.to_string(),
            value: cosmrs::proto::cosmos::crypto::secp256k1::PubKey { key: k.clone() }
                .encode_to_vec(),
        }),
        account_number: acct.account_number,
        sequence: acct.sequence,
    }
}

/// Parse a bech32 address in a query or message, with the Cosmos "invalid address" code.
pub fn parse_address(field: &str, s: &str) -> Result<Address, TxError> {
    s.parse::<Address>()
        .map_err(|e| TxError::sdk(codes::INVALID_ADDRESS, format!("{field}: {e}")))
}

/// The NotFound error cosmjs recognises (`rpc error: code = NotFound`).
pub fn not_found(what: &str) -> ModuleError {
    ModuleError::new(
        "sdk",
        codes::KEY_NOT_FOUND,
        format!("rpc error: code = NotFound desc = {what} not found: key not found"),
    )
}

/// Genesis account, in the Cosmos `BaseAccount` JSON shape.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct GenesisAccount {
    /// Always `/cosmos.auth.v1beta1.BaseAccount`.
    #[serde(rename = "@type", default = "base_account_url")]
    pub type_url: String,
    /// bech32 address.
    pub address: Address,
    /// Public key (`{"@type": "/cosmos.crypto.secp256k1.PubKey", "key": base64}`), if known.
    #[serde(default)]
    pub pub_key: Option<serde_json::Value>,
    /// Account number (assigned in order when absent).
    #[serde(default, with = "opt_u64_string")]
    pub account_number: Option<u64>,
    /// Sequence.
    #[serde(default, with = "opt_u64_string")]
    pub sequence: Option<u64>,
}

fn base_account_url() -> String {
    "/cosmos.auth.v1beta1.BaseAccount".to_string()
}

mod opt_u64_string {
    pub fn serialize<S: serde::Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&v.to_string()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        use serde::Deserialize;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            S(String),
            N(u64),
        }
        match Option::<Either>::deserialize(d)? {
            None => Ok(None),
            Some(Either::S(s)) => s.parse().map(Some).map_err(serde::de::Error::custom),
            Some(Either::N(n)) => Ok(Some(n)),
        }
    }
}

/// The `auth` genesis section.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct AuthGenesis {
    /// Params (defaults when absent).
    #[serde(default)]
    pub params: Option<AuthParams>,
    /// Accounts.
    #[serde(default)]
    pub accounts: Vec<GenesisAccount>,
}

fn pubkey_from_json(v: &serde_json::Value) -> Result<Vec<u8>, ModuleError> {
    let bad = |why: &str| ModuleError::invalid_request(format!("genesis pub_key {v}: {why}"));
    let url = v
        .get("@type")
        .and_then(|t| t.as_str())
        .unwrap_or(SECP256K1_PUBKEY_URL);
    if url != SECP256K1_PUBKEY_URL {
        return Err(bad("only /cosmos.crypto.secp256k1.PubKey is supported"));
    }
    let key = v
        .get("key")
        .and_then(|k| k.as_str())
        .ok_or_else(|| bad("missing key"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|e| bad(&e.to_string()))?;
    k256::PublicKey::from_sec1_bytes(&bytes).map_err(|_| bad("not a secp256k1 point"))?;
    if bytes.len() != 33 {
        return Err(bad("must be a 33-byte compressed key"));
    }
    Ok(bytes)
}

/// The auth module.
#[derive(Default, Clone, Copy, Debug)]
pub struct AuthModule;

impl Module for AuthModule {
    /// Accounts (and balances) are exported whole, as the standard Cosmos genesis types.
    fn export_is_complete(&self) -> bool {
        true
    }
    fn name(&self) -> &'static str {
        "auth"
    }

    fn init_genesis(&self, ctx: &mut Ctx, genesis: &serde_json::Value) -> Result<(), ModuleError> {
        let g: AuthGenesis = if genesis.is_null() {
            AuthGenesis::default()
        } else {
            serde_json::from_value(genesis.clone())
                .map_err(|e| ModuleError::invalid_request(format!("auth genesis: {e}")))?
        };
        let params = g.params.unwrap_or_default();
        params.validate()?;
        magnet_core::store::set_borsh(ctx.store_mut(), PARAMS_KEY, &params);
        // Explicit numbers first, then the rest in order.
        let mut used = std::collections::BTreeSet::new();
        let mut next: u64 = 0;
        for a in &g.accounts {
            if let Some(n) = a.account_number {
                if !used.insert(n) {
                    return Err(ModuleError::invalid_request(format!(
                        "auth genesis: account number {n} used twice"
                    )));
                }
                next = next.max(n.saturating_add(1));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for a in &g.accounts {
            if !seen.insert(a.address) {
                return Err(ModuleError::invalid_request(format!(
                    "auth genesis: account {} listed twice",
                    a.address
                )));
            }
            let account_number = match a.account_number {
                Some(n) => n,
                None => {
                    while used.contains(&next) {
                        next += 1;
                    }
                    used.insert(next);
                    next += 1;
                    next - 1
                }
            };
            let pub_key = a
                .pub_key
                .as_ref()
                .filter(|v| !v.is_null())
                .map(pubkey_from_json)
                .transpose()?;
            let acct = Account {
                account_number,
                sequence: a.sequence.unwrap_or(0),
                pub_key,
            };
            magnet_core::store::set_borsh(ctx.store_mut(), &account_key(&a.address), &acct);
        }
        magnet_core::store::set_borsh(ctx.store_mut(), NEXT_NUM_KEY, &next);
        // Module accounts every chain has, so user account numbers do not depend on when a
        // fee is first paid.
        for m in MODULE_ACCOUNTS {
            ensure_account(ctx, &Address::module(m))?;
        }
        Ok(())
    }

    fn export_genesis(&self, ctx: &QueryCtx) -> Result<serde_json::Value, ModuleError> {
        let mut accounts = Vec::new();
        for (k, v) in magnet_core::store::scan_prefix(ctx.store, ACCOUNT_PREFIX) {
            let addr = Address::from_slice(&k[ACCOUNT_PREFIX.len()..])
                .map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?;
            let a = Account::try_from_slice(&v)
                .map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?;
            accounts.push(GenesisAccount {
                type_url: base_account_url(),
                address: addr,
                pub_key: a.pub_key.as_ref().map(|k| {
                    serde_json::json!({
                        "@type": SECP256K1_PUBKEY_URL,
                        "key": base64::engine::general_purpose::STANDARD.encode(k),
                    })
                }),
                account_number: Some(a.account_number),
                sequence: Some(a.sequence),
            });
        }
        serde_json::to_value(AuthGenesis {
            params: Some(params(ctx.store)?),
            accounts,
        })
        .map_err(|e| ModuleError::invalid_request(e.to_string()))
    }

    fn query(
        &self,
        ctx: &QueryCtx,
        path: &str,
        data: &[u8],
    ) -> Option<Result<Vec<u8>, ModuleError>> {
        match path {
            "/cosmos.auth.v1beta1.Query/Account" => Some((|| {
                let req = authpb::QueryAccountRequest::decode(data).map_err(|e| {
                    ModuleError::invalid_request(format!(
                        "QueryAccountRequest does not decode: {e}"
                    ))
                })?;
                let addr = parse_address("address", &req.address)
                    .map_err(|e| ModuleError::new(&e.codespace, e.code, e.log))?;
                let acct = get_account(ctx.store, &addr)?
                    .ok_or_else(|| not_found(&format!("account {addr}")))?;
                let any = cosmrs::Any {
                    type_url: "/cosmos.auth.v1beta1.BaseAccount".to_string(),
                    value: base_account(&addr, &acct).encode_to_vec(),
                };
                Ok(authpb::QueryAccountResponse { account: Some(any) }.encode_to_vec())
            })()),
            "/magnet.auth.v1/params" => Some(params(ctx.store).and_then(|p| {
                serde_json::to_vec(&p).map_err(|e| ModuleError::invalid_request(e.to_string()))
            })),
            _ => None,
        }
    }

    fn params(&self, ctx: &QueryCtx) -> Result<serde_json::Value, ModuleError> {
        serde_json::to_value(params(ctx.store)?)
            .map_err(|e| ModuleError::invalid_request(e.to_string()))
    }

    fn validate_params(&self, p: &serde_json::Value) -> Result<(), ModuleError> {
        let p: AuthParams = serde_json::from_value(p.clone())
            .map_err(|e| ModuleError::invalid_request(format!("auth params: {e}")))?;
        p.validate()
    }

    fn set_params(&self, ctx: &mut Ctx, p: &serde_json::Value) -> Result<(), ModuleError> {
        self.validate_params(p)?;
        let p: AuthParams = serde_json::from_value(p.clone())
            .map_err(|e| ModuleError::invalid_request(format!("auth params: {e}")))?;
        ctx.set_borsh(PARAMS_KEY, &p)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gas_prices_parse_exactly_and_round_fees_up() {
        let p = GasPrice::parse("0.025umag").unwrap();
        assert_eq!(p.fee_for(200_000), 5_000);
        assert_eq!(p.fee_for(1), 1);
        assert_eq!(GasPrice::parse("0").unwrap().fee_for(u64::MAX), 0);
        assert_eq!(GasPrice::parse("2").unwrap().fee_for(3), 6);
        for bad in ["", "abc", "1.2.3", "-1", "0.0000000000000000001", "1e5"] {
            assert!(GasPrice::parse(bad).is_err(), "{bad}");
        }
    }
}
