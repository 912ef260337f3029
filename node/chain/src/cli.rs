//! The `magnetd` command line.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use clap::{Args, Parser, Subcommand, ValueEnum};
use magnet_chain::genesis::{self, ValidatorInfo};
use magnet_chain::home::{self, Home};
use magnet_chain::metrics::Metrics;
use magnet_chain::node::{HaltPoint, Node, NodeConfig};
use magnet_client::keyring::{Keyring, KeyringBackend};
use magnet_client::tx::{FeeSpec, DEFAULT_GAS};
use magnet_client::{ChainClient, Key};
use magnet_core::{Address, Coins};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod modules;

const ABOUT: &str = "magnetd — run a MAGNET validator and talk to the MAGNET chain.

A node lives in a home directory (--home, default ~/.magnetd) laid out like CometBFT's, so
`cometbft --home` can share it. A single machine devnet:

  magnetd init my-node --chain-id magnet-devnet-1
  magnetd keys add alice --keyring-backend test
  magnetd genesis add-account $(magnetd keys show alice --address) 1000000000umag
  magnetd start                        # embedded single-validator node, RPC on :26657

then, in another shell:

  magnetd tx bank send alice magnet1… 1000umag --yes
  magnetd query bank balances magnet1…

A multi-validator network runs `magnetd start --abci-only` behind CometBFT v0.38: see
docs/validator-quickstart.md and scripts/testnet.sh.";

/// The `magnetd` CLI.
#[derive(Parser, Debug)]
#[command(name = "magnetd", version, about = "Run a MAGNET validator and talk to the MAGNET chain", long_about = ABOUT)]
pub struct Cli {
    /// Node home directory (config/, data/, keyring-*/).
    #[arg(long, global = true, env = "MAGNET_HOME")]
    home: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a node home: config.toml, genesis.json, validator and node keys.
    ///
    /// The new genesis has this node as its only validator, so `magnetd start` works at once.
    /// For a multi-validator chain, collect the others with `magnetd genesis add-validator`.
    ///
    /// Example: magnetd init my-node --chain-id magnet-devnet-1
    Init(InitArgs),
    /// Manage account keys (BIP-39 mnemonic, path m/44'/118'/0'/0/0, addresses magnet1…).
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Build the genesis file: accounts, validators.
    #[command(subcommand)]
    Genesis(GenesisCmd),
    /// Edit config/config.toml (the CometBFT config) by dotted key.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Run the node: embedded single-validator node (default) or ABCI server for CometBFT.
    ///
    /// Embedded: produces a block every --block-time, serves CometBFT JSON-RPC on the
    /// config.toml [rpc] laddr (default 127.0.0.1:26657) and Prometheus metrics.
    ///
    /// --abci-only: serves the ABCI socket (config.toml proxy_app, default
    /// tcp://127.0.0.1:26658) for `cometbft start --home <same home>`.
    Start(StartArgs),
    /// Show the status of a node (chain id, height, app hash).
    Status(NodeArgs),
    /// Sign and broadcast transactions.
    #[command(subcommand)]
    Tx(TxCmd),
    /// Query chain state.
    #[command(subcommand)]
    Query(QueryCmd),
    /// Write the committed state as a new genesis file (stop the node first).
    ///
    /// Example: magnetd export --output-file exported-genesis.json
    Export(ExportArgs),
    /// A whole MAGNET loop on this machine: an embedded chain with a devnet genesis, a research
    /// job, and N `magnet-worker` processes that train in DiLoCo rounds, commit, reveal,
    /// evaluate each other and get settled; ends with a report and a loss curve.
    ///
    /// Example: `magnetd devnet --workers 3 --epochs 2 --out devnet` (about 8 minutes on 2
    /// cores; needs `magnet-worker` next to `magnetd` or on $PATH).
    Devnet(magnet_chain::devnet::DevnetArgs),
    /// Randomized whole-app simulation: random valid and invalid txs of every module, the
    /// invariants after every block, two replicas compared at every height (ADR 0100).
    #[command(long_about = SIM_ABOUT)]
    Sim(SimArgs),
}

const SIM_ABOUT: &str = "\
Randomized whole-app simulation (ADR 0100), in the style of the Cosmos SDK's.

