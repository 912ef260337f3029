//! In-process ternary inference: load a GGUF written by [`crate::export`] (or an HF folder), run
//! token-by-token decoding with a KV cache, and sample.
//!
//! Per token: embedding row → L × [RMSNorm → int8 activations → ternary q/k/v (SIMD kernel) →
//! interleaved RoPE (llama.cpp layout, as stored in the GGUF) → GQA attention over the cache →
//! int8 → ternary o-projection → residual; RMSNorm → int8 → ternary gate/up → SiLU·up → int8 →
//! ternary down → residual] → RMSNorm → f32 head.
//!
//! It computes the same function as the candle training forward (same quantizers, same f16
//! weight scale); the logits agree to float rounding. The head stays in f32 (or Q8_0).
//!
//! Weights and sequence state are separate: a [`Sequence`] holds one request's KV cache and
//! position, and [`Engine::forward_batch`] steps several sequences at once (continuous batching:
//! a server's decode thread adds and drops sequences between steps). Every ternary projection of
//! a step runs as one matrix-matrix product over the batch ([`crate::kernel::matmul`]: each weight
//! row is read once per step for all sequences); attention runs per sequence over its own cache.
//! A sequence's logits do not depend on what else is in the batch: they equal, bit for bit, those
//! of feeding it alone ([`Engine::forward`], which is a batch of one over the engine's own
//! sequence). [`Engine::prefill`] feeds a prompt in chunks through the same path (a chunk is a
//! batch of consecutive positions of one sequence, again bit-identical to token-by-token
//! feeding) and computes the head only for the last token.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::ModelConfig;
use crate::error::{BitnetError, Result};
use crate::gguf::{GgmlType, GgufFile};
use crate::kernel::{
    matmul, matmul_f32, matvec, quantize_acts, quantize_acts_into, Kernel, QuantizedActs,
    TernaryMatrix,
};
use crate::team::Team;
use crate::tokenizer::Tokenizer;

struct Layer {
    attn_norm: Vec<f32>,
    /// q, k and v stacked (they read the same activations): one product instead of three.
    qkv: TernaryMatrix,
    o: TernaryMatrix,
    ffn_norm: Vec<f32>,
    /// gate and up stacked, likewise.
    gate_up: TernaryMatrix,
    down: TernaryMatrix,
}

/// An embedding or head matrix `(vocab, d)`: f32 (from F32/F16 files) or kept as Q8_0 blocks.
enum Table {
    F32(Vec<f32>),
    Q8(crate::kernel::Q8Matrix),
}

impl Table {
    fn load(g: &GgufFile, name: &str, d: usize, vocab: usize) -> Result<Self> {
        let t = g.tensor_info(name)?;
        if t.dims != [d as u64, vocab as u64] {
            return Err(BitnetError::Model(format!(
                "tensor {name} has dims {:?}, want [{d}, {vocab}]",
                t.dims
            )));
        }
        Ok(match t.ty {
            GgmlType::Q8_0 => Table::Q8(crate::kernel::Q8Matrix::from_q8_0(
                g.tensor_bytes(name)?,
                d,
            )?),
            _ => Table::F32(g.tensor_f32(name)?),
        })
    }

    /// Appends row `r` to `out`.
    fn row_into(&self, r: usize, d: usize, out: &mut Vec<f32>) {
        match self {
            Table::F32(w) => out.extend_from_slice(&w[r * d..(r + 1) * d]),
            Table::Q8(m) => out.extend(m.row(r)),
        }
    }

    fn nbytes(&self) -> usize {
        match self {
            Table::F32(w) => w.len() * 4,
            Table::Q8(m) => m.nbytes(),
        }
    }

    fn matvec(&self, d: usize, x: &[f32], out: &mut [f32], team: Option<&Team>) {
        self.matmul(d, &[x], &mut [out], team)
    }

    /// `outs[j] = W xs[j]`, each equal to its [`Table::matvec`] bit for bit.
    fn matmul(&self, d: usize, xs: &[&[f32]], outs: &mut [&mut [f32]], team: Option<&Team>) {
        match self {
            Table::F32(w) => matmul_f32(w, d, xs, outs, team),
            Table::Q8(m) => m.matmul(xs, outs, team),
        }
    }
}

/// Tokens of one prompt that [`Engine::prefill`] runs through the model as one batch (bounds the
/// step buffers: a few MB at the largest preset).
const PREFILL_CHUNK: usize = 32;

