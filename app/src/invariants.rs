//! Whole-app invariants: the books every module keeps must agree with the bank.
//!
//! [`check_all`] reads a state (any [`KvStore`]: the app's committed view through
//! [`crate::MagnetApp::with_committed_state`], a snapshot copy, a test's `MemStore`) and
//! returns the first [`InvariantViolation`] it finds, naming the invariant and the numbers.
//! The simulation (`magnetd sim`; `magnet_app::sim` with feature `testkit`) runs it after
//! every block; fuzz targets may run it after every input. Checked, in this order:
//!
//! 1. **No corrupt or overflowing amount.** Every balance and supply decodes as a `u128`
//!    (amounts are unsigned, so "negative" cannot be stored; a sum that would exceed `u128`
//!    is reported as [`InvariantViolation::Overflow`]).
//! 2. **Supply = Σ balances** for every denom, module accounts included
//!    ([`InvariantViolation::Supply`]).
//! 3. **Escrows = Σ the records that claim them**, one per module account:
//!    * `registry` = Σ node bonds (active or unbonding) + Σ governance bonds + Σ governance
//!      unbondings queued;
//!    * `jobs` = Σ budgets of jobs `Open` or `Settling`;
//!    * `jobs_audit` = Σ bonds of round challenges whose audit is still `Open`;
//!    * `notary` = Σ panel bonds + Σ bonds of `Open` challenges;
//!    * `gov` = Σ deposits of proposals in their deposit or voting period;
//!    * `data` = Σ fees of `Pending` records;
//!    * `slashing` = 0 (slashed funds pass through it within one call).
//! 4. **Every epoch settled exactly once, in order.** The rewards module writes
//!    `rewards/settlement/<e>` once and advances `rewards/next`; the settlement records are
//!    exactly the epochs `first..next` with no gap, each record names its own epoch,
//!    `next` ≤ the running epoch, and each record pays out its pool exactly (Σ contributor,
//!    evaluator and storage payouts + dust = pool). (That a record is never *rewritten* cannot be seen in one
//!    state; [`SupplyLedger`]'s caller, the simulation, compares records across blocks.)
//!
//! **Supply = genesis + minted − burned** needs history one state does not hold: the chain
//! keeps `emission/minted_total` but no burned total. [`SupplyLedger`] folds the `coinbase`
//! and `burn` events of each FinalizeBlock (the bank emits one per mint and burn, and only
//! committed writes' events reach the response) and [`SupplyLedger::check`] compares
//! `genesis + minted − burned` with the stored supply, and `minted` with
//! `emission/minted_total`.
//!
//! What is not checked: balances of ordinary accounts against any expectation (the simulation
//! does not model every module's payouts), the community pool, the fee collector (emptied by
//! emission each block, but an earlier hook failure could leave it non-empty legitimately),
//! and the contrib module's per-epoch records (they escrow nothing).
#![allow(clippy::arithmetic_side_effects)]

use magnet_core::store::scan_prefix;
use magnet_core::{Address, KvStore, NATIVE_DENOM};
use std::collections::BTreeMap;

/// A broken invariant, with the numbers that disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvariantViolation {
    /// A stored record or amount does not decode.
    #[error("corrupt state: {0}")]
    Corrupt(String),
    /// A sum of amounts exceeds `u128`.
    #[error("overflow: {0} exceeds u128")]
    Overflow(String),
    /// `supply(denom) ≠ Σ balances(denom)`.
    #[error("supply: supply of {denom} is {supply} but the balances sum to {sum}")]
    Supply {
        /// Denom.
        denom: String,
        /// Stored supply.
        supply: u128,
        /// Σ balances.
        sum: u128,
    },
    /// A module account's balance differs from the records that claim it.
    #[error("escrow: module account {module} holds {balance} umag but its records claim {claimed} ({what})")]
    Escrow {
        /// Module account name.
        module: &'static str,
        /// Its umag balance.
        balance: u128,
        /// Σ the records that should be in it.
        claimed: u128,
        /// Which records.
        what: &'static str,
    },
    /// `genesis + minted − burned ≠ supply`.
    #[error("ledger: genesis {genesis} + minted {minted} − burned {burned} = {expected} but the supply is {supply}")]
    Ledger {
        /// Genesis supply.
        genesis: u128,
        /// Σ minted since genesis (events).
        minted: u128,
        /// Σ burned since genesis (events).
        burned: u128,
        /// genesis + minted − burned.
        expected: u128,
        /// Stored supply.
        supply: u128,
    },
    /// `emission/minted_total` differs from the minted events.
    #[error("minted: emission/minted_total is {stored} but the coinbase events sum to {events}")]
    Minted {
        /// `emission/minted_total`.
        stored: u128,
        /// Σ `coinbase` events after genesis.
        events: u128,
    },
    /// The settlement records are not exactly the epochs `first..next`.
    #[error("settlement: {0}")]
    Settlement(String),
}

