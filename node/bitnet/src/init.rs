//! Seeded, platform-independent random initialisation (candle's CPU RNG cannot be seeded).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `n` samples of N(mean, std²) from a ChaCha8 stream seeded with `seed` (Box–Muller).
pub fn normal_vec(n: usize, mean: f32, std: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = rng.gen::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.gen::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        out.push(mean + std * (r * t.cos()) as f32);
        out.push(mean + std * (r * t.sin()) as f32);
    }
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn normal_samples_have_the_requested_moments_and_repeat_per_seed() {
        let v = super::normal_vec(100_000, 1.0, 2.0, 7);
        let m = v.iter().sum::<f32>() / v.len() as f32;
        let s = (v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / v.len() as f32).sqrt();
        assert!(
            (m - 1.0).abs() < 0.03 && (s - 2.0).abs() < 0.03,
            "mean {m} std {s}"
        );
        assert_eq!(v[..10], super::normal_vec(10, 1.0, 2.0, 7)[..]);
    }
}
