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
