//! The epoch clock: epochs are spans of block time, `duration_secs` long.
//!
//! Epoch 0 starts at genesis time. At the end of each block the app calls [`advance`], which
//! returns every epoch that ended at this block, oldest first — a block after a long halt
//! can end several, and each is settled in order. At most `max_ends_per_block` epochs end in
//! one block (the rest end in the following blocks), so no block does unbounded work.
//! A new `duration_secs` set by governance takes effect at the next epoch boundary.
//!
//! Epochs measure block time, which the proposer influences; modules that must not be
//! stretched by a skewed clock (emission) add their own height-based caps.

use crate::context::{Ctx, QueryCtx};
use crate::module::{Module, ModuleError};
use borsh::{BorshDeserialize, BorshSerialize};

/// Store key of the epoch state.
pub const STATE_KEY: &[u8] = b"epochs/state";

/// Epoch clock parameters.
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
pub struct EpochParams {
    /// Epoch length in seconds of block time (> 0).
    pub duration_secs: u64,
    /// Most epochs that may end in one block (≥ 1).
    pub max_ends_per_block: u64,
}

impl Default for EpochParams {
    fn default() -> Self {
        EpochParams {
            duration_secs: 3600,
            max_ends_per_block: 16,
        }
    }
}

impl EpochParams {
    /// Reject a zero epoch or a zero per-block bound.
    pub fn validate(&self) -> Result<(), ModuleError> {
        if self.duration_secs == 0 {
            return Err(ModuleError::new(
                "epochs",
                2,
                "epochs.duration_secs must be > 0",
            ));
        }
        if self.max_ends_per_block == 0 {
            return Err(ModuleError::new(
                "epochs",
                3,
                "epochs.max_ends_per_block must be ≥ 1",
            ));
        }
        Ok(())
    }
}

/// The clock's state.
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
pub struct EpochState {
    /// The running epoch.
    pub current: u64,
    /// Block time (s) at which `current` started.
    pub start_time_secs: u64,
    /// Height of the first block of `current` (0 before the first block).
    pub start_height: u64,
    /// Params in force.
    pub params: EpochParams,
    /// Params that take effect at the next boundary.
    pub pending: Option<EpochParams>,
}

impl EpochState {
    /// Block time at which the current epoch ends.
    pub fn end_time_secs(&self) -> u64 {
        self.start_time_secs
            .saturating_add(self.params.duration_secs)
    }
}

/// Read the epoch state.
pub fn state(store: &dyn crate::KvStore) -> Result<EpochState, ModuleError> {
    crate::store::get_borsh(store, STATE_KEY)
        .map_err(|e| ModuleError::corrupt(STATE_KEY, &e.to_string()))?
        .ok_or_else(|| ModuleError::corrupt(STATE_KEY, "epoch state missing (genesis not run?)"))
}

/// Advance the clock to the current block's time; returns the epochs that ended, oldest first.
pub fn advance(ctx: &mut Ctx) -> Result<Vec<u64>, ModuleError> {
    let mut st = state(ctx.store())?;
    let now = ctx.block.time_secs;
    let mut ended = Vec::new();
    while now >= st.end_time_secs() && (ended.len() as u64) < st.params.max_ends_per_block {
        ended.push(st.current);
        st.start_time_secs = st.end_time_secs();
        st.current += 1;
        st.start_height = ctx.block.height + 1;
        if let Some(p) = st.pending.take() {
            st.params = p;
        }
    }
    if !ended.is_empty() {
        for e in &ended {
            ctx.emit(
                crate::Event::new("epoch_end")
                    .attr("epoch", e)
                    .attr("height", ctx.block.height),
            );
        }
        crate::store::set_borsh(ctx.store_mut(), STATE_KEY, &st);
    }
    Ok(ended)
}

/// The epoch clock as a module (genesis, params, query `/magnet.epochs.v1/state`).
#[derive(Default)]
pub struct EpochsModule;

