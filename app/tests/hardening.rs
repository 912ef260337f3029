//! Issue 17, items 1 and 2 (ADRs 0094, 0095): one tx cannot halt the chain, and a proposer
//! cannot stuff a block with txs that pay nothing.
//!
//! * A panic in a tx's messages (a deliberately panicking test module, and an unchecked `+`
//!   overflowing on a value from the tx) fails that tx with `sdk/111222`, its message writes
//!   are dropped, its fee and sequence stay charged, and the block and the next ones go on.
//! * ProcessProposal rejects a block holding a tx that fails to decode or fails its ante, and
//!   accepts a block whose txs pay their fees (even if their messages fail, and even when a tx
//!   is funded by an earlier tx of the same block). It changes no state.

mod common;

use common::*;
use magnet_app::abci as pb;
use magnet_app::testkit::hazard::{hazard_msg, sink, Hazard, OVERFLOW_URL, PANIC_URL};
use magnet_app::testkit::{Signer, TxBuilder};
use magnet_app::Application;

/// Whether any hazard message's write survived.
fn touched(h: &Harness) -> bool {
    let r = h.query(magnet_app::testkit::hazard::TOUCHED_PATH, Vec::new(), 0);
    assert_eq!(r.code, 0, "{}", r.log);
    !r.value.is_empty()
}

const FUND: u128 = 1_000_000;
const FEE: u128 = 2_000;

#[test]
fn a_panicking_or_overflowing_message_fails_only_its_tx_and_the_chain_goes_on() {
    let alice = Signer::from_seed(1);
    let carol = Signer::from_seed(3);
    let mut h = Harness::with_modules(
        &[(alice.address(), FUND)],
        fast_config(),
        vec![Box::new(Hazard { in_check_tx: true })],
    );
    h.block(vec![]);
    let (number, _) = h.account(&alice.address()).unwrap();
    let tx = |seq: u64, msg: cosmrs::Any| {
        TxBuilder::new(CHAIN_ID, number, seq)
            .fee(FEE, 200_000)
            .msg(msg)
            .sign(&alice)
    };
    let panic_tx = tx(0, hazard_msg(PANIC_URL, &alice.address(), 0));
    let overflow_tx = tx(1, hazard_msg(OVERFLOW_URL, &alice.address(), u64::MAX));
    let send_tx = TxBuilder::new(CHAIN_ID, number, 2)
        .fee(FEE, 200_000)
        .send(&alice, &carol.address(), 7, "umag")
        .sign(&alice);

    // CheckTx catches the panic too, and the check state is untouched (seq 0 still fits).
    let c = h.check(&panic_tx);
    assert_eq!(
        (c.codespace.as_str(), c.code),
        ("sdk", 111_222),
        "{}",
        c.log
    );

    let r = h.block(vec![panic_tx, overflow_tx, send_tx]);
    for (i, what) in [(0, "panic"), (1, "overflow")] {
        let t = &r.tx_results[i];
        assert_eq!(
            (t.codespace.as_str(), t.code),
            ("sdk", 111_222),
            "{what}: {}",
            t.log
        );
        assert!(t.log.contains("panic"), "{what}: {}", t.log);
    }
    assert!(
        r.tx_results[1].log.contains("overflow"),
        "{}",
        r.tx_results[1].log
    );
    assert_eq!(r.tx_results[2].code, 0, "{}", r.tx_results[2].log);
    // The messages' writes were dropped; the fees and sequences stayed charged.
    assert_eq!(h.balance(&sink()), 0);
    assert!(!touched(&h), "a panicking message's write survived");
    assert_eq!(h.balance(&carol.address()), 7);
    assert_eq!(h.balance(&alice.address()), FUND - 3 * FEE - 7);
    assert_eq!(h.account(&alice.address()), Some((number, 3)));
    // The chain goes on, and a harmless overflow message succeeds.
    let r = h.block(vec![tx(3, hazard_msg(OVERFLOW_URL, &alice.address(), 41))]);
    assert_eq!(r.tx_results[0].code, 0, "{}", r.tx_results[0].log);
    assert_eq!(h.balance(&sink()), 1);
    assert!(touched(&h));
    for _ in 0..2 {
        h.block(vec![]);
    }
    assert_eq!(h.app.last_commit().0, 5);
}

