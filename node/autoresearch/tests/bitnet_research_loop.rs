//! The BitNet-LM research loop end to end: error analysis of the real BitNet b1.58 trainer's
//! model → strategies from the LM catalog → short trainings → knowledge base → ceiling, with a
//! report and a plot, on the shipped corpus with a tiny budget.
#![cfg(feature = "bitnet")]

use magnet_autoresearch::bitnet_lm::BitnetTrainer;
use magnet_autoresearch::kb::KnowledgeBase;
use magnet_autoresearch::lm_loop::{run_lm_loop, write_lm_folder, LmLoopConfig, DOMAIN};
use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn the_lm_loop_runs_versions_of_different_strategies_and_writes_a_report_a_plot_and_insights() {
    let corpus = Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../data/text/kjv_head.txt");
    let work = tempfile::tempdir().unwrap();
    let mut t = BitnetTrainer::prepare(&corpus, &work.path().join("data"), 384, 10).unwrap();
    t.batch_size = 4;
    t.eval_tokens = 1024;
    let cfg = LmLoopConfig {
        budget: 11,
        steps: 4,
        per_strategy: 2,
        strategies: 2,
        epsilon: 0.002,
        patience: 2,
        seed: 5,
    };
    let mut kb = KnowledgeBase::new();
    let hash = t.dataset_hash();
    let started = std::time::Instant::now();
    let o = run_lm_loop(
        &t,
        ("kjv_head.txt", &hash),
        BitnetTrainer::start_config(),
        &cfg,
        &mut kb,
    )
    .unwrap();
    eprintln!("loop took {:.1} s", started.elapsed().as_secs_f64());
    for v in &o.versions {
        eprintln!(
            "v{}: patterns {:?}; {:?} → {:.4} (improved {})",
            v.version,
            v.analysis.as_ref().map(|a| a.patterns.clone()),
            v.strategies
                .iter()
                .map(|s| (s.idea.clone(), s.trials, s.best_loss))
                .collect::<Vec<_>>(),
            v.best_loss,
            v.improved
        );
    }
    eprintln!("stop: {}", o.stop_reason);

    // At least two versions after the baseline, with different strategy kinds.
    assert!(o.versions.len() >= 3, "{} versions", o.versions.len());
    let kinds = |v: usize| -> BTreeSet<String> {
        o.versions[v]
            .strategies
            .iter()
            .map(|s| s.idea.clone())
            .collect()
    };
    assert!(kinds(1).len() >= 2, "{:?}", kinds(1));
    assert_ne!(kinds(1), kinds(2));
    // Every version analysed its incumbent: three frequency bands covering every probed
    // validation token, and the probe's validation loss is the trainer's own for that config.
    let uniform = (t.vocab_size() as f64).ln();
    for v in &o.versions[1..] {
        let a = v.analysis.as_ref().unwrap();
        assert_eq!(a.bands.len(), 3);
        let probed: usize = a.bands.iter().map(|b| b.tokens).sum();
        assert_eq!(probed, (t.eval_tokens / 32) * 32);
        assert!(a.val_loss.is_finite() && a.val_loss < uniform);
        assert!(a.train_loss.is_finite() && a.early_loss.is_finite());
    }
    let a1 = o.versions[1].analysis.as_ref().unwrap();
    assert!(
        (a1.val_loss - o.trials[0].val_loss).abs() < 0.02,
        "per-token mean {} vs eval {}",
        a1.val_loss,
        o.trials[0].val_loss
    );
    // The budget holds, every training is a real one, and the incumbent never gets worse.
    assert!(o.trials.len() <= cfg.budget);
    assert!(o
        .trials
        .iter()
        .all(|t| t.val_loss.is_finite() && t.val_loss < uniform));
    for w in o.versions.windows(2) {
        assert!(w[1].best_loss <= w[0].best_loss);
    }
    assert!(!o.stop_reason.is_empty());

    // The run folder: report, plot, trial log and knowledge base.
    let out = work.path().join("run");
    write_lm_folder(&out, &o, &kb).unwrap();
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Versions") && md.contains(&o.stop_reason));
    assert!(md.contains("## Error analyses") && md.contains("phase_grid"));
    let png = std::fs::read(out.join("progression.png")).unwrap();
    assert!(png.len() > 1000);
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&png[12..16], b"IHDR");
    let lines = std::fs::read_to_string(out.join("trials.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), o.trials.len());
    let kb2 = KnowledgeBase::load(&out.join("knowledge.json")).unwrap();
    let lm: Vec<_> = kb2
        .insights
        .iter()
        .filter(|i| i.body.domain == DOMAIN)
        .collect();
    assert_eq!(lm.len(), o.insights);
    assert!(lm.len() >= 4, "{} insights", lm.len());
    // Each insight names the LM config its strategy found, and it is one of the run's trials.
    for i in &lm {
        let c = i
            .body
            .best_lm_config
            .as_ref()
            .expect("an LM insight carries its config");
        assert!(o.trials.iter().any(|t| &t.config == c), "{c:?}");
    }
}
