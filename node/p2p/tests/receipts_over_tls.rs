//! Custody receipts on real uploads: two nodes on loopback over key-bound TLS, one signing
//! receipts with its node key and one not. The uploader checks the receipt against the
//! holder's key and the Merkle root of the bytes it sent.

use std::sync::Arc;

use magnet_p2p::auth::{Signer, Verifier, VerifyMode};
use magnet_p2p::service::ServiceConfig;
use magnet_p2p::storage_glue::StoreBackend;
use magnet_p2p::tls::{Expect, NodeTls, PinStore};
use magnet_p2p::{
    verify_receipt, NodeConfig, NodeHandle, NodeKey, P2pError, PeerClient, ReceiptConfig,
    ReceiptError, ShardKey,
};
use magnet_rounds::custody::{merkle_root, ShardReceipt};
use magnet_storage::ShardStore;

const CHAIN: &str = "magnet-receipts-test";

async fn node(key: &NodeKey, receipts: bool) -> (NodeHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = ShardStore::open(dir.path()).unwrap();
    let h = NodeHandle::spawn(NodeConfig {
        service: ServiceConfig {
            signer: Signer::Wallet(key.clone()),
            verifier: Arc::new(Verifier::new(VerifyMode::Wallet { registry: None })),
            backend: Arc::new(StoreBackend::new(store, 1 << 30)),
            tier: "storage_node".into(),
            region: "eu".into(),
            max_shard_bytes: 64 << 20,
            deleters: None,
            receipts: receipts.then(|| ReceiptConfig {
                chain_id: CHAIN.into(),
                key: key.clone(),
            }),
        },
        tls: NodeTls::key_bound(key, Arc::new(PinStore::in_memory())).unwrap(),
        listen: "127.0.0.1:0".parse().unwrap(),
        public_key: Some(key.public_key()),
    })
    .await
    .unwrap();
    (h, dir)
}

async fn dial(owner: &NodeKey, holder: &NodeKey, h: &NodeHandle) -> PeerClient {
    PeerClient::connect(
        &h.addr().to_string(),
        Expect::Key(holder.public_key()),
        &NodeTls::key_bound(owner, Arc::new(PinStore::in_memory())).unwrap(),
        Signer::Wallet(owner.clone()),
        Arc::new(Verifier::new(VerifyMode::Wallet { registry: None })),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_holder_signs_a_receipt_that_verifies_against_its_key_and_no_other() {
    let (owner, holder, stranger) = (
        NodeKey::generate(),
        NodeKey::generate(),
        NodeKey::generate(),
    );
    let (h, _d) = node(&holder, true).await;
    let mut c = dial(&owner, &holder, &h).await;
    // Not a multiple of the 256-byte leaf nor of the 64 KiB upload chunk.
    let data: Vec<u8> = (0..200_003u32).map(|i| (i * 7 % 251) as u8).collect();
    let key = ShardKey {
        object_id: [5; 32],
        index: 3,
    };
    let r = c
        .put_shard_with_receipt(&key, &data, CHAIN, &holder.public_key())
        .await
        .unwrap();
    assert_eq!(r.root, merkle_root(&data));
    assert_eq!(r.len, data.len() as u64);
    // The chain's rule accepts it for the holder…
    let receipt = ShardReceipt {
        chain_id: CHAIN.into(),
        object: [5; 32],
        index: 3,
        root: r.root,
        len: data.len() as u64,
    };
    receipt
        .verify(&holder.public_key().to_bytes(), &r.signature)
        .unwrap();
    // …and for no other key, chain or index.
    assert!(receipt
        .verify(&stranger.public_key().to_bytes(), &r.signature)
        .is_err());
    let raw = c.put_shard(&key, &data).await.unwrap();
    assert!(matches!(
        verify_receipt(
            CHAIN,
            &stranger.public_key(),
            &key,
            data.len() as u64,
            &r.root,
            &raw
        ),
        Err(ReceiptError::BadSignature { .. })
    ));
    assert!(verify_receipt(
        "other",
        &holder.public_key(),
        &key,
        data.len() as u64,
        &r.root,
        &raw
    )
    .is_err());
    let other_index = ShardKey { index: 2, ..key };
    assert!(verify_receipt(
        CHAIN,
        &holder.public_key(),
        &other_index,
        data.len() as u64,
        &r.root,
        &raw
    )
    .is_err());
    // Expecting the wrong holder key through the helper is refused as a receipt error.
    let err = c
        .put_shard_with_receipt(&key, &data, CHAIN, &stranger.public_key())
        .await
        .unwrap_err();
    assert!(
        matches!(err, P2pError::Receipt(ReceiptError::BadSignature { .. })),
        "{err}"
    );
    h.kill();
}

#[tokio::test]
async fn a_holder_without_a_receipt_identity_returns_empty_receipt_fields() {
    let (owner, holder) = (NodeKey::generate(), NodeKey::generate());
    let (h, _d) = node(&holder, false).await;
    let mut c = dial(&owner, &holder, &h).await;
    let key = ShardKey {
        object_id: [6; 32],
        index: 0,
    };
    let resp = c.put_shard(&key, b"hello shard").await.unwrap();
    assert!(resp.receipt.is_empty() && resp.merkle_root.is_empty());
    assert_eq!(resp.size, 11);
    let err = c
        .put_shard_with_receipt(&key, b"hello shard", CHAIN, &holder.public_key())
        .await
        .unwrap_err();
    assert!(
        matches!(err, P2pError::Receipt(ReceiptError::Missing(_))),
        "{err}"
    );
    h.kill();
}
