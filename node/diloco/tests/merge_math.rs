//! The outer merge against an independent computation, its screening table, and its invariants.

use magnet_diloco::merge::{RejectReason, WEIGHT_SCALE_PPM};
use magnet_diloco::{
    delta_hash, merge, Checkpoint, Contribution, MergeError, MergeMeta, MergePolicy, NodeId,
    RoundRecord,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn id(i: usize) -> NodeId {
    NodeId::new(format!("node-{i:016x}")).unwrap()
}

fn meta(round: u64) -> MergeMeta {
    MergeMeta {
        job_id: 1,
        round,
        leader: id(0),
    }
}

fn random_vec(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-scale..scale)).collect()
}

/// Textbook Nesterov SGD (PyTorch semantics) in f64 with float weights.
fn reference_step(
    theta: &[f32],
    m: &[f32],
    deltas: &[(Vec<f32>, f64)],
    lr: f64,
    mu: f64,
) -> (Vec<f64>, Vec<f64>) {
    let total: f64 = deltas.iter().map(|d| d.1).sum();
    let mut new_theta = Vec::new();
    let mut new_m = Vec::new();
    for j in 0..theta.len() {
        let g: f64 = deltas
            .iter()
            .map(|(d, w)| w / total * f64::from(d[j]))
            .sum();
        let mj = mu * f64::from(m[j]) + g;
        new_theta.push(f64::from(theta[j]) - lr * (g + mu * mj));
        new_m.push(mj);
    }
    (new_theta, new_m)
}

#[test]
fn a_single_delta_gives_the_hand_computed_nesterov_step() {
    // g = Δ, m' = Δ, θ' = θ − 0.7·(Δ + 0.9·Δ) = θ − 1.33·Δ
    let base = Checkpoint::new(vec![1.0, 2.0]);
    let c = Contribution::new(id(1), vec![0.5, -1.0], 10, 10_000);
    let out = merge(&base, &[c], &MergePolicy::default(), &meta(0)).unwrap();
    assert!((out.checkpoint.params[0] - 0.335).abs() < 1e-6);
    assert!((out.checkpoint.params[1] - 3.33).abs() < 1e-6);
    assert_eq!(out.checkpoint.momentum, vec![0.5, -1.0]);
    assert_eq!(out.record.accepted[0].weight_ppm, WEIGHT_SCALE_PPM);
}

#[test]
fn merges_match_an_independent_computation_over_several_rounds() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let n = 257;
    let mut ckpt = Checkpoint::new(random_vec(&mut rng, n, 1.0));
    let policy = MergePolicy::default();
    for round in 0..4 {
        let contribs: Vec<Contribution> = (0..4)
            .map(|i| {
                Contribution::new(
                    id(i),
                    random_vec(&mut rng, n, 0.1),
                    1_000 * (i as u64 + 1),
                    6_000 + 1_000 * i as u32,
                )
            })
            .collect();
        let deltas: Vec<(Vec<f32>, f64)> = contribs
            .iter()
            .map(|c| {
                (
                    c.delta.clone(),
                    c.data_size as f64 * f64::from(c.quality_bps),
                )
            })
            .collect();
        let (want_theta, want_m) = reference_step(&ckpt.params, &ckpt.momentum, &deltas, 0.7, 0.9);
        let out = merge(&ckpt, &contribs, &policy, &meta(round)).unwrap();
        for j in 0..n {
            // ppm rounding of weights (≤ 1e-6 relative) and f32 storage bound the difference.
            assert!(
                (f64::from(out.checkpoint.params[j]) - want_theta[j]).abs() < 1e-5,
                "θ[{j}] round {round}"
            );
            assert!(
                (f64::from(out.checkpoint.momentum[j]) - want_m[j]).abs() < 1e-5,
                "m[{j}] round {round}"
            );
        }
        ckpt = out.checkpoint;
    }
}

#[test]
fn with_unit_lr_and_no_momentum_the_merge_is_fedavg_of_the_local_models() {
    let base = Checkpoint::new(vec![1.0, 1.0, 1.0]);
    let locals = [vec![0.0, 2.0, 1.0], vec![3.0, 1.0, -1.0]];
    let sizes = [1u64, 3];
    let contribs: Vec<_> = locals
        .iter()
        .zip(sizes)
        .enumerate()
        .map(|(i, (l, s))| {
            Contribution::new(
                id(i),
                magnet_diloco::pseudo_gradient(&base.params, l).unwrap(),
                s,
                10_000,
            )
        })
        .collect();
    let policy = MergePolicy {
        lr_permille: 1000,
        momentum_permille: 0,
        ..MergePolicy::default()
    };
    let out = merge(&base, &contribs, &policy, &meta(0)).unwrap();
    let want = [
        0.25 * 0.0 + 0.75 * 3.0,
        0.25 * 2.0 + 0.75 * 1.0,
        0.25 * 1.0 - 0.75 * 1.0,
    ];
    for (g, w) in out.checkpoint.params.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{g} vs {w}");
    }
}

