//! The node home directory, laid out as CometBFT lays it out so that `cometbft --home` and
//! `magnetd --home` can share one directory:
//!
//! ```text
//! <home>/config/config.toml              CometBFT config (proxy_app = our ABCI address)
//! <home>/config/genesis.json             CometBFT genesis; app_state is MAGNET's genesis
//! <home>/config/priv_validator_key.json  ed25519 consensus key (CometBFT format)
//! <home>/config/node_key.json            ed25519 p2p key (CometBFT format)
//! <home>/data/priv_validator_state.json  CometBFT double-sign guard
//! <home>/data/magnet-app/                the app's merkle store (magnet-app)
//! <home>/data/magnet-app/snapshots/      state-sync snapshots (`--snapshot-interval`)
//! <home>/data/magnet-node/               the embedded node's blocks, results, tx index
//! <home>/keyring-<backend>/              account keys (magnet-client)
//! ```

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Paths inside one home directory.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }
    /// The home root.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `config/`.
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("config")
    }
    /// `data/`.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }
    /// `config/config.toml`.
    pub fn config_toml(&self) -> PathBuf {
        self.config_dir().join("config.toml")
    }
    /// `config/genesis.json`.
    pub fn genesis(&self) -> PathBuf {
        self.config_dir().join("genesis.json")
    }
    /// `config/priv_validator_key.json`.
    pub fn priv_validator_key(&self) -> PathBuf {
        self.config_dir().join("priv_validator_key.json")
    }
    /// `config/node_key.json`.
    pub fn node_key(&self) -> PathBuf {
        self.config_dir().join("node_key.json")
    }
    /// `data/priv_validator_state.json`.
    pub fn priv_validator_state(&self) -> PathBuf {
        self.data_dir().join("priv_validator_state.json")
    }
    /// The app's state directory.
    pub fn app_dir(&self) -> PathBuf {
        self.data_dir().join("magnet-app")
    }
    /// The embedded node's block store directory.
    pub fn node_dir(&self) -> PathBuf {
        self.data_dir().join("magnet-node")
    }

    /// Read and parse `config/config.toml`.
    pub fn read_config(&self) -> Result<toml::Table> {
        let p = self.config_toml();
        let text = std::fs::read_to_string(&p)
            .with_context(|| format!("reading {} (run `magnetd init` first)", p.display()))?;
        text.parse::<toml::Table>()
            .with_context(|| format!("parsing {}", p.display()))
    }

    /// A string setting of config.toml by dotted path (`rpc.laddr`), if present.
    pub fn config_str(&self, dotted: &str) -> Result<Option<String>> {
        let table = self.read_config()?;
        let mut cur: &toml::Value = &toml::Value::Table(table.clone());
        for part in dotted.split('.') {
            match cur.get(part) {
                Some(v) => cur = v,
                None => return Ok(None),
            }
        }
        Ok(cur.as_str().map(str::to_string))
    }
}

/// Strip a `tcp://` scheme: `tcp://127.0.0.1:26657` → `127.0.0.1:26657`.
pub fn strip_tcp(addr: &str) -> &str {
    addr.strip_prefix("tcp://").unwrap_or(addr)
}

/// Write a file atomically (temp + fsync + rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} into place", path.display()))?;
    Ok(())
}