fn proposal(h: i64, txs: &[Vec<u8>]) -> pb::RequestProcessProposal {
    pb::RequestProcessProposal {
        txs: txs.iter().cloned().map(Into::into).collect(),
        height: h,
        time: Some(timestamp(h)),
        proposer_address: vec![1u8; 20].into(),
        ..Default::default()
    }
}

const ACCEPT: i32 = pb::response_process_proposal::ProposalStatus::Accept as i32;
const REJECT: i32 = pb::response_process_proposal::ProposalStatus::Reject as i32;

#[test]
fn process_proposal_rejects_every_tx_that_would_pay_nothing_and_changes_no_state() {
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let dave = Signer::from_seed(4);
    let mut h = Harness::new(
        &[(alice.address(), FUND), (bob.address(), 10)],
        fast_config(),
    );
    h.block(vec![]);
    let good = h.send(&alice, &bob.address(), 1);
    let (an, _) = h.account(&alice.address()).unwrap();
    let (bn, _) = h.account(&bob.address()).unwrap();
    let from_alice = |seq: u64| TxBuilder::new(CHAIN_ID, an, seq).fee(FEE, 200_000);
    let mut timed_out = from_alice(1).send(&alice, &bob.address(), 1, "umag");
    timed_out.timeout_height = 1;
    // (what, the tx after `good`, the code CheckTx gives it after `good`: why it is refused).
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        ("an undecodable tx", vec![0xff, 0x00], 2),
        (
            "a bad signature (signed for another chain)",
            TxBuilder::new("other-chain", an, 1)
                .fee(FEE, 200_000)
                .send(&alice, &bob.address(), 1, "umag")
                .sign(&alice),
            4,
        ),
        (
            "a wrong sequence",
            from_alice(5)
                .send(&alice, &bob.address(), 1, "umag")
                .sign(&alice),
            32,
        ),
        ("the same tx twice (a replay)", good.clone(), 32),
        (
            "an unknown account",
            TxBuilder::new(CHAIN_ID, 9, 0)
                .fee(FEE, 200_000)
                .send(&dave, &bob.address(), 1, "umag")
                .sign(&dave),
            9,
        ),
        (
            "a fee larger than the signer's balance",
            TxBuilder::new(CHAIN_ID, bn, 0)
                .fee(FEE, 200_000)
                .send(&bob, &alice.address(), 1, "umag")
                .sign(&bob),
            5,
        ),
        ("a tx past its timeout height", timed_out.sign(&alice), 30),
    ];
    let before = h.app.last_commit();
    let balances = (h.balance(&alice.address()), h.balance(&bob.address()));
    assert_eq!(
        h.app
            .process_proposal(proposal(2, std::slice::from_ref(&good)))
            .status,
        ACCEPT
    );
    // The mempool holds `good`: each row's CheckTx code then names its reason.
    assert_eq!(h.check(&good).code, 0);
    for (what, bad, code) in &cases {
        let c = h.check(bad);
        assert_eq!(c.code, *code, "{what}: {}", c.log);
        let r = h
            .app
            .process_proposal(proposal(2, &[good.clone(), bad.clone()]));
        assert_eq!(r.status, REJECT, "{what}");
        assert_eq!(h.app.last_commit(), before, "{what}: state changed");
        assert_eq!(
            (h.balance(&alice.address()), h.balance(&bob.address())),
            balances,
            "{what}: balances changed"
        );
        assert_eq!(h.account(&alice.address()), Some((an, 0)), "{what}");
    }
    // ProcessProposal left the mempool's check state alone (it holds `good`: seq 1 fits) …
    let seq1 = from_alice(1)
        .send(&alice, &bob.address(), 1, "umag")
        .sign(&alice);
    assert_eq!(h.check(&seq1).code, 0);
    // … and the block runs exactly as on a twin that never saw a proposal.
    let mut twin = Harness::new(
        &[(alice.address(), FUND), (bob.address(), 10)],
        fast_config(),
    );
    twin.block(vec![]);
    let a = h.block(vec![good.clone()]);
    let b = twin.block(vec![good]);
    assert_eq!(a.app_hash, b.app_hash);
}

