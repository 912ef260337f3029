//! Custody messages (`proto/magnet/custody/v1/tx.proto`), their stateless checks and their
//! constructors for clients (the storage daemon) and tests. Every custody message is signed by
//! a **node key**: the producer's for `MsgRegisterStripe`, the holder's for
//! `MsgProveCustody`, the repairer's for `MsgReassignShard`.

use crate::error::Error;
use crate::params::MAX_SHARDS;
use crate::state::KINDS;
use magnet_core::msg::{address, decode_any};
use magnet_core::{Address, ModuleError};
pub use magnet_proto::custody::v1::{
    CustodyProof, MsgProveCustody, MsgReassignShard, MsgRegisterStripe, ShardPlacement,
};
use magnet_rounds::custody::{LEAF_SIZE, MAX_PATH};
use prost::Name;
use std::collections::BTreeMap;

/// Hard bound on proofs per message before params are read (params may lower it).
pub const MAX_PROOFS: usize = 65_536;

/// One shard placement: who holds it, its Merkle root and the holder's receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Holder's node-key address.
    pub holder: Address,
    /// Merkle root of the shard.
    pub root: [u8; 32],
    /// The holder's 64-byte receipt signature.
    pub receipt: Vec<u8>,
}

/// A stripe to register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewStripe {
    /// SHA-256 of the whole object.
    pub object: [u8; 32],
    /// delta / checkpoint / data / model.
    pub kind: String,
    /// Δ hash, checkpoint hash, data set or model hash.
    pub label: [u8; 32],
    /// Job (0: none).
    pub job_id: u64,
    /// Object size in bytes.
    pub size: u64,
    /// RS K.
    pub k: u32,
    /// RS M.
    pub m: u32,
    /// Codec stripe size.
    pub stripe_size: u32,
    /// Length of each shard.
    pub shard_len: u64,
    /// K+M placements in shard order.
    pub shards: Vec<Placement>,
}

/// One audit answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    /// Object.
    pub object: [u8; 32],
    /// Shard index.
    pub index: u32,
    /// The challenged leaf's bytes.
    pub leaf: Vec<u8>,
    /// Sibling path, bottom up.
    pub path: Vec<[u8; 32]>,
}

/// A checked custody message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// Register a stripe.
    RegisterStripe {
        /// Producer's node key (signer).
        owner: Address,
        /// The stripe.
        stripe: NewStripe,
    },
    /// Answer challenges.
    Prove {
        /// Holder's node key (signer).
        holder: Address,
        /// Epoch answered.
        epoch: u64,
        /// Proofs.
        proofs: Vec<Proof>,
    },
    /// Move a shard.
    Reassign {
        /// Repairer's node key (signer).
        repairer: Address,
        /// Object.
        object: [u8; 32],
        /// Shard index.
        index: u32,
        /// New holder's node key.
        new_holder: Address,
        /// New holder's receipt.
        receipt: Vec<u8>,
    },
}

/// Type URLs handled by this module.
pub fn type_urls() -> Vec<&'static str> {
    vec![
        "/magnet.custody.v1.MsgRegisterStripe",
        "/magnet.custody.v1.MsgProveCustody",
        "/magnet.custody.v1.MsgReassignShard",
    ]
}

fn h32(field: &'static str, b: &[u8]) -> Result<[u8; 32], Error> {
    b.try_into().map_err(|_| Error::BadLength {
        field,
        want: 32,
        have: b.len(),
    })
}

fn receipt(b: Vec<u8>) -> Result<Vec<u8>, Error> {
    if b.len() != 64 {
        return Err(Error::BadLength {
            field: "receipt",
            want: 64,
            have: b.len(),
        });
    }
    Ok(b)
}