impl InvariantViolation {
    /// A short stable name of the invariant (`supply`, `escrow/jobs`, `ledger`, …), printed
    /// as `invariant=<name>` by the simulation.
    pub fn name(&self) -> String {
        match self {
            InvariantViolation::Corrupt(_) => "corrupt".into(),
            InvariantViolation::Overflow(_) => "overflow".into(),
            InvariantViolation::Supply { .. } => "supply".into(),
            InvariantViolation::Escrow { module, .. } => format!("escrow/{module}"),
            InvariantViolation::Ledger { .. } => "ledger".into(),
            InvariantViolation::Minted { .. } => "minted".into(),
            InvariantViolation::Settlement(_) => "settlement".into(),
        }
    }
}

fn corrupt(what: impl std::fmt::Display) -> InvariantViolation {
    InvariantViolation::Corrupt(what.to_string())
}

fn add(a: u128, b: u128, what: &str) -> Result<u128, InvariantViolation> {
    a.checked_add(b)
        .ok_or_else(|| InvariantViolation::Overflow(what.to_string()))
}

/// The invariant names [`check_all`] checks, in order (for summaries).
pub const CHECKED: &[&str] = &[
    "corrupt",
    "supply",
    "escrow/registry",
    "escrow/jobs",
    "escrow/jobs_audit",
    "escrow/notary",
    "escrow/gov",
    "escrow/data",
    "escrow/slashing",
    "settlement",
];

/// Check every single-state invariant (see the module docs); the first violation found.
pub fn check_all(store: &dyn KvStore) -> Result<(), InvariantViolation> {
    let balances = check_supply(store)?;
    let bal = |a: Address| {
        balances
            .get(&(a, NATIVE_DENOM.to_string()))
            .copied()
            .unwrap_or(0)
    };
    check_escrows(store, &bal)?;
    check_settlements(store)?;
    Ok(())
}

/// Invariants 1 and 2; returns every (address, denom) balance.
fn check_supply(
    store: &dyn KvStore,
) -> Result<BTreeMap<(Address, String), u128>, InvariantViolation> {
    let all = magnet_bank::state::all_balances(store).map_err(corrupt)?;
    let mut sums: BTreeMap<String, u128> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (a, d, amt) in all {
        let s = sums.entry(d.clone()).or_default();
        *s = add(*s, amt, &format!("Σ balances of {d}"))?;
        out.insert((a, d), amt);
    }
    let supply: BTreeMap<String, u128> = magnet_bank::state::all_supply(store)
        .map_err(corrupt)?
        .into_iter()
        .collect();
    let denoms: std::collections::BTreeSet<&String> = sums.keys().chain(supply.keys()).collect();
    for d in denoms {
        let (s, b) = (
            supply.get(d).copied().unwrap_or(0),
            sums.get(d).copied().unwrap_or(0),
        );
        if s != b {
            return Err(InvariantViolation::Supply {
                denom: d.clone(),
                supply: s,
                sum: b,
            });
        }
    }
    Ok(out)
}

fn sum<I: IntoIterator<Item = u128>>(it: I, what: &str) -> Result<u128, InvariantViolation> {
    it.into_iter().try_fold(0u128, |a, b| add(a, b, what))
}

fn escrow(
    module: &'static str,
    balance: u128,
    claimed: u128,
    what: &'static str,
) -> Result<(), InvariantViolation> {
    if balance == claimed {
        Ok(())
    } else {
        Err(InvariantViolation::Escrow {
            module,
            balance,
            claimed,
            what,
        })
    }
}

