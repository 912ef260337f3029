//! Placement: which holders get which shards, and what each setting buys.
//!
//! [`place`] assigns the K+M shards of an object, each with `replicas` copies, to distinct
//! holders (no holder gets two pieces of one object), spreading them across regions: holders are
//! taken round-robin over regions, so consecutive picks — the replicas of one shard, and
//! neighbouring shards — land in different regions whenever there are enough of them. Within a
//! region, holders are ranked by rendezvous hashing (`SHA-256(object ‖ holder)`), which spreads
//! objects evenly and keeps the choice deterministic.
//!
//! [`overhead`] and [`loss_probability`] give the storage cost and durability of a setting,
//! assuming holders fail independently with probability `p` within one repair window
//! (`docs/storage.md` tabulates them).
//!
//! # Non-guarantees
//! Regions are whatever the registry reports; correlated failures inside a region are not
//! modelled by [`loss_probability`].

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::hash::ContentAddress;
use crate::manifest::HolderId;

/// A candidate holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The holder.
    pub id: HolderId,
    /// Its region (free text from the registry; one region if unknown).
    pub region: String,
    /// Free space it reported, bytes.
    pub free_bytes: u64,
}

/// Placement failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// Not enough distinct holders with room for a shard.
    #[error(
        "need {needed} distinct holders with {shard_len} free bytes for {shards} shards x {replicas} replicas, only {available} qualify"
    )]
    NotEnoughHolders {
        /// Holders needed.
        needed: usize,
        /// Holders that qualify.
        available: usize,
        /// Shards per object.
        shards: usize,
        /// Replicas per shard.
        replicas: u8,
        /// Bytes per shard.
        shard_len: u64,
    },
    /// `replicas` was 0.
    #[error("replica target must be at least 1")]
    ZeroReplicas,
}

fn score(object: &ContentAddress, holder: &HolderId) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"MAGNET/storage/placement/v1");
    h.update(object.0 .0);
    h.update(holder.as_str().as_bytes());
    h.finalize().into()
}

/// Orders candidates for `object`: round-robin over regions (largest region first, then by
/// name), each region ranked by rendezvous score. Holders without `min_free` bytes are dropped.
pub fn rank(object: &ContentAddress, candidates: &[Candidate], min_free: u64) -> Vec<HolderId> {
    type Ranked<'a> = Vec<(&'a HolderId, [u8; 32])>;
    let mut by_region: BTreeMap<&str, Ranked<'_>> = BTreeMap::new();
    for c in candidates.iter().filter(|c| c.free_bytes >= min_free) {
        by_region
            .entry(c.region.as_str())
            .or_default()
            .push((&c.id, score(object, &c.id)));
    }
    let mut regions: Vec<(&str, Ranked<'_>)> = by_region.into_iter().collect();
    for (_, v) in regions.iter_mut() {
        v.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(b.0)));
        v.dedup_by(|a, b| a.0 == b.0);
    }
    regions.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    let mut out = Vec::new();
    let mut round = 0;
    loop {
        let mut any = false;
        for (_, v) in &regions {
            if let Some((id, _)) = v.get(round) {
                if !out.contains(*id) {
                    out.push((*id).clone());
                }
                any = true;
            }
        }
        if !any {
            break;
        }
        round += 1;
    }
    out
}

/// Assigns `shards` shards × `replicas` copies to distinct holders. Result: holders per shard.
pub fn place(
    object: &ContentAddress,
    shards: usize,
    replicas: u8,
    shard_len: u64,
    candidates: &[Candidate],
) -> Result<Vec<Vec<HolderId>>, PlacementError> {
    if replicas == 0 {
        return Err(PlacementError::ZeroReplicas);
    }
    let ranked = rank(object, candidates, shard_len);
    let needed = shards * usize::from(replicas);
    if ranked.len() < needed {
        return Err(PlacementError::NotEnoughHolders {
            needed,
            available: ranked.len(),
            shards,
            replicas,
            shard_len,
        });
    }
    Ok(ranked
        .chunks(usize::from(replicas))
        .take(shards)
        .map(<[HolderId]>::to_vec)
        .collect())
}