#[test]
fn a_nan_update_is_rejected_and_earns_no_weight() {
    let base = Checkpoint::new(vec![0.0; 4]);
    let mut bad = vec![0.1, 0.2, f32::NAN, 0.1];
    let nan = Contribution::new(id(2), bad.clone(), 1_000_000, 10_000);
    bad[2] = f32::INFINITY;
    let inf = Contribution::new(id(3), bad, 1_000_000, 10_000);
    let ok = Contribution::new(id(1), vec![0.1, 0.1, 0.1, 0.1], 1, 10_000);
    let out = merge(&base, &[nan, inf, ok], &MergePolicy::default(), &meta(0)).unwrap();
    assert_eq!(out.record.accepted.len(), 1);
    assert_eq!(out.record.accepted[0].node, id(1));
    assert_eq!(out.record.accepted[0].weight_ppm, WEIGHT_SCALE_PPM);
    assert_eq!(out.record.rejected.len(), 2);
    assert!(out
        .record
        .rejected
        .iter()
        .all(|r| r.reason == RejectReason::NonFinite { index: 2 }));
    assert!(out.checkpoint.params.iter().all(|x| x.is_finite()));
}

#[test]
fn every_screening_rule_rejects_with_its_reason() {
    let n = 8;
    let base = Checkpoint::new(vec![0.0; n]);
    let honest = |i: usize| {
        Contribution::new(
            id(i),
            (0..n).map(|j| 0.01 * (i + j) as f32 + 0.01).collect(),
            100,
            10_000,
        )
    };
    let mut wrong_hash = honest(10);
    wrong_hash.declared_hash = delta_hash(&[1.0]);
    let mut stale = honest(11);
    stale.staleness = 3;
    let mut copy = honest(12);
    copy.node = id(13);
    type Case = (&'static str, Contribution, fn(&RejectReason) -> bool);
    let cases: Vec<Case> = vec![
        (
            "length",
            Contribution::new(id(9), vec![0.0; n + 1], 100, 10_000),
            |r| {
                matches!(
                    r,
                    RejectReason::WrongLength {
                        expected: 8,
                        got: 9
                    }
                )
            },
        ),
        ("hash", wrong_hash, |r| {
            matches!(r, RejectReason::HashMismatch { .. })
        }),
        ("stale", stale, |r| {
            matches!(
                r,
                RejectReason::TooStale {
                    staleness: 3,
                    max: 2
                }
            )
        }),
        (
            "zero data",
            Contribution::new(id(14), vec![0.02; n], 0, 10_000),
            |r| *r == RejectReason::ZeroWeight,
        ),
        (
            "zero quality",
            Contribution::new(id(15), vec![0.03; n], 10, 0),
            |r| *r == RejectReason::ZeroWeight,
        ),
        (
            "outlier",
            Contribution::new(id(16), vec![50.0; n], 100, 10_000),
            |r| matches!(r, RejectReason::NormOutlier { .. }),
        ),
        (
            "zero Δ (lazy)",
            Contribution::new(id(17), vec![0.0; n], 100, 10_000),
            |r| {
                *r == RejectReason::NormTooSmall {
                    norm_micro: 0,
                    median_micro: 0,
                }
            },
        ),
        (
            "tiny Δ",
            Contribution::new(id(18), vec![1e-4; n], 100, 10_000),
            |r| matches!(r, RejectReason::NormTooSmall { .. }),
        ),
    ];
    for (name, bad, want) in cases {
        let inputs = vec![honest(0), honest(1), honest(2), bad.clone()];
        let out = merge(&base, &inputs, &MergePolicy::default(), &meta(0)).unwrap();
        assert_eq!(out.record.accepted.len(), 3, "{name}");
        let rej = out
            .record
            .rejected
            .iter()
            .find(|r| r.node == bad.node)
            .unwrap_or_else(|| panic!("{name}: not rejected"));
        assert!(want(&rej.reason), "{name}: got {:?}", rej.reason);
    }
    // The same Δ under two nodes: both copies lose.
    let out = merge(
        &base,
        &[honest(0), honest(1), honest(12), copy],
        &MergePolicy::default(),
        &meta(0),
    )
    .unwrap();
    assert_eq!(
        out.record
            .rejected
            .iter()
            .filter(|r| r.reason == RejectReason::DuplicateDelta)
            .count(),
        2
    );
    // A zero Δ never drags the median down: beside one honest Δ, the honest one is accepted.
    let out = merge(
        &base,
        &[
            honest(0),
            Contribution::new(id(17), vec![0.0; n], 100, 10_000),
        ],
        &MergePolicy::default(),
        &meta(0),
    )
    .unwrap();
    assert_eq!(out.record.accepted.len(), 1);
    assert_eq!(out.record.accepted[0].node, id(0));
    // The same node twice: the second is rejected.
    let out = merge(
        &base,
        &[honest(0), honest(0), honest(1)],
        &MergePolicy::default(),
        &meta(0),
    )
    .unwrap();
    assert_eq!(
        out.record
            .rejected
            .iter()
            .filter(|r| r.reason == RejectReason::DuplicateNode)
            .count(),
        1
    );
    // Nothing valid → typed error, no merge.
    let e = merge(
        &base,
        &[Contribution::new(id(1), vec![f32::NAN; n], 1, 1)],
        &MergePolicy::default(),
        &meta(0),
    );
    assert!(matches!(
        e,
        Err(MergeError::NotEnoughContributions { accepted: 0, .. })
    ));
    // Bad policy → typed error.
    let bad_policy = MergePolicy {
        momentum_permille: 1000,
        ..MergePolicy::default()
    };
    assert!(matches!(
        merge(&base, &[honest(0)], &bad_policy, &meta(0)),
        Err(MergeError::InvalidPolicy { .. })
    ));
}

#[test]
fn an_int8_outer_step_rebuilds_the_merged_parameters_bit_for_bit_close_to_the_exact_merge() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let n = 1_000;
    let base = Checkpoint::new(random_vec(&mut rng, n, 1.0));
    let contribs: Vec<Contribution> = (0..3)
        .map(|i| Contribution::new(id(i), random_vec(&mut rng, n, 0.05), 100, 10_000))
        .collect();
    let exact_policy = MergePolicy {
        lr_permille: 1000,
        momentum_permille: 0,
        ..MergePolicy::default()
    };
    let int8_policy = MergePolicy {
        update_chunk: 256,
        ..exact_policy
    };
    let exact = merge(&base, &contribs, &exact_policy, &meta(0)).unwrap();
    assert!(exact.step.is_none(), "no step without update_chunk");
    let q = merge(&base, &contribs, &int8_policy, &meta(0)).unwrap();
    let step = q.step.clone().expect("an int8 step");
    // What a worker holding the base downloads and applies: the wire bytes, parsed.
    let wire = step.to_bytes();
    assert_eq!(wire.len(), step.encoded_len());
    assert!(
        wire.len() * 3 < 4 * n,
        "{} bytes vs {} fp32",
        wire.len(),
        4 * n
    );
    let parsed = magnet_diloco::Compressed::from_bytes(&wire).unwrap();
    let rebuilt = magnet_diloco::apply_step(&base.params, &parsed);
    assert_eq!(rebuilt, q.checkpoint.params, "bit for bit");
    assert_eq!(q.checkpoint.momentum, exact.checkpoint.momentum);
    // Each value is within half a quantization step of the exact merge.
    for (k, chunk) in (0..n).collect::<Vec<_>>().chunks(256).enumerate() {
        let half = step.scales[k] / 2.0 + 1e-6;
        for &j in chunk {
            let d = (q.checkpoint.params[j] - exact.checkpoint.params[j]).abs();
            assert!(d <= half, "θ[{j}] off by {d} > {half}");
        }
    }
    // Anyone can recompute it: verification passes on the int8 record, fails on the exact one.
    magnet_diloco::verify_merge(&base, &contribs, &q.record).unwrap();
    assert_ne!(q.record.merged_hash, exact.record.merged_hash);
    // Out-of-range chunk: a typed error.
    let bad = MergePolicy {
        update_chunk: (1 << 20) + 1,
        ..exact_policy
    };
    assert!(matches!(
        merge(&base, &contribs, &bad, &meta(0)),
        Err(MergeError::InvalidPolicy { .. })
    ));
}