fn check_escrows(
    store: &dyn KvStore,
    bal: &dyn Fn(Address) -> u128,
) -> Result<(), InvariantViolation> {
    // registry: node bonds + governance bonds + queued governance unbondings.
    use magnet_registry::state as rs;
    let nodes = rs::all_nodes(store).map_err(corrupt)?;
    let gov = rs::all_gov_bonds(store).map_err(corrupt)?;
    let mut unbonding = Vec::new();
    for (k, v) in scan_prefix(store, rs::UNBOND_PREFIX) {
        let e: rs::UnbondEntry = borsh::from_slice(&v)
            .map_err(|e| corrupt(format!("{}: {e}", String::from_utf8_lossy(&k))))?;
        if let rs::UnbondKind::Gov(a) = e.kind {
            unbonding.push(a);
        }
    }
    let claimed = add(
        add(
            sum(nodes.iter().map(|n| n.bond), "Σ node bonds")?,
            sum(gov.iter().map(|g| g.1), "Σ governance bonds")?,
            "registry claims",
        )?,
        sum(unbonding, "Σ governance unbondings")?,
        "registry claims",
    )?;
    escrow(
        "registry",
        bal(rs::escrow()),
        claimed,
        "node bonds + governance bonds + governance unbondings",
    )?;

    // jobs: budgets of open or settling jobs; jobs_audit: open challenge bonds.
    use magnet_jobs::state as js;
    let jobs = js::jobs(store).map_err(corrupt)?;
    let budgets = sum(
        jobs.iter()
            .filter(|j| matches!(j.status, js::Status::Open | js::Status::Settling { .. }))
            .map(|j| j.budget),
        "Σ job budgets",
    )?;
    escrow(
        "jobs",
        bal(js::escrow()),
        budgets,
        "budgets of open and settling jobs",
    )?;
    let audits = js::audits(store, None).map_err(corrupt)?;
    let bonds = sum(
        audits
            .iter()
            .filter(|a| a.outcome == js::AuditOutcome::Open)
            .filter_map(|a| a.challenge.as_ref().map(|c| c.bond)),
        "Σ round challenge bonds",
    )?;
    escrow(
        "jobs_audit",
        bal(js::audit_escrow()),
        bonds,
        "bonds of open round challenges",
    )?;

    // notary: panel bonds + open challenge bonds.
    use magnet_notary::state as ns;
    let members = sum(
        ns::members(store)
            .map_err(corrupt)?
            .into_iter()
            .map(|(_, m)| m.bond),
        "Σ notary bonds",
    )?;
    let open = sum(
        ns::challenges(store)
            .map_err(corrupt)?
            .into_iter()
            .filter(|c| c.outcome == ns::Outcome::Open)
            .map(|c| c.bond),
        "Σ notary challenge bonds",
    )?;
    escrow(
        "notary",
        bal(ns::escrow()),
        add(members, open, "notary claims")?,
        "panel bonds + open challenge bonds",
    )?;

    // gov: deposits of proposals still collecting or voting.
    use magnet_gov::state as gs;
    let deposits = sum(
        gs::proposals(store)
            .map_err(corrupt)?
            .into_iter()
            .filter(|p| {
                matches!(
                    p.status,
                    gs::Status::DepositPeriod { .. } | gs::Status::Voting { .. }
                )
            })
            .map(|p| p.total_deposit),
        "Σ proposal deposits",
    )?;
    escrow(
        "gov",
        bal(gs::escrow()),
        deposits,
        "deposits of proposals in their deposit or voting period",
    )?;

    // data: fees of pending records.
    use magnet_data::state as ds;
    let fees = sum(
        ds::records(store)
            .map_err(corrupt)?
            .into_iter()
            .filter(|r| r.status == ds::Status::Pending)
            .map(|r| r.fee),
        "Σ pending data fees",
    )?;
    escrow(
        "data",
        bal(ds::escrow()),
        fees,
        "fees of pending data records",
    )?;

    escrow(
        "slashing",
        bal(magnet_slashing::state::account()),
        0,
        "nothing: slashed funds leave within the slashing call",
    )
}

