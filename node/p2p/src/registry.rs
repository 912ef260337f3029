//! Who is a registered node, and with which key.
//!
//! The chain implements [`Registry`] later (reading its node registry); until then
//! [`StaticRegistry`] serves devnets and tests from an explicit list. The P2P layer only asks
//! two questions: is this nodeId registered, and what is its key (and region, for placement).

use std::collections::BTreeMap;
use std::sync::RwLock;

use crate::identity::{NodeId, PublicKey};

/// A registered node as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredNode {
    /// Its secp256k1 public key.
    pub public_key: PublicKey,
    /// Its region label ("" when unknown).
    pub region: String,
}

/// Source of truth for node registration.
pub trait Registry: Send + Sync {
    /// The registered entry for `node_id`, if any.
    fn lookup(&self, node_id: &NodeId) -> Option<RegisteredNode>;
}

/// An in-memory registry filled explicitly (devnets, tests, a cached chain snapshot).
#[derive(Debug, Default)]
pub struct StaticRegistry {
    nodes: RwLock<BTreeMap<NodeId, RegisteredNode>>,
}

impl StaticRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) a node under the nodeId derived from its key.
    pub fn register(&self, public_key: PublicKey, region: &str) {
        if let Ok(mut m) = self.nodes.write() {
            m.insert(
                public_key.node_id(),
                RegisteredNode {
                    public_key,
                    region: region.to_owned(),
                },
            );
        }
    }

    /// Removes a node; returns whether it was registered.
    pub fn deregister(&self, node_id: &NodeId) -> bool {
        self.nodes
            .write()
            .map(|mut m| m.remove(node_id).is_some())
            .unwrap_or(false)
    }
}

impl Registry for StaticRegistry {
    fn lookup(&self, node_id: &NodeId) -> Option<RegisteredNode> {
        self.nodes.read().ok()?.get(node_id).cloned()
    }
}
