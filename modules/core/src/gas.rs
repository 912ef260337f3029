//! Gas: a budget of work a transaction may do. Costs are per store read/write, per byte,
//! and per unit of declared work (e.g. signature checks). Running out aborts the tx (its
//! writes are discarded) but its fee is still charged.

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
    /// Per range scan, plus `read_per_byte` per byte returned.
    pub iter_flat: u64,
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
            iter_flat: 30,
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
    used: u64,
    /// Cost table.
    pub costs: GasCosts,
}

impl GasMeter {
    /// A meter with `limit`.
    pub fn new(limit: u64) -> GasMeter {
        GasMeter {
            limit,
            used: 0,
            costs: GasCosts::default(),
        }
    }
    /// A meter that never runs out (block hooks, genesis, queries).
    pub fn infinite() -> GasMeter {
        GasMeter::new(u64::MAX)
    }
    /// Gas used so far.
    pub fn used(&self) -> u64 {
        self.used
    }
    /// The limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }
    /// Charge `amount`; error (and saturate `used` at the limit) if it exceeds the limit.
    pub fn consume(&mut self, amount: u64, descriptor: &str) -> Result<(), OutOfGas> {
        let needed = self.used.saturating_add(amount);
        if needed > self.limit {
            self.used = self.limit;
            return Err(OutOfGas {
                descriptor: descriptor.to_string(),
                limit: self.limit,
                needed,
            });
        }
        self.used = needed;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceeding_the_limit_is_an_error_and_saturates() {
        let mut g = GasMeter::new(10);
        assert!(g.consume(6, "a").is_ok());
        let e = g.consume(5, "b").unwrap_err();
        assert_eq!(e.needed, 11);
        assert_eq!(g.used(), 10);
    }
}
