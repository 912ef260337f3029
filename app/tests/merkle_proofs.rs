//! `prove = true` queries of raw state keys return jmt proofs that bind the value, or its
//! absence, to the app hash of the queried height; tampering with anything breaks them.

mod common;

use common::*;
use magnet_app::abci as pb;
use magnet_app::proof::{verify_proof, ProofError, STORE_KEY_PATH};
use magnet_app::testkit::Signer;
use magnet_app::Application;

fn prove(h: &Harness, key: &[u8], height: i64) -> pb::ResponseQuery {
    let r = h.app.query(pb::RequestQuery {
        data: key.to_vec().into(),
        path: STORE_KEY_PATH.into(),
        height,
        prove: true,
    });
    assert_eq!(r.code, 0, "{}", r.log);
    r
}

#[test]
fn a_proof_verifies_against_the_app_hash_of_its_height_and_tampering_fails() {
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let mut h = Harness::new(&[(alice.address(), 1_000_000_000)], fast_config());
    h.block(vec![]);
    let mut roots = vec![];
    for _ in 0..3 {
        let tx = h.send(&alice, &bob.address(), 1_000);
        let r = h.block(vec![tx]);
        roots.push(r.app_hash.to_vec());
    }
    let (height, root) = h.app.last_commit();
    assert_eq!(root, roots[2]);

    // Present key.
    let key = magnet_app::app::CHAIN_ID_KEY;
    let r = prove(&h, key, 0);
    assert_eq!(r.height as u64, height);
    assert_eq!(r.value.as_ref(), CHAIN_ID.as_bytes());
    assert_eq!(r.info, "exists");
    let ops = r.proof_ops.clone().expect("proof ops");
    verify_proof(&root, key, Some(&r.value), &ops).unwrap();
    assert!(matches!(
        verify_proof(&root, key, Some(b"magnet-evil-1"), &ops),
        Err(ProofError::Invalid(_))
    ));
    assert!(verify_proof(&root, key, None, &ops).is_err());
    let mut bad_root = root.clone();
    bad_root[0] ^= 1;
    assert!(matches!(
        verify_proof(&bad_root, key, Some(&r.value), &ops),
        Err(ProofError::Invalid(_))
    ));
    assert!(matches!(
        verify_proof(&root, b"app/other", Some(&r.value), &ops),
        Err(ProofError::WrongKey { .. })
    ));
    let mut bad_ops = ops.clone();
    bad_ops.ops[0].data.truncate(10);
    assert!(matches!(
        verify_proof(&root, key, Some(&r.value), &bad_ops),
        Err(ProofError::Decode(_))
    ));
    assert_eq!(
        verify_proof(&root, key, Some(&r.value), &Default::default()),
        Err(ProofError::Missing)
    );

    // Absent key: the proof shows absence, and claims of a value fail.
    let none = b"no/such/key";
    let r = prove(&h, none, 0);
    assert!(r.value.is_empty());
    assert_eq!(r.info, "absent");
    let ops = r.proof_ops.expect("proof ops");
    verify_proof(&root, none, None, &ops).unwrap();
    assert!(verify_proof(&root, none, Some(b""), &ops).is_err());

    // A past height proves that height's value against that height's root only.
    let key = magnet_app::app::LAST_BLOCK_KEY;
    let r = prove(&h, key, height as i64 - 1);
    let ops = r.proof_ops.expect("proof ops");
    verify_proof(&roots[1], key, Some(&r.value), &ops).unwrap();
    assert!(verify_proof(&roots[2], key, Some(&r.value), &ops).is_err());
    // Without `prove` the same path answers the raw value without a proof.
    let plain = h.query(STORE_KEY_PATH, key.to_vec(), 0);
    assert_eq!(plain.code, 0);
    assert!(plain.proof_ops.is_none());
}
