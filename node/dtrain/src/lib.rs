//! # magnet-dtrain — DiLoCo over real BitNet training, in one process
//!
//! Connects the protocol crate (`magnet-diloco`: compression, screening, the outer Nesterov
//! merge) to the training engine (`magnet-bitnet`) without chain or network, so the paper's
//! communication claim can be measured on real models and real text:
//!
//! * [`run_diloco`] — `N` workers, each a real BitNet [`Trainer`] on its own contiguous shard of
//!   the training tokens. Every round each worker loads the global weights, runs `H` inner AdamW
//!   steps (its optimizer state persists across rounds, as in the DiLoCo paper), forms
//!   `Δ_i = θ_global − θ_i`, compresses it to int8 with error feedback and "uploads" the wire
//!   bytes. The leader parses the bytes back, merges with [`magnet_diloco::merge()`] (outer
//!   Nesterov, η = 0.7, μ = 0.9 by default) and every worker "downloads" the merged fp32
//!   parameters.
//! * [`run_ddp`] — synchronous data-parallel training at equal compute: the same number of
//!   optimizer steps and tokens, gradients averaged over the `N` workers every step.
//!
//! # Guarantees
//! Bytes are counted from what crosses the (simulated) wire: an upload is the exact length of
//! the serialised message the leader parsed, a download is `4 × params` (the merged fp32
//! parameters; the outer momentum stays with the leader's checkpoint). The data-parallel count
//! is `4 × params` up and `4 × params` down per worker per step (a parameter server; a ring
//! all-reduce moves `2(N−1)/N` of that each way), see `docs/adr/0080-dtrain-measurement.md`.
//! A worker whose Δ is NaN/Inf is screened out by the merge and recorded as rejected.
//!
//! # Non-guarantees
//! Workers run one after another in this process (the numbers are per-worker bytes and
//! losses, not wall-clock speedups). The data-parallel baseline is computed by one trainer
//! accumulating `N` micro-batches per step: the averaged gradient of `N` workers is exactly
//! that sum, so only the bytes are counted analytically.

#![deny(clippy::unwrap_used)]

use candle_core::Device;
use magnet_bitnet::data::TokenData;
use magnet_bitnet::train::{device, TrainConfig, Trainer};
use magnet_diloco::compress::{CompressError, Compressed, CompressionConfig, Compressor};
use magnet_diloco::merge::{
    apply_step, merge, Contribution, MergeError, MergeMeta, MergePolicy, RoundRecord,
};
use magnet_diloco::{ByteLedger, Checkpoint, NodeId};
use serde::Serialize;

/// Anything that can stop a simulation.
#[derive(Debug, thiserror::Error)]
pub enum DtrainError {
    /// The BitNet engine failed (bad config, shapes, data).
    #[error("bitnet: {0}")]
    Bitnet(#[from] magnet_bitnet::BitnetError),
    /// Compression or parsing of a Δ failed.
    #[error("compression: {0}")]
    Compress(#[from] CompressError),
    /// The merge refused the round.
    #[error("merge: {0}")]
    Merge(#[from] MergeError),
    /// The simulation's own settings are out of range.
    #[error("invalid simulation config: {0}")]
    Config(String),
    /// A downloaded int8 outer step did not rebuild the merged parameters bit for bit (a bug
    /// in the merge or the wire format, never expected).
    #[error("round {round}: the int8 outer step does not rebuild the merged parameters")]
    StepMismatch {
        /// Round.
        round: u64,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, DtrainError>;

/// A deliberately broken worker, to exercise the leader's screening on real rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Fault {
    /// After its real inner steps, the worker's weights are NaN and it sends its Δ as raw
    /// f32 (no compressor would encode a NaN).
    SendsNan,
}

/// One DiLoCo simulation.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The BitNet training config every worker uses (preset, batch, lr, …). `train.steps` is
    /// overwritten with `rounds × inner_steps` so the WSD schedule spans the whole run.
    pub train: TrainConfig,
    /// Number of workers `N` (≥ 1).
    pub workers: usize,
    /// Inner steps per round `H` (≥ 1).
    pub inner_steps: usize,
    /// Outer rounds (≥ 1).
    pub rounds: usize,
    /// int8 compression of uploads; `None` uploads raw f32.
    pub compression: Option<CompressionConfig>,
    /// The outer merge rule.
    pub policy: MergePolicy,
    /// Faulty workers by index.
    pub faults: Vec<(usize, Fault)>,
}

impl SimConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if self.workers == 0 || self.inner_steps == 0 || self.rounds == 0 {
            return Err(DtrainError::Config(
                "workers, inner_steps and rounds must all be positive".into(),
            ));
        }
        if let Some((i, _)) = self.faults.iter().find(|(i, _)| *i >= self.workers) {
            return Err(DtrainError::Config(format!(
                "fault for worker {i}, but there are only {} workers",
                self.workers
            )));
        }
        self.policy.validate()?;
        self.train.validate()?;
        Ok(())
    }

    fn total_steps(&self) -> usize {
        self.rounds * self.inner_steps
    }
}

/// What one worker did in one round.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerRound {
    /// Worker index.
    pub worker: usize,
    /// Mean training loss over its inner steps.
    pub train_loss: f64,
    /// Validation loss of its local model θ_i after the inner steps.
    pub local_val_loss: f64,
    /// Bytes of the upload message the leader parsed.
    pub upload_bytes: u64,
}

