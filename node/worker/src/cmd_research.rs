//! `magnet-worker research`: the autoresearch loop (see the `magnet-autoresearch` crate).

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use magnet_autoresearch::kb::KnowledgeBase;
use magnet_autoresearch::run::{self, RunConfig, TrialSpec};
use magnet_autoresearch::strategy::{LlmStrategist, RuleStrategist, Strategist};
use std::path::PathBuf;

/// Run the error-driven research loop on a data file, or one serialised trial.
///
/// Each version analyses the current best model's out-of-fold errors, picks 3–8 different
/// strategies (model pivots, class weights, per-context offsets, feature selection/engineering,
/// stacking, ensembles, calibration), sweeps each under a trial budget, keeps the best by
/// cross-validated log-loss and records insights in a knowledge base. It stops when the gain
/// stays below ε for P versions. A held-out test set, unseen by the search, is scored once at
/// the end with a bootstrap confidence interval. The bitnet-lm domain runs the same loop over
/// a language model (see --domain): its analysis, catalog and score are the LM's (validation
/// loss, no separate test set), its strategist is the rule-based LM catalog (--strategist and
/// --folds do not apply), and the phase-wise search alone stays available as --lm-search phase.
///
/// Examples:
///   magnet-worker research --domain tabular --data data/tabular/titanic.csv \
///       --target survived --context class --budget 60 --out runs/titanic
///   magnet-worker research --domain bitnet-lm --data data/text/kjv_head.txt \
///       --budget 30 --lm-steps 20 --out runs/kjv-lm
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ResearchArgs {
    #[command(subcommand)]
    sub: Option<ResearchSub>,
    /// Domain: tabular (CSV classification), timeseries (daily prices → BUY/SELL/HOLD) or
    /// bitnet-lm (a text file, the BitNet engine's trainer on CPU: each version analyses the
    /// incumbent model's validation loss by token-frequency band and context position, its
    /// train/validation gap and training-curve stability, picks strategies from the LM catalog
    /// — capacity, learning rate, schedule, regularisation, context length, attention heads,
    /// accumulation, and the paper's phase-wise grid as one of them — and trains each swept
    /// config for --lm-steps steps; --budget counts trainings; see also --lm-search).
    #[arg(long, default_value = "tabular")]
    domain: String,
    /// bitnet-lm: optimizer steps per training (at least 5).
    #[arg(long, default_value_t = 20)]
    lm_steps: usize,
    /// bitnet-lm: `loop` (the research loop above) or `phase` (only the paper's phase-wise
    /// search: every group in order at --lm-steps, the top-3 re-validated at 4x; ignores
    /// --budget).
    #[arg(long, default_value = "loop", value_parser = ["loop", "phase"])]
    lm_search: String,
    /// Data file (CSV with a header line).
    #[arg(long)]
    data: Option<PathBuf>,
    /// A separate test file (same header line as --data): the search then uses every row
    /// of --data and the final and baseline models, fitted on all of them, are scored once on
    /// this file's rows instead of a held-out part drawn from --data. For benchmarks that give
    /// every method the same split (scripts/bench-suite20.py), and how a research job's
    /// held-out evaluators score (tabular, timeseries; not with --workers).
    #[arg(long, value_name = "FILE")]
    test_data: Option<PathBuf>,
    /// Target column (tabular: the class column, default `target`; timeseries: the price
    /// column, default `Adj Close`).
    #[arg(long)]
    target: Option<String>,
    /// Context column: slices, leave-one-context-out validation and per-context offsets
    /// (tabular, e.g. `class`); the series id for timeseries (e.g. `Ticker`).
    #[arg(long)]
    context: Option<String>,
    /// Total trial budget (the baseline counts as one; bitnet-lm: trainings, the error
    /// analysis' one training per version not counted).
    #[arg(long, default_value_t = 60)]
    budget: usize,
    /// Minimum CV log-loss gain that counts as progress (bitnet-lm: validation loss, nats/token;
    /// a version's best must also beat the incumbent by more than this).
    #[arg(long, default_value_t = 0.002)]
    epsilon: f64,
    /// Stop after this many consecutive versions without progress.
    #[arg(long, default_value_t = 2)]
    patience: usize,
    /// Seed for splits, samplers and models.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Validation folds.
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Greedy steps of the ensemble selection after the search: a weighted soft vote of the
    /// evaluated pipelines, chosen on their out-of-fold predictions (no extra trials) and kept
    /// if its cross-fitted CV log-loss beats picking one pipeline and its gain over the search's
    /// best clears --min-gain-se. 0 turns it off.
    #[arg(long, default_value_t = magnet_autoresearch::ensemble::DEFAULT_STEPS)]
    ensemble_steps: usize,
    /// One-standard-error rule: a version's best (or the ensemble) replaces the incumbent only
    /// if its CV log-loss gain exceeds this many standard errors of the paired per-row
    /// difference on the out-of-fold rows. 0 accepts any gain.
    #[arg(long, default_value_t = 1.0)]
    min_gain_se: f64,
    /// Spend the budget the loop leaves: a run that converges, or has tried every applicable
    /// idea, before its budget is spent forgets which ideas it tried and runs on from its
    /// incumbent, once (the second pass, ADR 0118). Off by default: on the development data
    /// it used 25–30 of 30 trials instead of 16–29 and changed the held-out log-loss by
    /// +0.0002 [−0.0005, +0.0009] nats (a tie).
    #[arg(long)]
    second_pass: bool,
    /// Knowledge base to start from (JSON written by an earlier run); merged with new insights.
    #[arg(long)]
    kb: Option<PathBuf>,
    /// Output folder: report.md, progression.png, trials.jsonl, knowledge.json, best_model.json.
    /// Re-running with the same folder resumes from its trials.jsonl (tabular, timeseries;
    /// bitnet-lm writes no best_model.json and reruns its trainings, but starts from the
    /// folder's knowledge.json, so it skips ideas recorded there as failed).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Who designs each version's strategies: `rule` (the built-in failure-pattern →
    /// strategy catalog) or `llm` (an OpenAI-compatible chat endpoint, see --llm-url; its
    /// proposals are checked against the same catalog and schema before anything runs, and a
    /// refused or failed proposal falls back to the rule-based strategist for that version,
    /// with the reason in the report).
    #[arg(long, default_value = "rule", value_parser = ["rule", "llm"])]
    strategist: String,
    /// Base URL (plain http://) of the OpenAI-compatible API for `--strategist llm`, e.g.
    /// `http://localhost:8080/v1` (llama.cpp's `llama-server`, vLLM, Ollama's `/v1`).
    /// The API key, if the endpoint needs one, is read from the environment variable
    /// MAGNET_LLM_API_KEY (never from the command line).
    #[arg(long)]
    llm_url: Option<String>,
    /// Model name sent to the LLM endpoint.
    #[arg(long, default_value = "default")]
    llm_model: String,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Run the loop's trials on other machines: trial workers started with `magnet-worker
    /// research serve-trials`, as `nodeId@host:port` (comma-separated; each worker prints its
    /// own). This process becomes the coordinator: it uploads the data to every worker
    /// (content-addressed), sends each batch's work units to them, re-checks --recheck of the
    /// answers on a different worker, and bans, voids and re-runs a worker caught fabricating
    /// (its signed answer is kept under OUT/evidence). The run decides exactly what the same
    /// run alone decides with the same --seed and --batch; network.json and the report's
    /// Network section say who did what.
    #[arg(long, value_name = "LIST")]
    workers: Option<String>,
    /// Share of worker answers re-run on a different worker (tabular and timeseries over
    /// --workers). The default keeps re-checks under 15 % of all unit compute; a worker that
    /// fabricates every answer is caught within 20 answers with probability 96 %.
    #[arg(long, default_value_t = 0.15)]
    recheck: f64,
    /// Node directory holding this machine's p2p node key and TLS pins (`--workers`).
    #[arg(long, env = "MAGNET_STORAGE_DIR")]
    node_dir: Option<PathBuf>,
    /// With --workers: the chain research job these trials are for, as CHAIN_ID/JOB. Every
    /// worker then signs a chain trial claim (unit, predictions' hash, loss) with its node key;
    /// answers without a valid one are refused, and the accepted claims — the entries of the
    /// job's version records — are listed in network.json.
    #[arg(long, value_name = "CHAIN_ID/JOB")]
    chain_job: Option<String>,
    /// Trials proposed and run together (default: the number of --workers, else this
    /// machine's threads). The samplers see a batch's results only after the whole batch, so
    /// the batch is part of what a run decides.
    #[arg(long)]
    batch: Option<usize>,
}

