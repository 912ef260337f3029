//! Typed builders for every MAGNET incentive-module message, ready for
//! [`crate::ChainClient::broadcast_and_wait`].
//!
//! Each builder takes typed values (addresses, `u128` umag amounts, 32-byte hashes) and
//! returns the message as a `cosmrs::Any` with its `/magnet.<module>.v1.MsgX` type URL, built
//! from the generated `magnet-proto` types. Each builder's doc says **which key must sign**:
//!
//! * the **operator** (account) key for anything that moves a bond or funds
//!   (registry register/change-tier/unbond/unjail, governance bonds, jobs, data, notary,
//!   gov);
//! * the **node** key for the node's own work: registry heartbeats and inference-service
//!   advertisements (advertise / withdraw, ADR 0109), all four contrib
//!   messages, `MsgRecordRound` by the round leader's node, and the three custody messages
//!   (stripe registration by the producer, custody proofs by the holder, shard reassignment
//!   by the repairer; ADR 0107). The node key's address is
//!   [`magnet_core::Address::from_pubkey`] of its compressed public key, i.e.
//!   [`crate::Key::address`] of the node's key.
//!
//! Commitments for `contrib` are computed by [`work_commitment`] and [`score_commitment`],
//! which call the consensus code of `magnet-contrib` itself, so a client can never hash
//! differently from the chain.
//!
//! # Non-guarantees
//! Builders do no stateful checks (is the node registered, is the window open): the chain
//! does those and answers with a typed error code (see [`crate::ClientError::TxFailed`]).

use magnet_core::Address;
use magnet_proto::registry;

pub use magnet_contrib::state::Work;
pub use magnet_jobs::msgs::verdict_commitment;
pub use magnet_jobs::msgs::Accepted;
pub use magnet_jobs::msgs::{check_commitment, heldout_commitment, test_commitment};
pub use magnet_jobs::research::{ResearchSpec, TrialInput};
pub use magnet_jobs::state::{OuterPolicy, TrainingSpec};

