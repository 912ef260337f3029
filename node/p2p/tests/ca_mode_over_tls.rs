//! CA mode (`MAGNET_P2P_CERT` / `MAGNET_P2P_KEY` / `MAGNET_P2P_CA`): operator PKI, mutual TLS
//! with webpki chain validation, signed requests on top. A node with a certificate from another
//! CA gets nowhere.

use std::path::Path;
use std::sync::Arc;

use magnet_p2p::auth::{Signer, Verifier, VerifyMode};
use magnet_p2p::service::ServiceConfig;
use magnet_p2p::tls::{Expect, NodeTls};
use magnet_p2p::{DirShardBackend, NodeConfig, NodeHandle, NodeKey, PeerClient};
use magnet_proto::p2p::v1::NodeStatus;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// Writes cert.pem, key.pem and ca.pem for a leaf valid for 127.0.0.1, signed by `ca`.
fn leaf(ca: &Ca, dir: &Path) -> NodeTls {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert.pem()).unwrap();
    NodeTls::ca(
        &dir.join("cert.pem"),
        &dir.join("key.pem"),
        &dir.join("ca.pem"),
    )
    .unwrap()
}

fn wallet() -> VerifyMode {
    VerifyMode::Wallet { registry: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_mode_nodes_talk_and_a_foreign_ca_is_refused() {
    let good_ca = ca();
    let other_ca = ca();
    let d = tempfile::tempdir().unwrap();
    for sub in ["s", "c", "x"] {
        std::fs::create_dir_all(d.path().join(sub)).unwrap();
    }
    let server_tls = leaf(&good_ca, &d.path().join("s"));
    assert!(server_tls.is_ca_mode());
    let client_tls = leaf(&good_ca, &d.path().join("c"));
    let foreign_tls = leaf(&other_ca, &d.path().join("x"));

    let sk = NodeKey::generate();
    let server = NodeHandle::spawn(NodeConfig {
        service: ServiceConfig {
            signer: Signer::Wallet(sk.clone()),
            verifier: Arc::new(Verifier::new(wallet())),
            backend: Arc::new(DirShardBackend::open(&d.path().join("shards"), 1 << 20).unwrap()),
            tier: "storage_node".into(),
            region: String::new(),
            max_shard_bytes: 1 << 20,
            deleters: None,
            receipts: None,
        },
        tls: server_tls,
        listen: "127.0.0.1:0".parse().unwrap(),
        public_key: Some(sk.public_key()),
    })
    .await
    .unwrap();
    let addr = server.addr().to_string();
    let ck = NodeKey::generate();
    let mut c = PeerClient::connect(
        &addr,
        Expect::Tofu {
            address: addr.clone(),
        },
        &client_tls,
        Signer::Wallet(ck.clone()),
        Arc::new(Verifier::new(wallet())),
    )
    .await
    .unwrap();
    let r = c.heartbeat(NodeStatus::default()).await.unwrap();
    assert_eq!(r.node_id, sk.node_id().as_str());

    // A client whose certificate comes from another CA: the server refuses the handshake.
    let refused = async {
        let mut f = PeerClient::connect(
            &addr,
            Expect::Tofu {
                address: addr.clone(),
            },
            &foreign_tls,
            Signer::Wallet(ck.clone()),
            Arc::new(Verifier::new(wallet())),
        )
        .await?;
        f.heartbeat(NodeStatus::default()).await
    }
    .await;
    assert!(refused.is_err(), "foreign-CA client was served");
}
