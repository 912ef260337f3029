//! Gov messages (`proto/magnet/gov/v1/tx.proto`) and proposal contents.
//!
//! A proposal's `content_json` is one of (see `docs/gov-proposal-example.json`):
//! ```json
//! {"param_change": {"module": "slashing", "params": { …the module's full params… }}}
//! {"notary_set": {"members": ["magnet1…", …]}}
//! {"validator_set": {"pub_key_ed25519_hex": "…64 hex…", "power": 10, "operator": "magnet1…"}}
//! {"validator_set_changes": {"changes": [
//!     {"pub_key_ed25519_hex": "…64 hex…", "power": 10, "operator": "magnet1…"},
//!     {"pub_key_ed25519_hex": "…64 hex…", "power": 0}]}}
//! {"community_spend": {"recipient": "magnet1…", "amount": "1000000"}}
//! {"software_upgrade": {"name": "v2", "halt_height": 100000}}
//! {"overturn": {"challenge_id": 3}}
//! {"text": {"body": "…"}}
//! ```

use crate::error::Error;
use crate::state::VoteOption;
use magnet_core::msg::{address, amount, decode_any};
use magnet_core::{Address, ModuleError};
pub use magnet_proto::gov::v1::{MsgDeposit, MsgSubmitProposal, MsgVote};
use prost::Name;

/// What a proposal does when it passes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Content {
    /// Replace a module's params (economic modules: at the next epoch boundary).
    ParamChange {
        /// Module name.
        module: String,
        /// Its full params document.
        params: serde_json::Value,
    },
    /// Replace the notary panel.
    NotarySet {
        /// Members (bech32).
        members: Vec<String>,
    },
    /// Set one validator's power (the one-change form of [`Content::ValidatorSetChanges`],
    /// validated and executed the same way).
    ValidatorSet {
        /// Ed25519 public key, hex.
        pub_key_ed25519_hex: String,
        /// Power (0 removes).
        power: u64,
        /// Operator account (bech32) paid the validator's fee share; unchanged when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        operator: Option<String>,
    },
    /// Change several validators at once, atomically: all apply in one block or none does
    /// (ADR 0104).
    ValidatorSetChanges {
        /// The changes, at most [`MAX_VALIDATOR_CHANGES`], each key at most once.
        changes: Vec<ValidatorChange>,
    },
    /// Pay from the community pool.
    CommunitySpend {
        /// Recipient (bech32).
        recipient: String,
        /// Amount (umag, decimal string).
        amount: String,
    },
    /// Halt at a height for a software upgrade.
    SoftwareUpgrade {
        /// Upgrade name.
        name: String,
        /// Halt height.
        halt_height: u64,
    },
    /// Appeal: declare a notary resolution fraudulent (its majority is slashed 1.0).
    Overturn {
        /// Challenge id.
        challenge_id: u64,
    },
    /// Text only.
    Text {
        /// Body.
        body: String,
    },
}

/// Most validator changes one proposal may carry.
pub const MAX_VALIDATOR_CHANGES: usize = 100;

/// One validator's new power in a [`Content::ValidatorSetChanges`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorChange {
    /// Ed25519 public key, hex (`magnetd genesis show-validator` prints it).
    pub pub_key_ed25519_hex: String,
    /// New power; 0 removes the validator.
    pub power: u64,
    /// Operator account (bech32) paid the validator's fee share; unchanged when absent.
    /// Not allowed with power 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

impl Content {
    /// The validator changes this content makes, if it changes validators: the one change
    /// of [`Content::ValidatorSet`], or the list of [`Content::ValidatorSetChanges`].
    pub fn validator_changes(&self) -> Option<Vec<ValidatorChange>> {
        match self {
            Content::ValidatorSet {
                pub_key_ed25519_hex,
                power,
                operator,
            } => Some(vec![ValidatorChange {
                pub_key_ed25519_hex: pub_key_ed25519_hex.clone(),
                power: *power,
                operator: operator.clone(),
            }]),
            Content::ValidatorSetChanges { changes } => Some(changes.clone()),
            _ => None,
        }
    }
}

