//! `magnet-worker` — the MAGNET worker binary.
//!
//! Each area of work lives in its own library crate (`node/bitnet`, `node/storage`,
//! `node/autoresearch`, …); this binary only parses the command line and dispatches.
//! Each subcommand's code is in its own `cmd_<area>.rs` file.

use clap::{Parser, Subcommand};

mod cmd_bitnet;
mod cmd_daemon;
mod cmd_p2p;
mod cmd_pay;
mod cmd_research;
mod cmd_research_net;
mod cmd_storage;
mod serve;

/// MAGNET worker: trains, stores, researches and serves for the MAGNET network.
#[derive(Parser, Debug)]
#[command(name = "magnet-worker", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print version and build information.
    Version,
    /// Store, fetch and inspect erasure-coded objects (`storage put FILE`, `storage get ADDR
    /// --out FILE`, `storage status`).
    Storage(cmd_storage::StorageArgs),
    /// This node's P2P identity, and its signed gRPC+TLS shard server.
    P2p(cmd_p2p::P2pArgs),
    /// Run the SSD provisioning test that decides storage-tier eligibility.
    Provision(cmd_storage::ProvisionArgs),
    #[command(flatten)]
    Bitnet(cmd_bitnet::BitnetCommand),
    #[command(flatten)]
    Daemon(cmd_daemon::DaemonCommand),
    /// Autoresearch: the error-driven research loop (or one serialised trial).
    Research(Box<cmd_research::ResearchArgs>),
    /// Serve a model over an OpenAI-compatible HTTP API (continuous batching; optional x402
    /// payments settled on chain and split among the model's trainers).
    Serve(Box<serve::ServeArgs>),
    /// Send one request to an x402-paid server, paying its price from your key.
    Pay(Box<cmd_pay::PayArgs>),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Research(a) => cmd_research::run(*a),
        Command::Serve(a) => serve::run(*a),
        Command::Pay(a) => cmd_pay::run(*a),
        Command::Version => {
            println!("magnet-worker {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Storage(args) => cmd_storage::run(args),
        Command::P2p(args) => cmd_p2p::run(args),
        Command::Provision(args) => cmd_storage::run_provision(args),
        Command::Bitnet(cmd) => cmd_bitnet::run(cmd),
        Command::Daemon(cmd) => cmd_daemon::run(cmd),
    }
}
