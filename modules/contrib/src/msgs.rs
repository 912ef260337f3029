//! Contrib messages (`proto/magnet/contrib/v1/tx.proto`), their stateless checks, and the
//! commitment functions workers use. All four messages are signed by the **node key**.
//!
//! Commitments are domain-separated and bind the committer, chain and epoch, each field
//! length-prefixed ([`magnet_core::msg::framed`]):
//! * work: `SHA-256(framed["MAGNET/contrib/v1", chain_id, epoch, job, committer, result, nonce])`
//!   with `result = framed[checkpoint_hash, steps, params, data_hash, kind, entries]`
//!   ([`result_bytes`]);
//! * score: `SHA-256(framed["MAGNET/contrib/eval/v1", chain_id, epoch, job, contributor,
//!   evaluator, score, nonce])`.
//!
//! Integers are 8-byte big-endian; addresses are the 20 raw bytes of the operator accounts.

use crate::error::Error;
use crate::state::Work;
use magnet_core::msg::{address, decode_any, framed, hash32};
use magnet_core::{sha256, Address, ModuleError};
pub use magnet_proto::contrib::v1::{
    LineageEntry, MsgCommit, MsgEvalCommit, MsgEvalReveal, MsgReveal, WorkResult,
};
use prost::Name;

/// Work kinds a result may declare.
pub const KINDS: [&str; 4] = ["research", "training", "storage", "inference"];
/// Most lineage entries one result may name.
pub const MAX_ENTRIES: usize = 256;
/// Longest nonce accepted.
pub const MAX_NONCE: usize = 64;

/// A checked contrib message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// Commit work.
    Commit {
        /// Node key.
        node: Address,
        /// Epoch.
        epoch: u64,
        /// Job.
        job: u64,
        /// Commitment.
        commitment: [u8; 32],
    },
    /// Reveal work.
    Reveal {
        /// Node key.
        node: Address,
        /// Epoch.
        epoch: u64,
        /// Job.
        job: u64,
        /// Work.
        work: Work,
        /// Nonce.
        nonce: Vec<u8>,
    },
    /// Commit a score.
    EvalCommit {
        /// Node key.
        node: Address,
        /// Epoch.
        epoch: u64,
        /// Job.
        job: u64,
        /// Contributor.
        contributor: Address,
        /// Commitment.
        commitment: [u8; 32],
    },
    /// Reveal a score.
    EvalReveal {
        /// Node key.
        node: Address,
        /// Epoch.
        epoch: u64,
        /// Job.
        job: u64,
        /// Contributor.
        contributor: Address,
        /// Score (fixed 10^6).
        score: i64,
        /// Nonce.
        nonce: Vec<u8>,
    },
}

/// Type URLs handled by this module.
pub fn type_urls() -> Vec<&'static str> {
    vec![
        "/magnet.contrib.v1.MsgCommit",
        "/magnet.contrib.v1.MsgReveal",
        "/magnet.contrib.v1.MsgEvalCommit",
        "/magnet.contrib.v1.MsgEvalReveal",
    ]
}

fn nonce(n: &[u8]) -> Result<Vec<u8>, Error> {
    if n.is_empty() || n.len() > MAX_NONCE {
        return Err(Error::InvalidField {
            field: "nonce",
            why: format!("must be 1..={MAX_NONCE} bytes, got {}", n.len()),
        });
    }
    Ok(n.to_vec())
}

/// Check a [`WorkResult`].
pub fn work(r: Option<&WorkResult>) -> Result<Work, Error> {
    let r = r.ok_or(Error::InvalidField {
        field: "result",
        why: "missing".into(),
    })?;
    if !KINDS.contains(&r.kind.as_str()) {
        return Err(Error::InvalidField {
            field: "result.kind",
            why: format!("{:?} is not one of {KINDS:?}", r.kind),
        });
    }
    Ok(Work {
        checkpoint_hash: hash32("result.checkpoint_hash", &r.checkpoint_hash)?,
        steps: r.steps,
        params: r.params,
        data_hash: hash32("result.data_hash", &r.data_hash)?,
        kind: r.kind.clone(),
        entries: {
            if r.entries.len() > MAX_ENTRIES {
                return Err(Error::InvalidField {
                    field: "result.entries",
                    why: format!("at most {MAX_ENTRIES}"),
                });
            }
            let mut v = Vec::with_capacity(r.entries.len());
            for e in &r.entries {
                let d = hash32("result.entries.delta_hash", &e.delta_hash)?;
                if v.iter().any(|(_, x)| *x == d) {
                    return Err(Error::InvalidField {
                        field: "result.entries",
                        why: format!("Δ {} is listed twice", hex::encode(d)),
                    });
                }
                v.push((e.round, d));
            }
            v
        },
    })
}

