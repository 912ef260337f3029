//! Crash safety at the store level: an app dropped mid-block (a hook panics inside
//! FinalizeBlock) or between FinalizeBlock and Commit reopens at its last commit, and after
//! replaying the block it has the same app hash as a twin that never crashed; no committed tx
//! is lost. (The real `kill -9` process test lives with `magnetd`.)

mod common;

use common::*;
use magnet_app::modules::registered_modules;
use magnet_app::testkit::{genesis_app_state, Signer};
use magnet_app::{Application, MagnetApp};
use magnet_core::{Ctx, Module, ModuleError, ValidatorUpdate};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A module whose end_block panics at one height: a crash in the middle of block execution.
struct CrashAt(Arc<AtomicI64>);
impl Module for CrashAt {
    fn name(&self) -> &'static str {
        "crash_at"
    }
    fn end_block(&self, ctx: &mut Ctx) -> Result<Vec<ValidatorUpdate>, ModuleError> {
        if ctx.block.height as i64 == self.0.load(Ordering::SeqCst) {
            panic!("simulated crash at height {}", ctx.block.height);
        }
        Ok(Vec::new())
    }
}

fn open_with_crash(dir: &std::path::Path, at: i64) -> MagnetApp {
    let mut mods = registered_modules();
    mods.push(Box::new(CrashAt(Arc::new(AtomicI64::new(at)))));
    MagnetApp::open_with_modules(dir, fast_config(), mods).unwrap()
}

fn durable() -> magnet_app::AppConfig {
    let mut c = fast_config();
    c.store.fsync = true;
    c
}

#[test]
fn an_app_dropped_between_finalize_and_commit_recovers_to_its_twins_hash() {
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let tmp = tempfile::tempdir().unwrap();
    let mut twin = Harness::new(&[(alice.address(), 1_000_000)], durable());
    let mut crashy = Harness::open(tmp.path(), durable());
    crashy.app.init_chain(init_request(&genesis_app_state(&[(
        alice.address(),
        1_000_000,
    )])));
    let mut committed_blocks = Vec::new();
    for i in 0..5u128 {
        let txs = if i == 0 {
            vec![]
        } else {
            vec![twin.send(&alice, &bob.address(), 10 + i)]
        };
        committed_blocks.push(txs.clone());
        let r1 = twin.block(txs.clone());
        let r2 = crashy.block(txs);
        assert_eq!(r1.app_hash, r2.app_hash);
    }
    // Block 6: finalized on the crashing app, never committed, then the app is dropped.
    let tx = twin.send(&alice, &bob.address(), 1_000);
    crashy.height += 1;
    let staged = crashy
        .app
        .finalize_block(finalize_request(crashy.height, vec![tx.clone()]));
    drop(crashy);
    let mut crashy = Harness::open(tmp.path(), durable());
    assert_eq!(crashy.app.last_commit(), twin.app.last_commit());
    assert_eq!(crashy.height, 5);
    // No committed tx lost.
    assert_eq!(crashy.balance(&bob.address()), 11 + 12 + 13 + 14);
    // CometBFT replays block 6.
    let replayed = crashy.block(vec![tx.clone()]);
    let twin6 = twin.block(vec![tx]);
    assert_eq!(replayed, staged);
    assert_eq!(replayed.app_hash, twin6.app_hash);
    assert_eq!(crashy.balance(&bob.address()), twin.balance(&bob.address()));
}

#[test]
fn an_app_that_dies_in_the_middle_of_a_block_reopens_at_its_last_commit() {
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let tmp = tempfile::tempdir().unwrap();
    let mut twin = Harness::new(&[(alice.address(), 1_000_000)], fast_config());
    let app = open_with_crash(tmp.path(), 4);
    app.init_chain(init_request(&genesis_app_state(&[(
        alice.address(),
        1_000_000,
    )])));
    let mut txs_by_height = Vec::new();
    for h in 1..=3i64 {
        let txs = if h == 1 {
            vec![]
        } else {
            vec![twin.send(&alice, &bob.address(), h as u128)]
        };
        let r = app.finalize_block(finalize_request(h, txs.clone()));
        app.commit();
        assert_eq!(r.app_hash, twin.block(txs.clone()).app_hash);
        txs_by_height.push(txs);
    }
    let tx4 = twin.send(&alice, &bob.address(), 77);
    let crashed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        app.finalize_block(finalize_request(4, vec![tx4.clone()]))
    }));
    assert!(crashed.is_err(), "the hook should have crashed the block");
    drop(app);
    // Reopen without the crashing module's trigger (it was a transient fault).
    let app = open_with_crash(tmp.path(), -1);
    assert_eq!(app.last_commit(), twin.app.last_commit());
    let r = app.finalize_block(finalize_request(4, vec![tx4.clone()]));
    app.commit();
    assert_eq!(r.app_hash, twin.block(vec![tx4]).app_hash);
    assert_eq!(app.last_commit(), twin.app.last_commit());
}
