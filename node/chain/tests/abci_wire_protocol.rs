//! Speak the ABCI socket protocol to `magnetd start --abci-only` the way CometBFT v0.38 does:
//! four connections (consensus, mempool, query, snapshot), each message a protobuf
//! `Request` preceded by its length as an unsigned varint, in CometBFT's call order.

mod common;

use common::*;
use magnet_client::Key;
use magnet_core::Coins;
use prost::Message;
use tendermint_proto::v0_38::abci as pb;
use tendermint_proto::v0_38::abci::{request, response};

fn ts() -> tendermint_proto::google::protobuf::Timestamp {
    tendermint_proto::google::protobuf::Timestamp {
        seconds: 1_767_225_600,
        nanos: 0,
    }
}

#[test]
fn a_cometbft_style_client_drives_the_abci_socket_on_four_connections() {
    let net = devnet("magnet-abci-test");
    let home = net.home();
    let port = free_port();
    let metrics = format!("127.0.0.1:{}", free_port());
    let addr = format!("tcp://127.0.0.1:{port}");
    let mut p = spawn_magnetd(
        &home,
        &[
            "--abci-only",
            "--abci-addr",
            &addr,
            "--metrics-addr",
            &metrics,
        ],
        &[],
        "abci.log",
    );

    // CometBFT's proxy opens the four connections and echoes on each.
    let mut consensus = Conn::open(port, &p);
    let mut mempool = Conn::open(port, &p);
    let mut query = Conn::open(port, &p);
    let mut snapshot = Conn::open(port, &p);
    for c in [&mut consensus, &mut mempool, &mut query, &mut snapshot] {
        let r = c.call(request::Value::Echo(pb::RequestEcho {
            message: "hello".into(),
        }));
        assert!(matches!(r, response::Value::Echo(ref e) if e.message == "hello"));
    }

    // Handshake: Info on the query connection, then InitChain on consensus.
    let response::Value::Info(info) = query.call(request::Value::Info(pb::RequestInfo {
        version: "0.38.26".into(),
        block_version: 11,
        p2p_version: 8,
        abci_version: "2.0.0".into(),
    })) else {
        panic!()
    };
    assert_eq!(info.last_block_height, 0);
    let genesis: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("config/genesis.json")).unwrap())
            .unwrap();
    let g: tendermint::Genesis<serde_json::Value> =
        serde_json::from_value(genesis.clone()).unwrap();
    let response::Value::InitChain(init) =
        consensus.call(request::Value::InitChain(pb::RequestInitChain {
            time: Some(ts()),
            chain_id: "magnet-abci-test".into(),
            consensus_params: Some(g.consensus_params.clone().into()),
            validators: g
                .validators
                .iter()
                .map(|v| pb::ValidatorUpdate {
                    pub_key: Some(v.pub_key.into()),
                    power: v.power.value() as i64,
                })
                .collect(),
            app_state_bytes: serde_json::to_vec(&genesis["app_state"]).unwrap().into(),
            initial_height: 1,
        }))
    else {
        panic!()
    };
    assert!(!init.app_hash.is_empty());

    // Snapshot connection: nothing offered.
    let r = snapshot.call(request::Value::ListSnapshots(pb::RequestListSnapshots {}));
    assert!(matches!(r, response::Value::ListSnapshots(_)));

    // Block 1, empty (the app accepts txs once genesis is committed).
    let proposer1 = g.validators[0].address.as_bytes().to_vec();
    let response::Value::FinalizeBlock(fin1) =
        consensus.call(request::Value::FinalizeBlock(pb::RequestFinalizeBlock {
            txs: vec![],
            decided_last_commit: Some(Default::default()),
            misbehavior: vec![],
            hash: vec![7; 32].into(),
            height: 1,
            time: Some(ts()),
            next_validators_hash: vec![0; 32].into(),
            proposer_address: proposer1.into(),
        }))
    else {
        panic!()
    };
    assert!(fin1.tx_results.is_empty());
    consensus.call(request::Value::Commit(pb::RequestCommit {}));

    // Mempool: a good signed tx passes CheckTx, junk does not.
    let alice = Key::from_mnemonic(&net.alice_mnemonic).unwrap();
    let bob = Key::generate().unwrap().address();
    let fee = magnet_client::tx::FeeSpec {
        amount: Coins::umag(5000),
        gas_limit: 200_000,
    };
    let signer = magnet_client::tx::SignerData {
        chain_id: "magnet-abci-test".into(),
        account_number: 0,
        sequence: 0,
    };
    // alice is the only genesis account, so her account number is 0.
    let msg = magnet_client::tx::msg_send(&alice.address(), &bob, &Coins::umag(4242)).unwrap();
    let tx = magnet_client::tx::sign_tx(&alice, vec![msg], "", &fee, &signer).unwrap();
    let response::Value::CheckTx(ct) = mempool.call(request::Value::CheckTx(pb::RequestCheckTx {
        tx: tx.clone().into(),
        r#type: 0,
    })) else {
        panic!()
    };
    assert_eq!(ct.code, 0, "{}", ct.log);
    let response::Value::CheckTx(bad) = mempool.call(request::Value::CheckTx(pb::RequestCheckTx {
        tx: vec![0xff, 0x00].into(),
        r#type: 0,
    })) else {
        panic!()
    };
    assert_ne!(bad.code, 0);
    assert!(!bad.log.is_empty());

    // Consensus: one block, in CometBFT's order.
    let proposer = g.validators[0].address.as_bytes().to_vec();
    let response::Value::PrepareProposal(prep) = consensus.call(request::Value::PrepareProposal(
        pb::RequestPrepareProposal {
            max_tx_bytes: 1 << 20,
            txs: vec![tx.clone().into()],
            local_last_commit: Some(Default::default()),
            misbehavior: vec![],
            height: 2,
            time: Some(ts()),
            next_validators_hash: vec![0; 32].into(),
            proposer_address: proposer.clone().into(),
        },
    )) else {
        panic!()
    };
    assert_eq!(prep.txs.len(), 1);
    let response::Value::ProcessProposal(proc_) = consensus.call(request::Value::ProcessProposal(
        pb::RequestProcessProposal {
            txs: prep.txs.clone(),
            proposed_last_commit: Some(Default::default()),
            misbehavior: vec![],
            hash: vec![1; 32].into(),
            height: 2,
            time: Some(ts()),
            next_validators_hash: vec![0; 32].into(),
            proposer_address: proposer.clone().into(),
        },
    )) else {
        panic!()
    };
    assert_eq!(
        proc_.status,
        pb::response_process_proposal::ProposalStatus::Accept as i32
    );
    let response::Value::FinalizeBlock(fin) =
        consensus.call(request::Value::FinalizeBlock(pb::RequestFinalizeBlock {
            txs: prep.txs.clone(),
            decided_last_commit: Some(Default::default()),
            misbehavior: vec![],
            hash: vec![1; 32].into(),
            height: 2,
            time: Some(ts()),
            next_validators_hash: vec![0; 32].into(),
            proposer_address: proposer.into(),
        }))
    else {
        panic!()
    };
    assert_eq!(fin.tx_results.len(), 1);
    assert_eq!(fin.tx_results[0].code, 0, "{}", fin.tx_results[0].log);
    assert_ne!(fin.app_hash, init.app_hash);
    let r = consensus.call(request::Value::Commit(pb::RequestCommit {}));
    assert!(matches!(r, response::Value::Commit(_)));
    // Recheck after Commit: the included tx is now a replay.
    let response::Value::CheckTx(re) = mempool.call(request::Value::CheckTx(pb::RequestCheckTx {
        tx: tx.clone().into(),
        r#type: 1,
    })) else {
        panic!()
    };
    assert_ne!(
        re.code, 0,
        "a committed tx must fail recheck (sequence moved on)"
    );

    // Query the new balance over the query connection.
    let req = cosmrs::proto::cosmos::bank::v1beta1::QueryBalanceRequest {
        address: bob.to_bech32(),
        denom: "umag".into(),
    };
    let response::Value::Query(q) = query.call(request::Value::Query(pb::RequestQuery {
        data: req.encode_to_vec().into(),
        path: "/cosmos.bank.v1beta1.Query/Balance".into(),
        height: 0,
        prove: false,
    })) else {
        panic!()
    };
    assert_eq!(q.code, 0, "{}", q.log);
    let bal = cosmrs::proto::cosmos::bank::v1beta1::QueryBalanceResponse::decode(q.value.as_ref())
        .unwrap();
    assert_eq!(bal.balance.unwrap().amount, "4242");

    // Info reports the committed height and app hash, also after a kill -9 and restart.
    let response::Value::Info(info) = query.call(request::Value::Info(Default::default())) else {
        panic!()
    };
    assert_eq!(info.last_block_height, 2);
    assert_eq!(info.last_block_app_hash, fin.app_hash);
    drop((consensus, mempool, query, snapshot));
    p.kill9();
    let p2 = spawn_magnetd(
        &home,
        &[
            "--abci-only",
            "--abci-addr",
            &addr,
            "--metrics-addr",
            &metrics,
        ],
        &[],
        "abci.log",
    );
    let mut query = Conn::open(port, &p2);
    let response::Value::Info(info) = query.call(request::Value::Info(Default::default())) else {
        panic!()
    };
    assert_eq!(info.last_block_height, 2);
    assert_eq!(info.last_block_app_hash, fin.app_hash);
}
