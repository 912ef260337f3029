//! The erasure codec's must-hold properties: every ≤M loss pattern rebuilds the exact bytes for
//! every supported (K, M); M+1 losses are a typed error; corrupted shards are excluded; random
//! sizes/losses/corruptions (proptest); golden vectors; and an independent GF(2^8) check that the
//! parity really is the 0x11D field with the Vandermonde-derived systematic matrix.

use magnet_storage::codec::{
    self, decode, encode, Codec, CodecError, Params, MIN_STRIPE, SUPPORTED,
};
use magnet_storage::hash::Hash32;
use proptest::prelude::*;

fn input(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(37) ^ (i as u32 >> 8) ^ u32::from(salt)) as u8)
        .collect()
}

/// Every subset of `0..n` with at most `max` elements.
fn subsets(n: usize, max: usize) -> Vec<Vec<usize>> {
    (0u32..(1 << n))
        .filter(|mask| mask.count_ones() as usize <= max)
        .map(|mask| (0..n).filter(|i| mask & (1 << i) != 0).collect())
        .collect()
}

fn decode_without(
    codec: &Codec,
    enc: &codec::Encoded,
    shards: &[Vec<u8>],
    lost: &[usize],
) -> Result<Vec<u8>, CodecError> {
    let offered: Vec<Option<&[u8]>> = shards
        .iter()
        .enumerate()
        .map(|(i, s)| (!lost.contains(&i)).then_some(s.as_slice()))
        .collect();
    decode(
        codec,
        &enc.layout,
        &offered,
        &enc.shard_hashes,
        &enc.object_hash,
    )
    .map(|(b, _)| b)
}

#[test]
fn every_pattern_of_up_to_m_lost_shards_rebuilds_the_exact_bytes() {
    // The decoding matrix depends only on which shards are lost, not on the size, so a small
    // ragged object covers every pattern; the next test covers multi-stripe objects.
    for &(k, m) in SUPPORTED {
        let params = Params::new(k, m).unwrap();
        let codec = Codec::new(params).unwrap();
        let stripe = params.default_stripe();
        let data = input(usize::from(k) * 300 + 17, k ^ m);
        let (enc, shards) = encode(&codec, stripe, &data).unwrap();
        let patterns = subsets(params.total(), usize::from(m));
        let mut checked = 0;
        for lost in &patterns {
            let got = decode_without(&codec, &enc, &shards, lost)
                .unwrap_or_else(|e| panic!("RS({k},{m}) lost {lost:?}: {e}"));
            assert!(got == data, "RS({k},{m}) lost {lost:?}: wrong bytes");
            checked += 1;
        }
        // Σ_{j≤m} C(n, j) patterns.
        let n = params.total() as u64;
        let expect: u64 = (0..=u64::from(m))
            .map(|j| (0..j).fold(1u64, |a, i| a * (n - i) / (i + 1)))
            .sum();
        assert_eq!(checked as u64, expect, "RS({k},{m})");
    }
}

#[test]
fn any_two_lost_shards_of_a_multi_stripe_object_rebuild_the_object() {
    let codec = Codec::new(Params::DEFAULT).unwrap();
    let data = input(2 * MIN_STRIPE as usize + 12_345, 42);
    let (enc, shards) = encode(&codec, MIN_STRIPE, &data).unwrap();
    assert_eq!(enc.layout.stripes().count(), 3);
    for lost in subsets(6, 2).into_iter().filter(|l| l.len() == 2) {
        let got = decode_without(&codec, &enc, &shards, &lost).unwrap();
        assert!(got == data, "lost {lost:?}");
    }
}

