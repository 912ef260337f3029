//! The whole-app simulation (ADR 0100) at CI size, and the invariant checker catching a
//! state that breaks each kind of invariant.

use magnet_app::invariants::{check_all, InvariantViolation, SupplyLedger};
use magnet_app::sim::{self, Sim, SimConfig};
use magnet_core::{Address, KvStore, MemStore};

/// A copy of the proposer replica's committed state, to break on purpose.
fn state_copy(sim: &Sim) -> MemStore {
    sim.app()
        .with_committed_state(|s| {
            let mut m = MemStore::new();
            for (k, v) in s.range(b"", None) {
                m.set(&k, v);
            }
            m
        })
        .unwrap()
}

fn simulated(blocks: u64, seed: u64) -> (Sim, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Sim::new(
        SimConfig {
            seed,
            blocks,
            export_import: false,
            ..Default::default()
        },
        tmp.path(),
    )
    .unwrap();
    for _ in 0..blocks {
        s.step().unwrap_or_else(|e| panic!("{e}"));
    }
    (s, tmp)
}

#[test]
fn three_hundred_random_blocks_keep_every_invariant_and_replicas_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        seed: 17,
        blocks: 300,
        ..Default::default()
    };
    let r = sim::run(&cfg, tmp.path(), &mut |_, _| {}).unwrap_or_else(|e| panic!("{e}"));
    println!("{r}");
    assert_eq!(r.blocks, 300);
    assert_eq!(r.invariant_checks, 300, "checked after every block");
    // Several epochs (120 s each, blocks 3–7 s apart) and their settlements.
    assert!(r.epoch >= 6, "only reached epoch {}", r.epoch);
    assert!(r.settlements >= 5, "only {} settlements", r.settlements);
    assert!(r.minted > 0 && r.burned > 0, "{r}");
    // Both outcomes for the main message types.
    for t in [
        "bank.MsgSend",
        "registry.MsgHeartbeat",
        "registry.MsgRegisterNode",
        "jobs.MsgCreateJob",
        "gov.MsgSubmitProposal",
        "data.MsgRegisterData",
    ] {
        let c = r.txs.get(t).copied().unwrap_or_default();
        assert!(c.ok > 0 && c.failed > 0, "{t}: {c:?}");
    }
    assert!(
        r.txs.len() >= 20,
        "message types delivered: {:?}",
        r.txs.keys()
    );
    let h = r.export_height.expect("exported and imported");
    assert!(r.imported_blocks > 0 && r.imported_blocks == 300 - h, "{r}");
    assert!(r.stuffed_rejected > 0, "{r}");
    assert!(r.hash_comparisons >= 300);
}

#[test]
fn the_same_seed_replays_the_same_chain() {
    let (a, _t1) = simulated(30, 5);
    let (b, _t2) = simulated(30, 5);
    assert_eq!(a.app().last_commit(), b.app().last_commit());
    let (c, _t3) = simulated(30, 6);
    assert_ne!(a.app().last_commit().1, c.app().last_commit().1);
}

#[test]
fn the_checker_names_each_broken_invariant() {
    let (s, _tmp) = simulated(40, 3);
    let clean = state_copy(&s);
    check_all(&clean).unwrap();
    let someone = Address([0x42; 20]);
    type Break = Box<dyn Fn(&mut MemStore)>;
    let set_u128 = |m: &mut MemStore, k: Vec<u8>, v: u128| m.set(&k, borsh::to_vec(&v).unwrap());
    let balance_of = |m: &MemStore, a: &Address| -> u128 {
        m.get(&magnet_bank::state::balance_key(a, "umag"))
            .map(|b| borsh::from_slice(&b).unwrap())
            .unwrap_or(0)
    };
    let cases: Vec<(&str, Break)> = vec![
        (
            "supply",
            Box::new(move |m| set_u128(m, magnet_bank::state::balance_key(&someone, "umag"), 5)),
        ),
        (
            "escrow/registry",
            Box::new(move |m| {
                // Move coins into the registry escrow without a bond: supply stays right.
                let from = Address::module("fee_collector");
                let esc = magnet_registry::state::escrow();
                let e = balance_of(m, &esc);
                set_u128(m, magnet_bank::state::balance_key(&esc, "umag"), e + 7);
                let k = magnet_bank::state::supply_key("umag");
                let s: u128 = borsh::from_slice(&m.get(&k).unwrap()).unwrap();
                set_u128(m, k, s + 7);
                let _ = from;
            }),
        ),
        (
            "escrow/slashing",
            Box::new(move |m| {
                let acc = magnet_slashing::state::account();
                set_u128(m, magnet_bank::state::balance_key(&acc, "umag"), 3);
                let k = magnet_bank::state::supply_key("umag");
                let s: u128 = borsh::from_slice(&m.get(&k).unwrap()).unwrap();
                set_u128(m, k, s + 3);
            }),
        ),
        (
            "corrupt",
            Box::new(move |m| {
                m.set(
                    &magnet_bank::state::balance_key(&someone, "umag"),
                    vec![1, 2, 3],
                )
            }),
        ),
        (
            "settlement",
            Box::new(|m| {
                // "Settled" through an epoch that has not ended.
                m.set(
                    magnet_rewards::state::NEXT_KEY,
                    borsh::to_vec(&1_000_000u64).unwrap(),
                );
            }),
        ),
    ];
    for (name, break_it) in cases {
        let mut m = state_copy(&s);
        break_it(&mut m);
        let e = check_all(&m).expect_err(name);
        assert_eq!(e.name(), name, "{e}");
    }
    // The ledger: a mint the events did not show.
    let mut m = state_copy(&s);
    let ledger = SupplyLedger::at_genesis(&m).unwrap();
    let k = magnet_bank::state::supply_key("umag");
    let supply: u128 = borsh::from_slice(&m.get(&k).unwrap()).unwrap();
    let l = SupplyLedger {
        genesis: supply - 1,
        ..ledger
    };
    match l.check(&m).unwrap_err() {
        InvariantViolation::Ledger {
            expected,
            supply: s2,
            ..
        } => {
            assert_eq!((expected, s2), (supply - 1, supply))
        }
        e => panic!("{e}"),
    }
    m.set(&k, borsh::to_vec(&(supply + 1)).unwrap());
    assert_eq!(check_all(&m).unwrap_err().name(), "supply");
}

#[test]
fn a_failure_names_seed_height_and_invariant_for_replay() {
    let f = sim::SimFailure {
        seed: 9,
        blocks: 300,
        height: 41,
        invariant: "escrow/jobs".into(),
        detail: "x".into(),
    };
    let s = f.to_string();
    assert!(
        s.starts_with("seed=9 height=41 invariant=escrow/jobs"),
        "{s}"
    );
    assert!(s.contains("magnetd sim --seed 9 --blocks 300"), "{s}");
}