/// A candidate holder with the operator that runs it (for [`rank_spread`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatedCandidate {
    /// The holder.
    pub id: HolderId,
    /// The operator account that runs it (nodes of one operator fail together).
    pub operator: String,
    /// Its region.
    pub region: String,
    /// Free space it reported, bytes.
    pub free_bytes: u64,
}

/// Orders candidates for `object` so that the first picks are on distinct operators first,
/// then on distinct regions: each next pick is, among the remaining candidates with `min_free`
/// bytes that are not in `exclude`, the one whose operator has been picked least, then whose
/// region has been picked least, then with the lowest rendezvous score (`SHA-256(object ‖
/// holder)`, as in [`rank`]). Deterministic; a holder listed twice counts once. `exclude`
/// also counts towards the operator and region tallies (they already hold shards of the
/// object).
pub fn rank_spread(
    object: &ContentAddress,
    candidates: &[OperatedCandidate],
    min_free: u64,
    exclude: &[HolderId],
) -> Vec<HolderId> {
    let mut pool: Vec<(&OperatedCandidate, [u8; 32])> = candidates
        .iter()
        .filter(|c| c.free_bytes >= min_free && !exclude.contains(&c.id))
        .map(|c| (c, score(object, &c.id)))
        .collect();
    pool.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.id.cmp(&b.0.id)));
    pool.dedup_by(|a, b| a.0.id == b.0.id);
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    let mut regions: BTreeMap<&str, usize> = BTreeMap::new();
    for c in candidates.iter().filter(|c| exclude.contains(&c.id)) {
        *ops.entry(c.operator.as_str()).or_default() += 1;
        *regions.entry(c.region.as_str()).or_default() += 1;
    }
    let mut out = Vec::with_capacity(pool.len());
    while !pool.is_empty() {
        let mut best = 0;
        let mut best_key = (usize::MAX, usize::MAX);
        for (i, (c, _)) in pool.iter().enumerate() {
            let key = (
                ops.get(c.operator.as_str()).copied().unwrap_or(0),
                regions.get(c.region.as_str()).copied().unwrap_or(0),
            );
            // `pool` is in score order, so the first minimum wins the tie on score.
            if key < best_key {
                best_key = key;
                best = i;
            }
        }
        let (c, _) = pool.remove(best);
        *ops.entry(c.operator.as_str()).or_default() += 1;
        *regions.entry(c.region.as_str()).or_default() += 1;
        out.push(c.id.clone());
    }
    out
}

/// Bytes stored per byte of object: `replicas × (K + M) / K`.
pub fn overhead(k: u8, m: u8, replicas: u8) -> f64 {
    f64::from(replicas) * f64::from(u16::from(k) + u16::from(m)) / f64::from(k)
}

fn binom(n: u32, r: u32) -> f64 {
    (0..r).fold(1.0, |acc, i| acc * f64::from(n - i) / f64::from(i + 1))
}

