//! Every kind of bad tx is rejected in CheckTx with its own code and a log that says why, and
//! leaves state (committed and mempool) unchanged.

mod common;

use common::*;
use magnet_app::testkit::{msg_send, Signer, TxBuilder};
use magnet_app::AppConfig;
use prost::Message;

fn config_with_min_price() -> AppConfig {
    AppConfig {
        min_gas_price: "0.01".into(),
        ..fast_config()
    }
}

#[test]
fn each_bad_tx_is_rejected_in_check_tx_with_a_distinct_code_and_message() {
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let stranger = Signer::from_seed(3);
    let mut h = Harness::new(
        &[(alice.address(), 1_000_000), (bob.address(), 10)],
        config_with_min_price(),
    );
    h.block(vec![]);
    // A committed tx from Alice, for the replay case.
    let first = TxBuilder::new(CHAIN_ID, 0, 0)
        .fee(2_000, 200_000)
        .send(&alice, &bob.address(), 1, "umag")
        .sign(&alice);
    assert_eq!(h.block(vec![first.clone()]).tx_results[0].code, 0);

    let good = |seq: u64| {
        TxBuilder::new(CHAIN_ID, 0, seq)
            .fee(2_000, 200_000)
            .send(&alice, &bob.address(), 5, "umag")
    };
    let mut bad_sig = good(1).sign(&alice);
    {
        // Replace the signature with a high-S (non-canonical) one: r ‖ (n − s).
        let mut raw =
            cosmrs::proto::cosmos::tx::v1beta1::TxRaw::decode(bad_sig.as_slice()).unwrap();
        let sig = k256::ecdsa::Signature::from_slice(&raw.signatures[0]).unwrap();
        let (r, s) = sig.split_scalars();
        let high = k256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        raw.signatures[0] = high.to_bytes().to_vec();
        bad_sig = raw.encode_to_vec();
    }
    let unknown = TxBuilder::new(CHAIN_ID, 0, 1)
        .fee(2_000, 200_000)
        .msg(cosmrs::Any {
            type_url: "/cosmos.staking.v1beta1.MsgDelegate".into(),
            value: vec![],
        })
        .sign(&alice);
    let bad_bech32 = TxBuilder::new(CHAIN_ID, 0, 1)
        .fee(2_000, 200_000)
        .msg(msg_send(&alice.address(), "magnet1notanaddress", 5, "umag"))
        .sign(&alice);
    let oversize = good(1).memo(&"x".repeat(200)).fee(2_000, 200_000);
    let mut oversize = oversize;
    oversize.msgs = (0..2_000)
        .map(|_| msg_send(&alice.address(), &bob.address().to_bech32(), 1, "umag"))
        .collect();
    let oversize = oversize.sign(&alice);
    assert!(oversize.len() > 65_536);

    let cases: Vec<(&str, Vec<u8>, &str, u32, &str)> = vec![
        (
            "malformed bytes",
            vec![0xff, 0x01, 0x02, 0x03],
            "sdk",
            2,
            "does not decode",
        ),
        (
            "wrong chain id",
            TxBuilder::new("some-other-chain", 0, 1)
                .fee(2_000, 200_000)
                .send(&alice, &bob.address(), 5, "umag")
                .sign(&alice),
            "sdk",
            4,
            "chain-id (magnet-test-1)",
        ),
        (
            "bad signature",
            bad_sig,
            "magnet",
            101,
            "signature is malformed",
        ),
        (
            "wrong sequence (replay)",
            first,
            "sdk",
            32,
            "account sequence mismatch, expected 1, got 0",
        ),
        (
            "insufficient fee",
            good(1).fee(100, 200_000).sign(&alice),
            "sdk",
            13,
            "insufficient fees",
        ),
        (
            "unknown message type",
            unknown,
            "sdk",
            6,
            "unrecognized message type",
        ),
        ("oversize tx", oversize, "sdk", 21, "the limit is 65536"),
        ("invalid bech32", bad_bech32, "sdk", 7, "MsgSend.to_address"),
        (
            "unknown signer account",
            TxBuilder::new(CHAIN_ID, 0, 0)
                .fee(2_000, 200_000)
                .send(&stranger, &bob.address(), 1, "umag")
                .sign(&stranger),
            "sdk",
            9,
            "does not exist",
        ),
        (
            "no signature",
            {
                let mut raw = cosmrs::proto::cosmos::tx::v1beta1::TxRaw::decode(
                    good(1).sign(&alice).as_slice(),
                )
                .unwrap();
                raw.signatures.clear();
                raw.encode_to_vec()
            },
            "sdk",
            15,
            "no signatures",
        ),
    ];
    let committed_before = h.app.last_commit();
    let alice_before = h.balance(&alice.address());
    let mut seen = std::collections::BTreeSet::new();
    for (name, tx, codespace, code, needle) in &cases {
        let r = h.check(tx);
        assert_eq!(
            (r.codespace.as_str(), r.code),
            (*codespace, *code),
            "{name}: {}",
            r.log
        );
        assert!(
            r.log.contains(needle),
            "{name}: log {:?} lacks {needle:?}",
            r.log
        );
        assert!(
            seen.insert((r.codespace.clone(), r.code)),
            "{name}: code {} reused",
            r.code
        );
    }
    assert_eq!(h.app.last_commit(), committed_before);
    assert_eq!(h.balance(&alice.address()), alice_before);
    // The mempool state is unchanged too: Alice's next valid tx (sequence 1) is accepted.
    let ok = h.check(&good(1).sign(&alice));
    assert_eq!(ok.code, 0, "{}", ok.log);

    // Insufficient balance, on a node with no minimum gas price (so the fee check passes).
    let mut z = Harness::new(
        &[(alice.address(), 1_000_000), (bob.address(), 10)],
        fast_config(),
    );
    z.block(vec![]);
    let poor = TxBuilder::new(CHAIN_ID, 1, 0)
        .fee(0, 200_000)
        .send(&bob, &alice.address(), 1_000_000, "umag")
        .sign(&bob);
    let before = z.app.last_commit();
    let r = z.check(&poor);
    assert_eq!((r.codespace.as_str(), r.code), ("sdk", 5), "{}", r.log);
    assert!(r.log.contains("insufficient funds"), "{}", r.log);
    assert!(seen.insert((r.codespace.clone(), r.code)));
    assert_eq!(z.app.last_commit(), before);
    assert_eq!(z.balance(&bob.address()), 10);
    // And a fee Bob cannot pay is also insufficient funds.
    let r = z.check(
        &TxBuilder::new(CHAIN_ID, 1, 0)
            .fee(11, 200_000)
            .send(&bob, &alice.address(), 1, "umag")
            .sign(&bob),
    );
    assert_eq!(r.code, 5, "{}", r.log);
    assert!(r.log.contains("fee"), "{}", r.log);
}