/// Encode a generated message as a `cosmrs::Any` with its `/magnet.<pkg>.v1.MsgX` type URL.
pub fn any<M: prost::Message + prost::Name>(m: &M) -> cosmrs::Any {
    cosmrs::Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

/// A message built by its module's own builder (`magnet_<module>::msgs`), as a `cosmrs::Any`:
/// one encoding of every message, the one the chain's tests use.
fn from_module(a: prost_types::Any) -> cosmrs::Any {
    cosmrs::Any {
        type_url: a.type_url,
        value: a.value,
    }
}

/// Governance vote options accepted by `gov` (`MsgVote.option`).
pub const GOV_VOTE_OPTIONS: [&str; 4] = ["yes", "no", "abstain", "veto"];

/// Node tiers accepted by `registry`.
pub const TIERS: [&str; 5] = [
    "orchestrator",
    "gpu_compute",
    "storage_node",
    "cpu_only",
    "mobile_light",
];

// ---------------------------------------------------------------- registry

/// What a node operator declares when registering a node.
#[derive(Clone, Debug, Default)]
pub struct NodeRegistration {
    /// Compressed secp256k1 public key of the node key (33 bytes).
    pub node_pubkey: Vec<u8>,
    /// One of [`TIERS`].
    pub tier: String,
    /// P2P endpoint, e.g. `https://host:7000`.
    pub endpoint: String,
    /// Region label.
    pub region: String,
    /// Free text / JSON hardware profile.
    pub hardware_profile: String,
    /// Bond in umag (moved from the operator into escrow).
    pub bond: u128,
    /// The SSD provisioning test's report (`magnet_storage::provision`, kB/s); required, and
    /// passing, for tier `storage_node` (ADR 0107). `None` for other tiers is fine.
    pub ssd: Option<SsdReport>,
}

/// The SSD provisioning report carried by `MsgRegisterNode` / `MsgChangeTier`.
pub use magnet_proto::registry::v1::SsdReport;

/// `MsgRegisterNode`. Signed by the **operator**.
pub fn register_node(operator: &Address, r: &NodeRegistration) -> cosmrs::Any {
    any(&registry::v1::MsgRegisterNode {
        operator: operator.to_string(),
        node_pubkey: r.node_pubkey.clone(),
        tier: r.tier.clone(),
        endpoint: r.endpoint.clone(),
        region: r.region.clone(),
        hardware_profile: r.hardware_profile.clone(),
        bond: r.bond.to_string(),
        ssd: r.ssd,
    })
}

/// `MsgHeartbeat`. Signed by the **node** key; `node` is the node key's address.
pub fn heartbeat(node: &Address) -> cosmrs::Any {
    any(&registry::v1::MsgHeartbeat {
        node: node.to_string(),
    })
}

/// `MsgChangeTier`, topping up the bond by `extra_bond` umag; `ssd` (when given) replaces the
/// stored SSD report — tier `storage_node` needs a passing one. Signed by the **operator**.
pub fn change_tier(
    operator: &Address,
    tier: &str,
    extra_bond: u128,
    ssd: Option<SsdReport>,
) -> cosmrs::Any {
    any(&registry::v1::MsgChangeTier {
        operator: operator.to_string(),
        tier: tier.to_string(),
        extra_bond: extra_bond.to_string(),
        ssd,
    })
}

/// `MsgAdvertiseService` (ADR 0109): the node serves job `job`'s model over the
/// OpenAI-compatible API at `endpoint` (an `http://` or `https://` URL with a host, ≤ 256
/// bytes) for `price` umag per token (0: free), contexts up to `max_context` tokens.
/// Re-advertising a job replaces the advertisement. Signed by the **node** key; `node` is the
/// node key's address. Clients find it with `/magnet.registry.v1/services` and pay the listed
/// `operator` with [`pay_for_inference`].
pub fn advertise_service(
    node: &Address,
    job: u64,
    endpoint: &str,
    price: u128,
    max_context: u64,
) -> cosmrs::Any {
    any(&registry::v1::MsgAdvertiseService {
        node: node.to_string(),
        job,
        endpoint: endpoint.to_string(),
        price_per_token: price.to_string(),
        max_context,
    })
}

/// `MsgWithdrawService`: stop advertising job `job`. Signed by the **node** key.
pub fn withdraw_service(node: &Address, job: u64) -> cosmrs::Any {
    any(&registry::v1::MsgWithdrawService {
        node: node.to_string(),
        job,
    })
}

// ---------------------------------------------------------------- custody (ADR 0107)

pub use magnet_custody::msgs::{proof_for, NewStripe, Placement, Proof};

/// `MsgRegisterStripe`: a stripe's K+M placements, each with its holder's receipt. Signed by
/// the producer's **node** key (`owner`).
pub fn register_stripe(owner: &Address, stripe: &NewStripe) -> cosmrs::Any {
    from_module(magnet_custody::msgs::register_stripe(owner, stripe))
}

/// `MsgProveCustody`: answers to the holder's challenges of `epoch` (the current one). Signed
/// by the holder's **node** key. Build each proof with [`proof_for`].
pub fn prove_custody(holder: &Address, epoch: u64, proofs: &[Proof]) -> cosmrs::Any {
    from_module(magnet_custody::msgs::prove_custody(holder, epoch, proofs))
}

/// `MsgReassignShard`: move shard `index` of `object` to `new_holder`, with its receipt.
/// Signed by the repairer's **node** key (a storage-capable node other than `new_holder`).
pub fn reassign_shard(
    repairer: &Address,
    object: [u8; 32],
    index: u32,
    new_holder: &Address,
    receipt: &[u8],
) -> cosmrs::Any {
    from_module(magnet_custody::msgs::reassign_shard(
        repairer, object, index, new_holder, receipt,
    ))
}

/// `MsgUnbondNode` (the whole node bond). Signed by the **operator**.
pub fn unbond_node(operator: &Address) -> cosmrs::Any {
    any(&registry::v1::MsgUnbondNode {
        operator: operator.to_string(),
    })
}

/// `MsgUnjail`. Signed by the **operator**.
pub fn unjail(operator: &Address) -> cosmrs::Any {
    any(&registry::v1::MsgUnjail {
        operator: operator.to_string(),
    })
}

/// `MsgBondGov`: a plain governance bond (voting weight only). Signed by the **owner**.
pub fn bond_gov(owner: &Address, amount: u128) -> cosmrs::Any {
    any(&registry::v1::MsgBondGov {
        owner: owner.to_string(),
        amount: amount.to_string(),
    })
}

/// `MsgUnbondGov`. Signed by the **owner**.
pub fn unbond_gov(owner: &Address, amount: u128) -> cosmrs::Any {
    any(&registry::v1::MsgUnbondGov {
        owner: owner.to_string(),
        amount: amount.to_string(),
    })
}

// ---------------------------------------------------------------- contrib

/// The work commitment `H("MAGNET/contrib/v1" ‖ chain_id ‖ epoch ‖ job ‖ committer ‖ result ‖
/// nonce)` exactly as the chain checks it; `committer` is the node's **operator** address.
pub fn work_commitment(
    chain_id: &str,
    epoch: u64,
    job: u64,
    committer: &Address,
    work: &Work,
    nonce: &[u8],
) -> [u8; 32] {
    magnet_contrib::msgs::work_commitment(chain_id, epoch, job, committer, work, nonce)
}

/// The evaluator's score commitment, exactly as the chain checks it; `contributor` and
/// `evaluator` are **operator** addresses.
pub fn score_commitment(
    chain_id: &str,
    epoch: u64,
    job: u64,
    contributor: &Address,
    evaluator: &Address,
    score: i64,
    nonce: &[u8],
) -> [u8; 32] {
    magnet_contrib::msgs::score_commitment(
        chain_id,
        epoch,
        job,
        contributor,
        evaluator,
        score,
        nonce,
    )
}

/// `MsgCommit`. Signed by the **node** key.
pub fn contrib_commit(node: &Address, epoch: u64, job: u64, commitment: [u8; 32]) -> cosmrs::Any {
    from_module(magnet_contrib::msgs::commit(node, epoch, job, commitment))
}

/// `MsgReveal`. Signed by the **node** key.
pub fn contrib_reveal(
    node: &Address,
    epoch: u64,
    job: u64,
    work: &Work,
    nonce: &[u8],
) -> cosmrs::Any {
    from_module(magnet_contrib::msgs::reveal(node, epoch, job, work, nonce))
}

/// `MsgEvalCommit`. Signed by the evaluator's **node** key.
pub fn eval_commit(
    node: &Address,
    epoch: u64,
    job: u64,
    contributor: &Address,
    commitment: [u8; 32],
) -> cosmrs::Any {
    from_module(magnet_contrib::msgs::eval_commit(
        node,
        epoch,
        job,
        contributor,
        commitment,
    ))
}

/// `MsgEvalReveal` (`score`: validation-loss improvement, fixed-point 10^6). Signed by the
/// evaluator's **node** key.
pub fn eval_reveal(
    node: &Address,
    epoch: u64,
    job: u64,
    contributor: &Address,
    score: i64,
    nonce: &[u8],
) -> cosmrs::Any {
    from_module(magnet_contrib::msgs::eval_reveal(
        node,
        epoch,
        job,
        contributor,
        score,
        nonce,
    ))
}

// ---------------------------------------------------------------- notary

/// `MsgChallenge` against `target` (`contrib/<epoch>/<job>/<operator>` or `data/<id>`),
/// posting `bond` umag. Signed by the **challenger** account.
pub fn challenge(
    challenger: &Address,
    target: &str,
    bond: u128,
    evidence_hash: [u8; 32],
) -> cosmrs::Any {
    from_module(magnet_notary::msgs::challenge(
        challenger,
        target,
        bond,
        evidence_hash,
    ))
}

/// Notary `MsgVote` (`uphold` = the target misbehaved). Signed by the **notary** account.
pub fn notary_vote(notary: &Address, challenge_id: u64, uphold: bool) -> cosmrs::Any {
    from_module(magnet_notary::msgs::vote(notary, challenge_id, uphold))
}

/// `MsgBondNotary`. Signed by the **notary** account.
pub fn bond_notary(notary: &Address, amount: u128) -> cosmrs::Any {
    from_module(magnet_notary::msgs::bond(notary, amount))
}

// ---------------------------------------------------------------- data

/// `MsgRegisterData` (the registration fee is taken from the contributor). Signed by the
/// **contributor** account.
pub fn register_data(
    contributor: &Address,
    hash: [u8; 32],
    size: u64,
    domain: &str,
) -> cosmrs::Any {
    from_module(magnet_data::msgs::register(contributor, hash, size, domain))
}

// ---------------------------------------------------------------- jobs

/// `MsgCreateJob`, escrowing `budget` umag until `deadline_secs` (block time, Unix seconds).
/// Signed by the **creator** account.
pub fn create_job(
    creator: &Address,
    domain: &str,
    eval_set_hash: [u8; 32],
    base_checkpoint: [u8; 32],
    budget: u128,
    deadline_secs: u64,
) -> cosmrs::Any {
    from_module(magnet_jobs::msgs::create_job(
        creator,
        domain,
        eval_set_hash,
        base_checkpoint,
        budget,
        deadline_secs,
    ))
}

/// `MsgCreateJob` of a training job: `training` is its DiLoCo round spec (inner steps, batch,
/// sequence length, parameters, round schedule, leader rule, staleness policy), which the
/// chain uses to elect round leaders and to bound and weigh every Δ claim.
/// `training.first_height` must be above the height at which the tx lands.
/// Signed by the **creator** account.
pub fn create_training_job(
    creator: &Address,
    domain: &str,
    eval_set_hash: [u8; 32],
    base_checkpoint: [u8; 32],
    budget: u128,
    deadline_secs: u64,
    training: Option<&TrainingSpec>,
) -> cosmrs::Any {
    from_module(magnet_jobs::msgs::create_training_job(
        creator,
        domain,
        eval_set_hash,
        base_checkpoint,
        budget,
        deadline_secs,
        training,
    ))
}

/// `MsgCancelJob`. Signed by the **creator** account.
pub fn cancel_job(creator: &Address, job: u64) -> cosmrs::Any {
    from_module(magnet_jobs::msgs::cancel_job(creator, job))
}

/// One DiLoCo round as its leader records it (the model's lineage).
#[derive(Clone, Debug, Default)]
pub struct RoundRecord {
    /// Job id.
    pub job: u64,
    /// Round number.
    pub round: u64,
    /// Checkpoint hash the round started from.
    pub base_hash: [u8; 32],
    /// Merged checkpoint hash.
    pub merged_hash: [u8; 32],
    /// Accepted Δs: each producer's node account, its signed claim (job, round, base, Δ,
    /// steps, tokens), the 64-byte claim signature and the merge weight (ppm).
    pub accepted: Vec<Accepted>,
    /// Rejected Δs: (producer's node account, Δ hash, reason).
    pub rejected: Vec<(Address, [u8; 32], String)>,
}

/// `MsgRecordRound`. Signed by the round leader's **node** key (`leader_node`).
pub fn record_round(leader_node: &Address, r: &RoundRecord) -> cosmrs::Any {
    from_module(magnet_jobs::msgs::record_round(
        leader_node,
        r.job,
        r.round,
        r.base_hash,
        r.merged_hash,
        &r.accepted,
        &r.rejected,
    ))
}

/// `MsgChallengeRound`: `challenger` posts `bond` umag against the merge of round `round` of
/// `job` (ADR 0089), with the merged hash it recomputed (zeros when the inputs were
/// unavailable) and the part of the record that disagreed (`merged_hash`, `weights`, `base`,
/// `delta_hash` or `unavailable`). Signed by the **challenger** account (any account).
pub fn challenge_round(
    challenger: &Address,
    job: u64,
    round: u64,
    bond: u128,
    recomputed: [u8; 32],
    field: &str,
) -> cosmrs::Any {
    from_module(magnet_jobs::msgs::challenge_round(
        challenger, job, round, bond, recomputed, field,
    ))
}

/// `MsgAuditCommit`: a drawn auditor's sealed verdict on a challenged round
/// ([`verdict_commitment`] of its verdict, the merged hash it recomputed and a secret 32-byte
/// nonce). Signed by the auditor's **node** key.
pub fn audit_commit(
    auditor_node: &Address,
    job: u64,
    round: u64,
    commitment: [u8; 32],
) -> cosmrs::Any {
    from_module(magnet_jobs::msgs::audit_commit(
        auditor_node,
        job,
        round,
        commitment,
    ))
}

/// `MsgAuditReveal`: opens a sealed verdict (`fraud` = the merge does not re-check;
/// `recomputed` = the merged hash recomputed: the recorded one for `ok`, zeros when the inputs
/// were unavailable). Signed by the auditor's **node** key.
pub fn audit_reveal(
    auditor_node: &Address,
    job: u64,
    round: u64,
    fraud: bool,
    recomputed: [u8; 32],
    nonce: [u8; 32],
) -> cosmrs::Any {
    from_module(magnet_jobs::msgs::audit_reveal(
        auditor_node,
        job,
        round,
        fraud,
        recomputed,
        nonce,
    ))
}

/// `MsgCreateJob` of a research job (ADR 0111): `spec` names the confirmed data set, columns,
/// trial budget, seed, folds, recheck rate and the [`test_commitment`]. Signed by the
/// **creator** account.
pub fn create_research_job(
    creator: &Address,
    budget: u128,
    deadline_secs: u64,
    spec: &ResearchSpec,
) -> cosmrs::Any {
    from_module(magnet_jobs::msgs::create_research_job(
        creator,
        budget,
        deadline_secs,
        spec,
    ))
}

/// `MsgRecordResearchVersion`: version `version` of a research job's search with the trials it
/// adds (each signed by its worker's node key, `magnet_rounds::TrialClaim`); zero hashes mean
/// none. Signed by the job's coordinator's **node** key.
#[allow(clippy::too_many_arguments)]
pub fn record_research_version(
    coordinator_node: &Address,
    job: u64,
    version: u32,
    entries: &[TrialInput],
    best_unit_hash: [u8; 32],
    kb_address: [u8; 32],
    report_address: [u8; 32],
    last: bool,
) -> cosmrs::Any {
    from_module(magnet_jobs::msgs::record_research_version(
        coordinator_node,
        job,
        version,
        entries,
        best_unit_hash,
        kb_address,
        report_address,
        last,
    ))
}

/// `MsgDisputeTrial` (ADR 0114): the coordinator brings `entry`, a worker-signed trial whose
/// re-run did not match, to chain; drawn checkers re-run it regardless of sampling. Signed by
/// the job's coordinator's **node** key, while the job is open.
pub fn dispute_trial(coordinator_node: &Address, job: u64, entry: &TrialInput) -> cosmrs::Any {
    from_module(magnet_jobs::msgs::dispute_trial(
        coordinator_node,
        job,
        entry,
    ))
}

/// `MsgHeldOutCommit` (ADR 0111 §6): a drawn held-out evaluator's sealed score
/// ([`heldout_commitment`]), within `check_commit_blocks` of the test reveal. Signed by the
/// evaluator's **node** key.
pub fn heldout_commit(evaluator_node: &Address, job: u64, commitment: [u8; 32]) -> cosmrs::Any {
    from_module(magnet_jobs::msgs::heldout_commit(
        evaluator_node,
        job,
        commitment,
    ))
}

/// `MsgHeldOutReveal`: opens a sealed held-out score (the final version's and the baseline's
/// test loss × 10^6, or `unavailable`). Signed by the evaluator's **node** key.
pub fn heldout_reveal(
    evaluator_node: &Address,
    job: u64,
    final_test_loss_micro: u64,
    baseline_test_loss_micro: u64,
    unavailable: bool,
    nonce: [u8; 32],
) -> cosmrs::Any {
    from_module(magnet_jobs::msgs::heldout_reveal(
        evaluator_node,
        job,
        final_test_loss_micro,
        baseline_test_loss_micro,
        unavailable,
        nonce,
    ))
}

/// `MsgTrialCheckCommit`: a drawn checker's sealed re-run ([`check_commitment`]). Signed by
/// the checker's **node** key.
pub fn trial_check_commit(
    checker_node: &Address,
    job: u64,
    unit: [u8; 32],
    commitment: [u8; 32],
) -> cosmrs::Any {
    from_module(magnet_jobs::msgs::trial_check_commit(
        checker_node,
        job,
        unit,
        commitment,
    ))
}

/// `MsgTrialCheckReveal`: opens a sealed re-run. Signed by the checker's **node** key.
pub fn trial_check_reveal(
    checker_node: &Address,
    job: u64,
    unit: [u8; 32],
    oof_hash: [u8; 32],
    cv_loss_micro: u64,
    nonce: [u8; 32],
) -> cosmrs::Any {
    from_module(magnet_jobs::msgs::trial_check_reveal(
        checker_node,
        job,
        unit,
        oof_hash,
        cv_loss_micro,
        nonce,
    ))
}

/// `MsgRevealTestSplit`: the creator opens its sealed test split after the final version.
/// Signed by the **creator** account.
pub fn reveal_test_split(
    creator: &Address,
    job: u64,
    test_address: [u8; 32],
    salt: [u8; 32],
) -> cosmrs::Any {
    from_module(magnet_jobs::msgs::reveal_test_split(
        creator,
        job,
        test_address,
        salt,
    ))
}

/// `MsgPayForInference` of `amount` umag for `model` (a job id) served by `server` (an
/// operator address). Signed by the **payer** account.
pub fn pay_for_inference(
    payer: &Address,
    model: u64,
    server: &Address,
    amount: u128,
) -> cosmrs::Any {
    from_module(magnet_jobs::msgs::pay_for_inference(
        payer, model, server, amount,
    ))
}

// ---------------------------------------------------------------- gov

/// `MsgSubmitProposal`; `content` is one proposal body, e.g.
/// `{"param_change":{"module":"slashing","params":{…}}}` (see `docs/proposals/`).
/// Signed by the **proposer** account.
pub fn submit_proposal(
    proposer: &Address,
    title: &str,
    content: &serde_json::Value,
    deposit: u128,
) -> cosmrs::Any {
    from_module(magnet_gov::msgs::submit(proposer, title, content, deposit))
}

/// `MsgDeposit`. Signed by the **depositor** account.
pub fn gov_deposit(depositor: &Address, proposal_id: u64, amount: u128) -> cosmrs::Any {
    from_module(magnet_gov::msgs::deposit(depositor, proposal_id, amount))
}

/// Governance `MsgVote` (`option`: one of [`GOV_VOTE_OPTIONS`]). Signed by the **voter**,
/// weighted by its bonded stake.
pub fn gov_vote(voter: &Address, proposal_id: u64, option: &str) -> cosmrs::Any {
    from_module(magnet_gov::msgs::vote(voter, proposal_id, option))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn to_prost(a: &cosmrs::Any) -> prost_types::Any {
        prost_types::Any {
            type_url: a.type_url.clone(),
            value: a.value.clone(),
        }
    }

    fn work() -> Work {
        Work {
            checkpoint_hash: [1; 32],
            steps: 100,
            params: 124_000_000,
            data_hash: [2; 32],
            kind: "training".into(),
            entries: vec![(0, [3; 32])],
        }
    }

    fn research_spec() -> ResearchSpec {
        ResearchSpec {
            domain: "tabular".into(),
            data_address: hex::encode([1u8; 32]),
            target: "y".into(),
            context: String::new(),
            trial_budget: 4,
            seed: 7,
            folds: 5,
            test_commitment: hex::encode(test_commitment(&[2; 32], &[3; 32])),
            recheck_ppm: 50_000,
        }
    }

    fn trial_input() -> TrialInput {
        TrialInput {
            unit_hash: [4; 32],
            worker: Address([3; 20]),
            oof_hash: [5; 32],
            cv_loss_micro: 600_000,
            signature: vec![1; 64],
        }
    }

    /// Every builder's output passes the owning module's own stateless check, and the module
    /// names the signer this file documents.
    #[test]
    fn every_builder_passes_its_modules_check_with_the_documented_signer() {
        let op = Address([1; 20]);
        let node = Address([2; 20]);
        let other = Address([3; 20]);
        let pk = crate::Key::generate().unwrap().public_key_bytes();
        let reg = NodeRegistration {
            node_pubkey: pk,
            tier: "gpu_compute".into(),
            endpoint: "https://127.0.0.1:7000".into(),
            region: "eu".into(),
            hardware_profile: "{}".into(),
            bond: 5,
            ssd: None,
        };
        let registry_cases = [
            (register_node(&op, &reg), op),
            (heartbeat(&node), node),
            (
                advertise_service(&node, 3, "https://serve.example:8443", 0, 4096),
                node,
            ),
            (withdraw_service(&node, 3), node),
            (change_tier(&op, "orchestrator", 9, None), op),
            (unbond_node(&op), op),
            (unjail(&op), op),
            (bond_gov(&op, 7), op),
            (unbond_gov(&op, 7), op),
        ];
        for (m, signer) in registry_cases {
            let (_, s) = magnet_registry::msgs::check(&to_prost(&m)).unwrap();
            assert_eq!(s, signer, "{}", m.type_url);
        }
        let c = work_commitment("c", 1, 2, &op, &work(), b"n");
        let sc = score_commitment("c", 1, 2, &op, &other, 5, b"n");
        let contrib_cases = [
            contrib_commit(&node, 1, 2, c),
            contrib_reveal(&node, 1, 2, &work(), b"nonce"),
            eval_commit(&node, 1, 2, &other, sc),
            eval_reveal(&node, 1, 2, &other, -5, b"nonce"),
        ];
        for m in contrib_cases {
            let (_, s) = magnet_contrib::msgs::check(&to_prost(&m)).unwrap();
            assert_eq!(s, node, "{}", m.type_url);
        }
        let stripe = NewStripe {
            object: [1; 32],
            kind: "delta".into(),
            label: [2; 32],
            job_id: 1,
            size: 10,
            k: 1,
            m: 1,
            stripe_size: 4096,
            shard_len: 10,
            shards: vec![
                Placement {
                    holder: op,
                    root: [3; 32],
                    receipt: vec![0; 64],
                },
                Placement {
                    holder: other,
                    root: [4; 32],
                    receipt: vec![0; 64],
                },
            ],
        };
        let shard = [7u8; 600];
        let custody_cases = [
            register_stripe(&node, &stripe),
            prove_custody(&node, 3, &[proof_for(&shard, [1; 32], 0, 2).unwrap()]),
            reassign_shard(&node, [1; 32], 0, &other, &[0; 64]),
        ];
        for m in custody_cases {
            let (_, s) = magnet_custody::msgs::check(&to_prost(&m)).unwrap();
            assert_eq!(s, node, "{}", m.type_url);
        }
        for (m, signer) in [
            (challenge(&op, "data/1", 10, [4; 32]), op),
            (notary_vote(&other, 3, true), other),
            (bond_notary(&other, 10), other),
        ] {
            let (_, s) = magnet_notary::msgs::check(&to_prost(&m)).unwrap();
            assert_eq!(s, signer, "{}", m.type_url);
        }
        let (_, s) =
            magnet_data::msgs::check(&to_prost(&register_data(&op, [5; 32], 10, "text"))).unwrap();
        assert_eq!(s, op);
        let round = RoundRecord {
            job: 1,
            round: 0,
            base_hash: [6; 32],
            merged_hash: [7; 32],
            accepted: vec![Accepted {
                node,
                job: 1,
                round: 0,
                base_hash: [6; 32],
                delta_hash: [8; 32],
                steps: 4,
                tokens: 100,
                signature: vec![1; 64],
                weight_ppm: 1_000_000,
                content_address: [9; 32],
            }],
            rejected: vec![(other, [9; 32], "nan".into())],
        };
        let spec = TrainingSpec {
            inner_steps: 8,
            batch_size: 4,
            seq_len: 64,
            params: 1_000,
            first_height: 20,
            blocks_per_round: 10,
            leader_rule: "hash".into(),
            max_staleness: 2,
            stale_decay_bps: 5_000,
            outer: Default::default(),
        };
        for (m, signer) in [
            (create_job(&op, "text", [1; 32], [2; 32], 100, 1_000), op),
            (
                create_training_job(&op, "text", [1; 32], [2; 32], 100, 1_000, Some(&spec)),
                op,
            ),
            (cancel_job(&op, 1), op),
            (record_round(&node, &round), node),
            (pay_for_inference(&other, 1, &op, 50), other),
            (create_research_job(&op, 100, 1_000, &research_spec()), op),
            (
                record_research_version(
                    &node,
                    1,
                    0,
                    &[trial_input()],
                    [0; 32],
                    [0; 32],
                    [0; 32],
                    false,
                ),
                node,
            ),
            (trial_check_commit(&other, 1, [4; 32], [5; 32]), other),
            (
                trial_check_reveal(&other, 1, [4; 32], [6; 32], 7, [8; 32]),
                other,
            ),
            (reveal_test_split(&op, 1, [1; 32], [2; 32]), op),
            (dispute_trial(&node, 1, &trial_input()), node),
            (heldout_commit(&other, 1, [9; 32]), other),
            (
                heldout_reveal(&other, 1, 500_000, 600_000, false, [9; 32]),
                other,
            ),
        ] {
            let (_, s) = magnet_jobs::msgs::check(&to_prost(&m)).unwrap();
            assert_eq!(s, signer, "{}", m.type_url);
        }
        let body = serde_json::json!({"text": {"body": "hello"}});
        for (m, signer) in [
            (submit_proposal(&op, "t", &body, 1), op),
            (gov_deposit(&other, 1, 1), other),
            (gov_vote(&other, 1, "veto"), other),
        ] {
            let (_, s) = magnet_gov::msgs::check(&to_prost(&m)).unwrap();
            assert_eq!(s, signer, "{}", m.type_url);
        }
    }

    #[test]
    fn type_urls_name_the_module_package() {
        assert_eq!(
            heartbeat(&Address([0; 20])).type_url,
            "/magnet.registry.v1.MsgHeartbeat"
        );
        assert_eq!(
            gov_vote(&Address([0; 20]), 1, "yes").type_url,
            "/magnet.gov.v1.MsgVote"
        );
        assert_eq!(
            notary_vote(&Address([0; 20]), 1, true).type_url,
            "/magnet.notary.v1.MsgVote"
        );
        let m = register_data(&Address([9; 20]), [8; 32], 77, "code");
        let d = magnet_proto::data::v1::MsgRegisterData::decode(m.value.as_slice()).unwrap();
        assert_eq!(d.size, 77);
        assert_eq!(d.hash, vec![8; 32]);
    }

    #[test]
    fn a_commitment_binds_the_committer_and_the_nonce() {
        let a = Address([1; 20]);
        let b = Address([2; 20]);
        let base = work_commitment("magnet-1", 3, 4, &a, &work(), b"n1");
        assert_ne!(base, work_commitment("magnet-1", 3, 4, &b, &work(), b"n1"));
        assert_ne!(base, work_commitment("magnet-1", 3, 4, &a, &work(), b"n2"));
        assert_ne!(base, work_commitment("magnet-2", 3, 4, &a, &work(), b"n1"));
        assert_eq!(base, work_commitment("magnet-1", 3, 4, &a, &work(), b"n1"));
    }
}
