//! Regression tests for what the simulation found (ADR 0100): an export → import lost the
//! notary panel's bonds and restarted the emission schedule at year 0.

mod common;

use common::*;
use magnet_app::invariants::check_all;
use magnet_app::testkit::{genesis_app_state, Signer, TxBuilder};
use magnet_app::Application;

fn any(a: prost_types::Any) -> cosmrs::Any {
    cosmrs::Any {
        type_url: a.type_url,
        value: a.value,
    }
}

#[test]
fn an_export_keeps_the_notary_bonds_and_the_emission_schedule_start() {
    let alice = Signer::from_seed(1);
    let mut state = genesis_app_state(&[(alice.address(), 100_000_000_000)]);
    state["notary"] = serde_json::json!({ "panel": [alice.address().to_bech32()] });
    let tmp = tempfile::tempdir().unwrap();
    let mut h = Harness::open(tmp.path(), fast_config());
    h.app.init_chain(init_request(&state));
    h.block(vec![]);
    let bond = 6_000_000_000u128;
    let (num, seq) = h.account(&alice.address()).unwrap();
    let tx = TxBuilder::new(CHAIN_ID, num, seq)
        .fee(0, 500_000)
        .msg(any(magnet_testkit::magnet_notary::msgs::bond(
            &alice.address(),
            bond,
        )))
        .sign(&alice);
    let r = h.block(vec![tx]);
    assert_eq!(r.tx_results[0].code, 0, "{}", r.tx_results[0].log);
    let start = |app: &magnet_app::MagnetApp| {
        app.with_committed_state(|s| {
            s.get(magnet_testkit::magnet_emission::state::GENESIS_TIME_KEY)
                .unwrap()
        })
        .unwrap()
    };
    let member = |app: &magnet_app::MagnetApp| {
        app.with_committed_state(|s| {
            magnet_testkit::magnet_notary::state::member(s, &alice.address())
                .unwrap()
                .unwrap()
                .bond
        })
        .unwrap()
    };
    assert_eq!(member(&h.app), bond);

    let ex = h.app.export().unwrap();
    assert_eq!(
        ex.app_state["notary"]["bonds"][alice.address().to_bech32()],
        bond.to_string()
    );
    let tmp2 = tempfile::tempdir().unwrap();
    let h2 = Harness::open(tmp2.path(), fast_config());
    let mut req = init_request(&ex.app_state);
    req.initial_height = ex.height as i64 + 1;
    req.time = Some(timestamp(1_000));
    h2.app.init_chain(req);
    h2.app.commit();
    assert_eq!(
        member(&h2.app),
        bond,
        "the member's bond survives the export"
    );
    assert_eq!(
        start(&h2.app),
        start(&h.app),
        "the schedule keeps its year 0"
    );
    h2.app
        .with_committed_state(|s| check_all(s))
        .unwrap()
        .unwrap();
}

#[test]
fn a_notary_bond_in_genesis_for_someone_off_the_panel_is_refused() {
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let mut state = genesis_app_state(&[(alice.address(), 1_000)]);
    state["notary"] = serde_json::json!({
        "panel": [alice.address().to_bech32()],
        "bonds": { bob.address().to_bech32(): "5" },
    });
    let e = magnet_app::MagnetApp::validate_genesis(CHAIN_ID, &state).unwrap_err();
    assert!(e.to_string().contains("not on the panel"), "{e}");
}

#[test]
fn a_chain_imported_at_its_last_block_time_has_the_exported_app_hash_and_follows_with_the_same_hashes(
) {
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let state = genesis_app_state(&[(alice.address(), 100_000_000_000)]);
    let tmp = tempfile::tempdir().unwrap();
    let mut h = Harness::open(tmp.path(), fast_config());
    h.app.init_chain(init_request(&state));
    h.block(vec![]);
    let tx = h.send(&alice, &bob.address(), 4_242);
    h.block(vec![tx]);
    let ex = h.app.export().unwrap();
    let (height, hash) = h.app.last_commit();
    // The running epoch's start travels with the export.
    assert!(
        ex.app_state["epochs"]["start_time_secs"].is_u64(),
        "{}",
        ex.app_state["epochs"]
    );

    let at = |genesis_time: i64| {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Harness::open(dir.path(), fast_config());
        let mut req = init_request(&ex.app_state);
        req.time = Some(tendermint_proto::google::protobuf::Timestamp {
            seconds: genesis_time,
            nanos: 0,
        });
        req.initial_height = height as i64 + 1;
        let r = c.app.init_chain(req);
        c.app.commit();
        c.height = height as i64;
        (dir, c, r.app_hash.to_vec())
    };
    // Imported at the exported block's own time: the same app hash, then the same blocks give
    // the same hashes.
    let (_d, mut c, genesis_hash) = at(timestamp(height as i64).seconds);
    assert_eq!(genesis_hash, hash);
    c.app.with_committed_state(check_all).unwrap().unwrap();
    for _ in 0..3 {
        let a = h.block(vec![]);
        let b = c.block(vec![]);
        assert_eq!(a.app_hash, b.app_hash);
    }
    // Imported with a genesis time before the epoch started: the epoch restarts at the genesis
    // (the state differs, the chain still starts and keeps its books).
    let (_d2, mut early, early_hash) = at(timestamp(0).seconds - 1_000);
    assert_ne!(early_hash, hash);
    early.block(vec![]);
    early.app.with_committed_state(check_all).unwrap().unwrap();
}