#[test]
fn a_stale_contribution_weighs_half_per_merge_of_staleness() {
    let base = Checkpoint::new(vec![0.0; 4]);
    let fresh = Contribution::new(id(1), vec![0.1, 0.2, 0.1, 0.2], 100, 10_000);
    let mut stale = Contribution::new(id(2), vec![0.2, 0.1, 0.2, 0.1], 100, 10_000);
    stale.staleness = 1;
    let out = merge(&base, &[fresh, stale], &MergePolicy::default(), &meta(0)).unwrap();
    let w: Vec<u32> = out.record.accepted.iter().map(|e| e.weight_ppm).collect();
    assert_eq!(w, vec![666_667, 333_333], "2:1, remainder to the heaviest");
}

#[test]
fn the_round_record_round_trips_through_borsh_and_json() {
    let base = Checkpoint::new(vec![0.0; 3]);
    let out = merge(
        &base,
        &[
            Contribution::new(id(1), vec![0.1; 3], 5, 10_000),
            Contribution::new(id(2), vec![f32::NAN; 3], 5, 10_000),
        ],
        &MergePolicy::default(),
        &meta(9),
    )
    .unwrap();
    let r = out.record;
    assert_eq!(RoundRecord::from_bytes(&r.to_bytes()).unwrap(), r);
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(serde_json::from_str::<RoundRecord>(&json).unwrap(), r);
    assert!(RoundRecord::from_bytes(&r.to_bytes()[..10]).is_err());
    assert_ne!(
        r.hash(),
        RoundRecord {
            round: 10,
            ..r.clone()
        }
        .hash()
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn merge_is_order_independent_and_weights_sum_to_one(
        seed in any::<u64>(),
        k in 1usize..7,
        sizes in prop::collection::vec(0u64..1_000_000, 7),
        quals in prop::collection::vec(0u32..=10_000, 7),
        stal in prop::collection::vec(0u32..4, 7),
    ) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let base = Checkpoint::with_momentum(random_vec(&mut rng, 33, 1.0), random_vec(&mut rng, 33, 0.1)).unwrap();
        let mut contribs: Vec<Contribution> = (0..k).map(|i| {
            let mut c = Contribution::new(id(i), random_vec(&mut rng, 33, 0.1), sizes[i], quals[i]);
            c.staleness = stal[i];
            c
        }).collect();
        let a = merge(&base, &contribs, &MergePolicy::default(), &meta(0));
        contribs.reverse();
        let b = merge(&base, &contribs, &MergePolicy::default(), &meta(0));
        prop_assert_eq!(&a, &b);
        if let Ok(out) = a {
            prop_assert_eq!(out.record.accepted.iter().map(|e| u64::from(e.weight_ppm)).sum::<u64>(), 1_000_000);
            prop_assert_eq!(out.record.accepted.len() + out.record.rejected.len(), k);
            prop_assert!(out.record.accepted.iter().all(|e| e.weight_ppm > 0));
            // The chain recomputes the weights over the recorded accepted set alone.
            let p = MergePolicy::default();
            let raws: Vec<u128> = out.record.accepted.iter().map(|e| magnet_rounds::raw_weight(
                e.data_size, e.quality_bps, e.staleness, p.stale_decay_bps, p.max_staleness,
            )).collect();
            let want = magnet_rounds::weights_ppm(&raws);
            let got: Vec<u32> = out.record.accepted.iter().map(|e| e.weight_ppm).collect();
            prop_assert_eq!(got, want);
        }
    }
}