/// Decode and check; returns the message and its signer.
pub fn check(any: &prost_types::Any) -> Result<(Msg, Address), Error> {
    let t = any.type_url.as_str();
    let m = if t == MsgRegisterStripe::type_url() {
        let m: MsgRegisterStripe = decode_any(any)?;
        if !KINDS.contains(&m.kind.as_str()) {
            return Err(Error::BadKind(m.kind.chars().take(64).collect()));
        }
        if m.shards.is_empty() || m.shards.len() > MAX_SHARDS as usize {
            return Err(Error::ShardCount {
                have: m.shards.len(),
                want: (m.k as usize).saturating_add(m.m as usize),
            });
        }
        // A holder may take a second shard only when fewer than K+M storage nodes are live
        // (the handler checks that), and never more than M: losing it must leave K.
        let mut seen: BTreeMap<Address, u32> = BTreeMap::new();
        let mut shards = Vec::with_capacity(m.shards.len());
        for p in m.shards {
            let holder = address("holder", &p.holder)?;
            let n = seen.entry(holder).or_default();
            *n += 1;
            if *n > m.m.max(1) {
                return Err(Error::DuplicateHolder(holder.to_string()));
            }
            shards.push(Placement {
                holder,
                root: h32("root", &p.root)?,
                receipt: receipt(p.receipt)?,
            });
        }
        Msg::RegisterStripe {
            owner: address("owner", &m.owner)?,
            stripe: NewStripe {
                object: h32("object", &m.object)?,
                kind: m.kind,
                label: h32("label", &m.label)?,
                job_id: m.job_id,
                size: m.size,
                k: m.k,
                m: m.m,
                stripe_size: m.stripe_size,
                shard_len: m.shard_len,
                shards,
            },
        }
    } else if t == MsgProveCustody::type_url() {
        let m: MsgProveCustody = decode_any(any)?;
        if m.proofs.is_empty() || m.proofs.len() > MAX_PROOFS {
            return Err(Error::ProofCount {
                have: m.proofs.len(),
                max: MAX_PROOFS as u64,
            });
        }
        let mut proofs = Vec::with_capacity(m.proofs.len());
        for p in m.proofs {
            if p.leaf.len() > LEAF_SIZE {
                return Err(Error::BadLength {
                    field: "leaf",
                    want: LEAF_SIZE,
                    have: p.leaf.len(),
                });
            }
            if p.path.len() > MAX_PATH {
                return Err(Error::BadLength {
                    field: "path (steps)",
                    want: MAX_PATH,
                    have: p.path.len(),
                });
            }
            let path = p
                .path
                .iter()
                .map(|s| h32("path step", s))
                .collect::<Result<Vec<_>, _>>()?;
            proofs.push(Proof {
                object: h32("object", &p.object)?,
                index: p.index,
                leaf: p.leaf,
                path,
            });
        }
        Msg::Prove {
            holder: address("holder", &m.holder)?,
            epoch: m.epoch,
            proofs,
        }
    } else if t == MsgReassignShard::type_url() {
        let m: MsgReassignShard = decode_any(any)?;
        Msg::Reassign {
            repairer: address("repairer", &m.repairer)?,
            object: h32("object", &m.object)?,
            index: m.index,
            new_holder: address("new_holder", &m.new_holder)?,
            receipt: receipt(m.receipt)?,
        }
    } else {
        return Err(ModuleError::unknown_msg(t).into());
    };
    let s = match &m {
        Msg::RegisterStripe { owner, .. } => *owner,
        Msg::Prove { holder, .. } => *holder,
        Msg::Reassign { repairer, .. } => *repairer,
    };
    Ok((m, s))
}

/// `MsgRegisterStripe` as an `Any`. Signed by the producer's **node** key (`owner`).
pub fn register_stripe(owner: &Address, s: &NewStripe) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgRegisterStripe {
        owner: owner.to_string(),
        object: s.object.to_vec(),
        kind: s.kind.clone(),
        label: s.label.to_vec(),
        job_id: s.job_id,
        size: s.size,
        k: s.k,
        m: s.m,
        stripe_size: s.stripe_size,
        shard_len: s.shard_len,
        shards: s
            .shards
            .iter()
            .map(|p| ShardPlacement {
                holder: p.holder.to_string(),
                root: p.root.to_vec(),
                receipt: p.receipt.clone(),
            })
            .collect(),
    })
}

/// `MsgProveCustody` as an `Any`. Signed by the holder's **node** key.
pub fn prove_custody(holder: &Address, epoch: u64, proofs: &[Proof]) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgProveCustody {
        holder: holder.to_string(),
        epoch,
        proofs: proofs
            .iter()
            .map(|p| CustodyProof {
                object: p.object.to_vec(),
                index: p.index,
                leaf: p.leaf.clone(),
                path: p.path.iter().map(|s| s.to_vec()).collect(),
            })
            .collect(),
    })
}

/// `MsgReassignShard` as an `Any`. Signed by the repairer's **node** key.
pub fn reassign_shard(
    repairer: &Address,
    object: [u8; 32],
    index: u32,
    new_holder: &Address,
    receipt: &[u8],
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgReassignShard {
        repairer: repairer.to_string(),
        object: object.to_vec(),
        index,
        new_holder: new_holder.to_string(),
        receipt: receipt.to_vec(),
    })
}

/// The proof of leaf `leaf` of `shard` (the holder's stored bytes of shard `index` of
/// `object`), ready for [`prove_custody`]; `None` if the shard has no such leaf.
pub fn proof_for(shard: &[u8], object: [u8; 32], index: u32, leaf: u64) -> Option<Proof> {
    let (a, b) = magnet_rounds::custody::leaf_range(shard.len() as u64, leaf)?;
    let path = magnet_rounds::custody::merkle_proof(shard, leaf)?;
    Some(Proof {
        object,
        index,
        leaf: shard.get(a as usize..b as usize)?.to_vec(),
        path,
    })
}
