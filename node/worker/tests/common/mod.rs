//! Helpers the devnet tests share: the repository root, the `magnetd` binary next to
//! `magnet-worker` (skip locally, fail in CI when it is missing), and report amounts.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../..")
}

/// `magnetd` next to `magnet-worker`; `None` (with a message naming `test`) when it is
/// missing locally, a panic when it is missing in CI (`CI=true`).
pub fn magnetd(test: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_BIN_EXE_magnet-worker")).with_file_name("magnetd");
    if p.is_file() {
        return Some(p);
    }
    let msg = format!(
        "{} is missing: build it with `cargo build -p magnet-chain` (cargo test --workspace does)",
        p.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("skipping {test}: {msg}");
    None
}

/// An amount in a report: a JSON number or a decimal string.
pub fn u(v: &Value) -> u128 {
    v.as_u64()
        .map(u128::from)
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}