/// One outer round.
#[derive(Debug, Clone, Serialize)]
pub struct RoundReport {
    /// 0-based round.
    pub round: u64,
    /// Per worker.
    pub workers: Vec<WorkerRound>,
    /// Validation loss of the merged model.
    pub merged_val_loss: f64,
    /// The merge's record (accepted weights, rejections, hashes).
    #[serde(skip)]
    pub record: RoundRecord,
}

impl RoundReport {
    /// Mean local validation loss of the workers the merge accepted.
    pub fn mean_local_val_loss(&self) -> f64 {
        let acc: Vec<f64> = self
            .workers
            .iter()
            .filter(|w| {
                self.record
                    .accepted
                    .iter()
                    .any(|a| a.node.as_str() == node_name(w.worker))
            })
            .map(|w| w.local_val_loss)
            .collect();
        acc.iter().sum::<f64>() / acc.len().max(1) as f64
    }
}

/// A whole DiLoCo run.
#[derive(Debug, Clone, Serialize)]
pub struct DilocoReport {
    /// Model parameters.
    pub params: u64,
    /// Validation loss of the initial global model.
    pub initial_val_loss: f64,
    /// Per round.
    pub rounds: Vec<RoundReport>,
    /// Bytes per worker, summed over rounds (mean over workers for uploads).
    pub bytes_per_worker: ByteLedger,
    /// Bytes of all workers together.
    pub bytes_total: ByteLedger,
    /// Tokens trained on by all workers together.
    pub tokens: u64,
    /// Validation loss of the final merged model.
    pub final_val_loss: f64,
    /// The final merged parameters and outer momentum.
    #[serde(skip)]
    pub checkpoint: Checkpoint,
}

/// A data-parallel run.
#[derive(Debug, Clone, Serialize)]
pub struct DdpReport {
    /// Model parameters.
    pub params: u64,
    /// Optimizer steps.
    pub steps: u64,
    /// Bytes per worker.
    pub bytes_per_worker: ByteLedger,
    /// Bytes of all workers together.
    pub bytes_total: ByteLedger,
    /// Tokens trained on by all workers together.
    pub tokens: u64,
    /// Final validation loss.
    pub final_val_loss: f64,
}

/// The node id of worker `i` (`w000`, `w001`, …: sorted order is index order).
pub fn node_name(i: usize) -> String {
    format!("w{i:03}")
}

/// Worker `i`'s contiguous share of the training tokens (the validation split is shared).
pub fn shard(data: &TokenData, i: usize, n: usize) -> TokenData {
    let len = data.train.len();
    let (a, b) = (len * i / n, len * (i + 1) / n);
    let mut d = data.clone();
    d.train = data.train[a..b].to_vec();
    d.meta.train_tokens = d.train.len();
    d
}

fn worker_config(sim: &SimConfig, i: usize) -> TrainConfig {
    let mut c = sim.train.clone();
    c.train.steps = sim.total_steps();
    // Each worker samples its own shard in its own order.
    c.train.seed = sim.train.train.seed.wrapping_add(1 + i as u64);
    c
}

fn tokens_per_step(c: &TrainConfig) -> u64 {
    (c.train.batch_size * c.train.seq_len * c.train.grad_accum) as u64
}

