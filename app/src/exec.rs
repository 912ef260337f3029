//! Executing one decoded tx against a store: the ante checks, then the messages.
//!
//! Ante, in order (the first failure decides the code; a tx failing here changes nothing):
//! timeout height (ErrTxTimeoutHeight) → gas for the tx bytes → the signer's account exists
//! (ErrUnknownAddress) → its sequence matches (ErrWrongSequence) → a public key is known and
//! matches the account's (ErrInvalidPubKey) → gas for the signature check → the signature
//! verifies over SignDoc{body, auth_info, chain_id, account_number} (ErrUnauthorized; a
//! wrong chain id lands here) → the fee covers `gas_limit × min gas price`
//! (ErrInsufficientFee) → the fee moves to the `fee_collector` module account
//! (ErrInsufficientFunds) → the sequence increments and the key is recorded.
//!
//! Messages then run in a nested write buffer. If one fails (or gas runs out) in
//! FinalizeBlock, its writes are dropped but the ante's (fee, sequence) stay, as in the Cosmos
//! SDK. In CheckTx a failing tx leaves the check state untouched.
//!
//! Fees are, for now, simply collected in the `fee_collector` module account
//! ([`FEE_COLLECTOR`]); the incentive modules will split them.
//!
//! # Panics are isolated per tx (ADR 0094)
//!
//! The ante and the message loop each run inside [`std::panic::catch_unwind`]. A panic in
//! either (a bug a tx could reach, e.g. an arithmetic overflow: release builds of the
//! consensus crates have `overflow-checks = true`) fails only that tx, with `sdk` code
//! [`codes::PANIC`] (the Cosmos SDK's ErrPanic, 111222): the panicking stage's writes are
//! dropped exactly as for an error (a panic in a message keeps the ante's fee and sequence in
//! FinalizeBlock; a panic in the ante changes nothing), a `tracing::error!` records the panic
//! message, and the block goes on. Panics are deterministic (same code, same input, same
//! panic), so every validator fails the tx the same way. The workspace must keep the default
//! `panic = "unwind"`; an abort (stack overflow, out of memory) is not caught.
//!
//! Block hooks (`begin_block`, `end_block`, `end_epoch`) are not txs and are **not** wrapped:
//! a panic there is a bug in the chain's own logic that no single tx is to blame for, and the
//! node halts (deterministically, on every validator) rather than skip part of a block.

use crate::auth::{self, AuthParams, GasPrice};
use crate::error::{codes, TxError};
use crate::modules::ModuleSet;
use crate::tx::DecodedTx;
use base64::Engine;
use magnet_core::store::Overlay;
use magnet_core::{Address, BlockInfo, Ctx, Event, GasMeter, KvStore};
use prost::Message;

/// Name of the module account that receives every tx fee.
pub const FEE_COLLECTOR: &str = "fee_collector";

/// The fee collector's address.
pub fn fee_collector() -> Address {
    Address::module(FEE_COLLECTOR)
}

/// Where a tx runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// CheckTx: the node's own minimum gas price applies too; failures change nothing.
    Check {
        /// The node-local minimum gas price (the consensus one applies as well).
        local_min_gas_price: GasPrice,
    },
    /// FinalizeBlock.
    Deliver,
    /// Gas estimation: no fee check, an empty signature is accepted (but its gas is charged).
    Simulate,
}

/// A signature verified ahead of execution (possibly on another thread).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigCheck {
    /// Key it was verified with.
    pub pub_key: Vec<u8>,
    /// Account number in the SignDoc.
    pub account_number: u64,
    /// Whether it verified.
    pub valid: bool,
}

/// The result of one tx.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxOutcome {
    /// 0 on success.
    pub code: u32,
    /// Codespace of a failure.
    pub codespace: String,
    /// Why it failed (empty on success).
    pub log: String,
    /// `TxMsgData` (protobuf) on success.
    pub data: Vec<u8>,
    /// Gas limit.
    pub gas_wanted: u64,
    /// Gas used.
    pub gas_used: u64,
    /// Events (ante and messages).
    pub events: Vec<Event>,
    /// Whether the tx passed its ante checks (decoding, timeout, account, sequence, key,
    /// signature, fee): in FinalizeBlock such a tx paid its fee and used its sequence even if
    /// a message then failed. ProcessProposal rejects a block holding a tx without it
    /// (ADR 0095).
    pub ante_passed: bool,
}

impl TxOutcome {
    fn failed(e: TxError, gas_wanted: u64, gas_used: u64, events: Vec<Event>) -> TxOutcome {
        TxOutcome {
            code: e.code,
            codespace: e.codespace,
            log: e.log,
            data: Vec::new(),
            gas_wanted,
            gas_used,
            events,
            ante_passed: false,
        }
    }
    /// True when the tx succeeded.
    pub fn is_ok(&self) -> bool {
        self.code == 0
    }
}