/// Per-request decode state: its own KV cache and position. [`Engine::new_sequence`] makes one;
/// [`Engine::forward_batch`] and [`Engine::prefill`] feed it. It holds no weights, so a server
/// keeps one per request and steps many of them together on one engine.
#[derive(Clone, PartialEq)]
pub struct Sequence {
    /// Per layer: the keys of every position so far (`pos × kv_dim` values).
    kcache: Vec<Vec<f32>>,
    /// Per layer: the values, likewise.
    vcache: Vec<Vec<f32>>,
    /// Tokens in the cache.
    pos: usize,
    /// The key/value width of the model that made it (checked on every step).
    kv_dim: usize,
}

impl std::fmt::Debug for Sequence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequence")
            .field("pos", &self.pos)
            .field("layers", &self.kcache.len())
            .field("kv_dim", &self.kv_dim)
            .finish()
    }
}

impl Sequence {
    /// An empty cache for `layers` layers of width `kv_dim`, with room for `tokens` positions.
    fn with_capacity(layers: usize, kv_dim: usize, tokens: usize) -> Self {
        let kcache = vec![Vec::with_capacity(tokens * kv_dim); layers];
        Self {
            vcache: kcache.clone(),
            kcache,
            pos: 0,
            kv_dim,
        }
    }

    /// Tokens in the cache (the position the next token is fed at).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes of KV cache the sequence holds: [`Engine::kv_bytes_per_token`] × [`Sequence::position`].
    pub fn kv_bytes(&self) -> usize {
        self.kcache
            .iter()
            .chain(&self.vcache)
            .map(|c| c.len() * std::mem::size_of::<f32>())
            .sum()
    }

    /// Empties the cache (keeping its memory) so the sequence can serve a new request.
    pub fn reset(&mut self) {
        self.truncate(0);
    }

    /// Forgets every position from `pos` on.
    fn truncate(&mut self, pos: usize) {
        let len = pos * self.kv_dim;
        self.kcache
            .iter_mut()
            .chain(self.vcache.iter_mut())
            .for_each(|c| c.truncate(len));
        self.pos = self.pos.min(pos);
    }
}

/// A loaded model, its decode threads and one sequence of its own (for [`Engine::forward`]).
pub struct Engine {
    cfg: ModelConfig,
    embed: Table,
    head: Option<Table>,
    norm: Vec<f32>,
    layers: Vec<Layer>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// The sequence [`Engine::forward`], [`Engine::generate`] and [`Engine::reset`] work on.
    seq: Sequence,
    kernel: Kernel,
    team: Option<Team>,
    tokenizer: Option<Tokenizer>,
    scratch: Scratch,
}

/// Per-step buffers, reused from step to step so decode allocates little besides the logits.
/// Per-token quantities hold one row per token of the step (`tokens × width`, token-major).
#[derive(Default)]
struct Scratch {
    /// The residual stream.
    x: Vec<f32>,
    /// One token's normed activations.
    hn: Vec<f32>,
    /// One quantized activation vector per token.
    acts: Vec<QuantizedActs>,
    /// q | k | v.
    qkv: Vec<f32>,
    att: Vec<f32>,
    scores: Vec<f32>,
    o: Vec<f32>,
    /// gate | up; SiLU(gate)·up is written over the gate half.
    gate_up: Vec<f32>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("cfg", &self.cfg)
            .field("kernel", &self.kernel)
            .field("pos", &self.seq.pos)
            .finish()
    }
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let mut out = Vec::new();
    rms_norm_into(x, w, eps, &mut out);
    out
}

fn rms_norm_into(x: &[f32], w: &[f32], eps: f32, out: &mut Vec<f32>) {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32 + eps;
    let r = ms.sqrt();
    out.clear();
    out.extend(x.iter().zip(w).map(|(v, g)| v / r * g));
}

/// The attention geometry of one layer.
#[derive(Clone, Copy)]
struct AttnShape {
    /// Query heads per KV head.
    rep: usize,
    hd: usize,
    kv_dim: usize,
    scale: f32,
}

/// What one attention call reads: the layer's geometry, the first head it computes, the token's
/// queries and the layer's key and value caches.
#[derive(Clone, Copy)]
struct AttnInputs<'a> {
    sh: AttnShape,
    h0: usize,
    q: &'a [f32],
    kc: &'a [f32],
    vc: &'a [f32],
}

/// Causal attention of one token over the `scores.len()` cached positions, added into `att`,
/// for the heads whose outputs `att` holds, starting at head `inp.h0` (`att` is a whole number
/// of heads long; decode splits the heads over its team). Runs the AVX2 build of the same code
/// where the CPU has it: the same operations in the same order (no FMA), so both give the same
/// bits; only the vector width differs.
fn attend(inp: AttnInputs, scores: &mut [f32], att: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (detected at run time just above).
        return unsafe { attend_avx2(inp, scores, att) };
    }
    attend_body(inp, scores, att)
}

