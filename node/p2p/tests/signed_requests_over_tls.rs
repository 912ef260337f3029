//! Real tonic over loopback with real TLS: every forgery is refused with its own error, and
//! honest calls work end to end.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use magnet_p2p::auth::{Clock, Signer, SystemClock};
use magnet_p2p::service::methods;
use magnet_p2p::stream::audit_proof_hash;
use magnet_p2p::tls::{Expect, TlsError};
use magnet_p2p::{NodeKey, P2pError, PeerClient, ShardKey, StaticRegistry};
use magnet_proto::p2p::v1::{auth::Proof, AuditChallenge, HeartbeatRequest, NodeStatus, Signed};
use prost::Message;

fn hb_body() -> Vec<u8> {
    HeartbeatRequest {
        status: Some(NodeStatus {
            tier: "gpu_compute".into(),
            load_permille: 5,
            free_storage_bytes: 1,
            shard_count: 0,
        }),
    }
    .encode_to_vec()
}

fn envelope(signer: &Signer, method: &str, body: Vec<u8>, ts: u64) -> Signed {
    Signed {
        auth: Some(signer.auth(method, &body, ts)),
        body,
    }
}

fn wallet_proof(s: &mut Signed) -> &mut magnet_proto::p2p::v1::WalletProof {
    match s.auth.as_mut().unwrap().proof.as_mut().unwrap() {
        Proof::Wallet(w) => w,
        Proof::Hmac(_) => panic!("wallet proof expected"),
    }
}

/// secp256k1 group order n, big-endian.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