/// Everything a tx's execution needs besides the store.
pub struct ExecEnv<'a> {
    /// The block.
    pub block: &'a BlockInfo,
    /// Chain id (part of the SignDoc).
    pub chain_id: &'a str,
    /// Modules and services.
    pub modules: &'a ModuleSet,
    /// Auth params in force.
    pub params: &'a AuthParams,
    /// Consensus minimum gas price (parsed from `params`).
    pub min_gas_price: GasPrice,
}

/// Run one tx against `store` (writes applied to `store` per the rules in the module docs).
pub fn exec_tx(
    store: &mut dyn KvStore,
    env: &ExecEnv,
    tx: &DecodedTx,
    sig_hint: Option<&SigCheck>,
    mode: Mode,
) -> TxOutcome {
    let gas_limit = if mode == Mode::Simulate && tx.gas_limit == 0 {
        env.params.max_tx_gas
    } else {
        tx.gas_limit
    };
    let services = env.modules.services();
    let mut ante_buf = Overlay::new(store);
    let mut ctx = Ctx::new(env.block, &mut ante_buf, GasMeter::new(gas_limit), services);
    let ante = guarded(tx, "ante", || {
        run_ante(&mut ctx, env, tx, sig_hint, mode).and_then(|()| out_of_gas(&ctx))
    });
    if let Err(e) = ante {
        let used = ctx.gas().used();
        drop(ctx);
        ante_buf.discard();
        return TxOutcome::failed(e, gas_limit, used, Vec::new());
    }
    let ante_events = ctx.take_events();
    let gas = ctx.gas().clone();
    drop(ctx);

    let mut msg_buf = Overlay::new(&mut ante_buf);
    let mut ctx = Ctx::new(env.block, &mut msg_buf, gas, services);
    ctx.signer = Some(tx.signer);
    ctx.check_only = matches!(mode, Mode::Check { .. });
    let mut responses = Vec::with_capacity(tx.msgs.len());
    let failure = guarded(tx, "messages", || {
        run_msgs(&mut ctx, env, tx, &mut responses)
    })
    .err();
    let used = ctx.gas().used();
    let msg_events = ctx.take_events();
    drop(ctx);
    match failure {
        Some(e) => {
            msg_buf.discard();
            match mode {
                // The fee and sequence stay charged.
                Mode::Deliver => ante_buf.commit(),
                _ => ante_buf.discard(),
            }
            TxOutcome {
                ante_passed: true,
                ..TxOutcome::failed(e, gas_limit, used, ante_events)
            }
        }
        None => {
            msg_buf.commit();
            ante_buf.commit();
            #[allow(deprecated)]
            let data = cosmrs::proto::cosmos::base::abci::v1beta1::TxMsgData {
                data: Vec::new(),
                msg_responses: responses,
            }
            .encode_to_vec();
            let mut events = ante_events;
            events.extend(msg_events);
            TxOutcome {
                code: 0,
                codespace: String::new(),
                log: String::new(),
                data,
                gas_wanted: gas_limit,
                gas_used: used,
                events,
                ante_passed: true,
            }
        }
    }
}

/// Run one stage of a tx (`what`: "ante" or "messages"), turning a panic into a failure with
/// code [`codes::PANIC`]. The caller drops the stage's write buffer on any failure.
fn guarded(
    tx: &DecodedTx,
    what: &str,
    f: impl FnOnce() -> Result<(), TxError>,
) -> Result<(), TxError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let why = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_string());
            tracing::error!(
                tx = %hex::encode(tx.hash),
                stage = what,
                panic = %why,
                "a tx panicked; it fails with sdk/111222 and its {what} writes were dropped"
            );
            Err(TxError::sdk(
                codes::PANIC,
                format!(
                    "panic in the tx's {what} (a bug; the tx failed and its {what} writes were \
                     dropped): {why}"
                ),
            ))
        }
    }
}