/// [`attend_body`] compiled for AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn attend_avx2(inp: AttnInputs, scores: &mut [f32], att: &mut [f32]) {
    attend_body(inp, scores, att)
}

#[inline(always)]
fn attend_body(inp: AttnInputs, scores: &mut [f32], att: &mut [f32]) {
    let AttnInputs { sh, h0, q, kc, vc } = inp;
    let (hd, kv_dim) = (sh.hd, sh.kv_dim);
    for head in h0..h0 + att.len() / hd {
        let g = head / sh.rep;
        let qh = &q[head * hd..(head + 1) * hd];
        for (tpos, s) in scores.iter_mut().enumerate() {
            let kt = &kc[tpos * kv_dim + g * hd..tpos * kv_dim + (g + 1) * hd];
            *s = dot_f32(qh, kt) * sh.scale;
        }
        let mx = scores.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
        let mut z = 0f32;
        for s in scores.iter_mut() {
            *s = (*s - mx).exp();
            z += *s;
        }
        let out = &mut att[(head - h0) * hd..(head - h0 + 1) * hd];
        for (tpos, s) in scores.iter().enumerate() {
            let p = s / z;
            let vt = &vc[tpos * kv_dim + g * hd..tpos * kv_dim + (g + 1) * hd];
            for (o, vv) in out.iter_mut().zip(vt) {
                *o += p * vv;
            }
        }
    }
}

/// `Σ a_i·b_i` in eight interleaved partial sums (so the compiler vectorizes it; a single running
/// sum is a chain of dependent additions), reduced in a fixed tree.
#[inline(always)]
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (ac, bc) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += ac[i] * bc[i];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for i in a.len() / 8 * 8..a.len().min(b.len()) {
        s += a[i] * b[i];
    }
    s
}

/// Decoding knobs. `temperature == 0` is greedy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Softmax temperature (0: argmax).
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set with probability ≥ `top_p` (1: all).
    pub top_p: f32,
    /// RNG seed.
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

/// Index of the largest logit (lowest index on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in logits.iter().enumerate() {
        if *v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// A seeded sampler.
#[derive(Debug, Clone)]
pub struct Sampler {
    cfg: Sampling,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// A sampler; same seed, same choices.
    pub fn new(cfg: Sampling) -> Self {
        Self {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
        }
    }

    /// Picks the next token.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.cfg.temperature <= 0.0 {
            return argmax(logits);
        }
        let mut idx: Vec<usize> = (0..logits.len()).collect();
        idx.sort_by(|a, b| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b)));
        if self.cfg.top_k > 0 {
            idx.truncate(self.cfg.top_k);
        }
        let mx = logits[idx[0]];
        let mut p: Vec<f64> = idx
            .iter()
            .map(|i| (((logits[*i] - mx) / self.cfg.temperature) as f64).exp())
            .collect();
        let z: f64 = p.iter().sum();
        p.iter_mut().for_each(|v| *v /= z);
        if self.cfg.top_p < 1.0 {
            let mut cum = 0.0;
            let mut keep = p.len();
            for (i, v) in p.iter().enumerate() {
                cum += v;
                if cum >= self.cfg.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            p.truncate(keep);
            let z: f64 = p.iter().sum();
            p.iter_mut().for_each(|v| *v /= z);
        }
        let u: f64 = self.rng.gen();
        let mut cum = 0.0;
        for (i, v) in p.iter().enumerate() {
            cum += v;
            if u < cum {
                return idx[i] as u32;
            }
        }
        idx[p.len() - 1] as u32
    }
}

impl Engine {
    /// Loads a GGUF file from [`crate::export`] with `threads` worker threads (1: none).
    pub fn load_gguf(path: &Path, threads: usize) -> Result<Self> {
        Self::from_gguf(&GgufFile::open(path)?, threads)
    }

    /// Loads an HF folder from [`crate::export::export_hf`] (converted in memory to the GGUF form).
    pub fn load_hf(dir: &Path, threads: usize) -> Result<Self> {
        let m = crate::export::load_hf(dir)?;
        let bytes = crate::export::gguf_writer(&m, GgmlType::F32)?.to_bytes()?;
        Self::from_gguf(&GgufFile::parse(bytes)?, threads)
    }

