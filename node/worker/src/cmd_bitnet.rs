//! BitNet subcommands: `train`, `export`, `infer`, `tokenizer train` (logic in `magnet-bitnet`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use magnet_bitnet::gguf::GgmlType;
use magnet_bitnet::infer::{Engine, Sampling};

/// BitNet b1.58 model work: train, export, serve.
#[derive(Subcommand, Debug)]
pub enum BitnetCommand {
    /// Train a ternary (BitNet b1.58) LLaMA model from a TOML config.
    ///
    /// Every config field has a default, so an empty file trains the `tiny` preset on
    /// data/text/kjv.txt. The tokenizer and token shards are made on first use. Writes
    /// OUT/metrics.jsonl, OUT/loss.png and OUT/checkpoints/final (OUT = train.out_dir).
    ///
    /// Example config:
    ///   [model]  preset = "small"       # tiny | small | autoresearch-best | genkidama-618m
    ///            quantized = true       # false: the float twin
    ///   [data]   corpus = "data/text/kjv.txt"  vocab_size = 4096
    ///            tokenizer = "runs/tok-4096.json"  shards = "runs/shards-4096"
    ///   [train]  steps = 2000  batch_size = 16  seq_len = 256  lr = 1.5e-3
    ///            eval_every = 100  checkpoint_every = 500  out_dir = "runs/small"
    #[command(verbatim_doc_comment)]
    Train(TrainArgs),
    /// Export a checkpoint as GGUF (llama.cpp, TQ2_0 ternary weights) or a Hugging Face folder.
    Export(ExportArgs),
    /// Generate text from a GGUF file (or HF folder) with the in-process ternary kernel.
    Infer(InferArgs),
    /// Tokenizer tools.
    #[command(subcommand)]
    Tokenizer(TokenizerCommand),
}

/// `train` arguments.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// TOML training config (see `train --help` for the fields).
    #[arg(long, value_name = "FILE.toml")]
    config: PathBuf,
    /// Resume from this checkpoint directory (its saved config wins over --config).
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Export formats.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    /// One .gguf file for llama.cpp (and `infer`).
    Gguf,
    /// A folder with config.json, model.safetensors, tokenizer.json for transformers.
    Hf,
}

/// Storage type of the embedding (and untied head) in GGUF.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum EmbedType {
    /// 16-bit float (default; exact enough to match the training forward).
    F16,
    /// 8-bit blocks (smallest).
    #[value(name = "q8_0")]
    Q8_0,
    /// 32-bit float.
    F32,
}

/// `export` arguments.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Checkpoint directory (e.g. runs/tiny/checkpoints/final).
    #[arg(long, value_name = "DIR")]
    checkpoint: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    format: Format,
    /// Output file (gguf) or directory (hf).
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// GGUF embedding type.
    #[arg(long, value_enum, default_value = "f16")]
    embed: EmbedType,
}

/// `infer` arguments.
#[derive(Args, Debug)]
pub struct InferArgs {
    /// A .gguf file written by `export`, or an HF folder.
    #[arg(long, value_name = "PATH")]
    model: PathBuf,
    /// Prompt text.
    #[arg(long)]
    prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Keep only the K most likely tokens (0: all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Nucleus sampling mass.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Worker threads for the matrix-vector products.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// `tokenizer` subcommands.
#[derive(Subcommand, Debug)]
pub enum TokenizerCommand {
    /// Train a byte-level BPE on text files and save tokenizer.json.
    Train {
        /// Text files to learn from.
        #[arg(long = "corpus", value_name = "FILE", required = true)]
        corpus: Vec<PathBuf>,
        /// Vocabulary size (≥ 257).
        #[arg(long, default_value_t = 1024)]
        vocab_size: usize,
        /// Output tokenizer.json.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// Runs a BitNet subcommand.
pub fn run(cmd: BitnetCommand) -> anyhow::Result<()> {
    match cmd {
        BitnetCommand::Train(a) => {
            let cfg = magnet_bitnet::TrainConfig::load(&a.config)
                .context("loading the training config")?;
            let report = magnet_bitnet::train::train(&cfg, a.resume.as_deref(), !a.quiet)
                .context("training")?;
            println!(
                "final val loss {:.4} nats/token (ppl {:.2}); val unigram entropy {:.4}; {:.0} tokens/s",
                report.final_val_loss,
                report.final_val_loss.exp(),
                report.val_unigram_entropy,
                report.tokens_per_s
            );
            println!("checkpoint: {}", report.checkpoint.display());
            Ok(())
        }
        BitnetCommand::Export(a) => {
            match a.format {
                Format::Gguf => {
                    let ty = match a.embed {
                        EmbedType::F16 => GgmlType::F16,
                        EmbedType::Q8_0 => GgmlType::Q8_0,
                        EmbedType::F32 => GgmlType::F32,
                    };
                    let n = magnet_bitnet::export::export_gguf(&a.checkpoint, &a.out, ty)
                        .with_context(|| format!("exporting {} to GGUF", a.checkpoint.display()))?;
                    println!("wrote {} ({n} bytes)", a.out.display());
                }
                Format::Hf => {
                    magnet_bitnet::export::export_hf(&a.checkpoint, &a.out).with_context(|| {
                        format!("exporting {} to an HF folder", a.checkpoint.display())
                    })?;
                    println!(
                        "wrote {}/{{config.json,model.safetensors,tokenizer.json}}",
                        a.out.display()
                    );
                }
            }
            Ok(())
        }
        BitnetCommand::Infer(a) => {
            let mut engine = Engine::load(&a.model, a.threads.max(1))
                .with_context(|| format!("loading {}", a.model.display()))?;
            let Some(tok) = engine.tokenizer() else {
                bail!("{} carries no tokenizer", a.model.display())
            };
            let prompt = tok.encode(&a.prompt).context("tokenizing the prompt")?;
            let eos = tok.eos_id();
            let sampling = Sampling {
                temperature: a.temperature,
                top_k: a.top_k,
                top_p: a.top_p,
                seed: a.seed,
            };
            let t0 = Instant::now();
            let out = engine
                .generate(&prompt, a.max_tokens, sampling, Some(eos))
                .context("generating")?;
            let dt = t0.elapsed().as_secs_f64();
            let text = engine
                .tokenizer()
                .map(|t| t.decode(&out))
                .transpose()?
                .unwrap_or_default();
            println!("{}{}", a.prompt, text);
            eprintln!(
                "{} prompt + {} generated tokens in {:.3}s ({:.1} tok/s, kernel {:?}, {} threads)",
                prompt.len(),
                out.len(),
                dt,
                (prompt.len() + out.len()) as f64 / dt.max(1e-9),
                engine.kernel(),
                a.threads.max(1)
            );
            Ok(())
        }
        BitnetCommand::Tokenizer(TokenizerCommand::Train {
            corpus,
            vocab_size,
            out,
        }) => {
            let files: Vec<&std::path::Path> = corpus.iter().map(|p| p.as_path()).collect();
            let tok = magnet_bitnet::tokenizer::Tokenizer::train(&files, vocab_size)
                .context("training the tokenizer")?;
            tok.save(&out)?;
            println!("wrote {} ({} tokens)", out.display(), tok.vocab_size());
            Ok(())
        }
    }
}