#[test]
fn a_sender_may_queue_consecutive_sequences_in_the_mempool_but_not_replay_them() {
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let mut h = Harness::new(&[(alice.address(), 1_000_000)], fast_config());
    h.block(vec![]);
    let txs: Vec<Vec<u8>> = (0..3)
        .map(|s| {
            TxBuilder::new(CHAIN_ID, 0, s)
                .fee(10, 200_000)
                .send(&alice, &bob.address(), 1, "umag")
                .sign(&alice)
        })
        .collect();
    for t in &txs {
        assert_eq!(h.check(t).code, 0);
    }
    assert_eq!(
        h.check(&txs[1]).code,
        32,
        "a replay in the mempool is refused"
    );
    let r = h.block(txs.clone());
    assert!(r.tx_results.iter().all(|t| t.code == 0));
    // After commit the check state restarts from committed state: all three are now stale.
    for t in &txs {
        assert_eq!(h.check(t).code, 32);
    }
    assert_eq!(h.balance(&bob.address()), 3);
}

#[test]
fn a_failed_message_still_pays_its_fee_and_uses_its_sequence() {
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let mut h = Harness::new(&[(alice.address(), 10_000)], fast_config());
    h.block(vec![]);
    let tx = TxBuilder::new(CHAIN_ID, 0, 0)
        .fee(1_000, 200_000)
        .send(&alice, &bob.address(), 50_000, "umag")
        .sign(&alice);
    let r = h.block(vec![tx]);
    assert_eq!(r.tx_results[0].code, 5, "{}", r.tx_results[0].log);
    assert_eq!(h.balance(&alice.address()), 9_000);
    assert_eq!(h.account(&alice.address()), Some((0, 1)));
    assert_eq!(h.balance(&bob.address()), 0);
    // Out of gas in a message: the same. Measure a send to a fresh account, then give an
    // identical one (another fresh account) one gas less.
    let carol = Signer::from_seed(3).address();
    let dave = Signer::from_seed(4).address();
    let tx = TxBuilder::new(CHAIN_ID, 0, 1)
        .fee(1_000, 200_000)
        .send(&alice, &carol, 1, "umag")
        .sign(&alice);
    let r = h.block(vec![tx]);
    assert_eq!(r.tx_results[0].code, 0, "{}", r.tx_results[0].log);
    let needed = r.tx_results[0].gas_used as u64;
    let tx = TxBuilder::new(CHAIN_ID, 0, 2)
        .fee(1_000, needed - 1)
        .send(&alice, &dave, 1, "umag")
        .sign(&alice);
    let r = h.block(vec![tx]);
    assert_eq!(r.tx_results[0].code, 11, "{}", r.tx_results[0].log);
    assert!(
        r.tx_results[0].log.contains("out of gas"),
        "{}",
        r.tx_results[0].log
    );
    assert_eq!(h.balance(&alice.address()), 9_000 - 1_000 - 1 - 1_000);
    assert_eq!(h.balance(&dave), 0);
    assert_eq!(h.account(&alice.address()), Some((0, 3)));
}