    /// Loads a model file: a `.gguf` file or an HF folder.
    pub fn load(path: &Path, threads: usize) -> Result<Self> {
        if path.is_dir() {
            Self::load_hf(path, threads)
        } else {
            Self::load_gguf(path, threads)
        }
    }

    /// Builds the engine from a parsed GGUF.
    pub fn from_gguf(g: &GgufFile, threads: usize) -> Result<Self> {
        let arch = g
            .get("general.architecture")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if arch != "llama" {
            return Err(BitnetError::Model(format!(
                "architecture {arch:?} is not supported (want \"llama\")"
            )));
        }
        let u = |k: &str| -> Result<usize> { Ok(g.get_u64(&format!("llama.{k}"))? as usize) };
        let embed_info = g.tensor_info("token_embd.weight")?.clone();
        let vocab = embed_info.dims.get(1).copied().unwrap_or(0) as usize;
        let cfg = ModelConfig {
            vocab_size: vocab,
            hidden_size: u("embedding_length")?,
            num_layers: u("block_count")?,
            num_heads: u("attention.head_count")?,
            num_kv_heads: u("attention.head_count_kv")?,
            intermediate_size: u("feed_forward_length")?,
            max_seq_len: u("context_length")?,
            rms_norm_eps: g.get_f64("llama.attention.layer_norm_rms_epsilon")?,
            rope_theta: g.get_f64("llama.rope.freq_base").unwrap_or(10_000.0),
            tie_embeddings: g.tensor_info("output.weight").is_err(),
            quantized: true,
        };
        cfg.validate()?;
        if g.get_u64("llama.rope.dimension_count")
            .map(|v| v as usize)
            .unwrap_or(cfg.head_dim())
            != cfg.head_dim()
        {
            return Err(BitnetError::Model(
                "partial RoPE (rope.dimension_count ≠ head_dim) is not supported".into(),
            ));
        }
        let d = cfg.hidden_size;
        let f32_of = |name: &str, want: &[u64]| -> Result<Vec<f32>> {
            let t = g.tensor_info(name)?;
            if t.dims != want {
                return Err(BitnetError::Model(format!(
                    "tensor {name} has dims {:?}, want {want:?}",
                    t.dims
                )));
            }
            g.tensor_f32(name)
        };
        let tern = |name: &str, rows: usize, cols: usize| -> Result<TernaryMatrix> {
            let t = g.tensor_info(name)?;
            if t.ty != GgmlType::Tq2_0 {
                return Err(BitnetError::Model(format!(
                    "tensor {name} is {:?}; this engine runs TQ2_0 ternary linears only (float twins run in llama.cpp)",
                    t.ty
                )));
            }
            if t.dims != [cols as u64, rows as u64] {
                return Err(BitnetError::Model(format!(
                    "tensor {name} has dims {:?}, want [{cols}, {rows}]",
                    t.dims
                )));
            }
            TernaryMatrix::from_tq2_0(g.tensor_bytes(name)?, rows, cols)
        };
        let (kv, ff) = (cfg.kv_dim(), cfg.intermediate_size);
        let mut layers = Vec::new();
        for l in 0..cfg.num_layers {
            let n = |s: &str| format!("blk.{l}.{s}.weight");
            let (q, k, v) = (
                tern(&n("attn_q"), d, d)?,
                tern(&n("attn_k"), kv, d)?,
                tern(&n("attn_v"), kv, d)?,
            );
            let (gate, up) = (tern(&n("ffn_gate"), ff, d)?, tern(&n("ffn_up"), ff, d)?);
            layers.push(Layer {
                attn_norm: f32_of(&n("attn_norm"), &[d as u64])?,
                qkv: TernaryMatrix::stack(&[&q, &k, &v])?,
                o: tern(&n("attn_output"), d, d)?,
                ffn_norm: f32_of(&n("ffn_norm"), &[d as u64])?,
                gate_up: TernaryMatrix::stack(&[&gate, &up])?,
                down: tern(&n("ffn_down"), d, ff)?,
            });
        }
        let embed = Table::load(g, "token_embd.weight", d, vocab)?;
        let head = if cfg.tie_embeddings {
            None
        } else {
            Some(Table::load(g, "output.weight", d, vocab)?)
        };
        let norm = f32_of("output_norm.weight", &[d as u64])?;
        let (cos, sin) = crate::model::rope_tables(&cfg);
        let tokenizer = gguf_tokenizer(g).ok();
        let team = if threads > 1 {
            Some(Team::new(threads)?)
        } else {
            None
        };
        let seq = Sequence::with_capacity(cfg.num_layers, kv, cfg.max_seq_len);
        Ok(Self {
            cfg,
            embed,
            head,
            norm,
            layers,
            cos,
            sin,
            seq,
            kernel: Kernel::best(),
            team,
            tokenizer,
            scratch: Scratch::default(),
        })
    }