Starts a chain with funded accounts and four validators in a scratch directory and produces
--blocks blocks through the real ABCI calls (PrepareProposal, ProcessProposal, FinalizeBlock,
Commit) of two app replicas on separate stores. Each block carries random signed txs of every
module, valid and deliberately invalid (overdrafts, forged signers, wrong sequences, bad
signatures, fees below the minimum, too little gas, unknown ids, out-of-window reveals), and
some blocks come from a byzantine proposer that skips PrepareProposal or stuffs a tx that fails
its ante (which every replica must reject). After every block it checks:

  * supply = Σ balances, and genesis + minted − burned = supply (from the block's events);
  * each module escrow (registry, jobs, jobs_audit, notary, gov, data, slashing) = Σ its records;
  * every ended epoch settled exactly once, in order, and never rewritten;
  * both replicas' app hashes and tx result codes are equal.

At a random height in the middle of the run, the state is exported and imported into a third app,
which must commit the same app hash and then follows every block with the same hashes and its
own books checked.

Everything is a function of --seed. A failure prints `seed=S height=H invariant=NAME` and exits
with status 1; `magnetd sim --seed S --blocks H` replays it exactly.

Examples:
  magnetd sim --blocks 500 --seed 7
  magnetd sim --blocks 5000 --seed 1 --accounts 30 --keep-dir /tmp/sim-state";

#[derive(Args, Debug)]
struct SimArgs {
    /// Blocks to produce (block times advance 3–7 s; an epoch is 120 s).
    #[arg(long, default_value_t = 500)]
    blocks: u64,
    /// Seed of every random choice; the same seed replays the same chain.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Funded operator accounts (each with a funded node key); at least 4.
    #[arg(long, default_value_t = 12)]
    accounts: usize,
    /// Most txs in one block.
    #[arg(long, default_value_t = 10)]
    max_txs: usize,
    /// Skip the export → import at a random height.
    #[arg(long)]
    no_export: bool,
    /// Keep the replicas' state in this (new or empty) directory instead of a scratch one
    /// that is deleted at the end.
    #[arg(long)]
    keep_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct InitArgs {
    /// The node's name, shown to peers and in `status`.
    moniker: String,
    /// Chain id, e.g. magnet-devnet-1.
    #[arg(long)]
    chain_id: String,
    /// Genesis time (RFC 3339). Default: now, to the second.
    #[arg(long)]
    genesis_time: Option<String>,
    /// Voting power of this node's validator in the new genesis.
    #[arg(long, default_value_t = 10)]
    power: u64,
    /// ABCI address CometBFT connects to (config.toml proxy_app).
    #[arg(long, default_value = "tcp://127.0.0.1:26658")]
    abci_addr: String,
    /// RPC listen address (config.toml [rpc] laddr), used by both the embedded node and CometBFT.
    #[arg(long, default_value = "tcp://127.0.0.1:26657")]
    rpc_laddr: String,
    /// CometBFT p2p listen address.
    #[arg(long, default_value = "tcp://0.0.0.0:26656")]
    p2p_laddr: String,
    /// CometBFT timeout_commit (pause after each block).
    #[arg(long, default_value = "1s")]
    timeout_commit: String,
    /// Replace an existing config and genesis (keys are kept).
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args, Debug, Clone)]
struct KeyringArgs {
    /// Keyring backend: `test` (clear text, devnets only) or `file` (encrypted with a
    /// passphrase from MAGNET_KEYRING_PASSPHRASE or stdin).
    #[arg(long, default_value = "test")]
    keyring_backend: KeyringBackend,
}

#[derive(Subcommand, Debug)]
enum KeysCmd {
    /// Create a key (prints its mnemonic once: write it down) or recover one from a mnemonic.
    ///
    /// Example: magnetd keys add alice --keyring-backend file
    /// Recover: echo "word1 … word24" | magnetd keys add alice --recover
    Add {
        /// Key name.
        name: String,
        /// Read a BIP-39 mnemonic from stdin instead of generating one.
        #[arg(long)]
        recover: bool,
        #[command(flatten)]
        keyring: KeyringArgs,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Show a key's address and public key.
    Show {
        /// Key name.
        name: String,
        /// Print only the address.
        #[arg(long)]
        address: bool,
        #[command(flatten)]
        keyring: KeyringArgs,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// List keys.
    List {
        #[command(flatten)]
        keyring: KeyringArgs,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
}

#[derive(Subcommand, Debug)]
enum GenesisCmd {
    /// Give an account coins at genesis (address or key name).
    ///
    /// Example: magnetd genesis add-account magnet1… 1000000000umag
    AddAccount {
        /// `magnet1…` address, or the name of a key in the keyring.
        address: String,
        /// Coins, e.g. 1000000umag or 5umag,3ufoo.
        coins: String,
        #[command(flatten)]
        keyring: KeyringArgs,
    },
    /// Print this node's validator (public key, address, node id) as JSON, to hand to the
    /// genesis coordinator; `pub_key_ed25519_hex` is the key as a governance
    /// `validator_set_changes` proposal names it.
    ShowValidator {
        /// Voting power to request.
        #[arg(long, default_value_t = 10)]
        power: u64,
    },
    /// Add a validator to the genesis, from the JSON another operator's
    /// `magnetd genesis show-validator` printed (a file path, or - for stdin), or from
    /// --pubkey/--power/--name.
    ///
    /// Example: magnetd genesis add-validator val2.json
    AddValidator {
        /// File with show-validator JSON, or - for stdin.
        file: Option<PathBuf>,
        /// ed25519 public key, base64 (instead of a file).
        #[arg(long)]
        pubkey: Option<String>,
        /// Voting power (with --pubkey).
        #[arg(long, default_value_t = 10)]
        power: u64,
        /// Name (with --pubkey).
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Check the genesis file (CometBFT format and MAGNET app state).
    Validate,
}

#[derive(Subcommand, Debug)]
enum ConfigCmd {
    /// Set a config.toml value, e.g. `magnetd config set p2p.persistent_peers id@127.0.0.1:26656`.
    Set {
        /// Dotted key: section.key or key.
        key: String,
        /// Value (true/false and integers are written as such, everything else as a string).
        value: String,
    },
    /// Print a config.toml value.
    Get {
        /// Dotted key.
        key: String,
    },
}

#[derive(Args, Debug)]
struct StartArgs {
    /// Serve only the ABCI socket, for an external CometBFT node.
    #[arg(long)]
    abci_only: bool,
    /// ABCI listen address for --abci-only (default: config.toml proxy_app).
    #[arg(long)]
    abci_addr: Option<String>,
    /// RPC listen address of the embedded node (default: config.toml [rpc] laddr).
    #[arg(long)]
    rpc_laddr: Option<String>,
    /// Time between blocks of the embedded node (also the step of block timestamps), e.g. 1s, 200ms.
    #[arg(long, default_value = "1s")]
    block_time: String,
    /// Prometheus metrics listen address ("off" to disable).
    #[arg(long, default_value = "127.0.0.1:26660")]
    metrics_addr: String,
    /// This node's minimum gas price for its mempool, in umag per gas (e.g. 0.025).
    #[arg(long, default_value = "0")]
    min_gas_price: String,
    /// With --abci-only: serve the DiLoCo eligible set (GET /magnet/diloco/v1/eligible?height=H)
    /// on this address, e.g. 127.0.0.1:26659 (the embedded node serves it on its RPC address).
    #[arg(long, requires = "abci_only")]
    eligible_laddr: Option<String>,
    /// With --eligible-laddr: the CometBFT RPC to read block hashes from (default:
    /// config.toml [rpc] laddr).
    #[arg(long, requires = "eligible_laddr")]
    comet_rpc: Option<String>,
    /// Keep this many recent heights queryable (0 = all).
    #[arg(long, default_value_t = 0)]
    pruning_keep_recent: u64,
    /// State sync: write a snapshot of the state after every height divisible by this, under
    /// <home>/data/magnet-app/snapshots/, and serve it to CometBFT nodes that join by state
    /// sync (0 = no snapshots). Serving needs --abci-only (CometBFT in front).
    #[arg(long, default_value_t = 0)]
    snapshot_interval: u64,
    /// State sync: keep this many most recent snapshots (at least 1).
    #[arg(long, default_value_t = 2)]
    snapshot_keep_recent: u32,
    /// State sync: snapshot chunk size in bytes (1..=16000000).
    #[arg(long, default_value_t = magnet_app::snapshot::DEFAULT_CHUNK_SIZE)]
    snapshot_chunk_size: u64,
    /// Debug (crash tests): halt the embedded producer at POINT:HEIGHT, e.g.
    /// before-commit:5, and sleep until killed. Points: before-finalize, after-finalize,
    /// before-commit.
    #[arg(long, env = "MAGNETD_DEBUG_HALT", hide = true)]
    debug_halt: Option<String>,
}

#[derive(Args, Debug, Clone)]
struct NodeArgs {
    /// RPC endpoint of a node (default: this home's config.toml [rpc] laddr, else http://127.0.0.1:26657).
    #[arg(long)]
    node: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

#[derive(Subcommand, Debug)]
enum TxCmd {
    /// Bank transactions.
    #[command(subcommand)]
    Bank(TxBankCmd),
    /// Incentive-module transactions (registry, contrib, notary, data, jobs, gov).
    #[command(flatten)]
    Module(modules::ModuleTxCmd),
}

#[derive(Subcommand, Debug)]
enum TxBankCmd {
    /// Send coins from a key in the keyring to an address; waits until it is in a block.
    ///
    /// Example: magnetd tx bank send alice magnet1… 1000umag --fees 500umag --yes
    Send {
        /// Name of the sending key.
        from: String,
        /// Recipient `magnet1…` address.
        to: String,
        /// Coins to send, e.g. 1000umag.
        amount: String,
        /// Fee coins (default: gas × 0.025umag rounded up, never below 1umag: the chain's default
        /// minimum gas price; a chain whose governance raised it needs --fees).
        #[arg(long)]
        fees: Option<String>,
        /// Gas limit.
        #[arg(long, default_value_t = DEFAULT_GAS)]
        gas: u64,
        /// Memo.
        #[arg(long, default_value = "")]
        memo: String,
        /// Skip the confirmation prompt.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Return after CheckTx instead of waiting for the block.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        keyring: KeyringArgs,
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(Subcommand, Debug)]
enum QueryCmd {
    /// Bank queries.
    #[command(subcommand)]
    Bank(QueryBankCmd),
    /// Auth queries.
    #[command(subcommand)]
    Auth(QueryAuthCmd),
    /// A transaction by hash (hex).
    Tx {
        /// Tx hash, 64 hex characters.
        hash: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// A block (latest when no height is given).
    Block {
        /// Height.
        height: Option<u64>,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Incentive-module queries.
    #[command(flatten)]
    Module(modules::ModuleQueryCmd),
}

#[derive(Subcommand, Debug)]
enum QueryBankCmd {
    /// All balances of an address.
    Balances {
        /// `magnet1…` address.
        address: String,
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(Subcommand, Debug)]
enum QueryAuthCmd {
    /// Account number and sequence of an address.
    Account {
        /// `magnet1…` address.
        address: String,
        #[command(flatten)]
        node: NodeArgs,
    },
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// Write here instead of stdout.
    #[arg(long)]
    output_file: Option<PathBuf>,
    /// Chain id of the new genesis (default: the current one).
    #[arg(long)]
    chain_id: Option<String>,
}

fn default_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".magnetd")
}

fn init_logs(format: LogFormat) {
    init_logs_at(format, "info")
}

fn init_logs_at(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => b.try_init(),
        LogFormat::Json => b.json().try_init(),
    };
}

/// Run the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    if matches!(cli.command, Command::Sim(_)) && std::env::var_os("RUST_LOG").is_none() {
        // The app logs every commit at info: thousands of lines that hide the progress.
        init_logs_at(cli.log_format, "error");
    }
    init_logs(cli.log_format);
    let home = Home::new(cli.home.clone().unwrap_or_else(default_home));
    match cli.command {
        Command::Init(a) => init(&home, a),
        Command::Keys(k) => keys(&home, k),
        Command::Genesis(g) => genesis_cmd(&home, g),
        Command::Config(c) => config_cmd(&home, c),
        Command::Start(s) => start(&home, s),
        Command::Status(n) => rt()?.block_on(status(&home, n)),
        Command::Tx(TxCmd::Bank(t)) => rt()?.block_on(tx_bank(&home, t)),
        Command::Tx(TxCmd::Module(m)) => rt()?.block_on(modules::tx(&home, m)),
        Command::Query(q) => rt()?.block_on(query(&home, q)),
        Command::Export(e) => export(&home, e),
        Command::Sim(a) => sim(a),
        Command::Devnet(a) => {
            let me = std::env::current_exe().context("locating the magnetd binary")?;
            magnet_chain::devnet::run(a, &me).map(|_| ())
        }
    }
}

fn rt() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Parse `1s`, `200ms`, `2m`.
fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .with_context(|| format!("duration {s:?}: write it like 1s or 200ms"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => bail!("duration {s:?}: unit must be ms, s or m"),
    })
}

fn config_toml(moniker: &str, a: &InitArgs) -> String {
    format!(
        r#"# CometBFT v0.38 configuration, written by `magnetd init`.
# `cometbft start --home <this home>` reads it; every option not listed takes CometBFT's default.
# `magnetd start` (embedded) reads [rpc] laddr; `magnetd start --abci-only` listens on proxy_app.

proxy_app = "{abci}"
moniker = "{moniker}"
db_backend = "goleveldb"
log_level = "info"
abci = "socket"

[rpc]
laddr = "{rpc}"

[p2p]
laddr = "{p2p}"
persistent_peers = ""
addr_book_strict = true
allow_duplicate_ip = false

[mempool]
size = 5000

[consensus]
timeout_propose = "3s"
timeout_commit = "{tc}"
create_empty_blocks = true

[tx_index]
indexer = "kv"

[instrumentation]
prometheus = false
"#,
        abci = a.abci_addr,
        rpc = a.rpc_laddr,
        p2p = a.p2p_laddr,
        tc = a.timeout_commit,
    )
}

fn init(home: &Home, a: InitArgs) -> Result<()> {
    if home.genesis().exists() && !a.overwrite {
        bail!(
            "{} already exists; pass --overwrite to replace config and genesis (keys are kept)",
            home.genesis().display()
        );
    }
    parse_duration(&a.timeout_commit)?;
    std::fs::create_dir_all(home.config_dir())?;
    std::fs::create_dir_all(home.data_dir())?;
    // Keys: keep existing ones (a validator key must never be replaced by accident).
    if !home.priv_validator_key().exists() {
        let sk = ed25519_consensus::SigningKey::new(rand::rngs::OsRng);
        let priv_key = tendermint::PrivateKey::from(sk);
        let pub_key = priv_key.public_key();
        let pvk = tendermint_config::PrivValidatorKey {
            address: tendermint::account::Id::from(pub_key),
            pub_key,
            priv_key,
        };
        magnet_client::keyring::write_private(
            &home.config_dir(),
            &home.priv_validator_key(),
            &serde_json::to_vec_pretty(&pvk)?,
        )?;
    }
    if !home.node_key().exists() {
        let sk = ed25519_consensus::SigningKey::new(rand::rngs::OsRng);
        let nk = tendermint_config::NodeKey {
            priv_key: tendermint::PrivateKey::from(sk),
        };
        magnet_client::keyring::write_private(
            &home.config_dir(),
            &home.node_key(),
            &serde_json::to_vec_pretty(&nk)?,
        )?;
    }
    if !home.priv_validator_state().exists() {
        home::write_atomic(
            &home.priv_validator_state(),
            br#"{"height":"0","round":0,"step":0}"#,
        )?;
    }
    let me = show_validator(home, a.power)?;
    let time = match &a.genesis_time {
        Some(t) => t
            .parse::<tendermint::Time>()
            .map_err(|e| anyhow!("--genesis-time {t:?}: {e}"))?,
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("system clock before 1970")?
                .as_secs();
            tendermint::Time::from_unix_timestamp(now as i64, 0).map_err(|e| anyhow!("{e}"))?
        }
    };
    let g = genesis::new_genesis(
        &a.chain_id,
        &time.to_rfc3339(),
        std::slice::from_ref(&me),
        json!({}),
    );
    genesis::write(&home.genesis(), &g)?;
    home::write_atomic(&home.config_toml(), config_toml(&a.moniker, &a).as_bytes())?;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "moniker": a.moniker,
            "chain_id": a.chain_id,
            "home": home.root(),
            "node_id": me.node_id,
            "validator": me,
        }))?
    );
    eprintln!(
        "initialised {}. Next: `magnetd keys add <name>`, `magnetd genesis add-account <addr> <coins>`, `magnetd start`.",
        home.root().display()
    );
    Ok(())
}

