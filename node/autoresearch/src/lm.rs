//! BitNet-LM domain: the paper's phase-wise search (§8.2) over an [`LmTrainer`].
//!
//! Each phase varies one hyperparameter group (architecture, learning rate, schedule, β2 and
//! weight decay, FFN ratio, context, GQA ratio, gradient accumulation) with every other value
//! fixed at the current best; the phase's best is carried forward; a final phase re-validates
//! the top-3 distinct configs at 4× the steps and keeps the best of those.
//!
//! Guarantees: deterministic given the trainer; phases whose group the trainer does not use
//! ([`LmTrainer::supports`]) are skipped and reported. Each trainer states the values its model
//! can take ([`LmTrainer::variants`], usually a [`Grid`]). The BitNet engine's trainer is
//! `crate::bitnet_lm` (feature `bitnet`, on by default); the bundled [`CharNgramTrainer`] is a
//! small real character n-gram language model trained with Adam on real text, a light trainer
//! for the search's own unit test.

use serde::{Deserialize, Serialize};

/// The searched hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmConfig {
    /// Model width.
    pub d_model: usize,
    /// Layers.
    pub layers: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Warm-up fraction of steps (WSD schedule).
    pub warmup: f64,
    /// Final decay fraction of steps (WSD schedule).
    pub decay: f64,
    /// Adam β2.
    pub beta2: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// FFN multiplier.
    pub ffn_mult: f64,
    /// Context length (tokens).
    pub context: usize,
    /// Query heads per KV head.
    pub gqa_ratio: usize,
    /// Gradient accumulation steps.
    pub grad_accum: usize,
}

impl Default for LmConfig {
    fn default() -> Self {
        LmConfig {
            d_model: 256,
            layers: 4,
            lr: 1e-3,
            warmup: 0.05,
            decay: 0.2,
            beta2: 0.95,
            weight_decay: 0.1,
            ffn_mult: 4.0,
            context: 1,
            gqa_ratio: 1,
            grad_accum: 1,
        }
    }
}

/// Hyperparameter groups, one per phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// Width × depth.
    Architecture,
    /// Learning rate.
    LearningRate,
    /// WSD warm-up / decay.
    Schedule,
    /// β2 and weight decay.
    Beta2WeightDecay,
    /// FFN multiplier.
    FfnRatio,
    /// Context length.
    Context,
    /// GQA ratio.
    GqaRatio,
    /// Gradient accumulation.
    Accumulation,
}

/// Phase order (the paper's).
pub const PHASES: [Group; 8] = [
    Group::Architecture,
    Group::LearningRate,
    Group::Schedule,
    Group::Beta2WeightDecay,
    Group::FfnRatio,
    Group::Context,
    Group::GqaRatio,
    Group::Accumulation,
];

/// The values each phase tries, one list per group (the rest of a config is the current best).
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// (width, layers).
    pub architecture: Vec<(usize, usize)>,
    /// Peak learning rates.
    pub lr: Vec<f64>,
    /// (warm-up, decay) fractions.
    pub schedule: Vec<(f64, f64)>,
    /// (β2, weight decay).
    pub beta2_weight_decay: Vec<(f64, f64)>,
    /// FFN multipliers.
    pub ffn_mult: Vec<f64>,
    /// Context lengths.
    pub context: Vec<usize>,
    /// GQA ratios (a trainer may drop the ones its shape cannot use).
    pub gqa_ratio: Vec<usize>,
    /// Accumulation steps.
    pub grad_accum: Vec<usize>,
}

impl Default for Grid {
    /// The grid of the bundled [`CharNgramTrainer`].
    fn default() -> Self {
        Grid {
            architecture: vec![(128, 8), (256, 4), (512, 2)],
            lr: vec![3e-3, 1e-2, 3e-2, 1e-1],
            schedule: vec![(0.01, 0.15), (0.05, 0.2), (0.1, 0.5)],
            beta2_weight_decay: vec![(0.95, 0.1), (0.98, 0.1), (0.98, 0.0), (0.999, 0.01)],
            ffn_mult: vec![2.67, 4.0],
            context: vec![1, 2],
            gqa_ratio: vec![1, 4],
            grad_accum: vec![1, 2, 4],
        }
    }
}

