//! [`Ctx`]: everything a module sees while executing a message or a block hook.
//!
//! Store access through `Ctx` is gas-metered; hooks run with an infinite meter. Events are
//! collected in order and attached by the app to the tx or block result.
//!
//! Two ways in, one meter (ADR 0096):
//! * the metered methods ([`Ctx::get`], [`Ctx::set`], [`Ctx::delete`], [`Ctx::scan_prefix`],
//!   the borsh helpers) charge first and return [`OutOfGas`] as soon as the limit is passed, so
//!   a loop built on them stops there;
//! * the store view ([`Ctx::store`], [`Ctx::store_mut`]) — what the typed `state::` helpers
//!   take — charges the same schedule per access but cannot return an error; once the meter is
//!   exhausted the app fails the message with out-of-gas ([`GasMeter::exhausted`]) whatever it
//!   returned. Handler loops that a tx can grow use the metered methods, so they stop early.

use crate::gas::{GasMeter, OutOfGas};
use crate::services::Services;
use crate::store::KvStore;
use crate::{Address, Event};

/// A validator's vote in the last commit (for fee distribution by power).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct VoteInfo {
    /// Consensus address (20 bytes, SHA-256(ed25519 pubkey)[..20]).
    pub validator: Vec<u8>,
    /// Voting power.
    pub power: u64,
    /// Whether it signed the last block.
    pub signed: bool,
}

/// Evidence of validator misbehaviour reported by consensus.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Misbehavior {
    /// `duplicate_vote` or `light_client_attack`.
    pub kind: String,
    /// Consensus address of the offender.
    pub validator: Vec<u8>,
    /// Its power at the offence.
    pub power: u64,
    /// Height of the offence.
    pub height: u64,
}

/// Block being executed (or the last committed one, for queries).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct BlockInfo {
    /// Chain id from genesis.
    pub chain_id: String,
    /// Height.
    pub height: u64,
    /// Block time, whole seconds since the Unix epoch (from the block header: consensus time).
    pub time_secs: u64,
    /// Sub-second part of the block time.
    pub time_nanos: u32,
    /// Block hash (32 bytes; seed of deterministic randomness such as evaluator assignment).
    pub hash: [u8; 32],
    /// Proposer consensus address.
    pub proposer: Vec<u8>,
    /// Votes of the last commit.
    pub last_votes: Vec<VoteInfo>,
    /// Misbehaviour evidence in this block.
    pub misbehavior: Vec<Misbehavior>,
}

/// A store view that charges a [`GasMeter`] for every access (see the module docs).
pub struct MeteredStore<'a> {
    inner: &'a mut dyn KvStore,
    gas: GasMeter,
}

impl MeteredStore<'_> {
    fn charge_read(&self, key: &[u8], value: Option<&Vec<u8>>) -> Result<(), OutOfGas> {
        let c = self.gas.costs;
        self.gas.consume(c.read_flat, "read")?;
        let n = value.map_or(0, |v| v.len()) as u64;
        self.gas.consume(
            c.read_per_byte.saturating_mul(n + key.len() as u64),
            "read bytes",
        )
    }
    fn charge_write(&self, key: &[u8], value: &[u8]) -> Result<(), OutOfGas> {
        let c = self.gas.costs;
        self.gas.consume(c.write_flat, "write")?;
        let n = (key.len() + value.len()) as u64;
        self.gas
            .consume(c.write_per_byte.saturating_mul(n), "write bytes")
    }
    fn charge_delete(&self) -> Result<(), OutOfGas> {
        self.gas.consume(self.gas.costs.delete, "delete")
    }
    /// Seek, then each returned key; stops charging at the first failure.
    fn charge_range(&self, rows: &[(Vec<u8>, Vec<u8>)]) -> Result<(), OutOfGas> {
        let c = self.gas.costs;
        self.gas.consume(c.iter_flat, "iterate")?;
        for (k, v) in rows {
            self.gas.consume(c.iter_next_flat, "iterate next")?;
            self.gas.consume(
                c.read_per_byte.saturating_mul((k.len() + v.len()) as u64),
                "iterate bytes",
            )?;
        }
        Ok(())
    }
}

impl KvStore for MeteredStore<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let v = self.inner.get(key);
        // An exhausted meter is reported by the app after the message (`GasMeter::exhausted`).
        let _ = self.charge_read(key, v.as_ref());
        v
    }
    fn set(&mut self, key: &[u8], value: Vec<u8>) {
        let _ = self.charge_write(key, &value);
        self.inner.set(key, value);
    }
    fn delete(&mut self, key: &[u8]) {
        let _ = self.charge_delete();
        self.inner.delete(key);
    }
    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
        let rows = self.inner.range(start, end);
        let _ = self.charge_range(&rows);
        rows
    }
}