fn negate_s(sig: &mut [u8]) {
    // s' = n - s (big-endian subtraction), and flip the recovery parity.
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let v = N[i] as i16 - sig[32 + i] as i16 - borrow;
        borrow = if v < 0 { 1 } else { 0 };
        sig[32 + i] = (v + 256 * borrow) as u8;
    }
    sig[64] ^= 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_forgery_is_refused_with_its_own_error() {
    let server_key = NodeKey::generate();
    let client_key = NodeKey::generate();
    let other_key = NodeKey::generate();
    let unregistered_key = NodeKey::generate();
    let registry = Arc::new(StaticRegistry::new());
    registry.register(client_key.public_key(), "eu");
    registry.register(other_key.public_key(), "us");
    let server = start(
        server_key.clone(),
        wallet_with(registry.clone()),
        Signer::Wallet(server_key.clone()),
    )
    .await;
    let client = start(
        client_key.clone(),
        wallet(),
        Signer::Wallet(client_key.clone()),
    )
    .await;
    let mut c = client.dial(&server).await;
    let me = Signer::Wallet(client_key.clone());
    let other = Signer::Wallet(other_key.clone());
    let now = SystemClock.now_unix();
    let hb = methods::HEARTBEAT;

    // The honest request works.
    c.heartbeat_raw(envelope(&me, hb, hb_body(), now))
        .await
        .unwrap();

    let mut cases: Vec<(&str, Signed, &str)> = Vec::new();
    // Forged signature: the claimed key is ours, the signature is someone else's.
    let mut s = envelope(&me, hb, hb_body(), now);
    let forged = envelope(&other, hb, hb_body(), now);
    let Some(Proof::Wallet(fw)) = forged.auth.unwrap().proof else {
        unreachable!()
    };
    wallet_proof(&mut s).signature = fw.signature;
    cases.push(("forged signature", s, "bad-signature"));
    // Signature over a different body.
    let mut s = envelope(&me, hb, hb_body(), now);
    s.body.push(0);
    cases.push(("body altered after signing", s, "bad-signature"));
    // Wrong key for the nodeId: validly signed by another key, claiming our nodeId.
    let mut s = envelope(&other, hb, hb_body(), now);
    s.auth.as_mut().unwrap().node_id = client_key.node_id().to_string();
    let body = s.body.clone();
    let mut a = other.auth(hb, &body, now);
    a.node_id = client_key.node_id().to_string();
    s.auth = Some(a);
    cases.push(("wrong key for the nodeId", s, "key-not-bound-to-node-id"));
    // High-S twin of a valid signature.
    let mut s = envelope(&me, hb, hb_body(), now);
    negate_s(&mut wallet_proof(&mut s).signature);
    cases.push(("high-S signature", s, "high-s"));
    // Stale and future timestamps.
    cases.push((
        "stale timestamp",
        envelope(&me, hb, hb_body(), now - 301),
        "stale-timestamp",
    ));
    cases.push((
        "future timestamp",
        envelope(&me, hb, hb_body(), now + 900),
        "stale-timestamp",
    ));
    // Signed for another method.
    cases.push((
        "signed for another method",
        envelope(&me, methods::LIST_SHARDS, hb_body(), now),
        "method-mismatch",
    ));
    // HMAC against a wallet-mode node.
    cases.push((
        "cluster proof to a wallet node",
        envelope(&cluster_signer(&client_key, b"s3cret"), hb, hb_body(), now),
        "wrong-mode",
    ));
    // Signed by a registered node that is not the TLS peer.
    cases.push((
        "claims a node other than the TLS peer",
        envelope(&other, hb, hb_body(), now),
        "tls-identity-mismatch",
    ));
    // Missing proof.
    cases.push((
        "unsigned",
        Signed {
            auth: None,
            body: hb_body(),
        },
        "missing-auth",
    ));

    let mut seen = BTreeSet::new();
    for (name, signed, want) in cases {
        let err = c.heartbeat_raw(signed).await.unwrap_err();
        assert_eq!(err.refusal_code(), Some(want), "{name}: {err}");
        seen.insert(want);
    }

    // Replayed nonce: the first copy passes, the second is refused.
    let s = envelope(&me, hb, hb_body(), now);
    c.heartbeat_raw(s.clone()).await.unwrap();
    let err = c.heartbeat_raw(s).await.unwrap_err();
    assert_eq!(err.refusal_code(), Some("replayed-nonce"), "{err}");
    seen.insert("replayed-nonce");

    // Not registered: a node whose TLS and signature are fine but the registry lacks it.
    let stranger = start(
        unregistered_key.clone(),
        wallet(),
        Signer::Wallet(unregistered_key.clone()),
    )
    .await;
    let mut sc = stranger.dial(&server).await;
    let err = sc.heartbeat(NodeStatus::default()).await.unwrap_err();
    assert_eq!(err.refusal_code(), Some("not-registered"), "{err}");
    seen.insert("not-registered");

    // Cluster mode: HMAC with the wrong secret.
    let csrv_key = NodeKey::generate();
    let csrv = start(
        csrv_key.clone(),
        cluster(b"right secret"),
        cluster_signer(&csrv_key, b"right secret"),
    )
    .await;
    let good = start(
        client_key.clone(),
        cluster(b"right secret"),
        cluster_signer(&client_key, b"right secret"),
    )
    .await;
    good.dial(&csrv)
        .await
        .heartbeat(NodeStatus::default())
        .await
        .unwrap();
    let bad = start(
        client_key.clone(),
        cluster(b"wrong secret"),
        cluster_signer(&client_key, b"wrong secret"),
    )
    .await;
    let err = bad
        .dial(&csrv)
        .await
        .heartbeat(NodeStatus::default())
        .await
        .unwrap_err();
    assert_eq!(err.refusal_code(), Some("bad-hmac"), "{err}");
    seen.insert("bad-hmac");

    // TLS: the peer at the address proves a different key than the one we dial for.
    let err = PeerClient::connect(
        &server.handle.addr().to_string(),
        Expect::NodeId(other_key.node_id().clone()),
        &client.tls,
        me.clone(),
        client.verifier.clone(),
    )
    .await
    .unwrap_err();
    match err {
        P2pError::Tls(TlsError::PeerKeyMismatch { got, .. }) => {
            assert_eq!(&got, server_key.node_id())
        }
        other => panic!("expected a TLS key mismatch, got {other}"),
    }
    let err = PeerClient::connect(
        &server.handle.addr().to_string(),
        Expect::Key(other_key.public_key()),
        &client.tls,
        me.clone(),
        client.verifier.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, P2pError::Tls(TlsError::PeerKeyMismatch { .. })),
        "{err}"
    );

    // Each failure had its own code.
    assert_eq!(seen.len(), 11, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tofu_pins_the_first_peer_and_refuses_a_changed_one() {
    let a = NodeKey::generate();
    let b = NodeKey::generate();
    let server = start(a.clone(), wallet(), Signer::Wallet(a.clone())).await;
    let ck = NodeKey::generate();
    let client = start(ck.clone(), wallet(), Signer::Wallet(ck.clone())).await;
    let addr = server.handle.addr().to_string();
    let tofu = Expect::Tofu {
        address: addr.clone(),
    };
    let mut c = PeerClient::connect(
        &addr,
        tofu.clone(),
        &client.tls,
        client.signer.clone(),
        client.verifier.clone(),
    )
    .await
    .unwrap();
    c.heartbeat(NodeStatus::default()).await.unwrap();
    // Same peer again: accepted.
    PeerClient::connect(
        &addr,
        tofu.clone(),
        &client.tls,
        client.signer.clone(),
        client.verifier.clone(),
    )
    .await
    .unwrap();
    // Another node takes over the address: refused.
    server.handle.kill();
    let port = addr.rsplit_once(':').unwrap().1.to_owned();
    let dir = tempfile::tempdir().unwrap();
    let tls_b =
        magnet_p2p::NodeTls::key_bound(&b, Arc::new(magnet_p2p::PinStore::in_memory())).unwrap();
    let mut imposter = None;
    for _ in 0..50 {
        // The killed listener's socket closes asynchronously; retry the bind briefly.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let r = magnet_p2p::NodeHandle::spawn(magnet_p2p::NodeConfig {
            service: magnet_p2p::ServiceConfig {
                signer: Signer::Wallet(b.clone()),
                verifier: Arc::new(magnet_p2p::Verifier::new(wallet())),
                backend: Arc::new(magnet_p2p::DirShardBackend::open(dir.path(), 1 << 20).unwrap()),
                tier: "storage_node".into(),
                region: String::new(),
                max_shard_bytes: 1 << 20,
                deleters: None,
                receipts: None,
            },
            tls: tls_b.clone(),
            listen: format!("127.0.0.1:{port}").parse().unwrap(),
            public_key: Some(b.public_key()),
        })
        .await;
        if let Ok(h) = r {
            imposter = Some(h);
            break;
        }
    }
    assert!(imposter.is_some(), "could not rebind {addr}");
    let err = PeerClient::connect(
        &addr,
        tofu,
        &client.tls,
        client.signer.clone(),
        client.verifier.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, P2pError::Tls(TlsError::PinMismatch { .. })),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_round_trip_and_a_holder_that_altered_one_fails_its_audit() {
    let hk = NodeKey::generate();
    let ck = NodeKey::generate();
    let holder = start_with(
        hk.clone(),
        wallet(),
        Signer::Wallet(hk.clone()),
        Some([ck.node_id().clone()].into_iter().collect()),
    )
    .await;
    let client = start(ck.clone(), wallet(), Signer::Wallet(ck.clone())).await;
    let mut c = client.dial(&holder).await;
    c.chunk_size = 64 * 1024;
    let key = ShardKey {
        object_id: [0xab; 32],
        index: 3,
    };
    let data: Vec<u8> = (0..1_000_003u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let ack = c.put_shard(&key, &data).await.unwrap();
    assert_eq!(ack.size, data.len() as u64);
    let hash: [u8; 32] = ack.shard_hash.as_slice().try_into().unwrap();
    assert_eq!(c.get_shard(&key, Some(hash)).await.unwrap(), data);
    let listed = c.list_shards(Some([0xab; 32])).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].hash, hash);
    // Heartbeat reports the shard.
    let hb = c.heartbeat(NodeStatus::default()).await.unwrap();
    assert_eq!(hb.status.unwrap().shard_count, 1);

    let challenge = AuditChallenge {
        key: Some(key.to_proto()),
        offset: 4096,
        length: 10_000,
        challenge_nonce: vec![7; 16],
    };
    let proof = c.audit(challenge.clone()).await.unwrap();
    assert!(proof.held);
    assert_eq!(
        proof.proof_hash,
        audit_proof_hash(&challenge, &data[4096..14_096]).to_vec()
    );

    // The holder's disk is altered behind its back: the audit answer no longer matches.
    let mut altered = data.clone();
    altered[5000] ^= 1;
    std::fs::write(holder.shard_file(&key), &altered).unwrap();
    let challenge2 = AuditChallenge {
        challenge_nonce: vec![8; 16],
        ..challenge.clone()
    };
    let proof = c.audit(challenge2.clone()).await.unwrap();
    assert_ne!(
        proof.proof_hash,
        audit_proof_hash(&challenge2, &data[4096..14_096]).to_vec()
    );
    // And a download of the altered shard fails the caller's hash check.
    assert!(matches!(
        c.get_shard(&key, Some(hash)).await.unwrap_err(),
        P2pError::Integrity(_)
    ));

    // Deletion: allowed for the listed deleter; a lost shard then audits as not held.
    assert!(c.delete_shard(&key).await.unwrap());
    let challenge3 = AuditChallenge {
        challenge_nonce: vec![9; 16],
        ..challenge
    };
    assert!(!c.audit(challenge3).await.unwrap().held);

    // Another node may not delete.
    let ok = NodeKey::generate();
    let other = start(ok.clone(), wallet(), Signer::Wallet(ok.clone())).await;
    let err = other
        .dial(&holder)
        .await
        .delete_shard(&key)
        .await
        .unwrap_err();
    assert!(
        matches!(err, P2pError::Rpc(ref s) if s.code() == tonic::Code::PermissionDenied),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_learn_each_other_through_exchange_and_heartbeats() {
    let keys: Vec<NodeKey> = (0..3).map(|_| NodeKey::generate()).collect();
    let mut nodes = Vec::new();
    for k in &keys {
        nodes.push(start(k.clone(), wallet(), Signer::Wallet(k.clone())).await);
    }
    let info = |n: &TestNode| magnet_proto::p2p::v1::PeerInfo {
        node_id: n.key.node_id().to_string(),
        public_key: n.key.public_key().to_bytes().to_vec(),
        address: n.handle.addr().to_string(),
        region: "eu".into(),
    };
    // 0 tells 1 about itself and about 2.
    let peers = nodes[0]
        .dial(&nodes[1])
        .await
        .exchange(info(&nodes[0]), vec![info(&nodes[2])])
        .await
        .unwrap();
    assert!(peers
        .iter()
        .any(|p| p.node_id == keys[1].node_id().as_str()));
    let known = nodes[1].handle.peers();
    assert!(known
        .iter()
        .any(|r| r.info.node_id == keys[0].node_id().as_str() && r.last_seen > 0));
    assert!(known
        .iter()
        .any(|r| r.info.node_id == keys[2].node_id().as_str() && r.last_seen == 0));
    // A self_info naming someone else is refused.
    let err = nodes[0]
        .dial(&nodes[1])
        .await
        .exchange(info(&nodes[2]), vec![])
        .await
        .unwrap_err();
    assert!(
        matches!(err, P2pError::Rpc(ref s) if s.code() == tonic::Code::InvalidArgument),
        "{err}"
    );
}
