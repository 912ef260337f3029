//! Registry messages (from `proto/magnet/registry/v1/tx.proto`) and their stateless checks.
//! [`check`] returns the typed message and the address that must sign it: the operator for
//! bond-moving messages, the node key for heartbeats.

use crate::error::Error;
use crate::state::SsdRecord;
use magnet_core::msg::{address, amount, decode_any};
use magnet_core::{Address, ModuleError};
pub use magnet_proto::registry::v1::{
    MsgBondGov, MsgChangeTier, MsgHeartbeat, MsgRegisterNode, MsgUnbondGov, MsgUnbondNode,
    MsgUnjail, SsdReport,
};
use prost::Name;

/// Longest endpoint, region or hardware profile accepted.
pub const MAX_FIELD: usize = 512;

/// A checked registry message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// Register a node.
    Register {
        /// Operator (signer).
        operator: Address,
        /// Compressed node key.
        node_pubkey: Vec<u8>,
        /// Node key address.
        node: Address,
        /// Tier.
        tier: String,
        /// Endpoint.
        endpoint: String,
        /// Region.
        region: String,
        /// Hardware profile.
        hardware_profile: String,
        /// Bond.
        bond: u128,
        /// SSD provisioning report.
        ssd: Option<SsdRecord>,
    },
    /// Heartbeat (node key signs).
    Heartbeat {
        /// Node key address.
        node: Address,
    },
    /// Change tier.
    ChangeTier {
        /// Operator.
        operator: Address,
        /// New tier.
        tier: String,
        /// Extra bond.
        extra_bond: u128,
        /// SSD provisioning report (replaces the stored one when given).
        ssd: Option<SsdRecord>,
    },
    /// Unbond the node.
    UnbondNode {
        /// Operator.
        operator: Address,
    },
    /// Leave jail.
    Unjail {
        /// Operator.
        operator: Address,
    },
    /// Governance bond.
    BondGov {
        /// Owner.
        owner: Address,
        /// Amount.
        amount: u128,
    },
    /// Unbond governance bond.
    UnbondGov {
        /// Owner.
        owner: Address,
        /// Amount.
        amount: u128,
    },
}

/// Type URLs handled by this module.
pub fn type_urls() -> Vec<&'static str> {
    vec![
        "/magnet.registry.v1.MsgRegisterNode",
        "/magnet.registry.v1.MsgHeartbeat",
        "/magnet.registry.v1.MsgChangeTier",
        "/magnet.registry.v1.MsgUnbondNode",
        "/magnet.registry.v1.MsgUnjail",
        "/magnet.registry.v1.MsgBondGov",
        "/magnet.registry.v1.MsgUnbondGov",
    ]
}

fn short(field: &'static str, s: &str) -> Result<String, Error> {
    if s.len() > MAX_FIELD {
        return Err(Error::FieldTooLong {
            field,
            len: s.len(),
            max: MAX_FIELD,
        });
    }
    Ok(s.to_string())
}

