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
    /// The lineage entries (round, Δ hash hex) this work claims: accepted Δs of this node,
    /// each named by at most one commitment ever.
    #[serde(default)]
    pub entries: Vec<(u64, String)>,
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

/// A sealed merge verdict this worker owes as a drawn auditor (ADR 0091). Saved before the
/// commitment is sent, so a restarted worker reveals exactly what it committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingVerdict {
    /// True: the merge does not re-check.
    pub fraud: bool,
    /// The merged hash recomputed (hex; the recorded one for `ok`, zeros when unavailable).
    pub recomputed: String,
    /// The commitment's nonce (hex, 32 bytes).
    pub nonce: String,
    /// Committed on chain.
    pub committed: bool,
    /// Revealed on chain.
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
    /// Lineage entries already named by a work commitment ([`State::entry_key`] → the epoch
    /// whose work names it). An entry is never named twice: the chain refuses a reveal naming
    /// an entry claimed before, and a refused reveal is slashed as no reveal.
    pub claimed: BTreeMap<String, u64>,
    /// Sealed merge verdicts by `job/round` ([`PendingVerdict`]).
    pub audit_verdicts: BTreeMap<String, PendingVerdict>,
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

    /// Key of a lineage entry in [`State::claimed`]: `<job>/<round>/<Δ hash hex>`.
    pub fn entry_key(job: u64, round: u64, delta_hash: &str) -> String {
        format!("{job}/{round}/{delta_hash}")
    }

    /// Whether the entry is taken: named by work that was committed, or by this epoch's
    /// (possibly not yet committed) work. An entry named only by an earlier epoch's work that
    /// never reached the chain is free again.
    pub fn entry_taken(&self, key: &str, epoch: u64) -> bool {
        match self.claimed.get(key) {
            None => false,
            Some(&e) => e == epoch || self.work.get(&e).is_none_or(|w| w.committed),
        }
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
        s.claimed.insert(State::entry_key(1, 2, "ab"), 1);
        s.save(dir.path()).unwrap();
        assert_eq!(State::load(dir.path()).unwrap(), s);
        std::fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        let e = State::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("damaged"), "{e}");
    }

    #[test]
    fn a_state_file_from_before_claimed_entries_loads() {
        let dir = tempfile::tempdir().unwrap();
        let old = serde_json::json!({
            "last_merged": [3, "ab"],
            "work": {"4": {"checkpoint_hash": "cd", "steps": 5, "params": 6, "data_hash": "ef",
                           "nonce": "00", "committed": true, "revealed": false}},
        });
        std::fs::write(dir.path().join(STATE_FILE), old.to_string()).unwrap();
        let s = State::load(dir.path()).unwrap();
        assert!(s.claimed.is_empty());
        assert!(s.work[&4].entries.is_empty());
    }

    #[test]
    fn an_entry_is_taken_once_committed_or_named_this_epoch_and_freed_if_never_committed() {
        let mut s = State::default();
        let w = |committed| PendingWork {
            checkpoint_hash: String::new(),
            steps: 0,
            params: 0,
            data_hash: String::new(),
            nonce: String::new(),
            committed,
            revealed: false,
            entries: Vec::new(),
        };
        s.work.insert(1, w(true));
        s.work.insert(2, w(false));
        s.claimed.insert("a".into(), 1);
        s.claimed.insert("b".into(), 2);
        s.claimed.insert("c".into(), 3);
        assert!(s.entry_taken("a", 5), "committed in epoch 1");
        assert!(
            !s.entry_taken("b", 5),
            "epoch 2's work never reached the chain"
        );
        assert!(s.entry_taken("b", 2), "named by this epoch's work");
        assert!(
            s.entry_taken("c", 5),
            "no record of epoch 3's work: stay safe"
        );
        assert!(!s.entry_taken("d", 5));
    }
}