fn show_validator(home: &Home, power: u64) -> Result<ValidatorInfo> {
    let pvk = tendermint_config::PrivValidatorKey::load_json_file(&home.priv_validator_key())
        .map_err(|e| {
            anyhow!(
                "loading {} (run `magnetd init` first): {e}",
                home.priv_validator_key().display()
            )
        })?;
    let node_id = tendermint_config::NodeKey::load_json_file(&home.node_key())
        .map_err(|e| anyhow!("loading {}: {e}", home.node_key().display()))?
        .node_id()
        .to_string();
    let moniker = home
        .config_str("moniker")
        .ok()
        .flatten()
        .unwrap_or_default();
    Ok(ValidatorInfo {
        name: moniker,
        address: pvk.address.to_string(),
        pub_key: base64::engine::general_purpose::STANDARD.encode(pvk.pub_key.to_bytes()),
        power,
        node_id,
    })
}

fn keyring(home: &Home, k: &KeyringArgs) -> Keyring {
    Keyring::open(home.root(), k.keyring_backend)
}

fn keys(home: &Home, cmd: KeysCmd) -> Result<()> {
    match cmd {
        KeysCmd::Add {
            name,
            recover,
            keyring: k,
            output,
        } => {
            let key = if recover {
                eprintln!("enter your BIP-39 mnemonic:");
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .context("reading the mnemonic from stdin")?;
                Key::from_mnemonic(&line)?
            } else {
                Key::generate()?
            };
            let info = keyring(home, &k).add(&name, &key)?;
            if output == Output::Json {
                let mut v = serde_json::to_value(&info)?;
                if !recover {
                    v["mnemonic"] = json!(key.mnemonic());
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "name: {}\naddress: {}\npubkey: {}",
                    info.name, info.address, info.pubkey
                );
                if !recover {
                    println!(
                        "\n**Write this mnemonic down: it is the only way to recover the key.**\n\n{}",
                        key.mnemonic()
                    );
                }
            }
            Ok(())
        }
        KeysCmd::Show {
            name,
            address,
            keyring: k,
            output,
        } => {
            let info = keyring(home, &k).info(&name)?;
            if address {
                println!("{}", info.address);
            } else if output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!(
                    "name: {}\naddress: {}\npubkey: {}",
                    info.name, info.address, info.pubkey
                );
            }
            Ok(())
        }
        KeysCmd::List { keyring: k, output } => {
            let list = keyring(home, &k).list()?;
            if output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no keys in {}", keyring(home, &k).dir().display());
            } else {
                for i in list {
                    println!("{}\t{}", i.name, i.address);
                }
            }
            Ok(())
        }
    }
}