impl Grid {
    /// The configs a phase of group `g` tries: `base` with that group's fields set to each of
    /// the grid's values in turn.
    pub fn variants(&self, g: Group, base: &LmConfig) -> Vec<LmConfig> {
        fn each<T: Copy>(
            base: &LmConfig,
            vals: &[T],
            set: impl Fn(&mut LmConfig, T),
        ) -> Vec<LmConfig> {
            vals.iter()
                .map(|&v| {
                    let mut c = base.clone();
                    set(&mut c, v);
                    c
                })
                .collect()
        }
        match g {
            Group::Architecture => each(base, &self.architecture, |c, (d, l)| {
                c.d_model = d;
                c.layers = l;
            }),
            Group::LearningRate => each(base, &self.lr, |c, v| c.lr = v),
            Group::Schedule => each(base, &self.schedule, |c, (w, d)| {
                c.warmup = w;
                c.decay = d;
            }),
            Group::Beta2WeightDecay => each(base, &self.beta2_weight_decay, |c, (b, w)| {
                c.beta2 = b;
                c.weight_decay = w;
            }),
            Group::FfnRatio => each(base, &self.ffn_mult, |c, v| c.ffn_mult = v),
            Group::Context => each(base, &self.context, |c, v| c.context = v),
            Group::GqaRatio => each(base, &self.gqa_ratio, |c, v| c.gqa_ratio = v),
            Group::Accumulation => each(base, &self.grad_accum, |c, v| c.grad_accum = v),
        }
    }
}

/// The variants a phase tries around `base` ([`Grid::default`]).
pub fn variants(g: Group, base: &LmConfig) -> Vec<LmConfig> {
    Grid::default().variants(g, base)
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
#[error("LM training failed: {0}")]
pub struct LmError(pub String);

/// A language-model trainer the phase-wise search drives.
pub trait LmTrainer: Sync {
    /// Trains `cfg` for `steps` and returns the validation loss (nats/token).
    fn train_eval(&self, cfg: &LmConfig, steps: usize, seed: u64) -> Result<f64, LmError>;
    /// Whether the trainer's model uses this group (unused groups are skipped).
    fn supports(&self, g: Group) -> bool;
    /// The variants a phase of group `g` tries around `base` (values valid for this trainer's
    /// model). Default: [`variants`].
    fn variants(&self, g: Group, base: &LmConfig) -> Vec<LmConfig> {
        variants(g, base)
    }
}

/// One phase's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseResult {
    /// Group (None = final validation).
    pub group: Option<Group>,
    /// Configs tried with their validation losses.
    pub tried: Vec<(LmConfig, f64)>,
    /// Best validation loss within the phase.
    pub best_loss: f64,
    /// Skipped (trainer does not use the group).
    pub skipped: bool,
}

/// Result of the phase-wise search.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseSearch {
    /// Phases in order, the final validation last.
    pub phases: Vec<PhaseResult>,
    /// The chosen config.
    pub best: LmConfig,
    /// Its loss at 4× steps.
    pub best_loss: f64,
}

/// One phase-wise pass: each phase of `phases` (in the paper's order) tries the trainer's
/// variants of its group around the running best, which carries forward. Configs already in
/// `known` are not retrained; every scored config is appended to `known` (repeats included, as
/// the final re-validation counts them). Stops early, with the phases done so far, once
/// `max_trials` new trainings have run.
#[allow(clippy::too_many_arguments)]
pub fn phase_pass(
    t: &dyn LmTrainer,
    phases: &[Group],
    mut best: LmConfig,
    mut best_loss: f64,
    steps: usize,
    seed: u64,
    known: &mut Vec<(LmConfig, f64)>,
    max_trials: usize,
) -> Result<(Vec<PhaseResult>, LmConfig, f64), LmError> {
    let mut out = Vec::new();
    let mut trained = 0;
    for &g in phases {
        if !t.supports(g) {
            out.push(PhaseResult {
                group: Some(g),
                tried: Vec::new(),
                best_loss: f64::NAN,
                skipped: true,
            });
            continue;
        }
        let mut tried = Vec::new();
        for c in t.variants(g, &best) {
            let l = match known.iter().find(|(a, _)| *a == c) {
                Some((_, l)) => *l,
                None if trained >= max_trials => break,
                None => {
                    trained += 1;
                    t.train_eval(&c, steps, seed)?
                }
            };
            known.push((c.clone(), l));
            tried.push((c, l));
        }
        if tried.is_empty() {
            break;
        }
        let phase_best = tried.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
        if let Some((c, l)) = tried.iter().find(|x| x.1 == phase_best) {
            if *l < best_loss {
                best = c.clone();
                best_loss = *l;
            }
        }
        out.push(PhaseResult {
            group: Some(g),
            tried,
            best_loss: phase_best,
            skipped: false,
        });
    }
    Ok((out, best, best_loss))
}

