//! What a worker remembers across restarts (`state.json` in its home), written atomically
//! (temp file + rename) after every change that matters.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{DaemonError, Result};

/// File name inside the worker home.
pub const STATE_FILE: &str = "state.json";

/// A commitment this worker made for an epoch's work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingWork {
    /// Checkpoint hash of the committed local model (hex).
    pub checkpoint_hash: String,
    /// Inner steps done in the epoch.
    pub steps: u64,
    /// Model parameters.
    pub params: u64,
    /// Hash of this worker's data shard (hex).
    pub data_hash: String,
    /// The commit nonce (hex).
    pub nonce: String,
    /// Committed on chain.
    pub committed: bool,
    /// Revealed on chain.
    pub revealed: bool,
}

/// A score this worker owes as an evaluator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEval {
    /// Score (fixed-point 10^6).
    pub score: i64,
    /// Nonce (hex).
    pub nonce: String,
    /// Committed.
    pub committed: bool,
    /// Revealed.
    pub revealed: bool,
}

/// The worker's persistent state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Last merged round this worker adopted, and its checkpoint hash (hex).
    pub last_merged: Option<(u64, String)>,
    /// Hash (hex) of this worker's latest local checkpoint (θ_i after its last inner steps).
    pub local_checkpoint: Option<String>,
    /// Inner steps done per epoch.
    pub steps_by_epoch: BTreeMap<u64, u64>,
    /// Work per epoch.
    pub work: BTreeMap<u64, PendingWork>,
    /// Evaluations per (epoch, contributor address).
    pub evals: BTreeMap<String, PendingEval>,
    /// Last chain time a heartbeat was included.
    pub last_heartbeat: u64,
    /// Settled epochs seen, with this operator's reward (umag, decimal).
    pub settlements: BTreeMap<u64, String>,
    /// Bytes sent (Δ uploads, checkpoint serving excluded).
    pub bytes_sent: u64,
    /// Bytes received (checkpoint downloads).
    pub bytes_received: u64,
}

impl State {
    /// Loads `home/state.json`, or a fresh state if there is none.
    pub fn load(home: &Path) -> Result<State> {
        let path = home.join(STATE_FILE);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| DaemonError::Config {
                path: path.display().to_string(),
                reason: format!("{e}; the state file is damaged: move it away to start fresh"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(DaemonError::io(format!("reading {}", path.display()))(e)),
        }
    }

    /// Saves atomically.
    pub fn save(&self, home: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| DaemonError::State(format!("encoding state: {e}")))?;
        write_atomic(&home.join(STATE_FILE), &bytes)
    }

    /// Key of an evaluation in [`State::evals`].
    pub fn eval_key(epoch: u64, contributor: &str) -> String {
        format!("{epoch}/{contributor}")
    }
}

/// Writes `bytes` to `path` through a temp file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(DaemonError::io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(DaemonError::io(format!("renaming to {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_a_save_and_load_and_a_damaged_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(State::load(dir.path()).unwrap(), State::default());
        let mut s = State {
            last_merged: Some((3, "ab".into())),
            ..State::default()
        };
        s.steps_by_epoch.insert(1, 40);
        s.save(dir.path()).unwrap();
        assert_eq!(State::load(dir.path()).unwrap(), s);
        std::fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        let e = State::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("damaged"), "{e}");
    }
}
