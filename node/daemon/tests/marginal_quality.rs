//! Marginal quality with a real tiny BitNet model (ADR 0090): three honest workers train one
//! round of inner steps on their shards of a real corpus; an evaluator scores each Δ as
//! `loss(base) − loss(base − Δ)` on windows of the whole corpus drawn from a seed. Honest Δs
//! score above zero; zero, random and copied Δs do not; a Δ trained on the public validation
//! split (the `evalfit` adversary) does not beat the honest Δ of the same worker.
//!
//! One test, so the data and the training are shared (about 30 s in a debug build on 2 cores;
//! the model code is built with opt-level 2).

use std::path::{Path, PathBuf};

use magnet_daemon::config::{Fault, JobSection};
use magnet_daemon::engine::{apply_delta, Engine, Evaluator};
use magnet_daemon::quality::{
    aggregate, cosine_ppm, eval_windows, marginal, round_duplicates, verdict, Verdict,
    NEAR_DUPLICATE_PPM,
};
use magnet_diloco::compress::{CompressionConfig, Compressor};

const H: u32 = 20;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn job(home: &Path, shard: usize) -> JobSection {
    JobSection {
        corpus: repo().join("data/text/kjv_head.txt"),
        tokenizer: home.join("tokenizer.json"),
        vocab_size: 512,
        preset: "tiny".into(),
        batch_size: 8,
        seq_len: 32,
        lr: 3e-3,
        eval_windows: 32,
        shard_index: shard,
        shard_count: 3,
        inner_steps: H,
        schedule_steps: 200,
        ..JobSection::default()
    }
}

/// One round of `H` steps from `base` on shard `shard` (or the validation split with
/// `Fault::Evalfit`), compressed and decoded as the wire carries it.
fn delta(home: &Path, shard: usize, fault: Fault, base: &[f32]) -> Vec<f32> {
    let (mut e, _) = Engine::open(&job(home, shard), home, fault).unwrap();
    let w = e.train_round(base, H, Fault::None).unwrap();
    let mut c = Compressor::new(
        CompressionConfig {
            chunk: 256,
            top_k_ppm: None,
        },
        w.delta.len(),
    )
    .unwrap();
    c.compress(&w.delta).unwrap().decode()
}

fn setup(home: &Path) -> (Evaluator, Vec<f32>) {
    let corpus = repo().join("data/text/kjv_head.txt");
    magnet_bitnet::tokenizer::Tokenizer::train(&[corpus.as_path()], 512)
        .unwrap()
        .save(&home.join("tokenizer.json"))
        .unwrap();
    let (_, ev) = Engine::open(&job(home, 0), home, Fault::None).unwrap();
    let base = ev.base_checkpoint().params;
    (ev, base)
}

fn score(ev: &Evaluator, base: &[f32], d: &[f32], windows: &[usize]) -> i64 {
    let b = ev.eval_at(base, windows).unwrap();
    marginal(
        b,
        ev.eval_at(&apply_delta(base, d).unwrap(), windows).unwrap(),
    )
}

