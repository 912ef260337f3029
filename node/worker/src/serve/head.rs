//! `serve --job N` without `--model`: the job's lineage head, as the chain records it, turned
//! into a GGUF in memory.

use std::path::Path;

use anyhow::{bail, Context};
use magnet_bitnet::export::{gguf_writer, Exportable};
use magnet_bitnet::gguf::{GgmlType, GgufFile};
use magnet_bitnet::tokenizer::Tokenizer;
use magnet_bitnet::ParamStore;

/// Reads job `job`'s head checkpoint through the worker home `home` (its store first, then
/// the checkpoint's stripe; checked against the hash the chain recorded) and builds the
/// model from the job's shape and tokenizer in the home's config. Returns the GGUF and a
/// description for logs.
pub async fn job_model(home: &Path, job: u64) -> anyhow::Result<(GgufFile, String)> {
    let cfg = magnet_daemon::Config::load(home)?;
    if cfg.job.id != job {
        bail!(
            "the worker home {} belongs to job {}, not job {job}: its config has the model's \
             shape and tokenizer; use a home of job {job}, or pass --model FILE.gguf",
            home.display(),
            cfg.job.id
        );
    }
    let keeper = magnet_daemon::keeper::Keeper::open(home)
        .await
        .context("opening the worker's store and chain")?;
    let (rounds, head, ckpt) = keeper
        .lineage_head(job)
        .await
        .with_context(|| format!("reading job {job}'s lineage head"))?;
    let tcfg =
        magnet_daemon::engine::train_config(&cfg.job, &home.join("shards"), cfg.job.model_seed);
    let mcfg = tcfg.model_config(cfg.job.vocab_size)?;
    let dev = magnet_bitnet::train::device("cpu")?;
    let params = ParamStore::zeros(&mcfg, &dev)?;
    if params.num_params() != ckpt.params.len() {
        bail!(
            "job {job}'s head has {} parameters, the config's `{}` model {}: the home's job \
             section does not describe this job",
            ckpt.params.len(),
            cfg.job.preset,
            params.num_params()
        );
    }
    params.load_from_vec(&ckpt.params)?;
    let tokenizer = Tokenizer::load(&cfg.job.tokenizer).with_context(|| {
        format!(
            "loading the job's tokenizer {}",
            cfg.job.tokenizer.display()
        )
    })?;
    let m = Exportable {
        cfg: mcfg,
        params,
        tokenizer,
    };
    let bytes = gguf_writer(&m, GgmlType::F16)?.to_bytes()?;
    let g = GgufFile::parse(bytes)?;
    Ok((
        g,
        format!("job {job}'s head {head} (after {rounds} merged rounds)"),
    ))
}
