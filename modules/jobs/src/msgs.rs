//! Jobs messages (`proto/magnet/jobs/v1/tx.proto`) and their stateless checks.
//! `MsgRecordRound` is signed by the leader's **node key**; the others by accounts.

use crate::error::Error;
use magnet_core::msg::{address, amount, decode_any, hash32};
use magnet_core::{Address, ModuleError};
pub use magnet_proto::jobs::v1::{
    AcceptedContributor, MsgCancelJob, MsgCreateJob, MsgPayForInference, MsgRecordRound,
    RejectedContributor,
};
use prost::Name;

/// Most accepted plus rejected entries in one round record.
pub const MAX_ROUND_ENTRIES: usize = 256;

/// A checked jobs message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// Create a job.
    Create {
        /// Creator.
        creator: Address,
        /// Domain.
        domain: String,
        /// Eval set hash.
        eval_set_hash: [u8; 32],
        /// Base checkpoint.
        base_checkpoint: [u8; 32],
        /// Budget.
        budget: u128,
        /// Deadline (block time).
        deadline: u64,
    },
    /// Cancel.
    Cancel {
        /// Creator.
        creator: Address,
        /// Job.
        job: u64,
    },
    /// Record a round.
    Round {
        /// Leader node key.
        leader: Address,
        /// Job.
        job: u64,
        /// Round.
        round: u64,
        /// Base.
        base: [u8; 32],
        /// Merged.
        merged: [u8; 32],
        /// Accepted.
        accepted: Vec<(Address, u64)>,
        /// Rejected.
        rejected: Vec<(Address, String)>,
    },
    /// Pay for inference.
    Pay {
        /// Payer.
        payer: Address,
        /// Model (job id).
        model: u64,
        /// Serving node's operator.
        server: Address,
        /// Amount.
        amount: u128,
    },
}

/// Type URLs handled by this module.
pub fn type_urls() -> Vec<&'static str> {
    vec![
        "/magnet.jobs.v1.MsgCreateJob",
        "/magnet.jobs.v1.MsgCancelJob",
        "/magnet.jobs.v1.MsgRecordRound",
        "/magnet.jobs.v1.MsgPayForInference",
    ]
}

fn field(field: &'static str, why: &str) -> Error {
    Error::InvalidField {
        field,
        why: why.into(),
    }
}

/// Decode and check; returns the message and its signer.
pub fn check(any: &prost_types::Any) -> Result<(Msg, Address), Error> {
    let t = any.type_url.as_str();
    let m = if t == MsgCreateJob::type_url() {
        let m: MsgCreateJob = decode_any(any)?;
        if m.domain.is_empty() || m.domain.len() > 64 {
            return Err(field("domain", "must be 1..=64 bytes"));
        }
        Msg::Create {
            creator: address("creator", &m.creator)?,
            domain: m.domain,
            eval_set_hash: hash32("eval_set_hash", &m.eval_set_hash)?,
            base_checkpoint: hash32("base_checkpoint", &m.base_checkpoint)?,
            budget: amount("budget", &m.budget)?,
            deadline: m.deadline_secs,
        }
    } else if t == MsgCancelJob::type_url() {
        let m: MsgCancelJob = decode_any(any)?;
        Msg::Cancel {
            creator: address("creator", &m.creator)?,
            job: m.job,
        }
    } else if t == MsgRecordRound::type_url() {
        let m: MsgRecordRound = decode_any(any)?;
        if m.accepted.is_empty() {
            return Err(field(
                "accepted",
                "a round merges at least one contribution",
            ));
        }
        if m.accepted.len() + m.rejected.len() > MAX_ROUND_ENTRIES {
            return Err(field("accepted", "too many entries"));
        }
        let mut accepted = Vec::new();
        for a in &m.accepted {
            if a.weight == 0 {
                return Err(field("accepted.weight", "must be > 0"));
            }
            accepted.push((address("accepted.operator", &a.operator)?, a.weight));
        }
        let mut rejected = Vec::new();
        for r in &m.rejected {
            if r.reason.len() > 256 {
                return Err(field("rejected.reason", "at most 256 bytes"));
            }
            rejected.push((address("rejected.operator", &r.operator)?, r.reason.clone()));
        }
        Msg::Round {
            leader: address("leader", &m.leader)?,
            job: m.job,
            round: m.round,
            base: hash32("base_hash", &m.base_hash)?,
            merged: hash32("merged_hash", &m.merged_hash)?,
            accepted,
            rejected,
        }
    } else if t == MsgPayForInference::type_url() {
        let m: MsgPayForInference = decode_any(any)?;
        let a = amount("amount", &m.amount)?;
        if a == 0 {
            return Err(field("amount", "must be > 0"));
        }
        Msg::Pay {
            payer: address("payer", &m.payer)?,
            model: m.model,
            server: address("server", &m.server)?,
            amount: a,
        }
    } else {
        return Err(ModuleError::unknown_msg(t).into());
    };
    let s = match &m {
        Msg::Create { creator, .. } | Msg::Cancel { creator, .. } => *creator,
        Msg::Round { leader, .. } => *leader,
        Msg::Pay { payer, .. } => *payer,
    };
    Ok((m, s))
}

/// `MsgCreateJob` as an `Any`.
pub fn create_job(
    creator: &Address,
    domain: &str,
    eval_set: [u8; 32],
    base: [u8; 32],
    budget: u128,
    deadline: u64,
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgCreateJob {
        creator: creator.to_string(),
        domain: domain.into(),
        eval_set_hash: eval_set.to_vec(),
        base_checkpoint: base.to_vec(),
        budget: budget.to_string(),
        deadline_secs: deadline,
    })
}

/// `MsgCancelJob` as an `Any`.
pub fn cancel_job(creator: &Address, job: u64) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgCancelJob {
        creator: creator.to_string(),
        job,
    })
}

/// `MsgRecordRound` as an `Any`.
pub fn record_round(
    leader_node: &Address,
    job: u64,
    round: u64,
    base: [u8; 32],
    merged: [u8; 32],
    accepted: &[(Address, u64)],
    rejected: &[(Address, &str)],
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgRecordRound {
        leader: leader_node.to_string(),
        job,
        round,
        base_hash: base.to_vec(),
        merged_hash: merged.to_vec(),
        accepted: accepted
            .iter()
            .map(|(a, w)| AcceptedContributor {
                operator: a.to_string(),
                weight: *w,
            })
            .collect(),
        rejected: rejected
            .iter()
            .map(|(a, r)| RejectedContributor {
                operator: a.to_string(),
                reason: r.to_string(),
            })
            .collect(),
    })
}

/// `MsgPayForInference` as an `Any`.
pub fn pay_for_inference(
    payer: &Address,
    model: u64,
    server: &Address,
    amount: u128,
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgPayForInference {
        payer: payer.to_string(),
        model,
        server: server.to_string(),
        amount: amount.to_string(),
    })
}
