//! Storage audits against real shard stores: an honest holder passes; a holder that lost or
//! altered its shard fails, and the failure is recorded as signed evidence.

use k256::ecdsa::SigningKey;
use magnet_storage::audit::{Challenge, ChallengeBank, Failure};
use magnet_storage::codec::{encode, Codec, Params};
use magnet_storage::object::audit_holder;
use magnet_storage::{ContentAddress, HolderId, LocalTransport, ShardId, ShardStore};
use rand::SeedableRng;

struct Setup {
    _dir: tempfile::TempDir,
    transport: LocalTransport,
    holder: HolderId,
    store: ShardStore,
    id: ShardId,
    shard: Vec<u8>,
}

fn setup() -> Setup {
    let codec = Codec::new(Params::DEFAULT).unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 13 + 5) as u8).collect();
    let (enc, shards) = encode(&codec, 1 << 20, &data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ShardStore::open(dir.path()).unwrap();
    let id = ShardId {
        object: ContentAddress(enc.object_hash),
        index: 2,
    };
    store.put(id, &shards[2], &enc.shard_hashes[2]).unwrap();
    let transport = LocalTransport::new();
    let holder = HolderId::new("node-holder").unwrap();
    transport.add(holder.clone(), store.clone());
    Setup {
        _dir: dir,
        transport,
        holder,
        store,
        id,
        shard: shards[2].clone(),
    }
}

fn shard_file(store: &ShardStore, id: &ShardId) -> std::path::PathBuf {
    let dir = store.root().join("shards").join(id.object.0.to_hex());
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "shard"))
        .unwrap()
}

async fn run_audits(s: &Setup, n: usize) -> Vec<Option<magnet_storage::audit::Evidence>> {
    let auditor = SigningKey::from_bytes(&[11u8; 32].into()).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    // The owner precomputed challenges while it had the shard.
    let mut bank = ChallengeBank::precompute(&mut rng, s.id.object, s.id.index, &s.shard, n, 4096);
    let mut out = Vec::new();
    while let Some((ch, expected)) = bank.take() {
        let ev = audit_holder(
            &s.transport,
            &auditor,
            &s.holder,
            &ch,
            &expected,
            1_700_000_000_000,
        )
        .await
        .unwrap();
        if let Some(e) = &ev {
            e.verify().unwrap();
            s.store.record_evidence(e).unwrap();
        }
        out.push(ev);
    }
    out
}

#[tokio::test]
async fn an_honest_holder_passes_every_audit() {
    let s = setup();
    let r = run_audits(&s, 20).await;
    assert_eq!(r.len(), 20);
    assert!(r.iter().all(Option::is_none));
    assert!(s.store.evidence().unwrap().is_empty());
}

#[tokio::test]
async fn a_holder_that_lost_its_shard_fails_its_audit() {
    let s = setup();
    s.store.delete(&s.id).unwrap();
    let r = run_audits(&s, 3).await;
    for ev in &r {
        let ev = ev.as_ref().expect("evidence");
        assert!(matches!(ev.failure, Failure::Missing { .. }), "{ev:?}");
        assert_eq!(ev.holder, s.holder);
    }
    assert_eq!(s.store.evidence().unwrap().len(), 3);
}

#[tokio::test]
async fn a_holder_that_altered_its_shard_fails_its_audit() {
    let s = setup();
    // Invert the whole file, so every challenged range covers altered bytes.
    let path = shard_file(&s.store, &s.id);
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes.iter_mut() {
        *b ^= 0xff;
    }
    std::fs::write(&path, &bytes).unwrap();
    let r = run_audits(&s, 10).await;
    for ev in &r {
        let ev = ev.as_ref().expect("evidence");
        assert!(matches!(ev.failure, Failure::WrongAnswer { .. }), "{ev:?}");
    }
    // A single altered byte is caught by a challenge covering it.
    let s = setup();
    let path = shard_file(&s.store, &s.id);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let auditor = SigningKey::from_bytes(&[11u8; 32].into()).unwrap();
    let ch = Challenge {
        object: s.id.object,
        index: s.id.index,
        offset: 900,
        len: 200,
        nonce: magnet_storage::Hash32::of(b"fresh"),
    };
    let expected = magnet_storage::audit::expected_answer(&ch, &s.shard).unwrap();
    let ev = audit_holder(&s.transport, &auditor, &s.holder, &ch, &expected, 1)
        .await
        .unwrap();
    assert!(matches!(ev.unwrap().failure, Failure::WrongAnswer { .. }));
}

#[tokio::test]
async fn an_unreachable_holder_fails_with_no_answer() {
    let s = setup();
    s.transport.set_online(&s.holder, false);
    let r = run_audits(&s, 1).await;
    assert!(matches!(
        r[0].as_ref().unwrap().failure,
        Failure::NoAnswer { .. }
    ));
}

#[test]
fn out_of_range_challenges_are_refused_by_the_store() {
    let s = setup();
    let ch = Challenge {
        object: s.id.object,
        index: s.id.index,
        offset: s.shard.len() as u64 - 10,
        len: 11,
        nonce: magnet_storage::Hash32::default(),
    };
    assert!(matches!(
        s.store.audit_answer(&ch),
        Err(magnet_storage::StoreError::BadRange { .. })
    ));
}