fn resolve_address(home: &Home, s: &str, k: &KeyringArgs) -> Result<Address> {
    if s.starts_with("magnet1") {
        return Ok(s.parse()?);
    }
    let info = keyring(home, k)
        .info(s)
        .with_context(|| format!("{s:?} is neither a magnet1… address nor a key name"))?;
    Ok(info.address.parse()?)
}

fn genesis_cmd(home: &Home, cmd: GenesisCmd) -> Result<()> {
    match cmd {
        GenesisCmd::AddAccount {
            address,
            coins,
            keyring: k,
        } => {
            let addr = resolve_address(home, &address, &k)?;
            let coins: Coins = coins.parse()?;
            if coins.is_empty() {
                bail!("give a positive amount, e.g. 1000000umag");
            }
            let mut g = genesis::read(&home.genesis())?;
            add_account(&mut g, &addr, &coins)?;
            check_app_state(&g)?;
            genesis::write(&home.genesis(), &g)?;
            eprintln!("added {addr} with {coins} to {}", home.genesis().display());
            Ok(())
        }
        GenesisCmd::ShowValidator { power } => {
            let v = show_validator(home, power)?;
            let mut out = serde_json::to_value(&v)?;
            // The key as a governance proposal names it (`pub_key_ed25519_hex`).
            let raw = base64::engine::general_purpose::STANDARD.decode(&v.pub_key)?;
            out["pub_key_ed25519_hex"] = Value::String(hex::encode(raw));
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        GenesisCmd::AddValidator {
            file,
            pubkey,
            power,
            name,
        } => {
            let v: ValidatorInfo = match (file, pubkey) {
                (Some(f), None) => {
                    let text = if f.as_os_str() == "-" {
                        let mut s = String::new();
                        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
                        s
                    } else {
                        std::fs::read_to_string(&f)
                            .with_context(|| format!("reading {}", f.display()))?
                    };
                    serde_json::from_str(&text).context(
                        "validator JSON (as printed by `magnetd genesis show-validator`)",
                    )?
                }
                (None, Some(pk)) => ValidatorInfo {
                    name,
                    address: String::new(),
                    pub_key: pk,
                    power,
                    node_id: String::new(),
                },
                _ => bail!("give either a show-validator JSON file or --pubkey, not both"),
            };
            let mut g = genesis::read(&home.genesis())?;
            genesis::add_validator(&mut g, &v)?;
            genesis::write(&home.genesis(), &g)?;
            let n = g["validators"].as_array().map(Vec::len).unwrap_or(0);
            eprintln!(
                "added validator {} ({}) with power {}; genesis now has {n} validator(s)",
                v.name, v.pub_key, v.power
            );
            Ok(())
        }
        GenesisCmd::Validate => {
            let g = genesis::read(&home.genesis())?;
            genesis::validate(&g)?;
            check_app_state(&g)?;
            println!("{} is valid", home.genesis().display());
            Ok(())
        }
    }
}

/// Add coins to `addr` in `app_state.bank.balances` and make sure `app_state.auth.accounts`
/// lists it (so it has an account number from block 1).
fn add_account(g: &mut Value, addr: &Address, coins: &Coins) -> Result<()> {
    let app_state = g
        .as_object_mut()
        .context("genesis is not a JSON object")?
        .entry("app_state")
        .or_insert_with(|| json!({}));
    if !app_state.is_object() {
        *app_state = json!({});
    }
    let bank = app_state
        .as_object_mut()
        .context("app_state")?
        .entry("bank")
        .or_insert_with(|| json!({"balances": []}));
    let balances = bank
        .as_object_mut()
        .context("app_state.bank is not an object")?
        .entry("balances")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .context("app_state.bank.balances is not a list")?;
    let a = addr.to_bech32();
    let mut found = false;
    for b in balances.iter_mut() {
        if b.get("address").and_then(Value::as_str) == Some(a.as_str()) {
            let old: Coins = serde_json::from_value(b.get("coins").cloned().unwrap_or(json!([])))?;
            let sum = old.checked_add(coins)?;
            b["coins"] = serde_json::to_value(&sum)?;
            found = true;
        }
    }
    if !found {
        balances.push(json!({"address": a, "coins": coins}));
    }
    // Supply, when present, must track the balances.
    if let Some(supply) = bank.get_mut("supply") {
        if supply.as_array().is_some_and(|s| !s.is_empty()) {
            let old: Coins = serde_json::from_value(supply.clone())?;
            *supply = serde_json::to_value(old.checked_add(coins)?)?;
        }
    }
    let auth = app_state
        .as_object_mut()
        .context("app_state")?
        .entry("auth")
        .or_insert_with(|| json!({"accounts": []}));
    let accounts = auth
        .as_object_mut()
        .context("app_state.auth is not an object")?
        .entry("accounts")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .context("app_state.auth.accounts is not a list")?;
    if !accounts
        .iter()
        .any(|x| x.get("address").and_then(Value::as_str) == Some(a.as_str()))
    {
        accounts.push(json!({"@type": "/cosmos.auth.v1beta1.BaseAccount", "address": a}));
    }
    Ok(())
}

fn check_app_state(g: &Value) -> Result<()> {
    let chain_id = genesis::chain_id(g)?;
    let app_state = g.get("app_state").cloned().unwrap_or(json!({}));
    magnet_app::MagnetApp::validate_genesis(&chain_id, &app_state)
        .context("the genesis app_state is invalid")?;
    Ok(())
}

fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().context("empty key")?;
    let mut cur = table;
    for p in parts {
        cur = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .with_context(|| format!("{p} is not a section"))?;
    }
    cur.insert(last.to_string(), value);
    Ok(())
}