/// A validator change with its key and operator decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedChange {
    /// Ed25519 public key (32 bytes).
    pub pub_key: Vec<u8>,
    /// New power (0 removes).
    pub power: u64,
    /// New operator, if given.
    pub operator: Option<Address>,
}

/// The validator changes of `c` after stateless checks, or `None` when `c` changes no
/// validator: 1..=[`MAX_VALIDATOR_CHANGES`] changes, each key 32 bytes of hex and named once,
/// each power at most CometBFT's maximum total power, operators bech32 and only on changes
/// that keep the validator.
pub fn checked_validator_changes(c: &Content) -> Result<Option<Vec<CheckedChange>>, Error> {
    match c {
        Content::ValidatorSet { .. } => {
            let changes = c.validator_changes().unwrap_or_default();
            check_changes("validator_set", false, &changes).map(Some)
        }
        Content::ValidatorSetChanges { changes } => {
            check_changes("validator_set_changes.changes", true, changes).map(Some)
        }
        _ => Ok(None),
    }
}

fn check_changes(
    what: &str,
    indexed: bool,
    changes: &[ValidatorChange],
) -> Result<Vec<CheckedChange>, Error> {
    let at = |i: usize| {
        if indexed {
            format!("{what}[{i}]")
        } else {
            what.to_string()
        }
    };
    let bad = |s: String| Err(Error::InvalidProposal(s));
    if changes.is_empty() {
        return bad(format!("{what} must list at least one change"));
    }
    if changes.len() > MAX_VALIDATOR_CHANGES {
        return bad(format!(
            "{what} lists {} changes; at most {MAX_VALIDATOR_CHANGES} are allowed",
            changes.len()
        ));
    }
    let max = magnet_core::services::MAX_TOTAL_VOTING_POWER;
    let mut out: Vec<CheckedChange> = Vec::with_capacity(changes.len());
    for (i, c) in changes.iter().enumerate() {
        let pub_key = match hex::decode(&c.pub_key_ed25519_hex) {
            Ok(b) if b.len() == 32 => b,
            _ => {
                return bad(format!(
                    "{}.pub_key_ed25519_hex must be 32 bytes of hex, got {:?}",
                    at(i),
                    c.pub_key_ed25519_hex
                ))
            }
        };
        if out.iter().any(|o| o.pub_key == pub_key) {
            return bad(format!(
                "{} names validator {} a second time; give each key once",
                at(i),
                hex::encode(&pub_key)
            ));
        }
        if c.power > max {
            return bad(format!(
                "{}.power {} exceeds CometBFT's maximum total voting power {max}",
                at(i),
                c.power
            ));
        }
        let operator = match &c.operator {
            Some(_) if c.power == 0 => {
                return bad(format!(
                    "{} removes validator {} (power 0) and also sets an operator; \
                     an operator is set only on a validator that stays",
                    at(i),
                    hex::encode(&pub_key)
                ))
            }
            Some(op) => Some(address(&format!("{}.operator", at(i)), op)?),
            None => None,
        };
        out.push(CheckedChange {
            pub_key,
            power: c.power,
            operator,
        });
    }
    Ok(out)
}

/// A checked gov message.
#[derive(Clone, Debug, PartialEq)]
pub enum Msg {
    /// Submit.
    Submit {
        /// Proposer.
        proposer: Address,
        /// Title.
        title: String,
        /// Content.
        content: Content,
        /// Raw content JSON.
        content_json: String,
        /// Initial deposit.
        deposit: u128,
    },
    /// Deposit.
    Deposit {
        /// Depositor.
        depositor: Address,
        /// Proposal.
        id: u64,
        /// Amount.
        amount: u128,
    },
    /// Vote.
    Vote {
        /// Voter.
        voter: Address,
        /// Proposal.
        id: u64,
        /// Option.
        option: VoteOption,
    },
}

/// Type URLs handled by this module.
pub fn type_urls() -> Vec<&'static str> {
    vec![
        "/magnet.gov.v1.MsgSubmitProposal",
        "/magnet.gov.v1.MsgDeposit",
        "/magnet.gov.v1.MsgVote",
    ]
}