#[test]
fn honest_deltas_score_above_zero_and_zero_random_copied_and_evalfit_deltas_do_not_beat_them() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let (ev, base) = setup(home);

    let honest: Vec<Vec<f32>> = (0..3).map(|i| delta(home, i, Fault::None, &base)).collect();
    let evalfit = delta(home, 0, Fault::Evalfit, &base);
    let zero = vec![0f32; base.len()];
    let norm = |d: &[f32]| d.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    // A random Δ with the honest Δs' norm (deterministic xorshift).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut random: Vec<f32> = (0..base.len())
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let k = (norm(&honest[0]) / norm(&random)) as f32;
    random.iter_mut().for_each(|v| *v *= k);
    // A copy of honest Δ 0 with 1 % noise.
    let copy: Vec<f32> = honest[0]
        .iter()
        .zip(&random)
        .map(|(h, r)| h + 0.01 * r)
        .collect();

    // What honest Δs of one round look like to the near-duplicate rule.
    let mut cos = Vec::new();
    for i in 0..3 {
        for j in i + 1..3 {
            cos.push(cosine_ppm(&honest[i], &honest[j]).unwrap());
        }
    }
    let c_fit = cosine_ppm(&evalfit, &honest[0]).unwrap();
    let c_copy = cosine_ppm(&copy, &honest[0]).unwrap();
    eprintln!("honest pairwise cosines (ppm) {cos:?}; evalfit vs honest 0 {c_fit}; copy {c_copy}");
    assert!(
        cos.iter().all(|&c| c < NEAR_DUPLICATE_PPM),
        "honest Δs must not look like copies: {cos:?}"
    );
    assert!(c_fit < NEAR_DUPLICATE_PPM);
    // The round as an evaluator sees it: three honest Δs, the evalfit Δ and a copy of honest Δ
    // 0. The copy and its original score 0 by the rule the daemon applies; the rest are measured.
    let round: Vec<Option<&[f32]>> = vec![
        Some(&honest[0]),
        Some(&honest[1]),
        Some(&honest[2]),
        Some(&evalfit),
        Some(&copy),
    ];
    let t = std::time::Instant::now();
    let dups = round_duplicates(&round);
    // Informational only: what the reveal-window work costs per round of 5 Δs.
    eprintln!("near-duplicate rule over 5 Δs: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let wire = Compressor::new(CompressionConfig::default(), base.len())
        .unwrap()
        .compress(&honest[1])
        .unwrap()
        .to_bytes();
    let t_enc = t.elapsed();
    let t = std::time::Instant::now();
    let back = magnet_diloco::Compressed::from_bytes(&wire).unwrap();
    let h = back.delta_hash();
    eprintln!(
        "Δ of {} params: {} wire bytes; encode {t_enc:?}; parse + decode + hash check {:?} ({})",
        base.len(),
        wire.len(),
        t.elapsed(),
        &h.to_hex()[..8]
    );
    let verdicts: Vec<Verdict> = round
        .iter()
        .zip(&dups)
        .map(|(d, t)| verdict(*d, base.len(), *t))
        .collect();
    assert!(matches!(
        verdicts[4],
        Verdict::NearDuplicate { twin: 0, .. }
    ));
    assert!(matches!(
        verdicts[0],
        Verdict::NearDuplicate { twin: 4, .. }
    ));
    assert_eq!(verdicts[4].fixed_score(), Some(0));
    assert_eq!(verdicts[1..4], [Verdict::Measure; 3]);

    let corpus_len = ev.corpus_len();
    for seed in [[1u8; 32], [2u8; 32], [3u8; 32]] {
        let w = eval_windows(&seed, 0, 1, corpus_len, ev.seq_len(), 32);
        assert_eq!(w.len(), 32);
        let t = std::time::Instant::now();
        ev.eval_at(&base, &w).unwrap();
        // Informational only (nothing asserts on time): one model evaluation of the windows.
        eprintln!("one evaluation of {} windows: {:?}", w.len(), t.elapsed());
        let h: Vec<i64> = honest.iter().map(|d| score(&ev, &base, d, &w)).collect();
        let fit = score(&ev, &base, &evalfit, &w);
        let z = score(&ev, &base, &zero, &w);
        let r = score(&ev, &base, &random, &w);
        // What the copy would score without the near-duplicate rule (it scores 0 with it).
        let cp = score(&ev, &base, &copy, &w);
        // The old measure: loss on the public validation split.
        let val = |d: &[f32]| {
            marginal(
                ev.eval(&base).unwrap(),
                ev.eval(&apply_delta(&base, d).unwrap()).unwrap(),
            )
        };
        eprintln!(
            "seed {}: marginal (1e-6 nats) honest {h:?} evalfit {fit} zero {z} random {r} copy-unruled {cp}; \
             on the public split: honest 0 {} evalfit {}",
            seed[0],
            val(&honest[0]),
            val(&evalfit)
        );
        assert!(
            h.iter().all(|&s| s > 0),
            "honest Δs improve the model: {h:?}"
        );
        assert_eq!(z, 0, "a zero Δ changes nothing");
        assert!(r <= 0, "a random Δ does not help: {r}");
        assert!(
            fit <= h[0],
            "evalfit {fit} must not beat the honest Δ of the same worker {}",
            h[0]
        );
        // A contribution naming an honest Δ and a copied one: the copy dilutes its mean.
        assert!(aggregate(&[h[1], 0]) < h[1]);
    }
}

#[test]
fn honest_deltas_stay_far_below_the_near_duplicate_threshold_in_later_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let (ev, mut base) = setup(home);
    // Three workers whose AdamW state and compression residual persist across rounds, merged
    // by plain averaging (the job default), for two rounds.
    let mut workers: Vec<(Engine, Compressor)> = (0..3)
        .map(|i| {
            let (e, _) = Engine::open(&job(home, i), home, Fault::None).unwrap();
            let c = Compressor::new(CompressionConfig::default(), base.len()).unwrap();
            (e, c)
        })
        .collect();
    for round in 0..2 {
        let deltas: Vec<Vec<f32>> = workers
            .iter_mut()
            .map(|(e, c)| {
                let w = e.train_round(&base, H, Fault::None).unwrap();
                c.compress(&w.delta).unwrap().decode()
            })
            .collect();
        let views: Vec<Option<&[f32]>> = deltas.iter().map(|d| Some(d.as_slice())).collect();
        let cos: Vec<i64> = (0..3)
            .flat_map(|i| (i + 1..3).map(move |j| (i, j)))
            .map(|(i, j)| cosine_ppm(&deltas[i], &deltas[j]).unwrap())
            .collect();
        let w = eval_windows(
            &[round as u8; 32],
            round,
            1,
            ev.corpus_len(),
            ev.seq_len(),
            32,
        );
        let m: Vec<i64> = deltas.iter().map(|d| score(&ev, &base, d, &w)).collect();
        eprintln!("round {round}: honest pairwise cosines (ppm) {cos:?}; marginal scores {m:?}");
        assert_eq!(
            round_duplicates(&views),
            [None; 3],
            "round {round}: {cos:?}"
        );
        assert!(m.iter().all(|&s| s > 0), "round {round}: {m:?}");
        for d in &deltas {
            for (b, x) in base.iter_mut().zip(d) {
                *b -= x / 3.0;
            }
        }
    }
}
