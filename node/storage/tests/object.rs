//! Whole-object put/get through the `Transport` trait over real shard stores: bitrot on a
//! holder is excluded and reported; too many bad shards give a typed error naming each kind.

use k256::ecdsa::SigningKey;
use magnet_storage::object::{get_object, put_object, ObjectError, PutOptions};
use magnet_storage::{CodecError, HolderId, LocalTransport, ShardStore, SignedManifest};

async fn setup(data: &[u8]) -> (Vec<tempfile::TempDir>, LocalTransport, SignedManifest) {
    let t = LocalTransport::new();
    let mut dirs = Vec::new();
    let mut placement = Vec::new();
    for i in 0..6 {
        let d = tempfile::tempdir().unwrap();
        let h = HolderId::new(format!("node-{i}")).unwrap();
        t.add(h.clone(), ShardStore::open(d.path()).unwrap());
        placement.push(vec![h]);
        dirs.push(d);
    }
    let key = SigningKey::from_bytes(&[1u8; 32].into()).unwrap();
    let sm = put_object(&t, &key, &PutOptions::default(), data, placement, |_| {})
        .await
        .unwrap();
    (dirs, t, sm)
}

fn rot(dir: &tempfile::TempDir) {
    let shards = dir.path().join("shards");
    let obj = std::fs::read_dir(shards)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let f = std::fs::read_dir(obj)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut b = std::fs::read(&f).unwrap();
    b[7] ^= 0x10;
    std::fs::write(&f, b).unwrap();
}

#[tokio::test]
async fn bitrot_on_a_holder_is_excluded_and_reported() {
    let data: Vec<u8> = (0..1_500_000u32).map(|i| (i % 253) as u8).collect();
    let (dirs, t, sm) = setup(&data).await;
    rot(&dirs[1]);
    let (got, report) = get_object(&t, &sm).await.unwrap();
    assert_eq!(got, data);
    assert_eq!(report.corrupt.len(), 1);
    assert_eq!(report.corrupt[0].0, 1);
    assert_eq!(report.used, vec![0, 2, 3, 4]);
}

#[tokio::test]
async fn two_corrupt_and_one_lost_shard_is_a_typed_error() {
    let data = vec![9u8; 100_000];
    let (dirs, t, sm) = setup(&data).await;
    rot(&dirs[0]);
    rot(&dirs[3]);
    t.set_online(&HolderId::new("node-5").unwrap(), false);
    match get_object(&t, &sm).await {
        Err(ObjectError::Codec(CodecError::TooFewShards {
            usable,
            missing,
            corrupt,
            ..
        })) => {
            assert_eq!(usable, 3);
            assert_eq!(corrupt, vec![0, 3]);
            assert_eq!(missing, vec![5]);
        }
        other => panic!("expected TooFewShards, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn a_tampered_manifest_is_refused_before_any_fetch() {
    let (_dirs, t, mut sm) = setup(b"small object").await;
    sm.manifest.size += 1;
    assert!(matches!(
        get_object(&t, &sm).await,
        Err(ObjectError::Manifest(_))
    ));
}

#[tokio::test]
async fn streaming_from_local_stores_matches_and_skips_bad_shards() {
    use magnet_storage::object::get_object_from_stores;
    let data: Vec<u8> = (0..2_500_000u32).map(|i| (i % 241) as u8).collect();
    let (dirs, _t, sm) = setup(&data).await;
    rot(&dirs[0]);
    std::fs::remove_dir_all(dirs[2].path().join("shards")).unwrap();
    let stores: Vec<Option<ShardStore>> = dirs
        .iter()
        .map(|d| Some(ShardStore::open(d.path()).unwrap()))
        .collect();
    let mut out = Vec::new();
    let mut last = 0;
    let report = get_object_from_stores(&sm, &stores, &mut out, |n| last = n).unwrap();
    assert!(out == data);
    assert_eq!(last, data.len() as u64);
    assert_eq!(report.used, vec![1, 3, 4, 5]);
    assert_eq!(report.corrupt.len(), 1);
    // One more loss is a typed error naming what is missing and what is corrupt.
    std::fs::remove_dir_all(dirs[4].path().join("shards")).unwrap();
    let stores: Vec<Option<ShardStore>> = dirs
        .iter()
        .map(|d| Some(ShardStore::open(d.path()).unwrap()))
        .collect();
    match get_object_from_stores(&sm, &stores, std::io::sink(), |_| {}) {
        Err(ObjectError::Codec(CodecError::TooFewShards {
            usable: 3,
            missing,
            corrupt,
            ..
        })) => {
            assert_eq!(missing, vec![2, 4]);
            assert_eq!(corrupt, vec![0]);
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}
