//! The worker's two keys, in the home's `keyring/` (the `test` backend of `magnet-client`:
//! plain JSON with mode 0600 — a devnet and CI convenience; use the `file` backend's
//! passphrase on real networks, see `magnetd keys`):
//!
//! * `operator` — owns the bond and the rewards; signs `MsgRegisterNode`, tier changes,
//!   unbonding;
//! * `node` — the node's identity on chain and on p2p (`nodeId` is derived from it); signs only
//!   the node's own work, so a stolen node key cannot move the bond.

use std::path::Path;

use magnet_client::{Key, Keyring, KeyringBackend};
use magnet_p2p::NodeKey;

use crate::{DaemonError, Result};

/// Keyring name of the operator key.
pub const OPERATOR: &str = "operator";
/// Keyring name of the node key.
pub const NODE: &str = "node";

/// Both keys of a worker.
pub struct WorkerKeys {
    /// Operator (bond owner).
    pub operator: Key,
    /// Node key (work signer).
    pub node: Key,
}

impl std::fmt::Debug for WorkerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WorkerKeys(operator {}, node {})",
            self.operator.address(),
            self.node.address()
        )
    }
}

fn keyring(home: &Path) -> Keyring {
    Keyring::open(&home.join("keyring"), KeyringBackend::Test)
}

impl WorkerKeys {
    /// Creates both keys (fails if they exist: never overwrite a key).
    pub fn create(home: &Path) -> Result<WorkerKeys> {
        let kr = keyring(home);
        let operator = Key::generate()?;
        let node = Key::generate()?;
        kr.add(OPERATOR, &operator)
            .map_err(|e| DaemonError::Keys(e.to_string()))?;
        kr.add(NODE, &node)
            .map_err(|e| DaemonError::Keys(e.to_string()))?;
        Ok(WorkerKeys { operator, node })
    }

    /// Loads both keys.
    pub fn load(home: &Path) -> Result<WorkerKeys> {
        let kr = keyring(home);
        let get = |name: &str| {
            kr.get(name).map_err(|e| {
                DaemonError::Keys(format!(
                    "{e}; a worker home gets its keys from `magnet-worker init --home {}`",
                    home.display()
                ))
            })
        };
        Ok(WorkerKeys {
            operator: get(OPERATOR)?,
            node: get(NODE)?,
        })
    }

    /// The node key as a p2p identity.
    pub fn p2p_key(&self) -> Result<NodeKey> {
        NodeKey::from_secret_bytes(&self.node.secret_bytes()?)
            .map_err(|e| DaemonError::Keys(format!("node key as p2p identity: {e}")))
    }

    /// The node id (`node-<16 hex>`).
    pub fn node_id(&self) -> Result<String> {
        Ok(self.p2p_key()?.node_id().to_string())
    }
}