/// Runs DiLoCo: `rounds` rounds of `H` inner steps on `N` workers, merged by `policy`.
/// `on_step` is called after every inner step (for progress bars).
pub fn run_diloco(
    sim: &SimConfig,
    data: &TokenData,
    mut on_step: impl FnMut(),
) -> Result<DilocoReport> {
    sim.validate()?;
    let dev: Device = device(&sim.train.train.device)?;
    // The initial global model comes from the base seed; the evaluator only evaluates.
    let mut base_cfg = sim.train.clone();
    base_cfg.train.steps = sim.total_steps();
    let evaluator = Trainer::new(base_cfg, data.clone(), dev.clone())?;
    let mut global = Checkpoint::new(evaluator.params().params_to_vec()?);
    let params = global.len() as u64;
    let initial_val_loss = evaluator.eval()?;
    let mut workers = Vec::with_capacity(sim.workers);
    let mut compressors = Vec::with_capacity(sim.workers);
    for i in 0..sim.workers {
        workers.push(Trainer::new(
            worker_config(sim, i),
            shard(data, i, sim.workers),
            dev.clone(),
        )?);
        compressors.push(match sim.compression {
            Some(c) => Some(Compressor::new(c, global.len())?),
            None => None,
        });
    }
    let leader = NodeId::new(node_name(0)).map_err(|e| DtrainError::Config(e.to_string()))?;
    let mut rounds = Vec::with_capacity(sim.rounds);
    let mut per_worker_up = vec![0u64; sim.workers];
    let mut down_total = 0u64;
    for r in 0..sim.rounds {
        let mut contributions = Vec::with_capacity(sim.workers);
        let mut wr = Vec::with_capacity(sim.workers);
        for (i, (tr, comp)) in workers.iter_mut().zip(compressors.iter_mut()).enumerate() {
            tr.params().load_from_vec(&global.params)?;
            let mut loss = 0.0;
            for _ in 0..sim.inner_steps {
                loss += tr.train_step()?.loss;
                on_step();
            }
            let fault = sim.faults.iter().find(|(w, _)| *w == i).map(|(_, f)| *f);
            let mut local = tr.params().params_to_vec()?;
            if fault == Some(Fault::SendsNan) {
                local.iter_mut().for_each(|x| *x = f32::NAN);
            }
            let local_val_loss = if fault.is_some() {
                f64::NAN
            } else {
                tr.eval()?
            };
            let delta: Vec<f32> = global
                .params
                .iter()
                .zip(&local)
                .map(|(g, l)| g - l)
                .collect();
            // The upload: serialise, count, and parse back as the leader would.
            let (wire, decoded) = match (comp.as_mut(), fault) {
                (Some(c), None) => {
                    let msg = c.compress(&delta)?;
                    let wire = msg.to_bytes();
                    let parsed = Compressed::from_bytes(&wire)?;
                    (wire.len() as u64, parsed.decode())
                }
                _ => {
                    let wire: Vec<u8> = delta.iter().flat_map(|x| x.to_le_bytes()).collect();
                    let parsed: Vec<f32> = wire
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                    (wire.len() as u64, parsed)
                }
            };
            per_worker_up[i] += wire;
            let node = NodeId::new(node_name(i)).map_err(|e| DtrainError::Config(e.to_string()))?;
            let data_size = (sim.inner_steps as u64) * tokens_per_step(tr.config());
            contributions.push(Contribution::new(node, decoded, data_size, 10_000));
            wr.push(WorkerRound {
                worker: i,
                train_loss: loss / sim.inner_steps as f64,
                local_val_loss,
                upload_bytes: wire,
            });
        }
        let meta = MergeMeta {
            job_id: 0,
            round: r as u64,
            leader: leader.clone(),
        };
        let out = merge(&global, &contributions, &sim.policy, &meta)?;
        // Every worker downloads the merged fp32 parameters, or, with an int8 outer step
        // (`policy.update_chunk > 0`), only that step, applied to the base it already holds.
        let download = match &out.step {
            Some(step) => {
                let wire = step.to_bytes();
                let parsed = Compressed::from_bytes(&wire)?;
                let applied = apply_step(&global.params, &parsed);
                if applied != out.checkpoint.params {
                    return Err(DtrainError::StepMismatch { round: r as u64 });
                }
                wire.len() as u64
            }
            None => 4 * params,
        };
        down_total += download * sim.workers as u64;
        global = out.checkpoint;
        evaluator.params().load_from_vec(&global.params)?;
        let merged_val_loss = evaluator.eval()?;
        tracing::info!(round = r, merged_val_loss, "diloco round merged");
        rounds.push(RoundReport {
            round: r as u64,
            workers: wr,
            merged_val_loss,
            record: out.record,
        });
    }
    let up_total: u64 = per_worker_up.iter().sum();
    let n = sim.workers as u64;
    let final_val_loss = rounds
        .last()
        .map_or(initial_val_loss, |r| r.merged_val_loss);
    let tokens = n * sim.total_steps() as u64 * tokens_per_step(&sim.train);
    Ok(DilocoReport {
        params,
        initial_val_loss,
        rounds,
        bytes_per_worker: ByteLedger {
            up: up_total / n,
            down: down_total / n,
        },
        bytes_total: ByteLedger {
            up: up_total,
            down: down_total,
        },
        tokens,
        final_val_loss,
        checkpoint: global,
    })
}

