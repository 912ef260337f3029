//! The ABCI entry points end to end: genesis, signed sends, queries, simulation, restart.

mod common;

use common::*;
use cosmrs::proto::cosmos::base::abci::v1beta1::TxMsgData;
use magnet_app::abci as pb;
use magnet_app::testkit::{simulate_request, Signer, TxBuilder};
use magnet_app::Application;
use prost::Message;

#[test]
fn a_signed_send_moves_coins_and_is_queryable() {
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let mut h = Harness::new(&[(alice.address(), 1_000_000)], fast_config());
    h.block(vec![]);
    let tx = h.send(&alice, &bob.address(), 250_000);
    let check = h.check(&tx);
    assert_eq!(check.code, 0, "{}", check.log);
    let r = h.block(vec![tx]);
    assert_eq!(r.tx_results.len(), 1);
    let res = &r.tx_results[0];
    assert_eq!(res.code, 0, "{}", res.log);
    assert!(res.gas_used > 0 && res.gas_used <= res.gas_wanted);
    let data = TxMsgData::decode(res.data.as_ref()).unwrap();
    assert_eq!(data.msg_responses.len(), 1);
    assert_eq!(
        data.msg_responses[0].type_url,
        "/cosmos.bank.v1beta1.MsgSendResponse"
    );
    assert!(res.events.iter().any(|e| e.r#type == "transfer"));
    assert_eq!(h.balance(&bob.address()), 250_000);
    assert_eq!(h.balance(&alice.address()), 1_000_000 - 250_000 - 2_000);
    assert_eq!(h.balance(&magnet_app::fee_collector()), 2_000);
    // Bob's account was created on first receive; Alice's sequence moved.
    let (bob_num, bob_seq) = h.account(&bob.address()).unwrap();
    assert_eq!(bob_seq, 0);
    assert!(bob_num > 0);
    assert_eq!(h.account(&alice.address()), Some((0, 1)));
    let info = h.app.info(pb::RequestInfo::default());
    assert_eq!(info.last_block_height, 2);
    assert_eq!(info.last_block_app_hash.to_vec(), r.app_hash.to_vec());
}

#[test]
fn info_reports_the_last_commit_after_reopen_and_old_heights_stay_queryable() {
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let tmp = tempfile::tempdir().unwrap();
    let hash;
    {
        let mut h = Harness::open(tmp.path(), fast_config());
        h.app
            .init_chain(init_request(&magnet_app::testkit::genesis_app_state(&[(
                alice.address(),
                1_000_000,
            )])));
        h.block(vec![]);
        let tx = h.send(&alice, &bob.address(), 5);
        hash = h.block(vec![tx]).app_hash;
    }
    let h = Harness::open(tmp.path(), fast_config());
    let info = h.app.info(pb::RequestInfo::default());
    assert_eq!(info.last_block_height, 2);
    assert_eq!(info.last_block_app_hash, hash);
    assert_eq!(h.balance(&bob.address()), 5);
    assert_eq!(h.balance_at(&bob.address(), 1), 0);
    let future = h.query(
        "/cosmos.bank.v1beta1.Query/AllBalances",
        cosmrs::proto::cosmos::bank::v1beta1::QueryAllBalancesRequest {
            address: bob.address().to_bech32(),
            pagination: None,
            resolve_denom: false,
        }
        .encode_to_vec(),
        9,
    );
    assert_ne!(future.code, 0);
    assert!(future.log.contains("not available"), "{}", future.log);
}

#[test]
fn simulate_estimates_gas_for_an_unsigned_tx_like_cosmjs_sends() {
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let mut h = Harness::new(&[(alice.address(), 1_000_000)], fast_config());
    h.block(vec![]);
    let unsigned = TxBuilder::new(CHAIN_ID, 0, 0)
        .fee(0, 0)
        .send(&alice, &bob.address(), 10, "umag")
        .for_simulation(&alice);
    let r = h.query(
        "/cosmos.tx.v1beta1.Service/Simulate",
        simulate_request(unsigned),
        0,
    );
    assert_eq!(r.code, 0, "{}", r.log);
    #[allow(deprecated)]
    let resp =
        cosmrs::proto::cosmos::tx::v1beta1::SimulateResponse::decode(r.value.as_ref()).unwrap();
    let used = resp.gas_info.unwrap().gas_used;
    assert!(used > 1_000, "gas used {used}");
    // Simulation changed nothing.
    assert_eq!(h.balance(&bob.address()), 0);
    assert_eq!(h.account(&alice.address()), Some((0, 0)));
    // A tx with the estimated gas passes.
    let tx = TxBuilder::new(CHAIN_ID, 0, 0)
        .fee(0, used * 13 / 10)
        .send(&alice, &bob.address(), 10, "umag")
        .sign(&alice);
    let r = h.block(vec![tx]);
    assert_eq!(r.tx_results[0].code, 0, "{}", r.tx_results[0].log);
}

#[test]
fn prepare_proposal_drops_invalid_and_oversize_txs_and_respects_max_tx_bytes() {
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let mut h = Harness::new(&[(alice.address(), 1_000_000)], fast_config());
    h.block(vec![]);
    let t0 = h.send(&alice, &bob.address(), 1);
    let t1 = TxBuilder::new(CHAIN_ID, 0, 1)
        .fee(2_000, 200_000)
        .send(&alice, &bob.address(), 1, "umag")
        .sign(&alice);
    let replay = t0.clone();
    let garbage = vec![1u8, 2, 3];
    let r = h.app.prepare_proposal(pb::RequestPrepareProposal {
        max_tx_bytes: (t0.len() + t1.len()) as i64,
        txs: vec![
            t0.clone().into(),
            garbage.into(),
            replay.into(),
            t1.clone().into(),
        ],
        height: 2,
        ..Default::default()
    });
    assert_eq!(
        r.txs,
        vec![
            bytes::Bytes::from(t0.clone()),
            bytes::Bytes::from(t1.clone())
        ]
    );
    let r = h.app.prepare_proposal(pb::RequestPrepareProposal {
        max_tx_bytes: t0.len() as i64,
        txs: vec![t0.clone().into(), t1.into()],
        height: 2,
        ..Default::default()
    });
    assert_eq!(r.txs.len(), 1);
    // PrepareProposal did not disturb the mempool's check state.
    assert_eq!(h.check(&t0).code, 0);
}

#[test]
fn process_proposal_rejects_a_block_with_an_undecodable_tx() {
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let mut h = Harness::new(&[(alice.address(), 1_000_000)], fast_config());
    h.block(vec![]);
    let good = h.send(&alice, &bob.address(), 1);
    let accept = pb::response_process_proposal::ProposalStatus::Accept as i32;
    let reject = pb::response_process_proposal::ProposalStatus::Reject as i32;
    let req = |txs: Vec<Vec<u8>>| pb::RequestProcessProposal {
        txs: txs.into_iter().map(Into::into).collect(),
        height: 2,
        ..Default::default()
    };
    assert_eq!(
        h.app.process_proposal(req(vec![good.clone()])).status,
        accept
    );
    assert_eq!(
        h.app
            .process_proposal(req(vec![good, vec![0xff, 0x00]]))
            .status,
        reject
    );
}

#[test]
fn export_writes_a_genesis_that_starts_an_identical_chain() {
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let mut h = Harness::new(&[(alice.address(), 1_000_000)], fast_config());
    h.block(vec![]);
    let tx = h.send(&alice, &bob.address(), 4_242);
    h.block(vec![tx]);
    let exported = h.app.export().unwrap();
    assert_eq!(exported.chain_id, CHAIN_ID);
    assert_eq!(exported.height, 2);
    magnet_app::MagnetApp::validate_genesis(CHAIN_ID, &exported.app_state).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut fresh = Harness::open(tmp.path(), fast_config());
    fresh.app.init_chain(init_request(&exported.app_state));
    fresh.block(vec![]);
    assert_eq!(fresh.balance(&bob.address()), 4_242);
    assert_eq!(fresh.balance(&alice.address()), h.balance(&alice.address()));
    assert_eq!(fresh.account(&alice.address()), h.account(&alice.address()));
    assert_eq!(fresh.account(&bob.address()), h.account(&bob.address()));
    // Alice's recorded key carried over: her next tx needs no key in signer_infos.
    let mut b =
        TxBuilder::new(CHAIN_ID, 0, 1)
            .fee(2_000, 200_000)
            .send(&alice, &bob.address(), 1, "umag");
    b.include_pub_key = false;
    let r = fresh.block(vec![b.sign(&alice)]);
    assert_eq!(r.tx_results[0].code, 0, "{}", r.tx_results[0].log);
}

#[test]
fn a_broken_genesis_is_refused_with_a_reason() {
    for (bad, needle) in [
        (
            serde_json::json!({"bank": {"balances": [{"address": "magnet1nope", "coins": []}]}}),
            "bank",
        ),
        (
            serde_json::json!({"auth": {"params": {"max_tx_bytes": 1, "max_memo_characters": 1, "max_tx_gas": 1, "min_gas_price": "0"}}}),
            "max_tx_bytes",
        ),
        (
            serde_json::json!({"validators": [{"pub_key": "AAAA", "power": "1"}]}),
            "32 bytes",
        ),
        (serde_json::json!([]), "object"),
        // Raw module records of an export (`store_records`), each failure named.
        (
            serde_json::json!({"registry": {"store_records": 5}}),
            "list of [hex key, hex value] pairs",
        ),
        (
            serde_json::json!({"registry": {"store_records": [[1, 2]]}}),
            "registry.store_records[0]: expected a [hex key, hex value] pair",
        ),
        (
            serde_json::json!({"registry": {"store_records": [["zz", "00"]]}}),
            "key is not hex",
        ),
        (
            serde_json::json!({"registry": {"store_records": [["7265676973747279", "z"]]}}),
            "value is not hex",
        ),
        (
            // "bank/x": another module's key.
            serde_json::json!({"registry": {"store_records": [["62616e6b2f78", "00"]]}}),
            "outside the module's prefix",
        ),
        // Former validators' records (an export's `former_validators`).
        (
            serde_json::json!({"former_validators": 5}),
            "former_validators",
        ),
        (
            serde_json::json!({"former_validators": [{"pub_key": "AAAA"}]}),
            "must be a 32-byte ed25519 key",
        ),
        (
            serde_json::json!({"former_validators": [{"pub_key": "not base64!"}]}),
            "former_validators: pub_key",
        ),
        (
            serde_json::json!({"former_validators": [
                {"pub_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},
                {"pub_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}
            ]}),
            "listed once",
        ),
        (
            serde_json::json!({"former_validators": [
                {"pub_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "operator": "magnet1nope"}
            ]}),
            "former_validators: operator",
        ),
        (
            serde_json::json!({"former_validators": [
                {"pub_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "extra": 1}
            ]}),
            "unknown field",
        ),
        (
            serde_json::json!({
                "validators": [{"pub_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "power": "1"}],
                "former_validators": [{"pub_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}]
            }),
            "not a current validator",
        ),
        (
            serde_json::json!({"upgrades_done": ["v2"]}),
            "upgrades_done: expected",
        ),
        (
            serde_json::json!({"upgrades_done": {"": 7}}),
            "upgrades_done: an upgrade at height 7 has an empty name",
        ),
    ] {
        let e = magnet_app::MagnetApp::validate_genesis(CHAIN_ID, &bad).unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[test]
fn an_exported_genesis_with_applied_upgrades_validates_as_magnetd_start_checks_it() {
    // `magnetd start` validates the genesis at height 0; an export's upgrade heights are the
    // exporting chain's history and must not make it refuse.
    let ok = serde_json::json!({"upgrades_done": {"v2": 5_000}});
    magnet_app::MagnetApp::validate_genesis(CHAIN_ID, &ok).unwrap();
}

#[test]
fn simulate_accepts_the_unspecified_sign_mode_and_tx_encoding_cosmjs_sends() {
    use cosmrs::proto::cosmos::tx::v1beta1 as txpb;
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let mut h = Harness::new(&[(alice.address(), 1_000_000)], fast_config());
    h.block(vec![]);
    let b = TxBuilder::new(CHAIN_ID, 0, 0)
        .fee(0, 0)
        .send(&alice, &bob.address(), 3, "umag");
    let (body, auth) = b.body_and_auth_info(&alice);
    let mut auth = txpb::AuthInfo::decode(auth.as_slice()).unwrap();
    auth.signer_infos[0].mode_info = Some(txpb::ModeInfo {
        sum: Some(txpb::mode_info::Sum::Single(txpb::mode_info::Single {
            mode: 0,
        })),
    });
    // cosmjs encodes a `Tx` (messages, not bytes), which is wire-compatible with `TxRaw`.
    let tx = txpb::Tx {
        body: Some(txpb::TxBody::decode(body.as_slice()).unwrap()),
        auth_info: Some(auth),
        signatures: vec![vec![]],
    };
    let r = h.query(
        "/cosmos.tx.v1beta1.Service/Simulate",
        simulate_request(tx.encode_to_vec()),
        0,
    );
    assert_eq!(r.code, 0, "{}", r.log);
    // The same layout is refused outside simulation.
    let c = h.check(&tx.encode_to_vec());
    assert_ne!(c.code, 0);
}
