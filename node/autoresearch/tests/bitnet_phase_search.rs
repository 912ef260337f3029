//! The BitNet-LM domain: the paper's phase-wise search over the real BitNet b1.58 trainer
//! (`magnet_bitnet::train::Trainer`, tiny preset shapes) on real text, end to end.
#![cfg(feature = "bitnet")]

use magnet_autoresearch::bitnet_lm::BitnetTrainer;
use magnet_autoresearch::lm::{phase_search, Group, LmTrainer, PHASES};
use std::path::Path;

#[test]
fn phase_wise_search_over_the_bitnet_trainer_carries_the_best_forward_and_revalidates_the_top_three(
) {
    let corpus = Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../data/text/kjv_head.txt");
    let work = tempfile::tempdir().unwrap();
    let mut t = BitnetTrainer::prepare(&corpus, work.path(), 384, 10).unwrap();
    t.batch_size = 4;
    t.eval_tokens = 1024;
    assert!(
        t.val_tokens() > t.eval_tokens,
        "{} validation tokens",
        t.val_tokens()
    );
    let start = BitnetTrainer::start_config();
    let steps = 4;
    let s = phase_search(&t, start.clone(), steps, 5).unwrap();
    let uniform = (t.vocab_size() as f64).ln();
    eprintln!("start {start:?}");
    for p in &s.phases {
        eprintln!(
            "{:?}: {:?}",
            p.group,
            p.tried
                .iter()
                .map(|(_, l)| (l * 1e4).round() / 1e4)
                .collect::<Vec<_>>()
        );
    }
    eprintln!(
        "best {:?} at 4x steps: {:.4} (uniform {uniform:.4})",
        s.best, s.best_loss
    );

    // Every group ran, in the paper's order, then the 4x-steps validation.
    assert_eq!(s.phases.len(), PHASES.len() + 1);
    for (p, g) in s.phases.iter().zip(PHASES) {
        assert_eq!(p.group, Some(g));
        assert!(!p.skipped, "{g:?} skipped");
        assert!(p.tried.len() >= 2, "{g:?} tried {}", p.tried.len());
        assert!(p.tried.iter().all(|(_, l)| l.is_finite() && *l < uniform));
    }
    // One group per phase: within a phase the configs differ only in that group's fields, and
    // the phase starts from the best config carried out of the earlier phases.
    let mut carried = start.clone();
    let mut carried_loss = f64::INFINITY;
    for p in &s.phases[..PHASES.len()] {
        let g = p.group.unwrap();
        for (c, _) in &p.tried {
            let mut a = c.clone();
            let mut b = carried.clone();
            match g {
                Group::Architecture => {
                    (a.d_model, a.layers, b.d_model, b.layers) = (0, 0, 0, 0);
                }
                Group::LearningRate => (a.lr, b.lr) = (0.0, 0.0),
                Group::Schedule => {
                    (a.warmup, a.decay, b.warmup, b.decay) = (0.0, 0.0, 0.0, 0.0);
                }
                Group::Beta2WeightDecay => {
                    (a.beta2, a.weight_decay, b.beta2, b.weight_decay) = (0.0, 0.0, 0.0, 0.0);
                }
                Group::FfnRatio => (a.ffn_mult, b.ffn_mult) = (0.0, 0.0),
                Group::Context => (a.context, b.context) = (0, 0),
                Group::GqaRatio => (a.gqa_ratio, b.gqa_ratio) = (0, 0),
                Group::Accumulation => (a.grad_accum, b.grad_accum) = (0, 0),
            }
            assert_eq!(a, b, "{g:?} changed another group");
        }
        // (The start config is one of the architecture variants, so it is scored there.)
        let (c, l) = p.tried.iter().min_by(|x, y| x.1.total_cmp(&y.1)).unwrap();
        if *l < carried_loss {
            carried = c.clone();
            carried_loss = *l;
        }
    }
    // Top-3 distinct configs re-validated at 4x steps; the winner is the best of those.
    let fin = s.phases.last().unwrap();
    assert_eq!(fin.group, None);
    assert_eq!(fin.tried.len(), 3);
    assert!(
        fin.tried.iter().any(|(c, _)| *c == carried),
        "the carried-forward best is re-validated"
    );
    assert!(fin.tried[0].0 != fin.tried[1].0 && fin.tried[1].0 != fin.tried[2].0);
    let min = fin.tried.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
    assert_eq!(s.best_loss, min);
    // The search learned: the winner at 4x steps beats the starting config at 4x steps.
    let start_long = t.train_eval(&start, steps * 4, 5).unwrap();
    eprintln!("start at 4x steps: {start_long:.4}");
    assert!(
        s.best_loss <= start_long,
        "search best {} vs start {start_long}",
        s.best_loss
    );
}