#[test]
fn every_pattern_of_m_plus_one_lost_shards_is_a_typed_error() {
    for &(k, m) in SUPPORTED {
        let params = Params::new(k, m).unwrap();
        let codec = Codec::new(params).unwrap();
        let data = input(777, 3);
        let (enc, shards) = encode(&codec, params.default_stripe(), &data).unwrap();
        for lost in subsets(params.total(), usize::from(m) + 1)
            .into_iter()
            .filter(|l| l.len() == usize::from(m) + 1)
        {
            match decode_without(&codec, &enc, &shards, &lost) {
                Err(CodecError::TooFewShards {
                    usable,
                    needed,
                    missing,
                    corrupt,
                }) => {
                    assert_eq!(usable, usize::from(k) - 1);
                    assert_eq!(needed, usize::from(k));
                    assert_eq!(missing, lost.iter().map(|&i| i as u8).collect::<Vec<_>>());
                    assert!(corrupt.is_empty());
                }
                other => panic!("RS({k},{m}) lost {lost:?}: expected TooFewShards, got {other:?}"),
            }
        }
    }
}

#[test]
fn a_corrupted_shard_is_detected_and_excluded() {
    let codec = Codec::new(Params::DEFAULT).unwrap();
    let data = input(300_000, 9);
    let (enc, shards) = encode(&codec, MIN_STRIPE, &data).unwrap();
    for bad in 0..6 {
        let mut s = shards.clone();
        s[bad][1234] ^= 0x40;
        let offered: Vec<Option<&[u8]>> = s.iter().map(|x| Some(x.as_slice())).collect();
        let (got, report) = decode(
            &codec,
            &enc.layout,
            &offered,
            &enc.shard_hashes,
            &enc.object_hash,
        )
        .unwrap();
        assert_eq!(got, data);
        assert_eq!(report.corrupt, vec![bad as u8]);
    }
    // Corrupt two, lose one: only 3 intact → typed error naming both kinds.
    let mut s = shards.clone();
    s[0][0] ^= 1;
    s[5].truncate(10);
    let offered: Vec<Option<&[u8]>> = s
        .iter()
        .enumerate()
        .map(|(i, x)| (i != 2).then_some(x.as_slice()))
        .collect();
    match decode(
        &codec,
        &enc.layout,
        &offered,
        &enc.shard_hashes,
        &enc.object_hash,
    ) {
        Err(CodecError::TooFewShards {
            usable: 3,
            missing,
            corrupt,
            ..
        }) => {
            assert_eq!(missing, vec![2]);
            assert_eq!(corrupt, vec![0, 5]);
        }
        other => panic!("expected TooFewShards, got {other:?}"),
    }
}

#[test]
fn a_lost_shard_is_rebuilt_bit_for_bit() {
    let params = Params::new(6, 3).unwrap();
    let codec = Codec::new(params).unwrap();
    let data = input(3 * params.default_stripe() as usize / 2, 1);
    let (enc, shards) = encode(&codec, params.default_stripe(), &data).unwrap();
    for target in 0..9u8 {
        // Rebuild from the last K shards other than the target.
        let mut offered: Vec<Option<&[u8]>> = vec![None; 9];
        for i in (0..9).rev().filter(|&i| i != usize::from(target)).take(6) {
            offered[i] = Some(&shards[i]);
        }
        let rebuilt = codec::rebuild_shard(&codec, &enc.layout, &mut offered, target).unwrap();
        assert_eq!(Hash32::of(&rebuilt), enc.shard_hashes[usize::from(target)]);
    }
}

