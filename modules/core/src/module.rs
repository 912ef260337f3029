//! The [`Module`] trait: the one shape every on-chain module has.
//!
//! The app holds modules in a fixed, documented order and calls, per block:
//! `begin_block` (all, in order) → `deliver` for each tx message (routed by type URL) →
//! `end_block` (all, in order) → `end_epoch(e)` for each epoch that ended at this block
//! (all, in order) → commit. Queries are routed by path to the first module that answers.
//! Params are JSON documents; governance changes them through `validate_params`/`set_params`.

use crate::context::{Ctx, QueryCtx};
use crate::gas::OutOfGas;
use crate::Address;

/// An error with its ABCI codespace and code, and a log that says what to do.
///
/// Every module defines a `thiserror` enum and converts it with [`ModuleError::new`]
/// (usually through a `From` impl in its `error.rs`). Codes are unique within a codespace.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{codespace}/{code}: {log}")]
pub struct ModuleError {
    /// Codespace (the module name; `sdk` for generic tx errors).
    pub codespace: String,
    /// Non-zero code within the codespace.
    pub code: u32,
    /// Human-readable reason.
    pub log: String,
}

impl ModuleError {
    /// A new error.
    pub fn new(codespace: &str, code: u32, log: impl Into<String>) -> ModuleError {
        ModuleError {
            codespace: codespace.to_string(),
            code,
            log: log.into(),
        }
    }
    /// State bytes that do not decode: a bug or corruption, never user input.
    pub fn corrupt(key: &[u8], why: &str) -> ModuleError {
        ModuleError::new(
            "sdk",
            1,
            format!(
                "corrupt state at key {}: {why}",
                String::from_utf8_lossy(key)
            ),
        )
    }
    /// Unknown message type for this module.
    pub fn unknown_msg(type_url: &str) -> ModuleError {
        ModuleError::new("sdk", 6, format!("unrecognized message type {type_url}"))
    }
    /// Invalid request (bad query data, bad params document).
    pub fn invalid_request(log: impl Into<String>) -> ModuleError {
        ModuleError::new("sdk", 18, log)
    }
    /// An arithmetic result out of range (ADR 0094): `what` names the quantity. State-machine
    /// arithmetic on values a tx supplies or influences is checked and returns this (`sdk` 18,
    /// ErrInvalidRequest) instead of panicking or wrapping.
    pub fn overflow(what: &str) -> ModuleError {
        ModuleError::new(
            "sdk",
            18,
            format!(
                "arithmetic overflow or underflow computing {what}; the values are out of range"
            ),
        )
    }
}

impl From<OutOfGas> for ModuleError {
    fn from(e: OutOfGas) -> Self {
        ModuleError::new("sdk", 11, e.to_string())
    }
}

/// The result of one delivered message: its response, as an `Any` in `TxMsgData`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MsgResult {
    /// Response type URL, e.g. `/cosmos.bank.v1beta1.MsgSendResponse`.
    pub type_url: String,
    /// Protobuf-encoded response.
    pub value: Vec<u8>,
}

/// A change of a validator's power (0 removes it), emitted in FinalizeBlock.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ValidatorUpdate {
    /// Ed25519 public key (32 bytes).
    pub pub_key_ed25519: Vec<u8>,
    /// New power.
    pub power: u64,
}

/// One on-chain module. See the module docs for the call order.
pub trait Module: Send + Sync {
    /// Module name: its store prefix, codespace, genesis key and params key.
    fn name(&self) -> &'static str;

    /// Type URLs of the messages this module executes.
    fn msg_type_urls(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// Stateless checks of a message; returns the address that must have signed it.
    fn validate_msg(&self, msg: &prost_types::Any) -> Result<Address, ModuleError> {
        Err(ModuleError::unknown_msg(&msg.type_url))
    }

    /// Execute a message. On error the app discards all of the tx's writes.
    fn deliver(&self, _ctx: &mut Ctx, msg: &prost_types::Any) -> Result<MsgResult, ModuleError> {
        Err(ModuleError::unknown_msg(&msg.type_url))
    }

    /// Write genesis state from this module's section of `app_state` (`null` if absent).
    fn init_genesis(
        &self,
        _ctx: &mut Ctx,
        _genesis: &serde_json::Value,
    ) -> Result<(), ModuleError> {
        Ok(())
    }

    /// This module's section of an exported genesis.
    fn export_genesis(&self, _ctx: &QueryCtx) -> Result<serde_json::Value, ModuleError> {
        Ok(serde_json::Value::Null)
    }

    /// Whether [`export_genesis`](Module::export_genesis) writes every record this module
    /// owns, so that `init_genesis` of the export rebuilds its whole state.
    ///
    /// When it does not (the default), an export also carries the module's raw store records
    /// (every key under `<name>/`) in its section's `store_records`, and genesis writes them
    /// after `init_genesis`, except the keys `init_genesis` itself wrote (so an edited
    /// `params` in the typed part wins over the recorded one).
    fn export_is_complete(&self) -> bool {
        false
    }

    /// Start of each block.
    fn begin_block(&self, _ctx: &mut Ctx) -> Result<(), ModuleError> {
        Ok(())
    }

    /// End of each block; may change the validator set.
    fn end_block(&self, _ctx: &mut Ctx) -> Result<Vec<ValidatorUpdate>, ModuleError> {
        Ok(Vec::new())
    }

    /// Epoch `epoch` ended at this block.
    fn end_epoch(&self, _ctx: &mut Ctx, _epoch: u64) -> Result<(), ModuleError> {
        Ok(())
    }

    /// Answer a query at `path`, or `None` if the path is not this module's.
    fn query(
        &self,
        _ctx: &QueryCtx,
        _path: &str,
        _data: &[u8],
    ) -> Option<Result<Vec<u8>, ModuleError>> {
        None
    }

    /// Current params as JSON (`null` if the module has none).
    fn params(&self, _ctx: &QueryCtx) -> Result<serde_json::Value, ModuleError> {
        Ok(serde_json::Value::Null)
    }

    /// Check a params document without applying it (governance calls this at submission).
    fn validate_params(&self, _params: &serde_json::Value) -> Result<(), ModuleError> {
        Err(ModuleError::invalid_request(format!(
            "module {} has no params",
            self.name()
        )))
    }

    /// Apply a validated params document.
    fn set_params(&self, _ctx: &mut Ctx, _params: &serde_json::Value) -> Result<(), ModuleError> {
        Err(ModuleError::invalid_request(format!(
            "module {} has no params",
            self.name()
        )))
    }
}