/// The strategist `--strategist` names.
fn strategist(args: &ResearchArgs) -> anyhow::Result<Box<dyn Strategist>> {
    match args.strategist.as_str() {
        "llm" => {
            let Some(url) = &args.llm_url else {
                bail!(
                    "--strategist llm needs --llm-url URL (an OpenAI-compatible API, e.g. \
                     http://localhost:8080/v1)"
                )
            };
            if !url.starts_with("http://") {
                bail!(
                    "--llm-url {url:?} must be an http:// URL: the client speaks plain HTTP \
                     (no TLS is built in); for a remote https API, run a local proxy in front \
                     of it"
                );
            }
            Ok(Box::new(LlmStrategist {
                base_url: url.clone(),
                model: args.llm_model.clone(),
                api_key: std::env::var("MAGNET_LLM_API_KEY")
                    .ok()
                    .filter(|k| !k.is_empty()),
            }))
        }
        _ => Ok(Box::new(RuleStrategist)),
    }
}

#[derive(Subcommand, Debug)]
enum ResearchSub {
    /// Run one serialised trial (JSON: domain, data, target, context, seed, folds, candidate,
    /// optional holdout) and print its CV score as JSON. Used by scripts/bench-autoresearch.py.
    Trial {
        /// Trial file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Serve research work units to a coordinator (`research --workers …`) over the signed
    /// p2p layer until Ctrl-C. Prints `nodeId listening on host:port`: give the coordinator
    /// `nodeId@host:port`. Job data arrives content-addressed in DIR/served and is checked
    /// against its address before use; every answer is signed with DIR/node.key.
    ///
    /// Example: `magnet-worker research serve-trials --dir ~/.magnet/w1 --listen 0.0.0.0:7480`
    ServeTrials {
        /// Node directory (node key, pins, received data).
        #[arg(long)]
        dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:7480")]
        listen: std::net::SocketAddr,
        /// Units run at once.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Misbehave (tests only): `fabricate` signs predictions it did not compute.
        #[arg(long, default_value = "none", hide = true)]
        fault: magnet_daemon::research::TrialFault,
    },
}

/// Runs the subcommand.
pub fn run(args: ResearchArgs) -> anyhow::Result<()> {
    if let Some(ResearchSub::Trial { config }) = args.sub {
        let text = std::fs::read_to_string(&config)
            .with_context(|| format!("reading {}", config.display()))?;
        let spec: TrialSpec = serde_json::from_str(&text)
            .with_context(|| format!("parsing trial {}", config.display()))?;
        let out =
            run::run_trial(&spec).with_context(|| format!("running trial {}", config.display()))?;
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    if let Some(ResearchSub::ServeTrials {
        dir,
        listen,
        threads,
        fault,
    }) = args.sub
    {
        return crate::cmd_research_net::serve_trials(&dir, listen, threads, fault);
    }
    let strategist = strategist(&args)?;
    let data = args.data.context("--data FILE is required")?;
    let Some(out) = args.out else {
        bail!("--out DIR is required")
    };
    if args.domain == "bitnet-lm" && args.test_data.is_some() {
        bail!("--test-data is for tabular and timeseries data; bitnet-lm scores on its own validation split");
    }
    if args.domain == "bitnet-lm" && args.lm_search == "phase" {
        return run_lm_phase(&data, &out, args.lm_steps, args.seed);
    }
    let kb = match &args.kb {
        Some(p) => KnowledgeBase::load(p)
            .with_context(|| format!("loading knowledge base {}", p.display()))?,
        None => {
            let own = out.join("knowledge.json");
            if own.exists() {
                KnowledgeBase::load(&own).with_context(|| format!("loading {}", own.display()))?
            } else {
                KnowledgeBase::new()
            }
        }
    };
    if args.domain == "bitnet-lm" {
        let cfg = magnet_autoresearch::lm_loop::LmLoopConfig {
            budget: args.budget,
            steps: args.lm_steps.max(5),
            epsilon: args.epsilon,
            patience: args.patience,
            seed: args.seed,
            ..Default::default()
        };
        return run_lm_loop(&data, &out, &cfg, kb);
    }
    let domain = run::domain_by_name(&args.domain).with_context(|| {
        format!(
            "unknown domain `{}` (tabular, timeseries, bitnet-lm)",
            args.domain
        )
    })?;
    let cfg = RunConfig {
        budget: args.budget,
        epsilon: args.epsilon,
        patience: args.patience,
        seed: args.seed,
        folds: args.folds,
        progress: !args.quiet,
        ensemble_steps: args.ensemble_steps,
        min_gain_se: args.min_gain_se,
        second_pass: args.second_pass,
        batch: args.batch.or_else(|| {
            args.workers
                .as_deref()
                .map(|w| w.split(',').filter(|s| !s.trim().is_empty()).count().max(1))
        }),
        ..RunConfig::default()
    };
    if let Some(test) = &args.test_data {
        if args.workers.is_some() {
            bail!("--test-data runs on this machine only: drop --workers (or --test-data)");
        }
        let o = run::run_file_with_test(
            domain.as_ref(),
            &data,
            test,
            args.target.as_deref(),
            args.context.as_deref(),
            &cfg,
            kb,
            strategist.as_ref(),
            Some(&out),
        )
        .with_context(|| {
            format!(
                "research on {} scored on {}",
                data.display(),
                test.display()
            )
        })?;
        return summarize(&o, &out);
    }
    if let Some(workers) = &args.workers {
        let node_dir = args.node_dir.clone().unwrap_or_else(|| out.join("node"));
        let (o, net) = crate::cmd_research_net::coordinate(
            domain.as_ref(),
            &args.domain,
            &data,
            args.target.as_deref(),
            args.context.as_deref(),
            &cfg,
            kb,
            strategist.as_ref(),
            &out,
            crate::cmd_research_net::NetArgs {
                workers,
                recheck: args.recheck,
                node_dir: &node_dir,
                chain_job: args.chain_job.as_deref(),
            },
        )?;
        let caught: Vec<&str> = net
            .workers
            .iter()
            .filter(|w| w.caught.is_some())
            .map(|w| w.node_id.as_str())
            .collect();
        println!(
            "network: {} workers, {} answers, {} re-checked, {} disagreements, caught: {}",
            net.workers.len(),
            net.units_dispatched,
            net.rechecks,
            net.mismatches,
            if caught.is_empty() {
                "none".to_string()
            } else {
                caught.join(", ")
            }
        );
        return summarize(&o, &out);
    }
    let o = run::run_file(
        domain.as_ref(),
        &data,
        args.target.as_deref(),
        args.context.as_deref(),
        &cfg,
        kb,
        strategist.as_ref(),
        Some(&out),
    )
    .with_context(|| format!("research on {}", data.display()))?;
    summarize(&o, &out)
}

fn summarize(o: &run::RunOutcome, out: &std::path::Path) -> anyhow::Result<()> {
    let first = o.versions.first().map_or(f64::NAN, |v| v.best_loss);
    let last = o.versions.last().map_or(f64::NAN, |v| v.best_loss);
    println!(
        "{} versions, {} trials; CV log-loss {first:.4} → {last:.4}; held-out {:.4} → {:.4} (improvement {:.4}, 95% CI [{:.4}, {:.4}]); {}",
        o.versions.len() - 1,
        o.trials.len(),
        o.test.baseline_loss,
        o.test.final_loss,
        o.test.improvement,
        o.test.improvement_ci.0,
        o.test.improvement_ci.1,
        o.stop_reason
    );
    println!("report: {}", out.join("report.md").display());
    Ok(())
}

/// The LM research loop over the BitNet engine's trainer (tiny-preset shapes, CPU).
fn run_lm_loop(
    data: &std::path::Path,
    out: &std::path::Path,
    cfg: &magnet_autoresearch::lm_loop::LmLoopConfig,
    mut kb: KnowledgeBase,
) -> anyhow::Result<()> {
    use magnet_autoresearch::bitnet_lm::BitnetTrainer;
    use magnet_autoresearch::lm_loop;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let trainer = BitnetTrainer::prepare(data, &out.join("data"), 512, 10)
        .with_context(|| format!("tokenizing {}", data.display()))?;
    let name = data.file_name().map_or_else(
        || data.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    let hash = trainer.dataset_hash();
    let o = lm_loop::run_lm_loop(
        &trainer,
        (&name, &hash),
        BitnetTrainer::start_config(),
        cfg,
        &mut kb,
    )
    .with_context(|| format!("LM research on {}", data.display()))?;
    lm_loop::write_lm_folder(out, &o, &kb)?;
    let first = o.versions.first().map_or(f64::NAN, |v| v.best_loss);
    println!(
        "{} versions, {} trainings; validation loss {first:.4} → {:.4}; {}",
        o.versions.len() - 1,
        o.trials.len(),
        o.best_loss,
        o.stop_reason
    );
    println!("report: {}", out.join("report.md").display());
    Ok(())
}

/// Phase-wise LM search over the BitNet engine's trainer (tiny-preset shapes, CPU).
fn run_lm_phase(
    data: &std::path::Path,
    out: &std::path::Path,
    steps: usize,
    seed: u64,
) -> anyhow::Result<()> {
    use magnet_autoresearch::bitnet_lm::BitnetTrainer;
    use magnet_autoresearch::lm::phase_search;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let trainer = BitnetTrainer::prepare(data, &out.join("data"), 512, 10)
        .with_context(|| format!("tokenizing {}", data.display()))?;
    let steps = steps.max(5);
    let s = phase_search(&trainer, BitnetTrainer::start_config(), steps, seed)?;
    let mut md = format!(
        "# Phase-wise BitNet-LM search on {}\n\nTrainer: the BitNet b1.58 engine (magnet-bitnet, ternary weights, CPU), vocabulary {}, batch {}. {steps} steps per config; top-3 re-validated at {} steps. Loss: validation nats/token over {} tokens.\n\n| Phase | Configs | Best val loss |\n|---|---|---|\n",
        data.display(),
        trainer.vocab_size(),
        trainer.batch_size,
        steps * 4,
        trainer.eval_tokens
    );
    for p in &s.phases {
        let name = p
            .group
            .map_or("final validation (4x steps)".to_string(), |g| {
                format!("{g:?}")
            });
        if p.skipped {
            md.push_str(&format!(
                "| {name} | skipped (trainer does not use it) | – |\n"
            ));
        } else {
            md.push_str(&format!(
                "| {name} | {} | {:.4} |\n",
                p.tried.len(),
                p.best_loss
            ));
        }
    }
    md.push_str(&format!(
        "\nBest config: `{}` (val loss {:.4})\n",
        serde_json::to_string(&s.best)?,
        s.best_loss
    ));
    std::fs::write(out.join("report.md"), &md).context("writing report.md")?;
    std::fs::write(out.join("phases.json"), serde_json::to_string_pretty(&s)?)
        .context("writing phases.json")?;
    println!(
        "best val loss {:.4}; report: {}",
        s.best_loss,
        out.join("report.md").display()
    );
    Ok(())
}
