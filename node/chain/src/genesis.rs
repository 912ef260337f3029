//! The genesis file: CometBFT's `genesis.json`, with MAGNET's app state under `app_state`.
//!
//! Edited as JSON (not through typed structs) so that fields this version does not know about
//! survive an edit untouched; every edit is validated by parsing the result with
//! `tendermint::Genesis` before it is written.

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};
use std::path::Path;

/// A genesis validator as `show-validator` prints it and `add-validator` takes it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ValidatorInfo {
    /// Operator-chosen name (moniker).
    pub name: String,
    /// Consensus address: upper-case hex of the first 20 bytes of SHA-256(pubkey).
    pub address: String,
    /// ed25519 public key, base64.
    pub pub_key: String,
    /// Voting power.
    pub power: u64,
    /// p2p node id (hex), so peers can be listed; informational.
    #[serde(default)]
    pub node_id: String,
}

/// Consensus address of an ed25519 key.
pub fn consensus_address(pub_key: &[u8]) -> String {
    hex::encode_upper(&magnet_core::sha256(pub_key)[..20])
}

/// A fresh genesis with `validators` and an empty app state.
pub fn new_genesis(
    chain_id: &str,
    genesis_time: &str,
    validators: &[ValidatorInfo],
    app_state: Value,
) -> Value {
    json!({
        "genesis_time": genesis_time,
        "chain_id": chain_id,
        "initial_height": "1",
        "consensus_params": {
            "block": {"max_bytes": "22020096", "max_gas": "-1"},
            "evidence": {"max_age_num_blocks": "100000", "max_age_duration": "172800000000000", "max_bytes": "1048576"},
            "validator": {"pub_key_types": ["ed25519"]},
            "version": {"app": "0"},
            "abci": {"vote_extensions_enable_height": "0"}
        },
        "validators": validators.iter().map(validator_json).collect::<Vec<_>>(),
        "app_hash": "",
        "app_state": app_state,
    })
}

fn validator_json(v: &ValidatorInfo) -> Value {
    json!({
        "address": v.address,
        "pub_key": {"type": "tendermint/PubKeyEd25519", "value": v.pub_key},
        "power": v.power.to_string(),
        "name": v.name,
    })
}

/// Read `genesis.json` as JSON.
pub fn read(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {} as JSON", path.display()))
}

/// Validate and write `genesis.json`.
pub fn write(path: &Path, genesis: &Value) -> Result<()> {
    validate(genesis)?;
    let text = serde_json::to_string_pretty(genesis)?;
    crate::home::write_atomic(path, text.as_bytes())
}

/// Check the genesis parses as CometBFT's and its validators are sane.
pub fn validate(genesis: &Value) -> Result<tendermint::Genesis<Value>> {
    let g: tendermint::Genesis<Value> = serde_json::from_value(genesis.clone())
        .context("genesis does not parse as a CometBFT v0.38 genesis")?;
    let mut seen = std::collections::BTreeSet::new();
    for v in &g.validators {
        if !seen.insert(v.address) {
            bail!("validator {} appears twice in genesis", v.address);
        }
    }
    Ok(g)
}

/// Add (or replace, by address) a genesis validator.
pub fn add_validator(genesis: &mut Value, v: &ValidatorInfo) -> Result<()> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&v.pub_key)
        .with_context(|| format!("validator pub_key {:?} is not base64", v.pub_key))?;
    if raw.len() != 32 {
        bail!(
            "validator pub_key holds {} bytes; an ed25519 key has 32",
            raw.len()
        );
    }
    if v.power == 0 {
        bail!("validator power must be positive");
    }
    let addr = consensus_address(&raw);
    if !v.address.is_empty() && v.address != addr {
        bail!(
            "validator address {} does not match its pub_key (expected {addr})",
            v.address
        );
    }
    let fixed = ValidatorInfo {
        address: addr.clone(),
        ..v.clone()
    };
    let list = genesis
        .get_mut("validators")
        .and_then(Value::as_array_mut)
        .context("genesis has no validators array")?;
    list.retain(|x| x.get("address").and_then(Value::as_str) != Some(addr.as_str()));
    list.push(validator_json(&fixed));
    Ok(())
}

/// The chain id in a genesis.
pub fn chain_id(genesis: &Value) -> Result<String> {
    genesis
        .get("chain_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .context("genesis has no chain_id")
}
