//! Gas: a budget of work a transaction may do. Costs are per store read/write, per byte,
//! per key iterated, and per unit of declared work (e.g. signature checks). Running out
//! aborts the tx (its writes are discarded) but its fee is still charged.
//!
//! The schedule ([`GasCosts`]) is the Cosmos SDK's `KVGasConfig` (ADR 0096). Every store
//! access a transaction makes through its [`crate::Ctx`] is charged — the metered methods
//! (`get`, `set`, `scan_prefix`, …) return [`OutOfGas`] at once; reads through the
//! store view (`Ctx::store()`) charge the same meter and, once it is exhausted, the app fails
//! the message with out-of-gas when it returns ([`GasMeter::exhausted`]).
//!
//! The meter counts through a `&self` (a [`Cell`]) so that a read-only store view can charge
//! it.

use std::cell::{Cell, RefCell};

/// Fixed gas costs (Cosmos SDK KVGasConfig-like).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GasCosts {
    /// Per read.
    pub read_flat: u64,
    /// Per byte read.
    pub read_per_byte: u64,
    /// Per write.
    pub write_flat: u64,
    /// Per byte written.
    pub write_per_byte: u64,
    /// Per delete.
    pub delete: u64,
    /// Per range scan (the seek), plus `iter_next_flat` per key and `read_per_byte` per byte
    /// returned.
    pub iter_flat: u64,
    /// Per key a range scan returns (Cosmos SDK `IterNextCostFlat`).
    pub iter_next_flat: u64,
    /// Per tx byte.
    pub tx_per_byte: u64,
    /// Per secp256k1 signature verification.
    pub sig_verify: u64,
}

impl Default for GasCosts {
    fn default() -> Self {
        GasCosts {
            read_flat: 1000,
            read_per_byte: 3,
            write_flat: 2000,
            write_per_byte: 30,
            delete: 1000,
            iter_flat: 1000,
            iter_next_flat: 30,
            tx_per_byte: 10,
            sig_verify: 1000,
        }
    }
}

/// The gas limit was exceeded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("out of gas in {descriptor}: limit {limit}, needed at least {needed}; raise --gas")]
pub struct OutOfGas {
    /// What consumed the gas.
    pub descriptor: String,
    /// The limit.
    pub limit: u64,
    /// Used plus the failed charge.
    pub needed: u64,
}

/// Tracks gas used against a limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GasMeter {
    limit: u64,
    used: Cell<u64>,
    /// The first charge that did not fit, kept for the app to report (see
    /// [`GasMeter::exhausted`]).
    exhausted: RefCell<Option<OutOfGas>>,
    /// Cost table.
    pub costs: GasCosts,
}

impl GasMeter {
    /// A meter with `limit`.
    pub fn new(limit: u64) -> GasMeter {
        GasMeter {
            limit,
            used: Cell::new(0),
            exhausted: RefCell::new(None),
            costs: GasCosts::default(),
        }
    }
    /// A meter that never runs out (block hooks, genesis, queries).
    pub fn infinite() -> GasMeter {
        GasMeter::new(u64::MAX)
    }
    /// Gas used so far.
    pub fn used(&self) -> u64 {
        self.used.get()
    }
    /// The limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }
    /// Charge `amount`; error (and saturate `used` at the limit) if it exceeds the limit.
    /// The first failed charge is remembered ([`GasMeter::exhausted`]).
    pub fn consume(&self, amount: u64, descriptor: &str) -> Result<(), OutOfGas> {
        let needed = self.used.get().saturating_add(amount);
        if needed > self.limit {
            self.used.set(self.limit);
            let e = OutOfGas {
                descriptor: descriptor.to_string(),
                limit: self.limit,
                needed,
            };
            self.exhausted.borrow_mut().get_or_insert_with(|| e.clone());
            return Err(e);
        }
        self.used.set(needed);
        Ok(())
    }
    /// The first charge that exceeded the limit, if any. A charge made through the store
    /// view cannot return an error, so the app checks this after every message: a message
    /// that ran out of gas fails with out-of-gas whatever it returned.
    pub fn exhausted(&self) -> Option<OutOfGas> {
        self.exhausted.borrow().clone()
    }
}

/// A gas price in umag per gas, as an integer number of 10^-18 umag (exact decimal math).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct GasPrice(pub u128);

const PRICE_SCALE: u128 = 1_000_000_000_000_000_000;

impl GasPrice {
    /// Parse `"0.025"` or `"0.025umag"` (at most 18 decimals).
    pub fn parse(s: &str) -> Result<GasPrice, crate::ModuleError> {
        let bad = |why: &str| {
            crate::ModuleError::invalid_request(format!(
                "gas price {s:?}: {why}; write it like 0.025 or 0.025umag"
            ))
        };
        let t = s.trim();
        let t = t.strip_suffix(crate::NATIVE_DENOM).unwrap_or(t);
        if t.is_empty() {
            return Err(bad("empty"));
        }
        let (int, frac) = match t.split_once('.') {
            Some((i, f)) => (i, f),
            None => (t, ""),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(bad("no digits"));
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("not a decimal number"));
        }
        if frac.len() > 18 {
            return Err(bad("more than 18 decimals"));
        }
        let i: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad("too large"))?
        };
        let mut f: u128 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| bad("too large"))?
        };
        for _ in frac.len()..18 {
            f *= 10;
        }
        i.checked_mul(PRICE_SCALE)
            .and_then(|v| v.checked_add(f))
            .map(GasPrice)
            .ok_or_else(|| bad("too large"))
    }

    /// The smallest fee (umag) that pays `gas` at this price: `ceil(gas × price)`.
    pub fn fee_for(&self, gas: u64) -> u128 {
        let g = gas as u128;
        // gas < 2^64 and price fits u128; split the price to avoid overflow.
        let whole = (self.0 / PRICE_SCALE).saturating_mul(g);
        let frac = (self.0 % PRICE_SCALE).saturating_mul(g);
        whole
            .saturating_add(frac / PRICE_SCALE)
            .saturating_add(u128::from(!frac.is_multiple_of(PRICE_SCALE)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceeding_the_limit_is_an_error_and_saturates() {
        let g = GasMeter::new(10);
        assert!(g.consume(6, "a").is_ok());
        assert_eq!(g.exhausted(), None);
        let e = g.consume(5, "b").unwrap_err();
        assert_eq!(e.needed, 11);
        assert_eq!(g.used(), 10);
        assert_eq!(g.exhausted(), Some(e));
        // A later failure does not replace the first.
        assert!(g.consume(1, "c").is_err());
        assert_eq!(g.exhausted().map(|e| e.descriptor), Some("b".to_string()));
    }
}