impl Module for EpochsModule {
    fn name(&self) -> &'static str {
        "epochs"
    }

    fn init_genesis(&self, ctx: &mut Ctx, genesis: &serde_json::Value) -> Result<(), ModuleError> {
        let params: EpochParams = if genesis.is_null() {
            EpochParams::default()
        } else {
            let p = genesis
                .get("params")
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            serde_json::from_value(p)
                .map_err(|e| ModuleError::invalid_request(format!("epochs genesis params: {e}")))?
        };
        params.validate()?;
        // An exported chain carries its epoch number on (records keyed by epoch stay unique)
        // and, when the export says when that epoch started, keeps that start — so a chain
        // restarted from an export computes the same state (and app hash) as the one exported;
        // a later genesis time ends the overdue epochs on the first blocks. Without it (older
        // exports), the epoch restarts at the new genesis time.
        let current = match genesis.get("current") {
            None | Some(serde_json::Value::Null) => 0,
            Some(v) => v.as_u64().ok_or_else(|| {
                ModuleError::invalid_request(format!(
                    "epochs genesis current: expected an epoch number, got {v}"
                ))
            })?,
        };
        let pending = match genesis.get("pending_params") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => {
                let p: EpochParams = serde_json::from_value(v.clone()).map_err(|e| {
                    ModuleError::invalid_request(format!("epochs genesis pending_params: {e}"))
                })?;
                p.validate()?;
                Some(p)
            }
        };
        let field = |k: &str| -> Result<Option<u64>, ModuleError> {
            match genesis.get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                    ModuleError::invalid_request(format!(
                        "epochs genesis {k}: expected a non-negative integer, got {v}"
                    ))
                }),
            }
        };
        // A start after the genesis time (or the initial height) cannot be: the epoch restarts
        // at the genesis block instead, as without the field. (`validate_genesis` runs at time
        // 0 and lands here too.)
        let start_time_secs = field("start_time_secs")?
            .filter(|&t| t <= ctx.block.time_secs)
            .unwrap_or(ctx.block.time_secs);
        let start_height = field("start_height")?
            .filter(|&h| h <= ctx.block.height.saturating_add(1))
            .unwrap_or(ctx.block.height);
        let st = EpochState {
            current,
            start_time_secs,
            start_height,
            params,
            pending,
        };
        crate::store::set_borsh(ctx.store_mut(), STATE_KEY, &st);
        Ok(())
    }

    fn export_genesis(&self, ctx: &QueryCtx) -> Result<serde_json::Value, ModuleError> {
        let st = state(ctx.store)?;
        Ok(serde_json::json!({
            "params": st.params,
            "current": st.current,
            "start_time_secs": st.start_time_secs,
            "start_height": st.start_height,
            "pending_params": st.pending,
        }))
    }

    fn query(
        &self,
        ctx: &QueryCtx,
        path: &str,
        _data: &[u8],
    ) -> Option<Result<Vec<u8>, ModuleError>> {
        if path != "/magnet.epochs.v1/state" {
            return None;
        }
        Some(state(ctx.store).and_then(|s| {
            serde_json::to_vec(&s).map_err(|e| ModuleError::invalid_request(e.to_string()))
        }))
    }

    fn params(&self, ctx: &QueryCtx) -> Result<serde_json::Value, ModuleError> {
        serde_json::to_value(state(ctx.store)?.params)
            .map_err(|e| ModuleError::invalid_request(e.to_string()))
    }

    fn validate_params(&self, params: &serde_json::Value) -> Result<(), ModuleError> {
        let p: EpochParams = serde_json::from_value(params.clone())
            .map_err(|e| ModuleError::invalid_request(format!("epochs params: {e}")))?;
        p.validate()
    }

    fn set_params(&self, ctx: &mut Ctx, params: &serde_json::Value) -> Result<(), ModuleError> {
        self.validate_params(params)?;
        let p: EpochParams = serde_json::from_value(params.clone())
            .map_err(|e| ModuleError::invalid_request(format!("epochs params: {e}")))?;
        let mut st = state(ctx.store())?;
        st.pending = Some(p);
        crate::store::set_borsh(ctx.store_mut(), STATE_KEY, &st);
        Ok(())
    }
}