/// Decode and check; returns the message and the node key that must sign it.
pub fn check(any: &prost_types::Any) -> Result<(Msg, Address), Error> {
    let t = any.type_url.as_str();
    let m = if t == MsgCommit::type_url() {
        let m: MsgCommit = decode_any(any)?;
        Msg::Commit {
            node: address("node", &m.node)?,
            epoch: m.epoch,
            job: m.job,
            commitment: hash32("commitment", &m.commitment)?,
        }
    } else if t == MsgReveal::type_url() {
        let m: MsgReveal = decode_any(any)?;
        Msg::Reveal {
            node: address("node", &m.node)?,
            epoch: m.epoch,
            job: m.job,
            work: work(m.result.as_ref())?,
            nonce: nonce(&m.nonce)?,
        }
    } else if t == MsgEvalCommit::type_url() {
        let m: MsgEvalCommit = decode_any(any)?;
        Msg::EvalCommit {
            node: address("node", &m.node)?,
            epoch: m.epoch,
            job: m.job,
            contributor: address("contributor", &m.contributor)?,
            commitment: hash32("commitment", &m.commitment)?,
        }
    } else if t == MsgEvalReveal::type_url() {
        let m: MsgEvalReveal = decode_any(any)?;
        Msg::EvalReveal {
            node: address("node", &m.node)?,
            epoch: m.epoch,
            job: m.job,
            contributor: address("contributor", &m.contributor)?,
            score: m.score,
            nonce: nonce(&m.nonce)?,
        }
    } else {
        return Err(ModuleError::unknown_msg(t).into());
    };
    let node = match &m {
        Msg::Commit { node, .. }
        | Msg::Reveal { node, .. }
        | Msg::EvalCommit { node, .. }
        | Msg::EvalReveal { node, .. } => *node,
    };
    Ok((m, node))
}

/// Canonical bytes of a result: `framed[checkpoint, steps, params, data hash, kind, entries]`
/// with `entries` = the concatenation of (round u64 BE ‖ Δ hash) in the result's order.
pub fn result_bytes(w: &Work) -> Vec<u8> {
    let entries: Vec<u8> = w
        .entries
        .iter()
        .flat_map(|(r, d)| r.to_be_bytes().into_iter().chain(d.iter().copied()))
        .collect();
    framed(&[
        &w.checkpoint_hash,
        &w.steps.to_be_bytes(),
        &w.params.to_be_bytes(),
        &w.data_hash,
        w.kind.as_bytes(),
        &entries,
    ])
}

/// The work commitment.
pub fn work_commitment(
    chain_id: &str,
    epoch: u64,
    job: u64,
    committer: &Address,
    w: &Work,
    nonce: &[u8],
) -> [u8; 32] {
    sha256(&framed(&[
        b"MAGNET/contrib/v1",
        chain_id.as_bytes(),
        &epoch.to_be_bytes(),
        &job.to_be_bytes(),
        committer.as_bytes(),
        &result_bytes(w),
        nonce,
    ]))
}

/// The score commitment.
#[allow(clippy::too_many_arguments)]
pub fn score_commitment(
    chain_id: &str,
    epoch: u64,
    job: u64,
    contributor: &Address,
    evaluator: &Address,
    score: i64,
    nonce: &[u8],
) -> [u8; 32] {
    sha256(&framed(&[
        b"MAGNET/contrib/eval/v1",
        chain_id.as_bytes(),
        &epoch.to_be_bytes(),
        &job.to_be_bytes(),
        contributor.as_bytes(),
        evaluator.as_bytes(),
        &score.to_be_bytes(),
        nonce,
    ]))
}

/// A [`WorkResult`] from a [`Work`].
pub fn work_result(w: &Work) -> WorkResult {
    WorkResult {
        checkpoint_hash: w.checkpoint_hash.to_vec(),
        steps: w.steps,
        params: w.params,
        data_hash: w.data_hash.to_vec(),
        kind: w.kind.clone(),
        entries: w
            .entries
            .iter()
            .map(|(round, d)| LineageEntry {
                round: *round,
                delta_hash: d.to_vec(),
            })
            .collect(),
    }
}

/// `MsgCommit` as an `Any`.
pub fn commit(node: &Address, epoch: u64, job: u64, commitment: [u8; 32]) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgCommit {
        node: node.to_string(),
        epoch,
        job,
        commitment: commitment.to_vec(),
    })
}

/// `MsgReveal` as an `Any`.
pub fn reveal(node: &Address, epoch: u64, job: u64, w: &Work, nonce: &[u8]) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgReveal {
        node: node.to_string(),
        epoch,
        job,
        result: Some(work_result(w)),
        nonce: nonce.to_vec(),
    })
}

/// `MsgEvalCommit` as an `Any`.
pub fn eval_commit(
    node: &Address,
    epoch: u64,
    job: u64,
    contributor: &Address,
    commitment: [u8; 32],
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgEvalCommit {
        node: node.to_string(),
        epoch,
        job,
        contributor: contributor.to_string(),
        commitment: commitment.to_vec(),
    })
}

/// `MsgEvalReveal` as an `Any`.
pub fn eval_reveal(
    node: &Address,
    epoch: u64,
    job: u64,
    contributor: &Address,
    score: i64,
    nonce: &[u8],
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgEvalReveal {
        node: node.to_string(),
        epoch,
        job,
        contributor: contributor.to_string(),
        score,
        nonce: nonce.to_vec(),
    })
}
