//! `magnetd` — run a MAGNET validator, manage keys and genesis, send txs and query the chain.
//!
//! Every subcommand's `--help` explains what it does and shows an example; the validator
//! quickstart is `docs/validator-quickstart.md`.
#![deny(clippy::unwrap_used)]

mod cli;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    if let Err(e) = cli::run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