/// Deliver `tx`'s messages in order; the first failure stops the loop.
fn run_msgs(
    ctx: &mut Ctx,
    env: &ExecEnv,
    tx: &DecodedTx,
    responses: &mut Vec<cosmrs::Any>,
) -> Result<(), TxError> {
    for (i, msg) in tx.msgs.iter().enumerate() {
        let Some(module) = env.modules.route(&msg.type_url) else {
            return Err(TxError::sdk(
                codes::UNKNOWN_REQUEST,
                format!("message {i}: unrecognized message type {:?}", msg.type_url),
            ));
        };
        // A message that exhausted the meter through the store view fails with out-of-gas,
        // whatever it returned (ADR 0096).
        let delivered = module
            .deliver(ctx, msg)
            .map_err(TxError::from)
            .and_then(|r| out_of_gas(ctx).map(|()| r));
        match delivered {
            Ok(r) => {
                // The Cosmos SDK's `message` event, for every message of every module: what
                // explorers and `tx_search("message.sender='…'")` filter on.
                ctx.emit(
                    magnet_core::Event::new("message")
                        .attr("action", &msg.type_url)
                        .attr("sender", tx.signer)
                        .attr("module", module.name()),
                );
                responses.push(cosmrs::Any {
                    type_url: r.type_url,
                    value: r.value,
                })
            }
            Err(e) => {
                let mut e = out_of_gas(ctx).err().unwrap_or(e);
                e.log = format!("message {i} ({}): {}", msg.type_url, e.log);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Out-of-gas if the meter ran out, even through the (infallible) store view.
fn out_of_gas(ctx: &Ctx) -> Result<(), TxError> {
    ctx.gas().exhausted().map_or(Ok(()), |e| Err(e.into()))
}

fn run_ante(
    ctx: &mut Ctx,
    env: &ExecEnv,
    tx: &DecodedTx,
    sig_hint: Option<&SigCheck>,
    mode: Mode,
) -> Result<(), TxError> {
    if tx.timeout_height != 0 && env.block.height > tx.timeout_height {
        return Err(TxError::sdk(
            codes::TX_TIMEOUT_HEIGHT,
            format!(
                "tx timed out at height {}; the chain is at {}",
                tx.timeout_height, env.block.height
            ),
        ));
    }
    let costs = ctx.gas().costs;
    ctx.gas()
        .consume(costs.tx_per_byte.saturating_mul(tx.len as u64), "txSize")?;
    let mut acct = auth::load_account(ctx, &tx.signer)?.ok_or_else(|| {
        TxError::sdk(
            codes::UNKNOWN_ADDRESS,
            format!(
                "account {} does not exist; an account is created when it first receives coins",
                tx.signer
            ),
        )
    })?;
    if tx.sequence != acct.sequence {
        return Err(TxError::sdk(
            codes::WRONG_SEQUENCE,
            format!(
                "account sequence mismatch, expected {}, got {} (a replayed or out-of-order tx)",
                acct.sequence, tx.sequence
            ),
        ));
    }
    let key = match (&tx.pub_key, &acct.pub_key) {
        (Some(t), Some(a)) if t != a => {
            return Err(TxError::sdk(
                codes::INVALID_PUBKEY,
                format!(
                    "public key in the tx differs from the one recorded for {}",
                    tx.signer
                ),
            ))
        }
        (Some(t), _) => t.clone(),
        (None, Some(a)) => a.clone(),
        (None, None) => {
            return Err(TxError::sdk(
                codes::INVALID_PUBKEY,
                format!(
                    "no public key known for {}: its first tx must carry the key in signer_infos",
                    tx.signer
                ),
            ))
        }
    };
    ctx.gas()
        .consume(costs.sig_verify, "ante verify: secp256k1")?;
    let skip_sig = mode == Mode::Simulate && tx.signature.is_empty();
    if !skip_sig {
        let valid = match sig_hint {
            Some(h) if h.pub_key == key && h.account_number == acct.account_number => h.valid,
            _ => crate::tx::verify_signature(tx, &key, env.chain_id, acct.account_number),
        };
        if !valid {
            return Err(TxError::sdk(
                codes::UNAUTHORIZED,
                format!(
                    "signature verification failed; please verify account number ({}), sequence ({}) and chain-id ({})",
                    acct.account_number, acct.sequence, env.chain_id
                ),
            ));
        }
    }
    if mode != Mode::Simulate {
        let price = match mode {
            Mode::Check {
                local_min_gas_price,
            } => local_min_gas_price.max(env.min_gas_price),
            _ => env.min_gas_price,
        };
        let required = price.fee_for(tx.gas_limit);
        let offered = tx.fee.amount_of(magnet_core::NATIVE_DENOM);
        if offered < required {
            return Err(TxError::sdk(
                codes::INSUFFICIENT_FEE,
                format!(
                    "insufficient fees; got: {offered}{d} required: {required}{d} (gas limit {} at the minimum gas price)",
                    tx.gas_limit,
                    d = magnet_core::NATIVE_DENOM
                ),
            ));
        }
    }
    if !tx.fee.is_empty() {
        let bank = ctx.services().bank;
        bank.send(ctx, &tx.signer, &fee_collector(), &tx.fee)
            .map_err(|e| match e {
                magnet_core::BankError::InsufficientFunds { .. } => TxError::sdk(
                    codes::INSUFFICIENT_FUNDS,
                    format!("insufficient funds to pay the fee {}: {e}", tx.fee),
                ),
                other => TxError::from(other),
            })?;
        // The transfer event of a fee is reported as the `tx` fee event below.
        ctx.take_events();
    }
    // Equal to the tx's sequence, so a u64::MAX here would need 2^64 txs; checked anyway.
    acct.sequence = acct.sequence.checked_add(1).ok_or_else(|| {
        TxError::sdk(
            codes::INVALID_SEQUENCE,
            format!("account {} has used every sequence number", tx.signer),
        )
    })?;
    acct.pub_key = Some(key);
    auth::store_account(ctx, &tx.signer, &acct)?;
    ctx.emit(
        Event::new("tx")
            .attr("fee", &tx.fee)
            .attr("fee_payer", tx.signer),
    );
    ctx.emit(Event::new("tx").attr("acc_seq", format!("{}/{}", tx.signer, tx.sequence)));
    ctx.emit(Event::new("tx").attr(
        "signature",
        base64::engine::general_purpose::STANDARD.encode(&tx.signature),
    ));
    Ok(())
}
