//! Error feedback keeps the compression error bounded; bytes are counted exactly; the DiLoCo vs
//! synchronous data-parallel byte ratio is computed from real encoded sizes.

use magnet_diloco::compress::{
    ddp_bytes_per_worker, dense_int8_len, diloco_bytes_per_worker, topk_int8_len, Compressed,
    CompressionConfig, Compressor,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt()
}

#[test]
fn int8_error_feedback_keeps_the_accumulated_error_bounded() {
    let n = 1000;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut c = Compressor::new(
        CompressionConfig {
            chunk: 64,
            top_k_ppm: None,
        },
        n,
    )
    .unwrap();
    let mut sum_true = vec![0f64; n];
    let mut sum_sent = vec![0f64; n];
    let mut worst = 0f32;
    for t in 0..500 {
        // Δs with a persistent bias (what DiLoCo's pseudo-gradients look like) plus noise.
        let d: Vec<f32> = (0..n)
            .map(|j| 1e-3 * ((j % 7) as f32 - 3.0) + rng.gen_range(-1e-2..1e-2))
            .collect();
        let max_d = d.iter().fold(0f32, |m, x| m.max(x.abs()));
        let m = c.compress(&d).unwrap();
        let dec = Compressed::from_bytes(&m.to_bytes()).unwrap().decode();
        for j in 0..n {
            sum_true[j] += f64::from(d[j]);
            sum_sent[j] += f64::from(dec[j]);
        }
        let e_max = c.residual().iter().fold(0f32, |m, x| m.max(x.abs()));
        worst = worst.max(e_max / max_d);
        // Per element: |e| ≤ scale/2 ≤ max|Δ+e|/254 ⇒ |e| ≤ max|Δ|/253 for ever.
        assert!(
            e_max <= max_d / 253.0 * 1.01 + 1e-7,
            "t={t}: residual {e_max} vs |Δ| {max_d}"
        );
    }
    // Nothing is lost: Σ sent = Σ Δ − e_T (up to f32 accumulation).
    for j in 0..n {
        let gap = sum_true[j] - sum_sent[j] - f64::from(c.residual()[j]);
        assert!(gap.abs() < 1e-3, "j={j}: gap {gap}");
    }
    assert!(worst > 0.0);
}

#[test]
fn top_k_error_feedback_keeps_the_accumulated_error_bounded_where_dropping_it_would_grow() {
    let n = 1000;
    let delta_frac: f64 = 0.1; // keep 10 %
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let cfg = CompressionConfig {
        chunk: 64,
        top_k_ppm: Some(100_000),
    };
    let mut c = Compressor::new(cfg, n).unwrap();
    let mut lost_without_feedback = vec![0f64; n];
    let mut g_max = 0f64;
    let mut e_max = 0f64;
    for _ in 0..400 {
        let d: Vec<f32> = (0..n)
            .map(|j| 1e-3 * (((j * 31) % 17) as f32 - 8.0) + rng.gen_range(-5e-3..5e-3))
            .collect();
        g_max = g_max.max(norm(&d));
        let m = c.compress(&d).unwrap();
        assert_eq!(m.values.len(), n / 10);
        assert_eq!(m.encoded_len() as u64, topk_int8_len(n as u64 / 10, 64));
        e_max = e_max.max(norm(c.residual()));
        // Without feedback, top-k of Δ alone drops the rest for good.
        let mut fresh = Compressor::new(cfg, n).unwrap();
        let dec = fresh.compress(&d).unwrap().decode();
        for j in 0..n {
            lost_without_feedback[j] += f64::from(d[j] - dec[j]);
        }
    }
    // Contraction of top-k: ‖e‖ ≤ √(1−δ)/(1−√(1−δ)) · max‖Δ‖ (+ int8 error), δ = k/n.
    let s = (1.0 - delta_frac).sqrt();
    let bound = s / (1.0 - s) * g_max * 1.05;
    assert!(e_max <= bound, "residual {e_max} above the bound {bound}");
    let lost = lost_without_feedback
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt();
    assert!(
        lost > 5.0 * e_max,
        "without feedback the loss ({lost}) grows past the bounded residual ({e_max})"
    );
}

#[test]
fn diloco_sends_at_least_500x_fewer_bytes_than_synchronous_data_parallel() {
    // Count with a real 262 144-parameter Δ, compressed and encoded.
    let p: u64 = 1 << 18;
    let h: u64 = 500; // inner steps per round
    let rounds: u64 = 4;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut c = Compressor::new(CompressionConfig::default(), p as usize).unwrap();
    let mut up = 0u64;
    for _ in 0..rounds {
        let d: Vec<f32> = (0..p).map(|_| rng.gen_range(-1e-2f32..1e-2)).collect();
        up += c.compress(&d).unwrap().to_bytes().len() as u64;
    }
    assert_eq!(up, rounds * dense_int8_len(p, 256));
    let diloco = diloco_bytes_per_worker(p, rounds, dense_int8_len(p, 256));
    assert_eq!(diloco.up, up);
    let ddp = ddp_bytes_per_worker(p, rounds * h);
    let ratio = ddp.total() as f64 / diloco.total() as f64;
    // 8·P·H / (1.0157·P + 4·P) = 1.595·H ≈ 797 at H = 500.
    assert!(ratio >= 500.0, "ratio {ratio}");
    assert!((ratio - 797.5).abs() < 1.0, "ratio {ratio}");
    // Upload alone (what the leader receives): 4·P·H / 1.0157·P ≈ 1969×.
    let up_ratio = ddp.up as f64 / diloco.up as f64;
    assert!(up_ratio > 1900.0, "{up_ratio}");
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn compressed_deltas_round_trip_and_their_length_is_exact(
        v in prop::collection::vec(-1e3f32..1e3, 0..600),
        chunk in 1u32..300,
        ppm in prop::option::of(1u32..=1_000_000),
    ) {
        let cfg = CompressionConfig { chunk, top_k_ppm: ppm };
        let mut c = Compressor::new(cfg, v.len()).unwrap();
        let m = c.compress(&v).unwrap();
        let bytes = m.to_bytes();
        prop_assert_eq!(bytes.len(), m.encoded_len());
        let back = Compressed::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&back, &m);
        let dec = back.decode();
        prop_assert_eq!(dec.len(), v.len());
        // decode + residual reproduces the input exactly (one round, zero initial residual).
        for ((d, e), x) in dec.iter().zip(c.residual()).zip(&v) {
            prop_assert!((d + e - x).abs() <= 1e-3 * x.abs().max(1.0));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Compressed::from_bytes(&bytes);
        let _ = magnet_diloco::Checkpoint::from_bytes(&bytes);
        let _ = magnet_diloco::RoundRecord::from_bytes(&bytes);
    }
}
