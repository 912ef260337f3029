//! State sync through the ABCI snapshot calls, app to app (ADR 0099): a node with snapshots
//! serves them, an empty node restores one as CometBFT would drive it, and both go on with the
//! same app hashes. Bad peers (tampered chunks, a state that does not match the trusted app
//! hash) are refused without changing the empty node.

mod common;

use common::*;
use magnet_app::abci as pb;
use magnet_app::snapshot::SnapshotConfig;
use magnet_app::testkit::Signer;
use magnet_app::{AppConfig, Application, MagnetApp};
use pb::response_apply_snapshot_chunk::Result as ChunkResult;
use pb::response_offer_snapshot::Result as OfferResult;

fn snapshotting(interval: u64, chunk_size: u64) -> AppConfig {
    AppConfig {
        snapshot: SnapshotConfig {
            interval,
            keep_recent: 2,
            chunk_size,
        },
        ..fast_config()
    }
}

/// A source chain: every block's txs and app hash, by height (index 0 = height 1).
struct Source {
    h: Harness,
    alice: Signer,
    blocks: Vec<(Vec<Vec<u8>>, Vec<u8>)>,
}

impl Source {
    fn app_hash(&self, height: u64) -> Vec<u8> {
        self.blocks[height as usize - 1].1.clone()
    }
}

/// A chain of `blocks` heights with a send in each, snapshots every `interval`.
fn source_chain(blocks: usize, interval: u64) -> Source {
    let alice = Signer::from_seed(1);
    let mut h = Harness::new(
        &[(alice.address(), 1_000_000_000)],
        snapshotting(interval, 512),
    );
    // Height 1 is empty (queries need a committed height to sign against).
    let r = h.block(vec![]);
    let mut out = vec![(Vec::new(), r.app_hash.to_vec())];
    for i in 1..blocks {
        let to = Signer::from_seed(100 + i as u64).address();
        let tx = h.send(&alice, &to, 1_000 + i as u128);
        let r = h.block(vec![tx.clone()]);
        assert_eq!(r.tx_results[0].code, 0, "{}", r.tx_results[0].log);
        h.app.wait_for_snapshots();
        out.push((vec![tx], r.app_hash.to_vec()));
    }
    Source {
        h,
        alice,
        blocks: out,
    }
}

fn latest_snapshot(app: &MagnetApp) -> pb::Snapshot {
    let list = app.list_snapshots().snapshots;
    list.into_iter().next().expect("a snapshot")
}

fn chunk(app: &MagnetApp, s: &pb::Snapshot, i: u32) -> Vec<u8> {
    app.load_snapshot_chunk(pb::RequestLoadSnapshotChunk {
        height: s.height,
        format: s.format,
        chunk: i,
    })
    .chunk
    .to_vec()
}

fn offer(app: &MagnetApp, s: &pb::Snapshot, app_hash: &[u8]) -> i32 {
    app.offer_snapshot(pb::RequestOfferSnapshot {
        snapshot: Some(s.clone()),
        app_hash: app_hash.to_vec().into(),
    })
    .result
}

fn apply(app: &MagnetApp, i: u32, bytes: Vec<u8>, sender: &str) -> pb::ResponseApplySnapshotChunk {
    app.apply_snapshot_chunk(pb::RequestApplySnapshotChunk {
        index: i,
        chunk: bytes.into(),
        sender: sender.into(),
    })
}

/// Feed every chunk of `snap` from `from` to `to`; the results, in order.
fn apply_all(to: &MagnetApp, from: &MagnetApp, snap: &pb::Snapshot, sender: &str) -> Vec<i32> {
    (0..snap.chunks)
        .map(|i| apply(to, i, chunk(from, snap, i), sender).result)
        .collect()
}

fn accepted(n: u32) -> Vec<i32> {
    vec![ChunkResult::Accept as i32; n as usize]
}

fn empty_node() -> (tempfile::TempDir, Harness) {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::open(dir.path(), fast_config());
    (dir, h)
}

