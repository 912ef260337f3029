//! Storage-tier stripes across real p2p nodes on loopback (signed gRPC over key-bound mutual
//! TLS, one `ShardStore` per node, receipts signed by each node key). Holders are really
//! killed (listener closed, connections failed) and restarted on the same port and store.

#[path = "common/stripe_cluster.rs"]
mod stripe_cluster;

use magnet_daemon::stripes::{
    self, collect_garbage, encode, get, prove, put, rank_holders, repair, repair_cost, scrub,
    CustodyChallenge, FailureKind, StripeError,
};
use magnet_p2p::ShardBackend;
use magnet_rounds::custody::{challenge_leaf, verify_leaf, ShardReceipt};
use stripe_cluster::{object_bytes, Cluster, CHAIN};

// A few hundred KB, a multiple of neither the 256-byte leaf, the 4-byte piece split nor the
// 1 MiB stripe.
const SIZE: usize = 300_007;

fn receipt_ok(
    c: &Cluster,
    holder: &str,
    object: [u8; 32],
    index: u32,
    root: [u8; 32],
    len: u64,
    sig: &[u8],
) -> bool {
    ShardReceipt {
        chain_id: CHAIN.into(),
        object,
        index,
        root,
        len,
    }
    .verify(&c.node(holder).pubkey(), sig)
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_two_dead_holders_leave_the_object_readable_and_receipts_bind_their_holders() {
    let mut c = Cluster::new(6).await;
    let data = object_bytes(SIZE, 1);
    let enc = encode(&data).unwrap();
    let placed = put(&c.net, CHAIN, &enc, &c.candidates()).await.unwrap();
    assert!(placed.failures.is_empty(), "{:?}", placed.failures);
    assert_eq!(placed.bytes_written, 6 * enc.shard_len);
    let holders = placed.holders();
    let distinct: std::collections::BTreeSet<_> = holders.iter().collect();
    assert_eq!(distinct.len(), 6, "six distinct holders");
    // Every receipt verifies against its holder's key, for its own index and root, and
    // against no other node's key.
    for s in &placed.shards {
        assert_eq!(s.root, enc.roots[s.index as usize]);
        assert!(receipt_ok(
            &c,
            &s.holder,
            enc.object,
            s.index,
            s.root,
            enc.shard_len,
            &s.receipt
        ));
        for other in holders.iter().filter(|h| **h != s.holder) {
            assert!(!receipt_ok(
                &c,
                other,
                enc.object,
                s.index,
                s.root,
                enc.shard_len,
                &s.receipt
            ));
        }
        let wrong_index = (s.index + 1) % 6;
        assert!(!receipt_ok(
            &c,
            &s.holder,
            enc.object,
            wrong_index,
            s.root,
            enc.shard_len,
            &s.receipt
        ));
    }
    // What the chain gets.
    let msg = placed
        .to_proto(|id| c.net.peer(id).ok().map(|p| p.node))
        .unwrap();
    assert_eq!(msg.len(), 6);
    assert!(msg
        .iter()
        .all(|p| p.holder.starts_with("magnet1node") && p.receipt.len() == 64));

    let view = enc.view(holders.clone());
    let (all, report) = get(&c.net, &view).await.unwrap();
    assert_eq!(all, data);
    assert_eq!(report.used, vec![0, 1, 2, 3], "data shards first");
    assert!(report.failures.is_empty());

    // Kill every one of the 15 pairs of holders in turn.
    let mut pairs = 0;
    for a in 0..6u32 {
        for b in a + 1..6 {
            let (ia, ib) = (
                c.index_of(&holders[a as usize]),
                c.index_of(&holders[b as usize]),
            );
            c.kill(ia);
            c.kill(ib);
            let (bytes, report) = get(&c.net, &view).await.unwrap_or_else(|e| {
                panic!("pair ({a},{b}) down: {e}");
            });
            assert_eq!(bytes, data, "pair ({a},{b}) down");
            assert_eq!(report.used.len(), 4);
            assert!(!report.used.contains(&a) && !report.used.contains(&b));
            for f in &report.failures {
                assert!(f.index == a || f.index == b, "{f}");
                assert_eq!(f.kind, FailureKind::Unreachable, "{f}");
            }
            // Shards are asked in index order (data first): every dead holder before the last
            // shard used was tried and reported, and nothing else was.
            let last = *report.used.iter().max().unwrap();
            let want: Vec<u32> = [a, b].into_iter().filter(|i| *i < last).collect();
            let got: Vec<u32> = report.failures.iter().map(|f| f.index).collect();
            assert_eq!(got, want, "pair ({a},{b}) down");
            c.restart(ia).await;
            c.restart(ib).await;
            pairs += 1;
        }
    }
    assert_eq!(pairs, 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_replaces_a_dead_holder_and_repair_restores_six_healthy_holders() {
    let mut c = Cluster::new(8).await;
    let data = object_bytes(SIZE, 2);
    let enc = encode(&data).unwrap();
    // The first-ranked candidate is down at upload time: put moves on to the next one.
    let first = rank_holders(&enc.object, &c.candidates(), &[], enc.shard_len)[0].clone();
    let dead = c.index_of(&first);
    c.kill(dead);
    let placed = put(&c.net, CHAIN, &enc, &c.candidates()).await.unwrap();
    assert_eq!(placed.failures.len(), 1);
    assert_eq!(placed.failures[0].holder, first);
    assert_eq!(placed.failures[0].kind, FailureKind::Unreachable);
    let holders = placed.holders();
    assert!(!holders.contains(&first));
    c.restart(dead).await;
    let view = enc.view(holders.clone());

    // Two holders die; a scrub sees exactly them.
    let lost = [1u32, 4];
    for &i in &lost {
        let n = c.index_of(&holders[i as usize]);
        c.kill(n);
    }
    let s = scrub(&c.net, &view).await.unwrap();
    let failed: Vec<u32> = s.failures.iter().map(|f| f.index).collect();
    assert_eq!(failed, lost.to_vec());
    assert!(s
        .failures
        .iter()
        .all(|f| f.kind == FailureKind::Unreachable));

    // New holders: the best-ranked nodes holding nothing of the object.
    let spares = rank_holders(&enc.object, &c.candidates(), &holders, enc.shard_len);
    assert_eq!(spares.len(), 2);
    let cost = repair_cost(&view, 2);
    assert_eq!(cost, 6 * enc.shard_len);
    let refused = repair(&c.net, CHAIN, &view, &lost, &spares, cost - 1).await;
    assert!(
        matches!(refused, Err(StripeError::OverBudget { .. })),
        "{refused:?}"
    );
    for sp in &spares {
        assert!(
            c.node(sp).store().list_shards(None).unwrap().is_empty(),
            "nothing moved"
        );
    }

    let r = repair(&c.net, CHAIN, &view, &lost, &spares, cost)
        .await
        .unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(r.bytes_read, 4 * enc.shard_len, "K survivor reads");
    assert_eq!(
        r.bytes_written,
        2 * enc.shard_len,
        "one write per lost shard"
    );
    assert_eq!(r.repaired.len(), 2);
    let mut new_holders = holders.clone();
    for (rs, sp) in r.repaired.iter().zip(&spares) {
        assert_eq!(&rs.holder, sp);
        assert_eq!(rs.root, view.roots[rs.index as usize], "identical root");
        assert!(receipt_ok(
            &c,
            sp,
            enc.object,
            rs.index,
            rs.root,
            enc.shard_len,
            &rs.receipt
        ));
        for other in c.nodes.iter().map(|n| n.id()).filter(|n| n != sp) {
            assert!(!receipt_ok(
                &c,
                &other,
                enc.object,
                rs.index,
                rs.root,
                enc.shard_len,
                &rs.receipt
            ));
        }
        new_holders[rs.index as usize] = rs.holder.clone();
    }
    let healed = enc.view(new_holders.clone());
    let s = scrub(&c.net, &healed).await.unwrap();
    assert!(
        s.failures.is_empty(),
        "six healthy holders: {:?}",
        s.failures
    );
    assert_eq!(s.used, vec![0, 1, 2, 3, 4, 5]);
    // Full redundancy again: two more holders may die.
    for i in [0usize, 5] {
        let n = c.index_of(&new_holders[i]);
        c.kill(n);
    }
    let (bytes, _) = get(&c.net, &healed).await.unwrap();
    assert_eq!(bytes, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_dead_holders_is_a_typed_unrecoverable_error_with_no_bytes() {
    let mut c = Cluster::new(6).await;
    let data = object_bytes(SIZE, 3);
    let enc = encode(&data).unwrap();
    let placed = put(&c.net, CHAIN, &enc, &c.candidates()).await.unwrap();
    let view = enc.view(placed.holders());
    for i in [0usize, 2, 5] {
        let n = c.index_of(&view.holders[i]);
        c.kill(n);
    }
    match get(&c.net, &view).await {
        Err(StripeError::Unrecoverable {
            object,
            have,
            need,
            failures,
        }) => {
            assert_eq!((object, have, need), (enc.object, 3, 4));
            let idx: Vec<u32> = failures.iter().map(|f| f.index).collect();
            assert_eq!(idx, vec![0, 2, 5]);
            assert!(failures.iter().all(|f| f.kind == FailureKind::Unreachable));
        }
        other => panic!(
            "expected Unrecoverable, got {:?}",
            other.map(|(b, r)| (b.len(), r))
        ),
    }
    let spare = "node-0000000000000000".to_string();
    let r = repair(&c.net, CHAIN, &view, &[0], &[spare], u64::MAX).await;
    assert!(
        matches!(r, Err(StripeError::Unrecoverable { have: 3, .. })),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotted_or_swapped_shard_is_skipped_on_read_and_fails_its_audit() {
    let c = Cluster::new(6).await;
    let data = object_bytes(SIZE, 4);
    let enc = encode(&data).unwrap();
    let placed = put(&c.net, CHAIN, &enc, &c.candidates()).await.unwrap();
    let view = enc.view(placed.holders());
    let h0 = c.index_of(&view.holders[0]);
    let h2 = c.index_of(&view.holders[2]);
    // Bitrot: one flipped byte in holder 0's shard file.
    let f = c.shard_file(h0, 0);
    let mut b = std::fs::read(&f).unwrap();
    b[1234] ^= 0x40;
    std::fs::write(&f, &b).unwrap();
    // A holder that kept other bytes under the key (its own hash checks pass; the root fails).
    let key = magnet_p2p::ShardKey {
        object_id: enc.object,
        index: 2,
    };
    let other = object_bytes(enc.shard_len as usize, 99);
    c.nodes[h2].store().put_shard(&key, &other).unwrap();

    let (bytes, report) = get(&c.net, &view).await.unwrap();
    assert_eq!(bytes, data, "exact bytes from the four good shards");
    assert_eq!(report.used, vec![1, 3, 4, 5]);
    let bad: Vec<(u32, FailureKind)> = report.failures.iter().map(|f| (f.index, f.kind)).collect();
    assert_eq!(
        bad,
        vec![(0, FailureKind::Corrupt), (2, FailureKind::Corrupt)]
    );
    let s = scrub(&c.net, &view).await.unwrap();
    assert_eq!(s.failures.len(), 2);

    // Audit: each holder answers its challenge from its own store.
    let seed = [7u8; 32];
    for (i, holder) in view.holders.iter().enumerate() {
        let ch = CustodyChallenge {
            object: enc.object,
            index: i as u32,
            shard_len: enc.shard_len,
            leaf: challenge_leaf(&seed, &enc.object, i as u32, enc.shard_len),
        };
        // Leaf 4 (bytes 1024..1280) holds the flipped byte 1234: challenge it too.
        let chs = [ch, CustodyChallenge { leaf: 4, ..ch }];
        let store = c.node(holder).store();
        let (proofs, fails) = prove(&store, &chs);
        let ok: Vec<bool> = proofs
            .iter()
            .zip(&chs)
            .map(|(p, ch)| {
                let path: Vec<[u8; 32]> = p
                    .path
                    .iter()
                    .map(|h| h.as_slice().try_into().unwrap())
                    .collect();
                verify_leaf(&view.roots[i], enc.shard_len, ch.leaf, &p.leaf, &path)
            })
            .collect();
        match i {
            0 => {
                assert!(proofs.is_empty(), "a rotted shard yields no proof");
                assert_eq!(fails.len(), 2);
                assert!(fails[0].reason.contains("corrupt"), "{}", fails[0].reason);
            }
            2 => {
                assert!(fails.is_empty());
                assert_eq!(ok, vec![false, false], "other bytes do not verify on chain");
            }
            _ => {
                assert!(fails.is_empty(), "{fails:?}");
                assert_eq!(ok, vec![true, true], "honest holder {i}");
            }
        }
    }

    // GC after retention: an honest holder drops the object, keeps everything else.
    let h1 = c.index_of(&view.holders[1]);
    let store = c.nodes[h1].store();
    let keep_all = collect_garbage(&store, |_| true).unwrap();
    assert_eq!(keep_all.shards, 0);
    let gone = collect_garbage(&store, |o| *o != enc.object).unwrap();
    assert_eq!((gone.shards, gone.bytes_freed), (1, enc.shard_len));
    assert!(store.list_shards(Some(&enc.object)).unwrap().is_empty());
    let _ = stripes::K;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_without_a_valid_receipt_is_passed_over_and_too_few_holders_is_an_error() {
    let data = object_bytes(SIZE, 5);
    let enc = encode(&data).unwrap();
    // Seven nodes; find which one ranks first for this object and make it sign no receipts.
    let keys: Vec<magnet_p2p::NodeKey> = (0..7).map(|_| magnet_p2p::NodeKey::generate()).collect();
    let probe = Cluster::with_keys(keys.iter().map(|k| (k.clone(), true)).collect()).await;
    let first = rank_holders(&enc.object, &probe.candidates(), &[], enc.shard_len)[0].clone();
    drop(probe);
    let c = Cluster::with_keys(
        keys.iter()
            .map(|k| (k.clone(), k.node_id().as_str() != first))
            .collect(),
    )
    .await;
    let placed = put(&c.net, CHAIN, &enc, &c.candidates()).await.unwrap();
    assert_eq!(placed.failures.len(), 1);
    assert_eq!(placed.failures[0].holder, first);
    assert_eq!(placed.failures[0].kind, FailureKind::Refused);
    assert!(
        placed.failures[0].detail.contains("no custody receipt"),
        "{}",
        placed.failures[0]
    );
    assert!(!placed.holders().contains(&first));
    for s in &placed.shards {
        assert!(receipt_ok(
            &c,
            &s.holder,
            enc.object,
            s.index,
            s.root,
            enc.shard_len,
            &s.receipt
        ));
    }
    let (bytes, _) = get(&c.net, &enc.view(placed.holders())).await.unwrap();
    assert_eq!(bytes, data);
    // Only five candidates: one of them takes a second shard (never more than M = 2), and
    // the object still survives any one holder's loss.
    let five: Vec<_> = c
        .candidates()
        .into_iter()
        .filter(|x| x.node_id != first)
        .take(5)
        .collect();
    let placed = put(&c.net, CHAIN, &enc, &five).await.unwrap();
    let holders = placed.holders();
    let mut count = std::collections::BTreeMap::new();
    for h in &holders {
        *count.entry(h.clone()).or_insert(0) += 1;
    }
    assert_eq!(count.len(), 5, "{holders:?}");
    assert!(count.values().all(|&n| n <= 2), "{holders:?}");
    let (bytes, _) = get(&c.net, &enc.view(holders)).await.unwrap();
    assert_eq!(bytes, data);
    // Two candidates hold at most four shards: the stripe cannot be placed, and says so.
    match put(&c.net, CHAIN, &enc, &five[..2]).await {
        Err(StripeError::NotEnoughHolders { placed, need, .. }) => {
            assert_eq!((placed, need), (4, 6))
        }
        other => panic!("expected NotEnoughHolders, got {other:?}"),
    }
}