/// Runs the phase-wise search: `steps` per config, top-3 re-validated at `4 × steps`.
pub fn phase_search(
    t: &dyn LmTrainer,
    start: LmConfig,
    steps: usize,
    seed: u64,
) -> Result<PhaseSearch, LmError> {
    let start_loss = t.train_eval(&start, steps, seed)?;
    let mut all: Vec<(LmConfig, f64)> = vec![(start.clone(), start_loss)];
    let (mut phases, _, _) = phase_pass(
        t,
        &PHASES,
        start,
        start_loss,
        steps,
        seed,
        &mut all,
        usize::MAX,
    )?;
    // Final: top-3 distinct configs at 4× steps.
    all.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut top: Vec<LmConfig> = Vec::new();
    for (c, _) in &all {
        if !top.contains(c) {
            top.push(c.clone());
        }
        if top.len() == 3 {
            break;
        }
    }
    let mut fin = Vec::new();
    for c in top {
        let l = t.train_eval(&c, steps * 4, seed)?;
        fin.push((c, l));
    }
    let (best, best_loss) = fin
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .cloned()
        .ok_or_else(|| LmError("no final candidates".into()))?;
    phases.push(PhaseResult {
        group: None,
        tried: fin,
        best_loss,
        skipped: false,
    });
    Ok(PhaseSearch {
        phases,
        best,
        best_loss,
    })
}

/// A small real character n-gram language model (order = `context` previous characters,
/// hashed into `d_model × 16` buckets), trained with Adam and a WSD schedule on real text.
/// It uses the LR, schedule, β2/weight decay, context, width and accumulation groups.
pub struct CharNgramTrainer {
    train: Vec<u8>,
    valid: Vec<u8>,
    vocab: Vec<u8>,
}

impl CharNgramTrainer {
    /// Builds from text (last 10 % is validation).
    pub fn new(text: &str) -> Result<Self, LmError> {
        let bytes: Vec<u8> = text
            .bytes()
            .filter(|b| b.is_ascii() && !b.is_ascii_control() || *b == b'\n')
            .collect();
        if bytes.len() < 1000 {
            return Err(LmError("need at least 1000 characters".into()));
        }
        let mut vocab: Vec<u8> = bytes.clone();
        vocab.sort_unstable();
        vocab.dedup();
        let cut = bytes.len() * 9 / 10;
        Ok(CharNgramTrainer {
            train: bytes[..cut].to_vec(),
            valid: bytes[cut..].to_vec(),
            vocab,
        })
    }
    fn idx(&self, b: u8) -> usize {
        self.vocab.binary_search(&b).unwrap_or(0)
    }
    fn bucket(&self, text: &[u8], i: usize, order: usize, buckets: usize) -> usize {
        let mut h: u64 = 1469598103934665603;
        for k in 1..=order {
            let b = if i >= k { text[i - k] } else { 0 };
            h = (h ^ b as u64).wrapping_mul(1099511628211);
        }
        (h % buckets as u64) as usize
    }
}