    /// The model's shape.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The tokenizer stored in the file, when it has one.
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.tokenizer.as_ref()
    }

    /// Selects the matvec kernel (must be in [`Kernel::available`]).
    pub fn set_kernel(&mut self, k: Kernel) -> Result<()> {
        if !Kernel::available().contains(&k) {
            return Err(BitnetError::Model(format!(
                "kernel {k:?} is not supported by this CPU"
            )));
        }
        self.kernel = k;
        Ok(())
    }

    /// The kernel in use.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Bytes of ternary weights read per token (for the bandwidth bound).
    pub fn ternary_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.qkv.nbytes() + l.o.nbytes() + l.gate_up.nbytes() + l.down.nbytes())
            .sum()
    }

    /// Bytes of head weights read per token.
    pub fn head_bytes(&self) -> usize {
        self.head.as_ref().unwrap_or(&self.embed).nbytes()
    }

    /// Runs every ternary matrix-vector product of one token once (benchmarks).
    pub fn ternary_matvec_pass(&self) -> Result<()> {
        let c = &self.cfg;
        let xd: Vec<f32> = (0..c.hidden_size)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let xf: Vec<f32> = (0..c.intermediate_size)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let (ad, af) = (quantize_acts(&xd), quantize_acts(&xf));
        let mut o_d = vec![0f32; c.hidden_size];
        let mut o_qkv = vec![0f32; c.hidden_size + 2 * c.kv_dim()];
        let mut o_f = vec![0f32; 2 * c.intermediate_size];
        let p = self.team.as_ref();
        for l in &self.layers {
            matvec(self.kernel, &l.qkv, &ad, &mut o_qkv, p)?;
            matvec(self.kernel, &l.o, &ad, &mut o_d, p)?;
            matvec(self.kernel, &l.gate_up, &ad, &mut o_f, p)?;
            matvec(self.kernel, &l.down, &af, &mut o_d, p)?;
        }
        std::hint::black_box((&o_d, &o_qkv, &o_f));
        Ok(())
    }

    /// Runs the output head's matrix-vector product of one token once (benchmarks).
    pub fn head_matvec_pass(&self) {
        let c = &self.cfg;
        let x: Vec<f32> = (0..c.hidden_size)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let mut logits = vec![0f32; c.vocab_size];
        self.head.as_ref().unwrap_or(&self.embed).matvec(
            c.hidden_size,
            &x,
            &mut logits,
            self.team.as_ref(),
        );
        std::hint::black_box(&logits);
    }

    /// Clears the engine's own KV cache (the one [`Engine::forward`] feeds).
    pub fn reset(&mut self) {
        self.seq.reset();
    }

    /// Tokens in the engine's own cache.
    pub fn position(&self) -> usize {
        self.seq.pos
    }

    /// An empty sequence for this model; its cache grows with the tokens fed to it (see
    /// [`Engine::kv_bytes_per_token`]).
    pub fn new_sequence(&self) -> Sequence {
        Sequence::with_capacity(self.cfg.num_layers, self.cfg.kv_dim(), 0)
    }

    /// Bytes of KV cache one token costs (all layers, K and V, f32): lets a server budget memory.
    pub fn kv_bytes_per_token(&self) -> usize {
        self.cfg.num_layers * 2 * self.cfg.kv_dim() * std::mem::size_of::<f32>()
    }

    /// Feeds one token to the engine's own sequence at its next position and returns the
    /// next-token logits (a batch of one: see [`Engine::forward_batch`]).
    pub fn forward(&mut self, token: u32) -> Result<Vec<f32>> {
        self.with_own_sequence(|e, seq| e.prefill(seq, &[token]))
    }

    /// One decode step for several sequences at once: feeds `tokens[i]` to `seqs[i]` at its own
    /// next position and returns each one's next-token logits (`logits[i].len() == vocab`). Every
    /// ternary projection (qkv, o, gate_up, down) runs as one matrix-matrix product over the
    /// batch, so each weight row is read once per step for all sequences; attention runs per
    /// sequence over its own cache. Each sequence's logits equal, bit for bit, those of feeding
    /// it alone. Errors (a token out of the vocabulary, a full context, `tokens` and `seqs` of
    /// different lengths, a sequence made by another model) leave every sequence unchanged.
    pub fn forward_batch(
        &mut self,
        seqs: &mut [&mut Sequence],
        tokens: &[u32],
    ) -> Result<Vec<Vec<f32>>> {
        if tokens.len() != seqs.len() {
            return Err(BitnetError::Model(format!(
                "a batch of {} sequences was given {} tokens (want one each)",
                seqs.len(),
                tokens.len()
            )));
        }
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let slots: Vec<(usize, u32)> = tokens.iter().copied().enumerate().collect();
        self.check_step(seqs, &slots)?;
        self.step(seqs, &slots)
    }

    /// Feeds a whole prompt into one sequence and returns the logits after its last token. The
    /// prompt runs in chunks of consecutive positions through the batched products; the result
    /// (logits and cache) equals, bit for bit, feeding the tokens one at a time. Errors (an empty
    /// prompt, a token out of the vocabulary, a prompt that does not fit the context) leave the
    /// sequence unchanged.
    pub fn prefill(&mut self, seq: &mut Sequence, tokens: &[u32]) -> Result<Vec<f32>> {
        if tokens.is_empty() {
            return Err(BitnetError::Model("the prompt has no tokens".into()));
        }
        let slots: Vec<(usize, u32)> = tokens.iter().map(|t| (0, *t)).collect();
        let mut seqs = [seq];
        self.check_step(&seqs, &slots)?;
        let start = seqs[0].pos;
        let mut logits = Vec::new();
        for chunk in slots.chunks(PREFILL_CHUNK) {
            match self.step(&mut seqs, chunk) {
                Ok(mut l) => logits = l.pop().unwrap_or_default(),
                Err(e) => {
                    seqs[0].truncate(start);
                    return Err(e);
                }
            }
        }
        Ok(logits)
    }

    /// Runs `f` on the engine's own sequence (taken out for the call, so `f` may borrow the
    /// engine mutably).
    fn with_own_sequence<T>(
        &mut self,
        f: impl FnOnce(&mut Self, &mut Sequence) -> Result<T>,
    ) -> Result<T> {
        let mut seq = std::mem::replace(&mut self.seq, Sequence::with_capacity(0, 0, 0));
        let out = f(self, &mut seq);
        self.seq = seq;
        out
    }

    /// Checks a step before it changes anything: slot `(i, token)` feeds `token` to `seqs[i]`.
    fn check_step(&self, seqs: &[&mut Sequence], slots: &[(usize, u32)]) -> Result<()> {
        let c = &self.cfg;
        let mut fed = vec![0usize; seqs.len()];
        for &(i, token) in slots {
            if token as usize >= c.vocab_size {
                return Err(BitnetError::Model(format!(
                    "token {token} (sequence {i} of the batch) is outside the vocabulary of {}",
                    c.vocab_size
                )));
            }
            match fed.get_mut(i) {
                Some(n) => *n += 1,
                None => {
                    return Err(BitnetError::Model(format!(
                        "a step names sequence {i} of a batch of {}",
                        seqs.len()
                    )))
                }
            }
        }
        for (i, (seq, n)) in seqs.iter().zip(fed).enumerate() {
            if seq.kcache.len() != c.num_layers || seq.kv_dim != c.kv_dim() {
                return Err(BitnetError::Model(format!(
                    "sequence {i} of the batch was made for another model ({} layers × KV width {}; this one: {} × {})",
                    seq.kcache.len(),
                    seq.kv_dim,
                    c.num_layers,
                    c.kv_dim()
                )));
            }
            if seq.pos + n > c.max_seq_len {
                return Err(BitnetError::Model(format!(
                    "context is full: sequence {i} of the batch holds {} of {} tokens and was given {n} more",
                    seq.pos, c.max_seq_len
                )));
            }
        }
        Ok(())
    }

    /// Runs a checked step over `slots` (slot `(i, token)` feeds `token` to `seqs[i]`; slots of
    /// one sequence take its next positions in order) and returns, per sequence, the logits after
    /// its last slot. On an error every sequence is truncated back to where it started.
    fn step(
        &mut self,
        seqs: &mut [&mut Sequence],
        slots: &[(usize, u32)],
    ) -> Result<Vec<Vec<f32>>> {
        let start: Vec<usize> = seqs.iter().map(|s| s.pos).collect();
        // The team and the buffers are taken out for the call so the step can borrow the rest of
        // the engine; the team's members spin between the step's products (see `crate::team`).
        let team = self.team.take();
        let mut sc = std::mem::take(&mut self.scratch);
        let out = self.step_on(&mut sc, seqs, slots, team.as_ref());
        self.scratch = sc;
        self.team = team;
        match out {
            Ok(logits) => {
                for &(i, _) in slots {
                    seqs[i].pos += 1;
                }
                Ok(logits)
            }
            Err(e) => {
                for (seq, p) in seqs.iter_mut().zip(start) {
                    seq.truncate(p);
                }
                Err(e)
            }
        }
    }

    /// [`Engine::step`]'s computation, with its products split over `pool`.
    fn step_on(
        &self,
        sc: &mut Scratch,
        seqs: &mut [&mut Sequence],
        slots: &[(usize, u32)],
        pool: Option<&Team>,
    ) -> Result<Vec<Vec<f32>>> {
        let c = &self.cfg;
        let (d, hd, h, kvh) = (c.hidden_size, c.head_dim(), c.num_heads, c.num_kv_heads);
        let (kv_dim, ff, n) = (c.kv_dim(), c.intermediate_size, slots.len());
        let wqkv = d + 2 * kv_dim;
        let eps = c.rms_norm_eps as f32;
        let shape = AttnShape {
            rep: h / kvh,
            hd,
            kv_dim,
            scale: (1.0 / (hd as f64).sqrt()) as f32,
        };
        // Each slot's position: its sequence's next one, in slot order.
        let mut next: Vec<usize> = seqs.iter().map(|s| s.pos).collect();
        let pos: Vec<usize> = slots
            .iter()
            .map(|&(i, _)| {
                next[i] += 1;
                next[i] - 1
            })
            .collect();
        sc.x.clear();
        for &(_, t) in slots {
            self.embed.row_into(t as usize, d, &mut sc.x);
        }
        sc.acts.resize_with(n, QuantizedActs::default);
        let acts = &mut sc.acts[..n];
        sc.qkv.resize(n * wqkv, 0.0);
        sc.o.resize(n * d, 0.0);
        sc.gate_up.resize(n * 2 * ff, 0.0);
        let kernel = self.kernel;
        for (l, layer) in self.layers.iter().enumerate() {
            for (x, a) in sc.x.chunks_exact(d).zip(acts.iter_mut()) {
                rms_norm_into(x, &layer.attn_norm, eps, &mut sc.hn);
                quantize_acts_into(&sc.hn, a);
            }
            matmul(kernel, &layer.qkv, acts, &mut sc.qkv, pool)?;
            // Every slot's keys and values enter its sequence's cache before any slot attends;
            // a slot attends over its own position and those before it only.
            for ((row, &(i, _)), &p) in sc.qkv.chunks_exact_mut(wqkv).zip(slots).zip(&pos) {
                let (q, kv) = row.split_at_mut(d);
                let (k, v) = kv.split_at_mut(kv_dim);
                self.rope(q, h, p);
                self.rope(k, kvh, p);
                seqs[i].kcache[l].extend_from_slice(k);
                seqs[i].vcache[l].extend_from_slice(v);
            }
            sc.att.clear();
            sc.att.resize(n * d, 0.0);
            for (((att, q), &(i, _)), &p) in sc
                .att
                .chunks_exact_mut(d)
                .zip(sc.qkv.chunks_exact(wqkv))
                .zip(slots)
                .zip(&pos)
            {
                let np = p + 1;
                sc.scores.resize(np, 0.0);
                let inp = AttnInputs {
                    sh: shape,
                    h0: 0,
                    q: &q[..d],
                    kc: &seqs[i].kcache[l],
                    vc: &seqs[i].vcache[l],
                };
                // Heads split over the team (each head's arithmetic is unchanged, so the result
                // does not depend on the thread count); each piece needs its own scores.
                match pool {
                    Some(t) if t.threads() > 1 => t.for_chunks(att, hd, |start, out| {
                        let inp = AttnInputs {
                            h0: start / hd,
                            ..inp
                        };
                        attend(inp, &mut vec![0f32; np], out)
                    }),
                    _ => attend(inp, &mut sc.scores, att),
                }
            }
            for (att, a) in sc.att.chunks_exact(d).zip(acts.iter_mut()) {
                quantize_acts_into(att, a);
            }
            matmul(kernel, &layer.o, acts, &mut sc.o, pool)?;
            sc.x.iter_mut().zip(&sc.o).for_each(|(a, b)| *a += b);
            for (x, a) in sc.x.chunks_exact(d).zip(acts.iter_mut()) {
                rms_norm_into(x, &layer.ffn_norm, eps, &mut sc.hn);
                quantize_acts_into(&sc.hn, a);
            }
            matmul(kernel, &layer.gate_up, acts, &mut sc.gate_up, pool)?;
            for (gu, a) in sc.gate_up.chunks_exact_mut(2 * ff).zip(acts.iter_mut()) {
                // SiLU(gate)·up, in place in the gate half.
                let (gate, up) = gu.split_at_mut(ff);
                gate.iter_mut()
                    .zip(up.iter())
                    .for_each(|(g, u)| *g = *g / (1.0 + (-*g).exp()) * u);
                quantize_acts_into(gate, a);
            }
            matmul(kernel, &layer.down, acts, &mut sc.o, pool)?;
            sc.x.iter_mut().zip(&sc.o).for_each(|(a, b)| *a += b);
        }
        // The head, for each sequence's last slot only, as one batched product.
        let mut last = vec![None; seqs.len()];
        for (j, &(i, _)) in slots.iter().enumerate() {
            last[i] = Some(j);
        }
        let xn: Vec<Vec<f32>> = last
            .iter()
            .flatten()
            .map(|j| rms_norm(&sc.x[j * d..(j + 1) * d], &self.norm, eps))
            .collect();
        let mut logits: Vec<Vec<f32>> = last
            .iter()
            .map(|j| match j {
                Some(_) => vec![0f32; c.vocab_size],
                None => Vec::new(),
            })
            .collect();
        let xs: Vec<&[f32]> = xn.iter().map(Vec::as_slice).collect();
        let mut outs: Vec<&mut [f32]> = logits
            .iter_mut()
            .filter(|l| !l.is_empty())
            .map(Vec::as_mut_slice)
            .collect();
        self.head
            .as_ref()
            .unwrap_or(&self.embed)
            .matmul(d, &xs, &mut outs, pool);
        Ok(logits)
    }

    /// Rotates the `heads` heads of `x` to position `pos`.
    fn rope(&self, x: &mut [f32], heads: usize, pos: usize) {
        let hd = self.cfg.head_dim();
        let half = hd / 2;
        let base = pos * half;
        for h in 0..heads {
            for i in 0..half {
                let (c, s) = (self.cos[base + i], self.sin[base + i]);
                let (a, b) = (x[h * hd + 2 * i], x[h * hd + 2 * i + 1]);
                x[h * hd + 2 * i] = a * c - b * s;
                x[h * hd + 2 * i + 1] = b * c + a * s;
            }
        }
    }

    /// Feeds `prompt` to the engine's own sequence (as [`Engine::prefill`]) and generates up to
    /// `max_new` tokens (stopping at `stop`, if given).
    pub fn generate(
        &mut self,
        prompt: &[u32],
        max_new: usize,
        sampling: Sampling,
        stop: Option<u32>,
    ) -> Result<Vec<u32>> {
        let mut sampler = Sampler::new(sampling);
        let mut logits = self.with_own_sequence(|e, seq| e.prefill(seq, prompt))?;
        let mut out = Vec::new();
        for i in 0..max_new {
            let next = sampler.sample(&logits);
            out.push(next);
            if Some(next) == stop || self.seq.pos >= self.cfg.max_seq_len || i + 1 == max_new {
                break;
            }
            logits = self.forward(next)?;
        }
        Ok(out)
    }
}