/// Execution context of a message or hook. See the module docs.
pub struct Ctx<'a> {
    /// The block.
    pub block: &'a BlockInfo,
    store: MeteredStore<'a>,
    events: Vec<Event>,
    /// The verified signer of the current tx (`None` in hooks and genesis).
    pub signer: Option<Address>,
    /// True while running CheckTx (state is a scratch copy).
    pub check_only: bool,
    services: Services<'a>,
}

impl<'a> Ctx<'a> {
    /// A context over `store` for `block`.
    pub fn new(
        block: &'a BlockInfo,
        store: &'a mut dyn KvStore,
        gas: GasMeter,
        services: Services<'a>,
    ) -> Ctx<'a> {
        Ctx {
            block,
            store: MeteredStore { inner: store, gas },
            events: Vec::new(),
            signer: None,
            check_only: false,
            services,
        }
    }

    /// Other modules' services (bank, router, …). The returned handle does not borrow `self`,
    /// so `ctx.services().bank.send(ctx, …)` works.
    pub fn services(&self) -> Services<'a> {
        self.services
    }

    /// Gas meter of this tx (infinite in hooks).
    pub fn gas(&self) -> &GasMeter {
        &self.store.gas
    }

    /// Metered read.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, OutOfGas> {
        // Charge the flat part before the work, the bytes after it.
        self.store
            .gas
            .consume(self.store.gas.costs.read_flat, "read")?;
        let v = self.store.inner.get(key);
        let c = self.store.gas.costs;
        let n = v.as_ref().map_or(0, |v| v.len()) as u64;
        self.store.gas.consume(
            c.read_per_byte.saturating_mul(n + key.len() as u64),
            "read bytes",
        )?;
        Ok(v)
    }

    /// Metered write.
    pub fn set(&mut self, key: &[u8], value: Vec<u8>) -> Result<(), OutOfGas> {
        self.store.charge_write(key, &value)?;
        self.store.inner.set(key, value);
        Ok(())
    }

    /// Metered delete.
    pub fn delete(&mut self, key: &[u8]) -> Result<(), OutOfGas> {
        self.store.charge_delete()?;
        self.store.inner.delete(key);
        Ok(())
    }

    /// Metered prefix scan, ascending: a seek, then `iter_next_flat` plus `read_per_byte` per
    /// byte for each key returned.
    #[allow(clippy::type_complexity)]
    pub fn scan_prefix(&mut self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, OutOfGas> {
        self.store
            .gas
            .consume(self.store.gas.costs.iter_flat, "iterate")?;
        let out = crate::store::scan_prefix(&*self.store.inner, prefix);
        let c = self.store.gas.costs;
        for (k, v) in &out {
            self.store.gas.consume(c.iter_next_flat, "iterate next")?;
            self.store.gas.consume(
                c.read_per_byte.saturating_mul((k.len() + v.len()) as u64),
                "iterate bytes",
            )?;
        }
        Ok(out)
    }

    /// Metered typed read. A value that does not decode is state corruption and is reported
    /// as [`crate::ModuleError::corrupt`].
    pub fn get_borsh<T: borsh::BorshDeserialize>(
        &mut self,
        key: &[u8],
    ) -> Result<Option<T>, crate::ModuleError> {
        match self.get(key)? {
            None => Ok(None),
            Some(b) => T::try_from_slice(&b)
                .map(Some)
                .map_err(|e| crate::ModuleError::corrupt(key, &e.to_string())),
        }
    }

    /// Metered typed write.
    pub fn set_borsh<T: borsh::BorshSerialize>(
        &mut self,
        key: &[u8],
        value: &T,
    ) -> Result<(), OutOfGas> {
        let bytes = borsh::to_vec(value).unwrap_or_default();
        self.set(key, bytes)
    }

    /// Read-only view of the store. Every access charges this context's meter (per the
    /// schedule, like [`Ctx::get`] / [`Ctx::scan_prefix`]) but cannot fail: see the module docs.
    pub fn store(&self) -> &dyn KvStore {
        &self.store
    }

    /// Mutable view of the store, charged like [`Ctx::store`] (writes per [`Ctx::set`]).
    pub fn store_mut(&mut self) -> &mut dyn KvStore {
        &mut self.store
    }

    /// Emit an event.
    pub fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Events emitted so far.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Take the emitted events, leaving none.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The signer, or an `unauthorized` error if this is not a signed tx.
    pub fn require_signer(&self) -> Result<Address, crate::ModuleError> {
        self.signer
            .ok_or_else(|| crate::ModuleError::new("sdk", 4, "message requires a signer"))
    }
}

/// Read-only context for queries and genesis export.
pub struct QueryCtx<'a> {
    /// The block the state belongs to.
    pub block: &'a BlockInfo,
    /// The state at that block.
    pub store: &'a dyn KvStore,
}

impl QueryCtx<'_> {
    /// Typed read; undecodable bytes are corruption.
    pub fn get_borsh<T: borsh::BorshDeserialize>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, crate::ModuleError> {
        crate::store::get_borsh(self.store, key)
            .map_err(|e| crate::ModuleError::corrupt(key, &e.to_string()))
    }
}