impl LmTrainer for CharNgramTrainer {
    fn supports(&self, g: Group) -> bool {
        !matches!(g, Group::FfnRatio | Group::GqaRatio)
    }
    fn train_eval(&self, cfg: &LmConfig, steps: usize, seed: u64) -> Result<f64, LmError> {
        let v = self.vocab.len();
        let buckets = (cfg.d_model * 16 / cfg.layers.max(1)).max(16);
        let order = cfg.context.clamp(1, 4);
        let mut w = vec![0.0f64; buckets * v];
        let (mut m1, mut m2) = (vec![0.0; w.len()], vec![0.0; w.len()]);
        let batch = 64;
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let mut g = vec![0.0f64; v];
        let mut p = vec![0.0f64; v];
        for step in 0..steps {
            let frac = step as f64 / steps.max(1) as f64;
            let sched = if frac < cfg.warmup {
                frac / cfg.warmup.max(1e-9)
            } else if frac > 1.0 - cfg.decay {
                (1.0 - frac) / cfg.decay.max(1e-9)
            } else {
                1.0
            };
            let lr = cfg.lr * sched;
            let t = (step + 1) as i32;
            // Accumulated gradient over grad_accum × batch positions (sparse: touched rows only).
            let mut touched: Vec<(usize, Vec<f64>)> = Vec::new();
            for _ in 0..batch * cfg.grad_accum.max(1) {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let i = 1 + (state >> 33) as usize % (self.train.len() - 1);
                let row = self.bucket(&self.train, i, order, buckets);
                let y = self.idx(self.train[i]);
                let r = &w[row * v..(row + 1) * v];
                let mx = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = r.iter().map(|x| (x - mx).exp()).sum();
                for c in 0..v {
                    p[c] = (r[c] - mx).exp() / s;
                    g[c] = p[c] - f64::from(u8::from(c == y));
                }
                match touched.iter_mut().find(|(rr, _)| *rr == row) {
                    Some((_, acc)) => acc.iter_mut().zip(&g).for_each(|(a, b)| *a += b),
                    None => touched.push((row, g.clone())),
                }
            }
            let n = (batch * cfg.grad_accum.max(1)) as f64;
            for (row, acc) in touched {
                for (c, a) in acc.iter().enumerate() {
                    let k = row * v + c;
                    let gr = a / n;
                    m1[k] = 0.9 * m1[k] + 0.1 * gr;
                    m2[k] = cfg.beta2 * m2[k] + (1.0 - cfg.beta2) * gr * gr;
                    let mh = m1[k] / (1.0 - 0.9f64.powi(t));
                    let vh = m2[k] / (1.0 - cfg.beta2.powi(t));
                    w[k] -= lr * (mh / (vh.sqrt() + 1e-8) + cfg.weight_decay * w[k]);
                }
            }
        }
        let mut loss = 0.0;
        let n = self.valid.len().min(20_000);
        for i in 1..n {
            let row = self.bucket(&self.valid, i, order, buckets);
            let r = &w[row * v..(row + 1) * v];
            let mx = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = r.iter().map(|x| (x - mx).exp()).sum();
            loss -= r[self.idx(self.valid[i])] - mx - s.ln();
        }
        Ok(loss / (n - 1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_wise_search_improves_a_real_char_lm_and_carries_the_best_forward() {
        let text = std::fs::read_to_string(
            std::path::Path::new(
                &std::env::var("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../data/text/kjv_head.txt"),
        )
        .unwrap();
        let t = CharNgramTrainer::new(&text).unwrap();
        let start = LmConfig::default();
        let s = phase_search(&t, start.clone(), 60, 1).unwrap();
        let start_loss = t.train_eval(&start, 60, 1).unwrap();
        assert!(
            s.phases.iter().any(|p| p.skipped),
            "FFN/GQA phases are skipped for this trainer"
        );
        assert_eq!(
            s.phases.last().unwrap().tried.len(),
            3,
            "top-3 re-validated"
        );
        assert!(s.best_loss < start_loss, "{} vs {start_loss}", s.best_loss);
        // Carried forward: each phase's variants differ from the running best only in its group.
        let lr_phase = &s.phases[1];
        assert!(lr_phase
            .tried
            .iter()
            .all(|(c, _)| c.warmup == lr_phase.tried[0].0.warmup));
    }
}
