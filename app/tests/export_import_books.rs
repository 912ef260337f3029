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
