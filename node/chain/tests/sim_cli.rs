//! `magnetd sim` as a real process: its summary, its refusals, and that a seed replays.

use std::process::Command;

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_magnetd"))
        .arg("sim")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("magnetd runs")
}

#[test]
fn fifty_blocks_with_seed_seven_print_a_passing_summary() {
    let out = sim(&["--blocks", "50", "--seed", "7"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.starts_with("simulation passed: seed=7 blocks=50"),
        "{stdout}"
    );
    for line in [
        "message type",
        "bank.MsgSend",
        "registry.MsgHeartbeat",
        "invariant checks: 50 (",
        "app hashes compared: ",
        "imported with the same app hash",
        "blocks/minute",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    // The progress bar went to stderr and reached the end.
    assert!(stderr.contains("50/50 blocks"), "{stderr}");
    // The same seed gives the same chain: the summary is identical but for the timing line.
    let again = sim(&["--blocks", "50", "--seed", "7"]);
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("elapsed"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        strip(&stdout),
        strip(&String::from_utf8_lossy(&again.stdout))
    );
}

#[test]
fn bad_arguments_are_refused_with_the_reason() {
    for (args, why) in [
        (vec!["--blocks", "0"], "--blocks must be at least 1"),
        (
            vec!["--blocks", "5", "--accounts", "2"],
            "--accounts must be at least 4",
        ),
    ] {
        let out = sim(&args);
        assert!(!out.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
}

#[test]
fn help_explains_the_invariants_and_the_replay() {
    let out = sim(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for s in [
        "--blocks",
        "--seed",
        "supply = Σ balances",
        "seed=S height=H invariant=NAME",
        "magnetd sim --seed S --blocks H",
    ] {
        assert!(text.contains(s), "help lacks {s:?}:\n{text}");
    }
}