#[test]
fn an_empty_node_restores_a_snapshot_and_then_agrees_on_every_block() {
    let mut src = source_chain(12, 5);
    let listed: Vec<u64> = src
        .h
        .app
        .list_snapshots()
        .snapshots
        .iter()
        .map(|s| s.height)
        .collect();
    assert_eq!(listed, vec![10, 5], "every 5 heights, the last 2 kept");
    let snap = latest_snapshot(&src.h.app);
    assert!(snap.chunks > 1, "512-byte chunks split the state");
    let trusted = src.app_hash(10);

    let (_dir, mut dst) = empty_node();
    assert_eq!(offer(&dst.app, &snap, &trusted), OfferResult::Accept as i32);
    assert_eq!(
        apply_all(&dst.app, &src.h.app, &snap, "peer-a"),
        accepted(snap.chunks)
    );
    let info = dst.app.info(pb::RequestInfo::default());
    assert_eq!(info.last_block_height, 10);
    assert_eq!(info.last_block_app_hash.to_vec(), trusted);
    assert_eq!(
        dst.balance(&src.alice.address()),
        src.h.balance_at(&src.alice.address(), 10)
    );

    // Blocks 11 and 12 replay on the restored node to the source's app hashes ...
    dst.height = 10;
    for height in 11..=12u64 {
        let txs = src.blocks[height as usize - 1].0.clone();
        let r = dst.block(txs);
        assert_eq!(r.app_hash.to_vec(), src.app_hash(height), "height {height}");
    }
    // ... and a new block agrees on both.
    let bob = Signer::from_seed(7).address();
    let tx = src.h.send(&src.alice, &bob, 5);
    let a = src.h.block(vec![tx.clone()]);
    let b = dst.block(vec![tx]);
    assert_eq!(a.tx_results[0].code, 0, "{}", a.tx_results[0].log);
    assert_eq!(a.app_hash, b.app_hash);
    assert_eq!(dst.balance(&bob), 5);
    // The restored node has no history below the snapshot.
    use prost::Message;
    let req = cosmrs::proto::cosmos::bank::v1beta1::QueryBalanceRequest {
        address: bob.to_bech32(),
        denom: "umag".into(),
    };
    let q = dst.query("/cosmos.bank.v1beta1.Query/Balance", req.encode_to_vec(), 9);
    assert_ne!(q.code, 0);
    assert!(q.log.contains("not available"), "{}", q.log);
}

#[test]
fn a_tampered_chunk_is_refetched_and_its_sender_rejected() {
    let src = source_chain(5, 5);
    let snap = latest_snapshot(&src.h.app);
    let (_dir, dst) = empty_node();
    assert_eq!(
        offer(&dst.app, &snap, &src.app_hash(5)),
        OfferResult::Accept as i32
    );
    let mut bad = chunk(&src.h.app, &snap, 0);
    bad[3] ^= 0x40;
    let r = apply(&dst.app, 0, bad, "evil-peer");
    assert_eq!(r.result, ChunkResult::Retry as i32);
    assert_eq!(r.refetch_chunks, vec![0]);
    assert_eq!(r.reject_senders, vec!["evil-peer".to_string()]);
    assert_eq!(
        apply_all(&dst.app, &src.h.app, &snap, "good-peer"),
        accepted(snap.chunks)
    );
    assert_eq!(dst.app.last_commit(), (5, src.app_hash(5)));
}

#[test]
fn a_snapshot_that_does_not_rebuild_the_trusted_app_hash_is_rejected() {
    let src = source_chain(10, 5);
    let snap = latest_snapshot(&src.h.app);
    let (_dir, dst) = empty_node();
    // The light client trusts height 5's hash, but the peer's snapshot is height 10's state
    // relabelled as height 5: internally consistent, wrong state.
    let lying = pb::Snapshot {
        height: 5,
        ..snap.clone()
    };
    assert_eq!(
        offer(&dst.app, &lying, &src.app_hash(5)),
        OfferResult::Accept as i32
    );
    let results = apply_all(&dst.app, &src.h.app, &snap, "peer");
    assert_eq!(
        results.last(),
        Some(&(ChunkResult::RejectSnapshot as i32)),
        "{results:?}"
    );
    assert_eq!(
        dst.app.last_commit(),
        (0, Vec::new()),
        "nothing was written"
    );
    // The honest snapshot still restores afterwards.
    assert_eq!(
        offer(&dst.app, &snap, &src.app_hash(10)),
        OfferResult::Accept as i32
    );
    assert_eq!(
        apply_all(&dst.app, &src.h.app, &snap, "peer"),
        accepted(snap.chunks)
    );
    assert_eq!(dst.app.last_commit(), (10, src.app_hash(10)));
}