/// Rebuilds a [`Tokenizer`] from a GGUF's `tokenizer.ggml.*` keys (gpt2 BPE).
pub fn gguf_tokenizer(g: &GgufFile) -> Result<Tokenizer> {
    let strs = |k: &str| -> Result<Vec<String>> {
        match g.get(k) {
            Some(crate::gguf::Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| BitnetError::Model(format!("{k} holds a non-string")))
                })
                .collect(),
            _ => Err(BitnetError::Model(format!("GGUF has no {k}"))),
        }
    };
    if g.get("tokenizer.ggml.model").and_then(|v| v.as_str()) != Some("gpt2") {
        return Err(BitnetError::Model(
            "tokenizer.ggml.model is not gpt2".into(),
        ));
    }
    let tokens = strs("tokenizer.ggml.tokens")?;
    let merges = strs("tokenizer.ggml.merges")?;
    let vocab: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), serde_json::Value::from(i)))
        .collect();
    let eos = g.get_u64("tokenizer.ggml.eos_token_id")? as usize;
    let eos_tok = tokens
        .get(eos)
        .ok_or_else(|| BitnetError::Model("eos id outside the vocabulary".into()))?;
    let bl = serde_json::json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [{"id": eos, "content": eos_tok, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null,
        "pre_tokenizer": bl,
        "post_processor": bl,
        "decoder": bl,
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": vocab, "merges": merges},
    });
    Tokenizer::from_json(&json.to_string())
}
