//! `magnet-worker p2p …`: this node's P2P identity, and its signed gRPC+TLS shard server.
//!
//! The node key is `<dir>/node.key` (hex secp256k1 secret, shared with `storage`), so the
//! nodeId printed here is the one peers and the chain see. `serve` answers peer exchange,
//! heartbeats, shard put/get/list/delete and audits from a shard store under `<dir>/served`.
//! TLS is bound to the node key unless `MAGNET_P2P_CERT`, `MAGNET_P2P_KEY` and `MAGNET_P2P_CA`
//! are all set (CA mode). TOFU pins live in `<dir>/p2p-pins.json`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use magnet_p2p::auth::{Signer, Verifier, VerifyMode};
use magnet_p2p::service::ServiceConfig;
use magnet_p2p::storage_glue::StoreBackend;
use magnet_p2p::tls::{NodeTls, PinStore};
use magnet_p2p::{NodeConfig, NodeHandle, NodeKey};
use magnet_storage::ShardStore;

/// Peer-to-peer identity and serving.
#[derive(Args, Debug)]
pub struct P2pArgs {
    /// Node directory (node key, pins, served shards); shared with `storage`.
    #[arg(long, env = "MAGNET_STORAGE_DIR", default_value_os_t = default_dir())]
    pub dir: PathBuf,
    #[command(subcommand)]
    pub command: P2pCommand,
}

/// P2P subcommands.
#[derive(Subcommand, Debug)]
pub enum P2pCommand {
    /// Print this node's nodeId and compressed public key (creating the key on first use).
    Id,
    /// Serve the signed peer and shard services over TLS until Ctrl-C.
    ///
    /// Example: `magnet-worker p2p serve --listen 0.0.0.0:7470 --region eu`
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "0.0.0.0:7470")]
        listen: SocketAddr,
        /// Participation tier announced in heartbeats.
        #[arg(long, default_value = "storage_node")]
        tier: String,
        /// Region label used by placement.
        #[arg(long, default_value = "")]
        region: String,
        /// Most bytes of shards to accept.
        #[arg(long, default_value_t = 64 << 30)]
        quota: u64,
        /// Cluster mode: a file holding the shared HMAC secret. Wallet mode when absent.
        #[arg(long)]
        cluster_secret: Option<PathBuf>,
    },
}

fn default_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".magnet/storage")
}

/// Runs a `p2p` subcommand.
pub fn run(args: P2pArgs) -> Result<()> {
    let key = NodeKey::load_or_generate(&args.dir.join("node.key")).context("loading node key")?;
    match args.command {
        P2pCommand::Id => {
            println!("{}", key.node_id());
            println!("{}", hex::encode(key.public_key().to_bytes()));
            Ok(())
        }
        P2pCommand::Serve {
            listen,
            tier,
            region,
            quota,
            cluster_secret,
        } => {
            let (signer, mode) = match cluster_secret {
                Some(p) => {
                    let secret: Arc<[u8]> = std::fs::read(&p)
                        .with_context(|| format!("reading cluster secret {}", p.display()))?
                        .into();
                    (
                        Signer::Cluster {
                            node_id: key.node_id().clone(),
                            secret: secret.clone(),
                        },
                        VerifyMode::Cluster { secret },
                    )
                }
                None => (
                    Signer::Wallet(key.clone()),
                    VerifyMode::Wallet { registry: None },
                ),
            };
            let pins = Arc::new(PinStore::open(&args.dir.join("p2p-pins.json"))?);
            let tls = NodeTls::from_env(&key, pins).context("setting up TLS")?;
            let store = ShardStore::open(args.dir.join("served")).context("opening shard store")?;
            let rt = tokio::runtime::Runtime::new().context("starting tokio")?;
            rt.block_on(async move {
                let node = NodeHandle::spawn(NodeConfig {
                    service: ServiceConfig {
                        signer,
                        verifier: Arc::new(Verifier::new(mode)),
                        backend: Arc::new(StoreBackend::new(store, quota)),
                        tier,
                        region,
                        max_shard_bytes: 1 << 30,
                        deleters: None,
                        receipts: None,
                    },
                    tls,
                    listen,
                    public_key: Some(key.public_key()),
                })
                .await?;
                println!("{} listening on {}", node.node_id(), node.addr());
                tokio::signal::ctrl_c()
                    .await
                    .context("waiting for Ctrl-C")?;
                node.kill();
                Ok(())
            })
        }
    }
}