/// Parse a vote option.
pub fn option(s: &str) -> Result<VoteOption, Error> {
    Ok(match s {
        "yes" => VoteOption::Yes,
        "no" => VoteOption::No,
        "abstain" => VoteOption::Abstain,
        "veto" | "no_with_veto" => VoteOption::Veto,
        _ => return Err(Error::InvalidOption(s.to_string())),
    })
}

/// Stateless checks of a content (module-specific validation happens at submission).
pub fn check_content(c: &Content) -> Result<(), Error> {
    let bad = |s: String| Err(Error::InvalidProposal(s));
    match c {
        Content::NotarySet { members } => {
            if members.is_empty() {
                return bad("notary_set.members must not be empty".into());
            }
            for m in members {
                address("notary_set.members", m)?;
            }
        }
        Content::ValidatorSet { .. } | Content::ValidatorSetChanges { .. } => {
            checked_validator_changes(c)?;
        }
        Content::CommunitySpend {
            recipient,
            amount: a,
        } => {
            address("community_spend.recipient", recipient)?;
            if amount("community_spend.amount", a)? == 0 {
                return bad("community_spend.amount must be > 0".into());
            }
        }
        Content::SoftwareUpgrade { name, .. } => {
            if name.is_empty() || name.len() > 128 {
                return bad("software_upgrade.name must be 1..=128 bytes".into());
            }
        }
        Content::Text { body } => {
            if body.len() > 10_000 {
                return bad("text.body must be at most 10000 bytes".into());
            }
        }
        Content::ParamChange { .. } | Content::Overturn { .. } => {}
    }
    Ok(())
}

/// Decode and check; returns the message and its signer.
pub fn check(any: &prost_types::Any) -> Result<(Msg, Address), Error> {
    let t = any.type_url.as_str();
    let m = if t == MsgSubmitProposal::type_url() {
        let m: MsgSubmitProposal = decode_any(any)?;
        if m.title.is_empty() || m.title.len() > 256 {
            return Err(Error::InvalidProposal("title must be 1..=256 bytes".into()));
        }
        let content: Content = serde_json::from_str(&m.content_json)
            .map_err(|e| Error::InvalidProposal(format!("content_json: {e}")))?;
        check_content(&content)?;
        Msg::Submit {
            proposer: address("proposer", &m.proposer)?,
            title: m.title,
            content,
            content_json: m.content_json,
            deposit: amount("deposit", &m.deposit)?,
        }
    } else if t == MsgDeposit::type_url() {
        let m: MsgDeposit = decode_any(any)?;
        let a = amount("amount", &m.amount)?;
        if a == 0 {
            return Err(Error::ZeroAmount("amount"));
        }
        Msg::Deposit {
            depositor: address("depositor", &m.depositor)?,
            id: m.proposal_id,
            amount: a,
        }
    } else if t == MsgVote::type_url() {
        let m: MsgVote = decode_any(any)?;
        Msg::Vote {
            voter: address("voter", &m.voter)?,
            id: m.proposal_id,
            option: option(&m.option)?,
        }
    } else {
        return Err(ModuleError::unknown_msg(t).into());
    };
    let signer = match &m {
        Msg::Submit { proposer, .. } => *proposer,
        Msg::Deposit { depositor, .. } => *depositor,
        Msg::Vote { voter, .. } => *voter,
    };
    Ok((m, signer))
}

/// `MsgSubmitProposal` as an `Any`.
pub fn submit(
    proposer: &Address,
    title: &str,
    content: &serde_json::Value,
    deposit: u128,
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgSubmitProposal {
        proposer: proposer.to_string(),
        title: title.into(),
        content_json: content.to_string(),
        deposit: deposit.to_string(),
    })
}

/// `MsgDeposit` as an `Any`.
pub fn deposit(depositor: &Address, id: u64, amount: u128) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgDeposit {
        depositor: depositor.to_string(),
        proposal_id: id,
        amount: amount.to_string(),
    })
}

/// `MsgVote` as an `Any` (`option`: yes | no | abstain | veto).
pub fn vote(voter: &Address, id: u64, option: &str) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgVote {
        voter: voter.to_string(),
        proposal_id: id,
        option: option.into(),
    })
}
