//! Replays the committed seed corpus of the `tx_decode` fuzz target (`fuzz/corpus/tx_decode`)
//! through the decoder on stable Rust: every input decodes or fails with a typed error.

use magnet_app::testkit::{msg_send, Signer, TxBuilder};
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../fuzz/corpus/tx_decode")
}

#[test]
fn every_fuzz_corpus_input_decodes_or_fails_with_a_typed_error() {
    let mut n = 0;
    let mut valid = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("fuzz corpus directory exists") {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        match magnet_app::tx::decode_standalone(&bytes) {
            Ok(_) => valid += 1,
            Err(e) => assert!(
                e.code != 0 && !e.log.is_empty(),
                "{}: {e:?}",
                path.display()
            ),
        }
        n += 1;
    }
    assert!(n >= 10, "corpus has only {n} inputs");
    assert!(valid >= 1, "the corpus should hold at least one valid tx");
}

/// Writes the seed corpus. Run with `--ignored regenerate` after changing the tx format.
#[test]
#[ignore]
fn regenerate_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let alice = Signer::from_seed(1);
    let bob = Signer::from_seed(2);
    let valid = TxBuilder::new("magnet-1", 0, 0)
        .fee(2_000, 200_000)
        .send(&alice, &bob.address(), 5, "umag")
        .sign(&alice);
    let mut seeds: Vec<(&str, Vec<u8>)> = vec![
        ("valid_send", valid.clone()),
        (
            "valid_send_memo",
            TxBuilder::new("magnet-1", 3, 9)
                .fee(1, 100_000)
                .memo("hello")
                .send(&alice, &bob.address(), 1, "umag")
                .sign(&alice),
        ),
        (
            "simulation_unsigned",
            TxBuilder::new("magnet-1", 0, 0)
                .fee(0, 0)
                .send(&alice, &bob.address(), 5, "umag")
                .for_simulation(&alice),
        ),
        ("empty", vec![]),
        ("garbage", vec![0xff, 0xfe, 0x00, 0x13, 0x37]),
        ("truncated", valid[..valid.len() / 2].to_vec()),
        (
            "bad_bech32",
            TxBuilder::new("magnet-1", 0, 0)
                .fee(1, 100_000)
                .msg(msg_send(&alice.address(), "magnet1xyz", 1, "umag"))
                .sign(&alice),
        ),
        (
            "bad_coins",
            TxBuilder::new("magnet-1", 0, 0)
                .fee(1, 100_000)
                .msg(msg_send(
                    &alice.address(),
                    &bob.address().to_bech32(),
                    0,
                    "u",
                ))
                .sign(&alice),
        ),
        (
            "unknown_msg",
            TxBuilder::new("magnet-1", 0, 0)
                .fee(1, 100_000)
                .msg(cosmrs::Any {
                    type_url: "/x.y.Z".into(),
                    value: vec![1, 2, 3],
                })
                .sign(&alice),
        ),
        (
            "two_msgs",
            TxBuilder::new("magnet-1", 0, 0)
                .fee(1, 100_000)
                .send(&alice, &bob.address(), 1, "umag")
                .send(&alice, &bob.address(), 2, "umag")
                .sign(&alice),
        ),
    ];
    let mut flipped = valid.clone();
    flipped[10] ^= 0x40;
    seeds.push(("bit_flip", flipped));
    let mut long_varint = vec![0x0a];
    long_varint.extend_from_slice(&[0xff; 10]);
    seeds.push(("overlong_varint", long_varint));
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