proptest! {
    // Honours PROPTEST_CASES (scripts/test.sh sets 64); 48 when unset.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48)
    ))]

    #[test]
    fn random_sizes_losses_and_corruptions_rebuild_or_fail_typed(
        setting in 0..SUPPORTED.len(),
        len in 0usize..(2 * MIN_STRIPE as usize + 5000),
        salt in any::<u8>(),
        damage in proptest::collection::vec((0usize..14, any::<bool>(), any::<u16>()), 0..6),
    ) {
        let (k, m) = SUPPORTED[setting];
        let params = Params::new(k, m).unwrap();
        let codec = Codec::new(params).unwrap();
        let data = input(len, salt);
        let (enc, mut shards) = encode(&codec, params.default_stripe(), &data).unwrap();
        let n = params.total();
        let mut lost = std::collections::BTreeSet::new();
        let mut corrupt = std::collections::BTreeSet::new();
        for (i, is_loss, pos) in damage {
            let i = i % n;
            if is_loss || shards[i].is_empty() {
                lost.insert(i);
            } else {
                let p = usize::from(pos) % shards[i].len();
                shards[i][p] ^= 0x5a;
                corrupt.insert(i);
            }
        }
        let bad: std::collections::BTreeSet<usize> = lost.union(&corrupt).copied().collect();
        let offered: Vec<Option<&[u8]>> = shards
            .iter()
            .enumerate()
            .map(|(i, s)| (!lost.contains(&i)).then_some(s.as_slice()))
            .collect();
        let r = decode(&codec, &enc.layout, &offered, &enc.shard_hashes, &enc.object_hash);
        if bad.len() <= usize::from(m) {
            let (got, report) = r.unwrap();
            prop_assert!(got == data);
            // Empty shards cannot be corrupted; every flipped shard is reported.
            let reported: std::collections::BTreeSet<usize> =
                report.corrupt.iter().map(|&i| usize::from(i)).collect();
            prop_assert_eq!(reported, corrupt.difference(&lost).copied().collect());
        } else {
            let is_too_few = matches!(r, Err(CodecError::TooFewShards { .. }));
            prop_assert!(is_too_few, "expected TooFewShards, got {:?}", r.map(|_| ()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Independent GF(2^8) reference: poly 0x11D, V[r][c] = r^c, systematic matrix = V · V_top^-1.

fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            p ^= a;
        }
        let hi = a & 0x80;
        a <<= 1;
        if hi != 0 {
            a ^= 0x1D;
        }
        b >>= 1;
    }
    p
}

fn gf_pow(a: u8, e: usize) -> u8 {
    (0..e).fold(1u8, |acc, _| gf_mul(acc, a))
}

fn gf_inv(a: u8) -> u8 {
    (1..=255u8).find(|&b| gf_mul(a, b) == 1).unwrap()
}

fn invert(mut m: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let n = m.len();
    let mut inv: Vec<Vec<u8>> = (0..n)
        .map(|i| (0..n).map(|j| u8::from(i == j)).collect())
        .collect();
    for col in 0..n {
        let piv = (col..n).find(|&r| m[r][col] != 0).unwrap();
        m.swap(col, piv);
        inv.swap(col, piv);
        let f = gf_inv(m[col][col]);
        for j in 0..n {
            m[col][j] = gf_mul(m[col][j], f);
            inv[col][j] = gf_mul(inv[col][j], f);
        }
        for r in 0..n {
            if r != col && m[r][col] != 0 {
                let f = m[r][col];
                for j in 0..n {
                    m[r][j] ^= gf_mul(f, m[col][j]);
                    inv[r][j] ^= gf_mul(f, inv[col][j]);
                }
            }
        }
    }
    inv
}

#[test]
fn parity_matches_an_independent_gf256_0x11d_vandermonde_reference() {
    for &(k, m) in SUPPORTED {
        let (k, m) = (usize::from(k), usize::from(m));
        let n = k + m;
        let v: Vec<Vec<u8>> = (0..n)
            .map(|r| (0..k).map(|c| gf_pow(r as u8, c)).collect())
            .collect();
        let top_inv = invert(v[..k].to_vec());
        let sys: Vec<Vec<u8>> = v
            .iter()
            .map(|row| {
                (0..k)
                    .map(|c| (0..k).fold(0u8, |acc, t| acc ^ gf_mul(row[t], top_inv[t][c])))
                    .collect()
            })
            .collect();
        let params = Params::new(k as u8, m as u8).unwrap();
        let codec = Codec::new(params).unwrap();
        let data = input(k * 64, 77);
        let (_, shards) = encode(&codec, params.default_stripe(), &data).unwrap();
        for (p, shard) in shards.iter().enumerate().skip(k) {
            for (byte, &b) in shard.iter().enumerate() {
                let want = (0..k).fold(0u8, |acc, c| acc ^ gf_mul(sys[p][c], data[c * 64 + byte]));
                assert_eq!(b, want, "RS({k},{m}) parity shard {p} byte {byte}");
            }
        }
    }
}
