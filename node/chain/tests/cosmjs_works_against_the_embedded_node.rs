//! cosmjs (`@cosmjs/stargate` 0.36: StargateClient + SigningStargateClient with a
//! `magnet`-prefix DirectSecp256k1HdWallet) against the embedded node.
//!
//! Needs `node` and `npm ci` run in `tests/js`; skips locally with a message when they are
//! missing, fails when CI=true.

mod common;

use common::*;
use std::path::PathBuf;

fn js_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../tests/js")
}

#[test]
fn cosmjs_stargate_clients_query_and_send_through_the_embedded_node() {
    let dir = js_dir();
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        skip_or_fail("node (Node.js) is not installed");
        return;
    }
    if !dir.join("node_modules/@cosmjs/stargate").exists() {
        skip_or_fail("tests/js/node_modules is missing (run `npm ci` in tests/js)");
        return;
    }
    let net = devnet("magnet-cosmjs-test");
    let node = start_embedded(&net, "200ms");
    let out = std::process::Command::new("node")
        .arg("cosmjs-e2e.mjs")
        .current_dir(&dir)
        .env("MAGNET_RPC", net.rpc_url())
        .env("MAGNET_MNEMONIC", &net.alice_mnemonic)
        .env("MAGNET_CHAIN_ID", &net.chain_id)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cosmjs script failed:\n{stdout}\n{}\nnode log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log_text()
    );
    assert!(stdout.contains("\"ok\":true"), "{stdout}");
}