#[test]
fn bad_offers_and_stray_chunks_are_refused_without_panicking() {
    let src = source_chain(5, 5);
    let snap = latest_snapshot(&src.h.app);
    let (_dir, dst) = empty_node();
    // A chunk before any offer aborts.
    assert_eq!(
        apply(&dst.app, 0, vec![1, 2, 3], "p").result,
        ChunkResult::Abort as i32
    );
    let cases = [
        (
            pb::Snapshot {
                format: 9,
                ..snap.clone()
            },
            src.app_hash(5),
            OfferResult::RejectFormat,
        ),
        (
            pb::Snapshot {
                metadata: vec![0xff].into(),
                ..snap.clone()
            },
            src.app_hash(5),
            OfferResult::Reject,
        ),
        (
            pb::Snapshot {
                chunks: 0,
                ..snap.clone()
            },
            src.app_hash(5),
            OfferResult::Reject,
        ),
        (snap.clone(), vec![1, 2], OfferResult::Reject),
    ];
    for (s, hash, want) in cases {
        assert_eq!(offer(&dst.app, &s, &hash), want as i32, "{s:?}");
    }
    let none = dst.app.offer_snapshot(pb::RequestOfferSnapshot {
        snapshot: None,
        app_hash: Default::default(),
    });
    assert_eq!(none.result, OfferResult::Reject as i32);
    // An out-of-range chunk index rejects the snapshot.
    assert_eq!(
        offer(&dst.app, &snap, &src.app_hash(5)),
        OfferResult::Accept as i32
    );
    assert_eq!(
        apply(&dst.app, 1_000, Vec::new(), "p").result,
        ChunkResult::RejectSnapshot as i32
    );
    // A node that already has state refuses to be overwritten.
    assert_eq!(
        offer(&src.h.app, &snap, &src.app_hash(5)),
        OfferResult::Abort as i32
    );
    // Unknown snapshots load as empty chunks.
    assert!(chunk(&src.h.app, &pb::Snapshot { height: 4, ..snap }, 0).is_empty());
}

/// Measurement, not a check (`cargo test --release -p magnet-app --test state_sync --
/// --ignored --nocapture`): snapshot and restore a store of 200,000 keys.
#[test]
#[ignore]
fn measure_snapshot_and_restore_of_200k_keys() {
    use magnet_app::snapshot::{SnapshotStore, DEFAULT_CHUNK_SIZE};
    use magnet_app::store::MerkleStore;
    use magnet_app::StoreConfig;
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        keep_recent: 0,
        fsync: false,
    };
    let mut src = MerkleStore::open(&dir.path().join("src.redb"), cfg.clone()).unwrap();
    let writes: magnet_app::store::WriteSet = (0..200_000u32)
        .map(|i| {
            (
                format!("bank/balance/{i:08}").into_bytes(),
                Some(vec![7u8; 40]),
            )
        })
        .collect();
    src.stage(1, writes).unwrap();
    let c = src.commit().unwrap().unwrap();
    let t = Instant::now();
    let state = src.committed_state().unwrap().unwrap();
    let snaps = SnapshotStore::new(dir.path().join("snapshots"));
    let info = snaps
        .create(
            1,
            c.app_hash,
            state.entries().unwrap(),
            DEFAULT_CHUNK_SIZE,
            2,
        )
        .unwrap();
    let took_snapshot = t.elapsed();
    let t = Instant::now();
    let mut payload = Vec::new();
    for i in 0..info.metadata.chunk_hashes.len() as u32 {
        payload.extend(snaps.load_chunk(1, 1, i).unwrap());
    }
    let entries = magnet_app::snapshot::decode_payload(&payload, &info.metadata).unwrap();
    let mut dst = MerkleStore::open(&dir.path().join("dst.redb"), cfg).unwrap();
    dst.restore(1, entries, c.app_hash).unwrap();
    eprintln!(
        "200k keys: {} bytes in {} chunks; snapshot {:?}, restore {:?}",
        info.metadata.payload_bytes,
        info.metadata.chunk_hashes.len(),
        took_snapshot,
        t.elapsed()
    );
}
