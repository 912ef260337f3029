//! Replays the committed seed corpus of the `blocks` fuzz target (`fuzz/corpus/blocks/`) on
//! stable Rust through the same harness the fuzz target runs ([`fuzzing::run_bytes`], ADR
//! 0102): every input runs its blocks of signed txs of every message type through CheckTx,
//! PrepareProposal, ProcessProposal, FinalizeBlock and Commit on two apps with no panic, no
//! divergence and balanced books.

use magnet_app::fuzzing::{self, FuzzInput, MSG_TYPE_URLS};
use rand::{RngCore, SeedableRng};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/blocks")
}

fn corpus() -> Vec<(PathBuf, Vec<u8>)> {
    corpus_in(&corpus_dir())
}

fn corpus_in(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the blocks fuzz corpus directory exists")
        .map(|e| e.expect("a readable corpus entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).expect("a readable corpus file");
            (p, b)
        })
        .collect()
}

#[test]
fn every_blocks_corpus_input_runs_clean_and_the_corpus_reaches_every_message_type() {
    let started = std::time::Instant::now();
    let mut per_type: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    let mut checked: BTreeMap<&'static str, usize> = BTreeMap::new();
    let (mut inputs, mut blocks, mut txs, mut ok) = (0, 0, 0, 0);
    for (path, bytes) in corpus() {
        let s = fuzzing::run_bytes(&bytes).unwrap_or_else(|f| panic!("{}: {f}", path.display()));
        inputs += 1;
        blocks += s.blocks;
        txs += s.txs;
        ok += s.txs_ok;
        for (url, n) in s.checked {
            *checked.entry(url).or_default() += n;
        }
        for (url, (n, k)) in s.msgs {
            let e = per_type.entry(url).or_default();
            e.0 += n;
            e.1 += k;
        }
    }
    eprintln!(
        "{inputs} inputs, {blocks} blocks, {txs} txs finalized ({ok} ok) in {:?}",
        started.elapsed()
    );
    for url in MSG_TYPE_URLS {
        let (n, k) = per_type.get(url).copied().unwrap_or_default();
        let c = checked.get(url).copied().unwrap_or_default();
        eprintln!("  {url}: {c} checked, {n} finalized, {k} in successful txs");
    }
    assert!(inputs >= 30, "the corpus has only {inputs} inputs");
    let missing: Vec<&str> = MSG_TYPE_URLS
        .iter()
        .copied()
        .filter(|u| !per_type.contains_key(u))
        .collect();
    assert!(
        missing.is_empty(),
        "no finalized tx in the corpus carries {missing:?}"
    );
    assert!(
        ok > 0 && ok < txs,
        "{ok} of {txs} txs succeeded: the corpus should hold both"
    );
}

/// Replays the directory in `MAGNET_FUZZ_CORPUS` (e.g. `fuzz/corpus-work/blocks`, what a
/// libFuzzer run grew) and prints, per message type, how often it was checked, finalized and
/// part of a successful tx. Run with `-- --ignored replay_a_corpus --nocapture`.
#[test]
#[ignore]
fn replay_a_corpus_directory_and_print_message_stats() {
    let Some(dir) = std::env::var_os("MAGNET_FUZZ_CORPUS") else {
        eprintln!("set MAGNET_FUZZ_CORPUS to a corpus directory");
        return;
    };
    let mut per_type: BTreeMap<&'static str, (usize, usize, usize)> = BTreeMap::new();
    let (mut inputs, mut blocks, mut txs, mut ok) = (0, 0, 0, 0);
    for (path, bytes) in corpus_in(std::path::Path::new(&dir)) {
        let s = fuzzing::run_bytes(&bytes).unwrap_or_else(|f| panic!("{}: {f}", path.display()));
        inputs += 1;
        blocks += s.blocks;
        txs += s.txs;
        ok += s.txs_ok;
        for (url, n) in s.checked {
            per_type.entry(url).or_default().0 += n;
        }
        for (url, (n, k)) in s.msgs {
            let e = per_type.entry(url).or_default();
            e.1 += n;
            e.2 += k;
        }
    }
    eprintln!("{inputs} inputs, {blocks} blocks, {txs} txs finalized ({ok} ok)");
    for url in MSG_TYPE_URLS {
        let (c, n, k) = per_type.get(url).copied().unwrap_or_default();
        eprintln!("  {url}: {c} checked, {n} finalized, {k} in successful txs");
    }
}

#[test]
fn an_empty_or_garbage_input_is_a_valid_short_run() {
    for bytes in [&[][..], &[0xff; 7][..], &[0u8; 64][..]] {
        fuzzing::run_bytes(bytes).expect("any bytes are some input, and it runs clean");
    }
}

/// Writes the seed corpus: inputs from a fixed-seed generator, kept while they add a message
/// type or a (message type, success) pair the kept ones did not reach, up to 48 inputs (at
/// least 12,000 tries, and on until every message type is reached, at most 60,000). Run
/// with `cargo test -p magnet-app --test fuzz_blocks -- --ignored regenerate` after changing
/// the input grammar (the old seeds then mean other inputs). Crash inputs that libFuzzer
/// found are added by hand as `crash-*` files and never removed by this.
#[test]
#[ignore]
fn regenerate_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seed-")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x0102);
    let mut seen: std::collections::BTreeSet<(&'static str, bool)> = Default::default();
    let mut kept = 0;
    let mut tried = 0;
    // At least 12,000 tries, and on (at most 60,000) until every message type is finalized
    // somewhere: with 35 kinds a finalized MsgReveal (commit, then reveal in its window) is
    // rare enough that 12,000 tries can miss it.
    for attempt in 0..60_000 {
        tried = attempt;
        let reached = MSG_TYPE_URLS
            .iter()
            .all(|u| seen.iter().any(|(s, _)| s == u));
        if kept >= 48 || (attempt >= 12_000 && reached) {
            break;
        }
        let len = 256 + (rng.next_u32() as usize % 3_000);
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        let input = FuzzInput::from_bytes(&bytes);
        if input.blocks.is_empty() {
            continue;
        }
        let s = fuzzing::run_bytes(&bytes).unwrap_or_else(|f| {
            std::fs::write(dir.join(format!("crash-regenerate-{attempt}")), &bytes).unwrap();
            panic!("attempt {attempt}: {f}")
        });
        let new: Vec<(&'static str, bool)> = s
            .msgs
            .iter()
            .flat_map(|(u, (n, k))| {
                let mut v = Vec::new();
                if *n > *k {
                    v.push((*u, false));
                }
                if *k > 0 {
                    v.push((*u, true));
                }
                v
            })
            .filter(|p| !seen.contains(p))
            .collect();
        if new.is_empty() && kept >= 30 {
            continue;
        }
        if new.is_empty() && attempt % 8 != 0 {
            continue;
        }
        seen.extend(new);
        std::fs::write(dir.join(format!("seed-{kept:03}")), &bytes).unwrap();
        kept += 1;
    }
    let urls: std::collections::BTreeSet<&str> = seen.iter().map(|(u, _)| *u).collect();
    eprintln!(
        "kept {kept} of {tried} inputs; {} message types reached, {} succeeded somewhere",
        urls.len(),
        seen.iter().filter(|(_, ok)| *ok).count()
    );
}
