//! Golden vectors: the encoded shards of fixed inputs must never change between versions, or
//! shards written by an older node would no longer decode. `tests/golden/shards.json` is
//! committed; regenerate it only for a deliberate format change with
//! `MAGNET_BLESS_GOLDEN=1 cargo test -p magnet-storage --test golden` and say so in the ADR log.

use magnet_storage::codec::{encode, Codec, Params, MIN_STRIPE};
use magnet_storage::hash::Hash32;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Case {
    name: String,
    k: u8,
    m: u8,
    stripe_size: u32,
    /// Input: `len` bytes, byte i = (i*37 ^ (i>>8) ^ salt) mod 256.
    len: usize,
    salt: u8,
    object_sha256: String,
    shard_sha256: Vec<String>,
    /// Full shard bytes in hex, for small cases.
    shards_hex: Option<Vec<String>>,
}

fn input(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(37) ^ (i as u32 >> 8) ^ u32::from(salt)) as u8)
        .collect()
}

fn compute() -> Vec<Case> {
    let specs: &[(&str, u8, u8, u32, usize, u8)] = &[
        ("empty-rs42", 4, 2, MIN_STRIPE, 0, 0),
        ("one-byte-rs42", 4, 2, MIN_STRIPE, 1, 1),
        ("hundred-bytes-rs42", 4, 2, MIN_STRIPE, 100, 2),
        ("thirty-three-rs21", 2, 1, MIN_STRIPE, 33, 3),
        ("ragged-rs32", 3, 2, 1_048_578, 97, 4),
        ("kilobyte-rs63", 6, 3, 1_048_578, 1000, 5),
        ("small-rs84", 8, 4, MIN_STRIPE, 200, 6),
        ("small-rs104", 10, 4, 1_048_580, 250, 7),
        (
            "two-stripes-and-tail-rs42",
            4,
            2,
            MIN_STRIPE,
            2 * MIN_STRIPE as usize + 12_345,
            8,
        ),
        (
            "four-mib-stripe-rs42",
            4,
            2,
            4 * MIN_STRIPE,
            5 * MIN_STRIPE as usize + 3,
            9,
        ),
    ];
    specs
        .iter()
        .map(|&(name, k, m, stripe, len, salt)| {
            let codec = Codec::new(Params::new(k, m).unwrap()).unwrap();
            let data = input(len, salt);
            let (enc, shards) = encode(&codec, stripe, &data).unwrap();
            Case {
                name: name.to_string(),
                k,
                m,
                stripe_size: stripe,
                len,
                salt,
                object_sha256: enc.object_hash.to_hex(),
                shard_sha256: shards.iter().map(|s| Hash32::of(s).to_hex()).collect(),
                shards_hex: (len <= 1000).then(|| shards.iter().map(hex::encode).collect()),
            }
        })
        .collect()
}

#[test]
fn encoded_shards_of_fixed_inputs_never_change() {
    let path = std::path::Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("tests/golden/shards.json");
    let now = compute();
    if std::env::var("MAGNET_BLESS_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&path, serde_json::to_string_pretty(&now).unwrap() + "\n").unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (generate with MAGNET_BLESS_GOLDEN=1)",
            path.display()
        )
    });
    let golden: Vec<Case> = serde_json::from_str(&text).unwrap();
    assert_eq!(golden.len(), now.len());
    for (g, n) in golden.iter().zip(&now) {
        assert_eq!(g, n, "golden case {} changed", g.name);
    }
}
