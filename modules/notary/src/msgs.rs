//! Notary messages (`proto/magnet/notary/v1/tx.proto`) and their stateless checks.

use crate::error::Error;
use magnet_core::msg::{address, amount, decode_any};
use magnet_core::{Address, ModuleError};
pub use magnet_proto::notary::v1::{MsgBondNotary, MsgChallenge, MsgVote};
use prost::Name;

/// A checked notary message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// Challenge a target.
    Challenge {
        /// Challenger.
        challenger: Address,
        /// Target.
        target: String,
        /// Bond.
        bond: u128,
        /// Evidence hash.
        evidence_hash: Vec<u8>,
    },
    /// Vote.
    Vote {
        /// Notary.
        notary: Address,
        /// Challenge.
        id: u64,
        /// Uphold.
        uphold: bool,
    },
    /// Bond.
    Bond {
        /// Notary.
        notary: Address,
        /// Amount.
        amount: u128,
    },
}

/// Type URLs handled by this module.
pub fn type_urls() -> Vec<&'static str> {
    vec![
        "/magnet.notary.v1.MsgChallenge",
        "/magnet.notary.v1.MsgVote",
        "/magnet.notary.v1.MsgBondNotary",
    ]
}

/// Decode and check; returns the message and its signer.
pub fn check(any: &prost_types::Any) -> Result<(Msg, Address), Error> {
    let t = any.type_url.as_str();
    let m = if t == MsgChallenge::type_url() {
        let m: MsgChallenge = decode_any(any)?;
        if !(m.target.starts_with("contrib/") || m.target.starts_with("data/"))
            || m.target.len() > 256
        {
            return Err(Error::BadTarget(m.target));
        }
        if m.evidence_hash.len() != 32 {
            return Err(ModuleError::new("sdk", 3, "evidence_hash must be 32 bytes").into());
        }
        Msg::Challenge {
            challenger: address("challenger", &m.challenger)?,
            target: m.target,
            bond: amount("bond", &m.bond)?,
            evidence_hash: m.evidence_hash,
        }
    } else if t == MsgVote::type_url() {
        let m: MsgVote = decode_any(any)?;
        Msg::Vote {
            notary: address("notary", &m.notary)?,
            id: m.challenge_id,
            uphold: m.uphold,
        }
    } else if t == MsgBondNotary::type_url() {
        let m: MsgBondNotary = decode_any(any)?;
        Msg::Bond {
            notary: address("notary", &m.notary)?,
            amount: amount("amount", &m.amount)?,
        }
    } else {
        return Err(ModuleError::unknown_msg(t).into());
    };
    let s = match &m {
        Msg::Challenge { challenger, .. } => *challenger,
        Msg::Vote { notary, .. } | Msg::Bond { notary, .. } => *notary,
    };
    Ok((m, s))
}

/// `MsgChallenge` as an `Any`.
pub fn challenge(
    challenger: &Address,
    target: &str,
    bond: u128,
    evidence_hash: [u8; 32],
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgChallenge {
        challenger: challenger.to_string(),
        target: target.into(),
        bond: bond.to_string(),
        evidence_hash: evidence_hash.to_vec(),
    })
}

/// `MsgVote` as an `Any`.
pub fn vote(notary: &Address, id: u64, uphold: bool) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgVote {
        notary: notary.to_string(),
        challenge_id: id,
        uphold,
    })
}

/// `MsgBondNotary` as an `Any`.
pub fn bond(notary: &Address, amount: u128) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgBondNotary {
        notary: notary.to_string(),
        amount: amount.to_string(),
    })
}