/// Probability an object is lost when each holder independently fails with probability `p`
/// before repair: a shard is lost when all its `replicas` holders fail (`q = p^replicas`), and
/// the object when more than M of its K+M shards are lost.
pub fn loss_probability(k: u8, m: u8, replicas: u8, p: f64) -> f64 {
    let n = u32::from(k) + u32::from(m);
    let q = p.powi(i32::from(replicas));
    (u32::from(m) + 1..=n)
        .map(|j| binom(n, j) * q.powi(j as i32) * (1.0 - q).powi((n - j) as i32))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Hash32;
    use std::collections::BTreeSet;

    fn cands(regions: &[(&str, usize)]) -> Vec<Candidate> {
        let mut v = Vec::new();
        for (r, n) in regions {
            for i in 0..*n {
                v.push(Candidate {
                    id: HolderId::new(format!("{r}-{i}")).unwrap(),
                    region: (*r).to_string(),
                    free_bytes: 1 << 30,
                });
            }
        }
        v
    }

    #[test]
    fn shards_go_to_distinct_holders_spread_over_regions() {
        let c = cands(&[("eu", 4), ("us", 4), ("ap", 4)]);
        for seed in 0..20u8 {
            let obj = ContentAddress(Hash32::of(&[seed]));
            let p = place(&obj, 6, 1, 100, &c).unwrap();
            let all: Vec<&HolderId> = p.iter().flatten().collect();
            let set: BTreeSet<_> = all.iter().collect();
            assert_eq!(set.len(), 6);
            let mut per_region: BTreeMap<&str, usize> = BTreeMap::new();
            for h in &all {
                *per_region.entry(&h.as_str()[..2]).or_default() += 1;
            }
            assert_eq!(
                per_region.values().copied().collect::<Vec<_>>(),
                vec![2, 2, 2]
            );
        }
    }

    #[test]
    fn replicas_of_one_shard_land_in_different_regions() {
        let c = cands(&[("eu", 8), ("us", 8), ("ap", 8)]);
        let obj = ContentAddress(Hash32::of(b"hot"));
        let p = place(&obj, 6, 3, 100, &c).unwrap();
        for reps in &p {
            let regions: BTreeSet<&str> = reps.iter().map(|h| &h.as_str()[..2]).collect();
            assert_eq!(regions.len(), 3, "{reps:?}");
        }
    }

    #[test]
    fn too_few_holders_or_zero_replicas_is_a_typed_error() {
        let c = cands(&[("eu", 5)]);
        let obj = ContentAddress::default();
        assert!(matches!(
            place(&obj, 6, 1, 1, &c),
            Err(PlacementError::NotEnoughHolders {
                needed: 6,
                available: 5,
                ..
            })
        ));
        assert_eq!(place(&obj, 6, 0, 1, &c), Err(PlacementError::ZeroReplicas));
        let mut full = cands(&[("eu", 6)]);
        full[0].free_bytes = 10;
        assert!(place(&obj, 6, 1, 11, &full).is_err());
    }

    #[test]
    fn rank_spread_takes_distinct_operators_then_regions_deterministically() {
        let obj = ContentAddress(Hash32::of(b"spread"));
        let mut cs = Vec::new();
        // Operator "a" runs four nodes in eu; "b" two in us; "c" one in eu; "d" one in ap.
        for (op, region, n) in [
            ("a", "eu", 4),
            ("b", "us", 2),
            ("c", "eu", 1),
            ("d", "ap", 1),
        ] {
            for i in 0..n {
                cs.push(OperatedCandidate {
                    id: HolderId::new(format!("{op}{i}")).unwrap(),
                    operator: op.into(),
                    region: region.into(),
                    free_bytes: 100,
                });
            }
        }
        let r = rank_spread(&obj, &cs, 10, &[]);
        assert_eq!(r.len(), 8);
        let op = |h: &HolderId| h.as_str()[..1].to_string();
        let first4: BTreeSet<String> = r[..4].iter().map(op).collect();
        assert_eq!(
            first4.len(),
            4,
            "the first four picks are four operators: {r:?}"
        );
        // The fifth pick is a second node of "a" or "b": "b" (us) beats "a" (eu, picked twice).
        assert_eq!(op(&r[4]), "b");
        assert_eq!(r, rank_spread(&obj, &cs, 10, &[]));
        // Too little free space, or excluded: never picked.
        let ex = r[0].clone();
        let r2 = rank_spread(&obj, &cs, 10, std::slice::from_ref(&ex));
        assert!(!r2.contains(&ex));
        assert!(rank_spread(&obj, &cs, 101, &[]).is_empty());
    }

    #[test]
    fn durability_improves_with_parity_and_replicas() {
        let p: f64 = 0.01;
        let single = p;
        let rs42 = loss_probability(4, 2, 1, p);
        let rs42x3 = loss_probability(4, 2, 3, p);
        assert!(rs42 < single && rs42x3 < rs42);
        // P(>2 of 6 fail) at p=1%: dominated by C(6,3) p^3 = 2.0e-5.
        assert!((rs42 - 1.955_359e-5).abs() < 1e-9, "{rs42}");
        assert!((overhead(4, 2, 1) - 1.5).abs() < 1e-12);
        assert!((overhead(4, 2, 3) - 4.5).abs() < 1e-12);
    }
}