fn config_cmd(home: &Home, cmd: ConfigCmd) -> Result<()> {
    match cmd {
        ConfigCmd::Set { key, value } => {
            let mut t = home.read_config()?;
            let v = if let Ok(b) = value.parse::<bool>() {
                toml::Value::Boolean(b)
            } else if let Ok(i) = value.parse::<i64>() {
                toml::Value::Integer(i)
            } else {
                toml::Value::String(value)
            };
            set_dotted(&mut t, &key, v)?;
            home::write_atomic(&home.config_toml(), toml::to_string(&t)?.as_bytes())?;
            Ok(())
        }
        ConfigCmd::Get { key } => {
            let t = home.read_config()?;
            let mut cur = &toml::Value::Table(t);
            for p in key.split('.') {
                cur = cur.get(p).with_context(|| format!("{key} is not set"))?;
            }
            match cur {
                toml::Value::String(s) => println!("{s}"),
                other => println!("{other}"),
            }
            Ok(())
        }
    }
}

fn open_app(home: &Home, s: &StartArgs) -> Result<magnet_app::MagnetApp> {
    let mut cfg = magnet_app::AppConfig {
        min_gas_price: s.min_gas_price.clone(),
        ..Default::default()
    };
    cfg.store.keep_recent = s.pruning_keep_recent;
    cfg.snapshot = magnet_app::snapshot::SnapshotConfig {
        interval: s.snapshot_interval,
        keep_recent: s.snapshot_keep_recent,
        chunk_size: s.snapshot_chunk_size,
    };
    cfg.snapshot.validate().map_err(|e| {
        anyhow!("{e} (--snapshot-interval, --snapshot-keep-recent, --snapshot-chunk-size)")
    })?;
    if cfg.snapshot.interval > 0 && !s.abci_only {
        bail!("--snapshot-interval needs --abci-only: only CometBFT serves snapshots to joining nodes");
    }
    magnet_app::MagnetApp::open(&home.app_dir(), cfg)
        .with_context(|| format!("opening the app store in {}", home.app_dir().display()))
}