fn check_settlements(store: &dyn KvStore) -> Result<(), InvariantViolation> {
    use magnet_rewards::state as rw;
    let next = rw::next(store).map_err(corrupt)?;
    let mut expected: Option<u64> = None;
    for (k, v) in scan_prefix(store, rw::SETTLEMENT_PREFIX) {
        let key_epoch = k
            .get(rw::SETTLEMENT_PREFIX.len()..)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| corrupt(format!("settlement key {}", hex::encode(&k))))?;
        let s: rw::Settlement = borsh::from_slice(&v)
            .map_err(|e| corrupt(format!("settlement of epoch {key_epoch}: {e}")))?;
        if s.epoch != key_epoch {
            return Err(InvariantViolation::Settlement(format!(
                "the record under epoch {key_epoch} says epoch {}",
                s.epoch
            )));
        }
        let paid = s
            .contributors
            .iter()
            .chain(s.evaluators.iter())
            .chain(s.storage.iter())
            .try_fold(s.dust, |a, p| a.checked_add(p.amount));
        if paid != Some(s.pool) {
            return Err(InvariantViolation::Settlement(format!(
                "epoch {key_epoch}: payouts + dust = {paid:?}, pool = {}",
                s.pool
            )));
        }
        if s.contributor_pool
            .checked_add(s.storage_pool)
            .is_none_or(|x| x > s.pool)
        {
            return Err(InvariantViolation::Settlement(format!(
                "epoch {key_epoch}: contributor pool {} + storage pool {} exceed the pool {}",
                s.contributor_pool, s.storage_pool, s.pool
            )));
        }
        if let Some(e) = expected {
            if key_epoch != e {
                return Err(InvariantViolation::Settlement(format!(
                    "epoch {e} has no settlement but epoch {key_epoch} has one"
                )));
            }
        }
        if key_epoch >= next {
            return Err(InvariantViolation::Settlement(format!(
                "epoch {key_epoch} is settled but rewards/next is {next}"
            )));
        }
        expected = Some(key_epoch + 1);
    }
    if let Some(e) = expected {
        if e != next {
            return Err(InvariantViolation::Settlement(format!(
                "settlements end at epoch {} but rewards/next is {next}",
                e - 1
            )));
        }
    }
    let current = magnet_core::epoch::state(store).map_err(corrupt)?.current;
    if next > current {
        return Err(InvariantViolation::Settlement(format!(
            "rewards/next is {next} but the running epoch is {current}"
        )));
    }
    Ok(())
}

/// Supply history: genesis + Σ minted − Σ burned, folded from FinalizeBlock events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SupplyLedger {
    /// Native supply after genesis.
    pub genesis: u128,
    /// Σ `coinbase` event amounts (umag) since genesis.
    pub minted: u128,
    /// Σ `burn` event amounts (umag) since genesis.
    pub burned: u128,
}

impl SupplyLedger {
    /// A ledger starting at `store`'s native supply (call it on the genesis state).
    pub fn at_genesis(store: &dyn KvStore) -> Result<SupplyLedger, InvariantViolation> {
        Ok(SupplyLedger {
            genesis: native_supply(store)?,
            minted: 0,
            burned: 0,
        })
    }

    /// Fold one FinalizeBlock response: its block events and every tx's events (a failed tx
    /// carries none of its messages' events).
    pub fn fold(
        &mut self,
        r: &crate::abci::ResponseFinalizeBlock,
    ) -> Result<(), InvariantViolation> {
        let events = r
            .events
            .iter()
            .chain(r.tx_results.iter().flat_map(|t| t.events.iter()));
        for e in events {
            let slot = match e.r#type.as_str() {
                "coinbase" => &mut self.minted,
                "burn" => &mut self.burned,
                _ => continue,
            };
            let amount = e
                .attributes
                .iter()
                .find(|a| a.key == "amount")
                .ok_or_else(|| corrupt(format!("a {} event has no amount", e.r#type)))?;
            let coins: magnet_core::Coins = amount
                .value
                .parse()
                .map_err(|err| corrupt(format!("{} amount {:?}: {err}", e.r#type, amount.value)))?;
            *slot = add(*slot, coins.amount_of(NATIVE_DENOM), "Σ minted or burned")?;
        }
        Ok(())
    }

    /// `genesis + minted − burned = supply(umag)` and `minted = emission/minted_total`.
    pub fn check(&self, store: &dyn KvStore) -> Result<(), InvariantViolation> {
        self.check_supply_only(store)?;
        let stored = magnet_emission::state::minted_total(store).map_err(corrupt)?;
        if stored != self.minted {
            return Err(InvariantViolation::Minted {
                stored,
                events: self.minted,
            });
        }
        Ok(())
    }

    /// `genesis + minted − burned = supply(umag)` alone (for a chain started from an export,
    /// whose `emission/minted_total` counts the original chain's mints too).
    pub fn check_supply_only(&self, store: &dyn KvStore) -> Result<(), InvariantViolation> {
        let supply = native_supply(store)?;
        let ledger = |expected| InvariantViolation::Ledger {
            genesis: self.genesis,
            minted: self.minted,
            burned: self.burned,
            expected,
            supply,
        };
        let expected = add(self.genesis, self.minted, "genesis + minted")?
            .checked_sub(self.burned)
            .ok_or(ledger(0))?;
        if expected != supply {
            return Err(ledger(expected));
        }
        Ok(())
    }
}

fn native_supply(store: &dyn KvStore) -> Result<u128, InvariantViolation> {
    let k = magnet_bank::state::supply_key(NATIVE_DENOM);
    Ok(magnet_core::store::get_borsh::<u128>(store, &k)
        .map_err(|e| corrupt(format!("supply: {e}")))?
        .unwrap_or(0))
}