#[test]
fn dust_is_rejected_and_the_rest_reweighed_so_a_recomputation_over_the_accepted_set_agrees() {
    let n = 4;
    let base = Checkpoint::new(vec![0.0; n]);
    // Node 3's share rounds to 0 ppm against the two heavy ones.
    let inputs = vec![
        Contribution::new(id(1), vec![0.1, 0.2, 0.1, 0.2], 3_000_000, 10_000),
        Contribution::new(id(2), vec![0.2, 0.1, 0.2, 0.1], 1_000_001, 10_000),
        Contribution::new(id(3), vec![0.1, 0.1, 0.2, 0.2], 1, 1),
    ];
    let out = merge(&base, &inputs, &MergePolicy::default(), &meta(0)).unwrap();
    assert_eq!(out.record.accepted.len(), 2);
    assert_eq!(out.record.rejected.len(), 1);
    assert_eq!(out.record.rejected[0].node, id(3));
    assert_eq!(out.record.rejected[0].reason, RejectReason::ZeroWeight);
    let raws: Vec<u128> = out
        .record
        .accepted
        .iter()
        .map(|e| u128::from(e.data_size) * u128::from(e.quality_bps))
        .collect();
    let want = magnet_rounds::weights_ppm(&raws);
    let got: Vec<u32> = out.record.accepted.iter().map(|e| e.weight_ppm).collect();
    assert_eq!(got, want);
    assert_eq!(got.iter().sum::<u32>(), 1_000_000);
}