fn start(home: &Home, s: StartArgs) -> Result<()> {
    let g = genesis::read(&home.genesis())?;
    check_app_state(&g)?;
    let metrics = Metrics::new();
    let runtime = rt()?;
    if s.metrics_addr != "off" {
        let addr: std::net::SocketAddr = s
            .metrics_addr
            .parse()
            .with_context(|| format!("--metrics-addr {:?}", s.metrics_addr))?;
        let m = metrics.clone();
        runtime.spawn(async move {
            if let Err(e) = magnet_chain::metrics::serve(addr, m).await {
                tracing::error!("metrics server: {e:#}");
            }
        });
    }
    let app = open_app(home, &s)?;
    if s.abci_only {
        let addr = match s.abci_addr.clone() {
            Some(a) => a,
            None => home
                .config_str("proxy_app")?
                .unwrap_or_else(|| "tcp://127.0.0.1:26658".into()),
        };
        if let Some(a) = &s.eligible_laddr {
            spawn_eligible_behind_comet(home, &runtime, a, s.comet_rpc.as_deref(), app.clone())?;
        }
        let metered = magnet_chain::abci_server::Metered::new(app, metrics);
        // The ABCI server is blocking (one thread per CometBFT connection).
        let _rt = runtime;
        return magnet_chain::abci_server::serve(&addr, metered);
    }
    let halt_at = match &s.debug_halt {
        None => None,
        Some(spec) => {
            let (p, h) = spec.split_once(':').context("--debug-halt POINT:HEIGHT")?;
            Some((
                p.parse::<HaltPoint>()?,
                h.parse::<u64>().context("--debug-halt height")?,
            ))
        }
    };
    let cfg = NodeConfig {
        block_time: parse_duration(&s.block_time)?,
        moniker: home
            .config_str("moniker")?
            .unwrap_or_else(|| "magnet".into()),
        halt_at,
        ..NodeConfig::default()
    };
    let node = Arc::new(Node::open(home, app, cfg, metrics)?);
    let rpc = match s.rpc_laddr.clone() {
        Some(a) => a,
        None => home
            .config_str("rpc.laddr")?
            .unwrap_or_else(|| "tcp://127.0.0.1:26657".into()),
    };
    let rpc_addr: std::net::SocketAddr = home::strip_tcp(&rpc)
        .parse()
        .with_context(|| format!("rpc laddr {rpc:?}"))?;
    let n = node.clone();
    let (err_tx, mut err_rx) = tokio::sync::mpsc::channel::<anyhow::Error>(4);
    let e2 = err_tx.clone();
    runtime.spawn(async move {
        if let Err(e) = magnet_chain::rpc_server::serve(rpc_addr, n).await {
            let _ = e2.send(e).await;
        }
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let node = node.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("producer".into())
            .spawn(move || {
                if let Err(e) = node.run(stop) {
                    let _ = err_tx.blocking_send(e);
                }
            })?
    };
    tracing::info!(home = %home.root().display(), rpc = %rpc_addr, "embedded node running; Ctrl-C stops it");
    let res = runtime.block_on(async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => { tracing::info!("stopping"); Ok(()) }
            Some(e) = err_rx.recv() => Err(e),
        }
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = producer.join();
    res
}

/// `--abci-only --eligible-laddr`: the DiLoCo eligible-set endpoint beside the ABCI socket.
fn spawn_eligible_behind_comet(
    home: &Home,
    runtime: &tokio::runtime::Runtime,
    laddr: &str,
    comet_rpc: Option<&str>,
    app: magnet_app::MagnetApp,
) -> Result<()> {
    let addr: std::net::SocketAddr = home::strip_tcp(laddr)
        .parse()
        .with_context(|| format!("--eligible-laddr {laddr:?}"))?;
    let comet = match comet_rpc {
        Some(u) => u.to_string(),
        None => node_url(
            home,
            &NodeArgs {
                node: None,
                output: Output::Text,
            },
        ),
    };
    runtime.spawn(async move {
        if let Err(e) = magnet_chain::eligible::serve_behind_comet(addr, app, &comet).await {
            tracing::error!("eligible-set server: {e:#}");
        }
    });
    Ok(())
}

fn node_url(home: &Home, n: &NodeArgs) -> String {
    if let Some(u) = &n.node {
        return u.clone();
    }
    match home.config_str("rpc.laddr") {
        Ok(Some(l)) => format!(
            "http://{}",
            home::strip_tcp(&l).replace("0.0.0.0", "127.0.0.1")
        ),
        _ => "http://127.0.0.1:26657".into(),
    }
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

async fn status(home: &Home, n: NodeArgs) -> Result<()> {
    let c = ChainClient::new(&node_url(home, &n))?;
    let s = c.status().await?;
    if n.output == Output::Json {
        return print_json(&s);
    }
    println!("chain id:     {}", s.node_info.network);
    println!("moniker:      {}", s.node_info.moniker);
    println!("version:      CometBFT {}", s.node_info.version);
    println!("height:       {}", s.sync_info.latest_block_height);
    println!("block time:   {}", s.sync_info.latest_block_time);
    println!("app hash:     {}", s.sync_info.latest_app_hash);
    println!("catching up:  {}", s.sync_info.catching_up);
    println!(
        "validator:    {} (power {})",
        s.validator_info.address, s.validator_info.power
    );
    Ok(())
}

/// The fee `magnetd tx` pays when `--fees` is not given: `ceil(gas × 0.025)` umag, the
/// chain's default minimum gas price (ADR 0097), never below 1 umag.
fn default_fee(gas: u64) -> Coins {
    let fee = magnet_client::tx::FeeSpec::at_price(gas, magnet_client::tx::DEFAULT_GAS_PRICE)
        .map(|f| f.amount.amount_of(magnet_core::NATIVE_DENOM))
        .unwrap_or(0);
    Coins::umag(fee.max(1))
}

async fn tx_bank(home: &Home, t: TxBankCmd) -> Result<()> {
    let TxBankCmd::Send {
        from,
        to,
        amount,
        fees,
        gas,
        memo,
        yes,
        no_wait,
        keyring: k,
        node,
    } = t;
    let to_addr: Address = to.parse()?;
    let amount: Coins = amount.parse()?;
    if amount.is_empty() {
        bail!("amount must be positive, e.g. 1000umag");
    }
    let fee = FeeSpec {
        amount: match fees {
            Some(f) => f.parse()?,
            None => default_fee(gas),
        },
        gas_limit: gas,
    };
    let key = keyring(home, &k).get(&from)?;
    let client = ChainClient::new(&node_url(home, &node))?;
    if !yes {
        eprintln!(
            "send {amount} from {from} ({}) to {to_addr}, fee {}, gas {gas}{}? [y/N]",
            key.address(),
            fee.amount,
            if memo.is_empty() {
                String::new()
            } else {
                format!(", memo {memo:?}")
            }
        );
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            bail!("aborted");
        }
    }
    let msg = magnet_client::tx::msg_send(&key.address(), &to_addr, &amount)?;
    let r = client
        .sign_and_broadcast(&key, vec![msg], &memo, &fee)
        .await?;
    let hash = r.hash.to_string();
    if no_wait {
        if node.output == Output::Json {
            return print_json(&json!({"txhash": hash, "code": r.code.value(), "log": r.log}));
        }
        println!("txhash: {hash} (accepted into the mempool)");
        return Ok(());
    }
    let res = client.wait_tx(&hash, Duration::from_secs(30)).await?;
    if node.output == Output::Json {
        print_json(&json!({
            "txhash": hash,
            "height": res.height.value(),
            "code": res.tx_result.code.value(),
            "codespace": res.tx_result.codespace,
            "log": res.tx_result.log,
            "gas_wanted": res.tx_result.gas_wanted,
            "gas_used": res.tx_result.gas_used,
        }))?;
    } else {
        println!(
            "txhash: {hash}\nheight: {}\ncode:   {}\ngas:    {} / {}",
            res.height,
            res.tx_result.code.value(),
            res.tx_result.gas_used,
            res.tx_result.gas_wanted
        );
        if !res.tx_result.log.is_empty() {
            println!("log:    {}", res.tx_result.log);
        }
    }
    if res.tx_result.code.is_err() {
        bail!(
            "tx {hash} failed in block {} with code {}: {}",
            res.height,
            res.tx_result.code.value(),
            res.tx_result.log
        );
    }
    Ok(())
}

async fn query(home: &Home, q: QueryCmd) -> Result<()> {
    match q {
        QueryCmd::Module(m) => modules::query(home, m).await,
        QueryCmd::Bank(QueryBankCmd::Balances { address, node }) => {
            let addr: Address = address.parse()?;
            let c = ChainClient::new(&node_url(home, &node))?;
            let b = c.balances(&addr).await?;
            if node.output == Output::Json {
                return print_json(&json!({"address": addr, "balances": b}));
            }
            if b.is_empty() {
                println!("{addr} holds nothing");
            }
            for (denom, amount) in b.iter() {
                println!("{amount}{denom}");
            }
            Ok(())
        }
        QueryCmd::Auth(QueryAuthCmd::Account { address, node }) => {
            let addr: Address = address.parse()?;
            let c = ChainClient::new(&node_url(home, &node))?;
            let a = c
                .account(&addr)
                .await?
                .ok_or_else(|| anyhow!("account {addr} not found on chain"))?;
            if node.output == Output::Json {
                return print_json(
                    &json!({"address": addr, "account_number": a.account_number.to_string(), "sequence": a.sequence.to_string()}),
                );
            }
            println!(
                "address:        {addr}\naccount number: {}\nsequence:       {}",
                a.account_number, a.sequence
            );
            Ok(())
        }
        QueryCmd::Tx { hash, node } => {
            let c = ChainClient::new(&node_url(home, &node))?;
            let r = c.tx(&hash).await?;
            if node.output == Output::Json {
                return print_json(&r);
            }
            println!(
                "txhash: {}\nheight: {}\nindex:  {}\ncode:   {}\nlog:    {}\ngas:    {} / {}",
                r.hash,
                r.height,
                r.index,
                r.tx_result.code.value(),
                r.tx_result.log,
                r.tx_result.gas_used,
                r.tx_result.gas_wanted
            );
            Ok(())
        }
        QueryCmd::Block { height, node } => {
            let c = ChainClient::new(&node_url(home, &node))?;
            let b = c.block(height).await?;
            if node.output == Output::Json {
                return print_json(&b);
            }
            let h = &b.block.header;
            println!(
                "height:   {}\nhash:     {}\ntime:     {}\ntxs:      {}\napp hash: {}\nproposer: {}",
                h.height,
                b.block_id.hash,
                h.time,
                b.block.data.len(),
                h.app_hash,
                h.proposer_address
            );
            Ok(())
        }
    }
}

/// Header time of the embedded node's block `height`, if this home ran the embedded node
/// (behind CometBFT the blocks live in CometBFT's own store).
fn last_block_time(home: &Home, height: u64) -> Option<String> {
    if !home.node_dir().exists() {
        return None;
    }
    let store = magnet_chain::store::BlockStore::open(&home.node_dir()).ok()?;
    let st = store.state().ok()?;
    (st.last_height == height).then_some(st.last_time)
}

fn export(home: &Home, e: ExportArgs) -> Result<()> {
    let app = magnet_app::MagnetApp::open(&home.app_dir(), magnet_app::AppConfig::default())
        .with_context(|| {
            format!(
                "opening {} (stop the node first: the store is locked while it runs)",
                home.app_dir().display()
            )
        })?;
    let st = app.export()?;
    let old = genesis::read(&home.genesis())?;
    let mut g = old.clone();
    g["chain_id"] = json!(e.chain_id.unwrap_or_else(|| st.chain_id.clone()));
    g["initial_height"] = json!((st.height + 1).to_string());
    if let Some(t) = last_block_time(home, st.height) {
        // The new chain's first block must not be earlier than the old chain's last one:
        // module clocks (epochs, heartbeats, unbonding) read block time.
        g["genesis_time"] = json!(t);
    }
    g["app_state"] = st.app_state.clone();
    let vals: Vec<ValidatorInfo> = st
        .validators
        .iter()
        .map(|v| -> Result<ValidatorInfo> {
            let raw = base64::engine::general_purpose::STANDARD.decode(&v.pub_key)?;
            Ok(ValidatorInfo {
                name: v.name.clone(),
                address: genesis::consensus_address(&raw),
                pub_key: v.pub_key.clone(),
                power: v.power,
                node_id: String::new(),
            })
        })
        .collect::<Result<_>>()?;
    if !vals.is_empty() {
        g["validators"] = json!([]);
        for v in &vals {
            genesis::add_validator(&mut g, v)?;
        }
    }
    genesis::validate(&g)?;
    let text = serde_json::to_string_pretty(&g)?;
    match e.output_file {
        Some(p) => {
            home::write_atomic(&p, text.as_bytes())?;
            eprintln!(
                "exported height {} (app hash {}) to {}",
                st.height,
                st.app_hash,
                p.display()
            );
        }
        None => println!("{text}"),
    }
    Ok(())
}

/// `magnetd sim`: run the simulation, print progress to stderr and the summary to stdout.
fn sim(a: SimArgs) -> Result<()> {
    use std::io::Write;
    if a.accounts < 4 {
        bail!("--accounts must be at least 4 (the notary panel and the validators' operators)");
    }
    if a.blocks == 0 {
        bail!("--blocks must be at least 1");
    }
    let (dir, scratch) = match &a.keep_dir {
        Some(d) => {
            if d.exists()
                && std::fs::read_dir(d)
                    .map(|mut r| r.next().is_some())
                    .unwrap_or(true)
            {
                bail!(
                    "--keep-dir {} must be a new or empty directory",
                    d.display()
                );
            }
            (d.clone(), false)
        }
        None => (
            std::env::temp_dir().join(format!("magnetd-sim-{}-{}", a.seed, std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let cfg = magnet_app::sim::SimConfig {
        seed: a.seed,
        blocks: a.blocks,
        accounts: a.accounts,
        max_txs_per_block: a.max_txs.max(1),
        export_import: !a.no_export,
    };
    eprintln!(
        "simulating {} blocks, seed {}, {} accounts, state in {}",
        a.blocks,
        a.seed,
        a.accounts,
        dir.display()
    );
    let started = std::time::Instant::now();
    let step = (a.blocks / 20).max(1);
    let mut progress = |h: u64, n: u64| {
        if h.is_multiple_of(step) || h == n {
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            let width = 30usize;
            let done = (h as usize * width) / n.max(1) as usize;
            eprint!(
                "\r[{}{}] {h}/{n} blocks, {:.0} blocks/min ",
                "#".repeat(done),
                ".".repeat(width - done),
                h as f64 * 60.0 / secs
            );
            let _ = std::io::stderr().flush();
        }
    };
    let r = magnet_app::sim::run(&cfg, &dir, &mut progress);
    eprintln!();
    if scratch {
        let _ = std::fs::remove_dir_all(&dir);
    }
    match r {
        Ok(report) => {
            println!("{report}");
            Ok(())
        }
        Err(f) => {
            println!("simulation FAILED: {f}");
            bail!(
                "seed={} height={} invariant={}",
                f.seed,
                f.height,
                f.invariant
            )
        }
    }
}
