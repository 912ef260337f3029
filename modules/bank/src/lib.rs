//! # magnet-bank — balances, transfers, supply, mint and burn
//!
//! The bank keeps one balance per (account, denom) and one supply per denom. Every write
//! path (send, mint, burn, genesis) keeps the invariant **supply(denom) = Σ balances(denom)**;
//! a property test checks it under random operation sequences.
//!
//! Module accounts (`Address::module(name)`) are ordinary balances nobody holds a key for;
//! modules escrow bonds and pools in them.
//!
//! # Security
//! Guarantees: no operation creates or destroys coins except `mint` and `burn`; a failed
//! operation writes nothing (checks happen before writes); amounts never wrap.
//! Does not guarantee: authorisation — callers (the tx pipeline, other modules) decide who may
//! move whose coins.
#![deny(clippy::unwrap_used, clippy::disallowed_types)]

pub mod state;

use magnet_core::{Address, Bank, BankError, Coins, Ctx};

/// The bank keeper; implements [`magnet_core::Bank`].
#[derive(Default, Clone, Copy, Debug)]
pub struct BankKeeper;

impl Bank for BankKeeper {
    fn balance(&self, ctx: &mut Ctx, addr: &Address, denom: &str) -> Result<u128, BankError> {
        state::balance(ctx, addr, denom)
    }

    fn balances(&self, ctx: &mut Ctx, addr: &Address) -> Result<Coins, BankError> {
        state::balances(ctx, addr)
    }

    fn send(
        &self,
        ctx: &mut Ctx,
        from: &Address,
        to: &Address,
        amount: &Coins,
    ) -> Result<(), BankError> {
        // Check every denom first so a failure writes nothing.
        let mut debits = Vec::new();
        for (denom, amt) in amount.iter() {
            let have = state::balance(ctx, from, denom)?;
            let left = have.checked_sub(amt).ok_or(BankError::InsufficientFunds {
                address: *from,
                denom: denom.to_string(),
                have,
                need: amt,
            })?;
            debits.push((denom, amt, left));
        }
        if from == to {
            return Ok(());
        }
        let mut credits = Vec::new();
        for (denom, amt, _) in &debits {
            let have = state::balance(ctx, to, denom)?;
            let sum = have
                .checked_add(*amt)
                .ok_or_else(|| BankError::Overflow(format!("balance of {to} in {denom}")))?;
            credits.push((*denom, sum));
        }
        for (denom, _, left) in debits {
            state::set_balance(ctx, from, denom, left)?;
        }
        for (denom, sum) in credits {
            state::set_balance(ctx, to, denom, sum)?;
        }
        ctx.emit(
            magnet_core::Event::new("transfer")
                .attr("sender", from)
                .attr("recipient", to)
                .attr("amount", amount),
        );
        Ok(())
    }

    fn mint(&self, ctx: &mut Ctx, to: &Address, amount: &Coins) -> Result<(), BankError> {
        let mut plan = Vec::new();
        for (denom, amt) in amount.iter() {
            let supply = state::supply(ctx, denom)?
                .checked_add(amt)
                .ok_or_else(|| BankError::Overflow(format!("supply of {denom}")))?;
            let bal = state::balance(ctx, to, denom)?
                .checked_add(amt)
                .ok_or_else(|| BankError::Overflow(format!("balance of {to} in {denom}")))?;
            plan.push((denom, supply, bal));
        }
        for (denom, supply, bal) in plan {
            state::set_supply(ctx, denom, supply)?;
            state::set_balance(ctx, to, denom, bal)?;
        }
        ctx.emit(
            magnet_core::Event::new("coinbase")
                .attr("minter", to)
                .attr("amount", amount),
        );
        Ok(())
    }

    fn burn(&self, ctx: &mut Ctx, from: &Address, amount: &Coins) -> Result<(), BankError> {
        let mut plan = Vec::new();
        for (denom, amt) in amount.iter() {
            let have = state::balance(ctx, from, denom)?;
            let left = have.checked_sub(amt).ok_or(BankError::InsufficientFunds {
                address: *from,
                denom: denom.to_string(),
                have,
                need: amt,
            })?;
            let supply = state::supply(ctx, denom)?
                .checked_sub(amt)
                .ok_or_else(|| BankError::Corrupt(format!("supply of {denom} below a balance")))?;
            plan.push((denom, left, supply));
        }
        for (denom, left, supply) in plan {
            state::set_balance(ctx, from, denom, left)?;
            state::set_supply(ctx, denom, supply)?;
        }
        ctx.emit(
            magnet_core::Event::new("burn")
                .attr("burner", from)
                .attr("amount", amount),
        );
        Ok(())
    }

    fn supply(&self, ctx: &mut Ctx, denom: &str) -> Result<u128, BankError> {
        state::supply(ctx, denom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnet_core::services::ModuleRouter;
    use magnet_core::{BlockInfo, GasMeter, MemStore, ModuleError, Services};
    use proptest::prelude::*;

    /// A router over zero modules: the bank alone needs no other module.
    struct NoModules;
    impl ModuleRouter for NoModules {
        fn module_names(&self) -> Vec<&'static str> {
            Vec::new()
        }
        fn validate_params(&self, m: &str, _: &serde_json::Value) -> Result<(), ModuleError> {
            Err(ModuleError::invalid_request(format!("no module {m}")))
        }
        fn set_params(
            &self,
            _: &mut Ctx,
            m: &str,
            _: &serde_json::Value,
        ) -> Result<(), ModuleError> {
            Err(ModuleError::invalid_request(format!("no module {m}")))
        }
    }

    fn sum_equals_supply(store: &MemStore) -> bool {
        let mut sums = std::collections::BTreeMap::<String, u128>::new();
        for (_, d, a) in state::all_balances(store).unwrap() {
            *sums.entry(d).or_default() += a;
        }
        let supply: std::collections::BTreeMap<String, u128> =
            state::all_supply(store).unwrap().into_iter().collect();
        sums == supply
    }

    #[derive(Debug, Clone)]
    enum Op {
        Mint(u8, u64),
        Burn(u8, u64),
        Send(u8, u8, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..4, any::<u64>()).prop_map(|(a, n)| Op::Mint(a, n)),
            (0u8..4, any::<u64>()).prop_map(|(a, n)| Op::Burn(a, n)),
            (0u8..4, 0u8..4, any::<u64>()).prop_map(|(a, b, n)| Op::Send(a, b, n)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// supply = Σ balances after any sequence of mints, burns and sends, failed or not.
        #[test]
        fn total_supply_equals_sum_of_balances(ops in proptest::collection::vec(op(), 0..40)) {
            let block = BlockInfo::default();
            let mut store = MemStore::new();
            let router = NoModules;
            let services = Services::new(&BankKeeper, &router);
            let mut ctx = Ctx::new(&block, &mut store, GasMeter::infinite(), services);
            let addr = |i: u8| Address([i; 20]);
            for op in ops {
                let before = ctx.store().range(b"", None);
                let res = match op {
                    Op::Mint(a, n) => BankKeeper.mint(&mut ctx, &addr(a), &Coins::umag(n as u128)),
                    Op::Burn(a, n) => BankKeeper.burn(&mut ctx, &addr(a), &Coins::umag(n as u128)),
                    Op::Send(a, b, n) => BankKeeper.send(&mut ctx, &addr(a), &addr(b), &Coins::umag(n as u128)),
                };
                if res.is_err() {
                    prop_assert_eq!(ctx.store().range(b"", None), before, "failed op wrote state");
                }
            }
            drop(ctx);
            prop_assert!(sum_equals_supply(&store));
        }
    }
}