#[test]
fn process_proposal_accepts_failed_messages_and_txs_funded_earlier_in_the_block() {
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let dave = Signer::from_seed(4);
    let accounts = [(alice.address(), FUND), (bob.address(), 10)];
    let mut h = Harness::new(&accounts, fast_config());
    h.block(vec![]);
    // Learn the account number dave gets when alice funds him, on a twin chain.
    let fund = h.send(&alice, &dave.address(), 100_000);
    let mut twin = Harness::new(&accounts, fast_config());
    twin.block(vec![]);
    twin.block(vec![fund.clone()]);
    let (dave_number, _) = twin.account(&dave.address()).unwrap();
    let dave_pays = TxBuilder::new(CHAIN_ID, dave_number, 0)
        .fee(FEE, 200_000)
        .send(&dave, &bob.address(), 5, "umag")
        .sign(&dave);
    // A send of more than alice has: the message fails, the fee is paid.
    let (an, _) = h.account(&alice.address()).unwrap();
    let overspend = TxBuilder::new(CHAIN_ID, an, 1)
        .fee(FEE, 200_000)
        .send(&alice, &bob.address(), 10 * FUND, "umag")
        .sign(&alice);
    let block = vec![fund.clone(), dave_pays.clone(), overspend.clone()];
    let before = h.app.last_commit();
    assert_eq!(h.app.process_proposal(proposal(2, &block)).status, ACCEPT);
    assert_eq!(h.app.last_commit(), before);
    // dave's tx alone (not funded yet) is refused.
    assert_eq!(
        h.app
            .process_proposal(proposal(2, std::slice::from_ref(&dave_pays)))
            .status,
        REJECT
    );
    // What the block then does matches: dave pays, the overspend fails but pays its fee.
    let r = h.block(block);
    let codes: Vec<u32> = r.tx_results.iter().map(|t| t.code).collect();
    assert_eq!(codes[..2], [0, 0], "{:?}", r.tx_results);
    assert_ne!(codes[2], 0);
    assert_eq!(h.balance(&alice.address()), FUND - 100_000 - 2 * FEE);
    assert_eq!(h.balance(&dave.address()), 100_000 - 5 - FEE);
}

#[test]
fn prepare_proposal_output_always_passes_process_proposal() {
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let mut h = Harness::new(
        &[(alice.address(), FUND), (bob.address(), 10)],
        fast_config(),
    );
    h.block(vec![]);
    let good = h.send(&alice, &bob.address(), 1);
    let (an, _) = h.account(&alice.address()).unwrap();
    let (bn, _) = h.account(&bob.address()).unwrap();
    let next = TxBuilder::new(CHAIN_ID, an, 1)
        .fee(FEE, 200_000)
        .send(&alice, &bob.address(), 1, "umag")
        .sign(&alice);
    let broke = TxBuilder::new(CHAIN_ID, bn, 0)
        .fee(FEE, 200_000)
        .send(&bob, &alice.address(), 1, "umag")
        .sign(&bob);
    let r = h.app.prepare_proposal(pb::RequestPrepareProposal {
        max_tx_bytes: 1 << 20,
        txs: vec![
            good.clone().into(),
            broke.into(),
            good.clone().into(),
            next.clone().into(),
        ],
        height: 2,
        time: Some(timestamp(2)),
        proposer_address: vec![1u8; 20].into(),
        ..Default::default()
    });
    let txs: Vec<Vec<u8>> = r.txs.iter().map(|t| t.to_vec()).collect();
    assert_eq!(txs, vec![good, next]);
    assert_eq!(h.app.process_proposal(proposal(2, &txs)).status, ACCEPT);
}

#[test]
fn every_state_machine_crate_checks_overflow_in_release_and_no_profile_aborts_on_panic() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        !manifest.contains("panic = \"abort\"") && !manifest.contains("panic=\"abort\""),
        "a profile sets panic = \"abort\": a tx's panic could no longer be caught (ADR 0094)"
    );
    let mut crates = vec!["magnet-app".to_string(), "magnet-core".to_string()];
    for dir in std::fs::read_dir(root.join("modules")).unwrap() {
        let toml = dir.unwrap().path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&toml) else {
            continue;
        };
        let name = text
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or_else(|| panic!("no package name in {}", toml.display()));
        crates.push(name.to_string());
    }
    for name in crates {
        let entry = format!("[profile.release.package.{name}]\noverflow-checks = true");
        assert!(
            manifest.contains(&entry),
            "Cargo.toml lacks `{entry}` (ADR 0094: consensus crates check overflow in release)"
        );
    }
}