/// Synchronous data-parallel training at equal compute to [`run_diloco`] with the same
/// `sim`: `rounds × H` optimizer steps, each on `N` micro-batches (one per worker) whose
/// gradients are averaged. `on_step` is called after every step.
pub fn run_ddp(sim: &SimConfig, data: &TokenData, mut on_step: impl FnMut()) -> Result<DdpReport> {
    sim.validate()?;
    let dev = device(&sim.train.train.device)?;
    let mut cfg = sim.train.clone();
    let steps = sim.total_steps();
    cfg.train.steps = steps;
    cfg.train.grad_accum = sim.train.train.grad_accum * sim.workers;
    let mut tr = Trainer::new(cfg, data.clone(), dev)?;
    let params = tr.params().num_params() as u64;
    for _ in 0..steps {
        tr.train_step()?;
        on_step();
    }
    let final_val_loss = tr.eval()?;
    let n = sim.workers as u64;
    let per = magnet_diloco::compress::ddp_bytes_per_worker(params, steps as u64);
    Ok(DdpReport {
        params,
        steps: steps as u64,
        bytes_per_worker: per,
        bytes_total: ByteLedger {
            up: per.up * n,
            down: per.down * n,
        },
        tokens: n * steps as u64 * tokens_per_step(&sim.train),
        final_val_loss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnet_bitnet::data::ShardMeta;

    fn data(n: usize) -> TokenData {
        TokenData {
            dir: "synthetic".into(),
            meta: ShardMeta {
                vocab_size: 300,
                train_tokens: n,
                val_tokens: 0,
                train_shards: vec![],
                val_shards: vec![],
                val_every: 20,
            },
            train: (0..n as u32).collect(),
            val: vec![],
        }
    }

    #[test]
    fn shards_partition_the_training_tokens() {
        let d = data(1003);
        let parts: Vec<u32> = (0..4).flat_map(|i| shard(&d, i, 4).train).collect();
        assert_eq!(parts, d.train);
    }

    #[test]
    fn out_of_range_settings_are_typed_errors() {
        let ok = SimConfig {
            train: TrainConfig::default(),
            workers: 2,
            inner_steps: 2,
            rounds: 1,
            compression: Some(CompressionConfig::default()),
            policy: MergePolicy::default(),
            faults: vec![],
        };
        assert!(ok.validate().is_ok());
        let cases: Vec<(&str, SimConfig)> = vec![
            (
                "no workers",
                SimConfig {
                    workers: 0,
                    ..ok.clone()
                },
            ),
            (
                "no inner steps",
                SimConfig {
                    inner_steps: 0,
                    ..ok.clone()
                },
            ),
            (
                "no rounds",
                SimConfig {
                    rounds: 0,
                    ..ok.clone()
                },
            ),
            (
                "fault out of range",
                SimConfig {
                    faults: vec![(2, Fault::SendsNan)],
                    ..ok.clone()
                },
            ),
            (
                "bad policy",
                SimConfig {
                    policy: MergePolicy {
                        momentum_permille: 1000,
                        ..MergePolicy::default()
                    },
                    ..ok.clone()
                },
            ),
        ];
        for (name, c) in cases {
            assert!(c.validate().is_err(), "{name} must be rejected");
        }
    }
}