/// Decode and check `any`; returns the message and its required signer.
pub fn check(any: &prost_types::Any) -> Result<(Msg, Address), Error> {
    let t = any.type_url.as_str();
    let m = if t == MsgRegisterNode::type_url() {
        let m: MsgRegisterNode = decode_any(any)?;
        let operator = address("operator", &m.operator)?;
        if m.node_pubkey.len() != 33 {
            return Err(Error::InvalidPubkey(format!(
                "{} bytes",
                m.node_pubkey.len()
            )));
        }
        k256::PublicKey::from_sec1_bytes(&m.node_pubkey)
            .map_err(|e| Error::InvalidPubkey(e.to_string()))?;
        let bond = amount("bond", &m.bond)?;
        if bond == 0 {
            return Err(Error::ZeroAmount("bond"));
        }
        Msg::Register {
            operator,
            node: Address::from_pubkey(&m.node_pubkey),
            node_pubkey: m.node_pubkey,
            tier: short("tier", &m.tier)?,
            endpoint: short("endpoint", &m.endpoint)?,
            region: short("region", &m.region)?,
            hardware_profile: short("hardware_profile", &m.hardware_profile)?,
            bond,
            ssd: m.ssd.map(SsdRecord::from),
        }
    } else if t == MsgHeartbeat::type_url() {
        let m: MsgHeartbeat = decode_any(any)?;
        Msg::Heartbeat {
            node: address("node", &m.node)?,
        }
    } else if t == MsgChangeTier::type_url() {
        let m: MsgChangeTier = decode_any(any)?;
        Msg::ChangeTier {
            operator: address("operator", &m.operator)?,
            tier: short("tier", &m.tier)?,
            extra_bond: amount("extra_bond", &m.extra_bond)?,
            ssd: m.ssd.map(SsdRecord::from),
        }
    } else if t == MsgUnbondNode::type_url() {
        let m: MsgUnbondNode = decode_any(any)?;
        Msg::UnbondNode {
            operator: address("operator", &m.operator)?,
        }
    } else if t == MsgUnjail::type_url() {
        let m: MsgUnjail = decode_any(any)?;
        Msg::Unjail {
            operator: address("operator", &m.operator)?,
        }
    } else if t == MsgBondGov::type_url() || t == MsgUnbondGov::type_url() {
        let (owner, amt, bond) = if t == MsgBondGov::type_url() {
            let m: MsgBondGov = decode_any(any)?;
            (m.owner, m.amount, true)
        } else {
            let m: MsgUnbondGov = decode_any(any)?;
            (m.owner, m.amount, false)
        };
        let owner = address("owner", &owner)?;
        let amount = amount("amount", &amt)?;
        if amount == 0 {
            return Err(Error::ZeroAmount("amount"));
        }
        if bond {
            Msg::BondGov { owner, amount }
        } else {
            Msg::UnbondGov { owner, amount }
        }
    } else {
        return Err(ModuleError::unknown_msg(t).into());
    };
    let signer = match &m {
        Msg::Register { operator, .. }
        | Msg::ChangeTier { operator, .. }
        | Msg::UnbondNode { operator }
        | Msg::Unjail { operator } => *operator,
        Msg::Heartbeat { node } => *node,
        Msg::BondGov { owner, .. } | Msg::UnbondGov { owner, .. } => *owner,
    };
    Ok((m, signer))
}

/// `MsgRegisterNode` without an SSD report, as an `Any` (for clients and tests; tier
/// `storage_node` needs [`register_node_with_ssd`]).
#[allow(clippy::too_many_arguments)]
pub fn register_node(
    operator: &Address,
    node_pubkey: &[u8],
    tier: &str,
    endpoint: &str,
    region: &str,
    hardware_profile: &str,
    bond: u128,
) -> prost_types::Any {
    register_node_with_ssd(
        operator,
        node_pubkey,
        tier,
        endpoint,
        region,
        hardware_profile,
        bond,
        None,
    )
}

/// `MsgRegisterNode` with the SSD provisioning test's report, as an `Any`.
#[allow(clippy::too_many_arguments)]
pub fn register_node_with_ssd(
    operator: &Address,
    node_pubkey: &[u8],
    tier: &str,
    endpoint: &str,
    region: &str,
    hardware_profile: &str,
    bond: u128,
    ssd: Option<SsdReport>,
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgRegisterNode {
        ssd,
        operator: operator.to_string(),
        node_pubkey: node_pubkey.to_vec(),
        tier: tier.into(),
        endpoint: endpoint.into(),
        region: region.into(),
        hardware_profile: hardware_profile.into(),
        bond: bond.to_string(),
    })
}

/// `MsgHeartbeat` as an `Any`.
pub fn heartbeat(node: &Address) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgHeartbeat {
        node: node.to_string(),
    })
}

/// `MsgUnjail` as an `Any`.
pub fn unjail(operator: &Address) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgUnjail {
        operator: operator.to_string(),
    })
}

/// `MsgChangeTier` without an SSD report (the stored one stays), as an `Any`.
pub fn change_tier(operator: &Address, tier: &str, extra_bond: u128) -> prost_types::Any {
    change_tier_with_ssd(operator, tier, extra_bond, None)
}

/// `MsgChangeTier` with a fresh SSD report (replacing the stored one), as an `Any`.
pub fn change_tier_with_ssd(
    operator: &Address,
    tier: &str,
    extra_bond: u128,
    ssd: Option<SsdReport>,
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgChangeTier {
        ssd,
        operator: operator.to_string(),
        tier: tier.into(),
        extra_bond: extra_bond.to_string(),
    })
}

/// `MsgUnbondNode` as an `Any`.
pub fn unbond_node(operator: &Address) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgUnbondNode {
        operator: operator.to_string(),
    })
}

/// `MsgBondGov` as an `Any`.
pub fn bond_gov(owner: &Address, amount: u128) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgBondGov {
        owner: owner.to_string(),
        amount: amount.to_string(),
    })
}

/// `MsgUnbondGov` as an `Any`.
pub fn unbond_gov(owner: &Address, amount: u128) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgUnbondGov {
        owner: owner.to_string(),
        amount: amount.to_string(),
    })
}
