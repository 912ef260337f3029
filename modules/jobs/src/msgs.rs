//! Jobs messages (`proto/magnet/jobs/v1/tx.proto`) and their stateless checks.
//! `MsgRecordRound` is signed by the leader's **node key**, `MsgAuditCommit` and
//! `MsgAuditReveal` by a drawn auditor's node key; `MsgRecordResearchVersion` by a research
//! job's coordinator's node key and `MsgTrialCheckCommit` / `MsgTrialCheckReveal` by a drawn
//! checker's node key (ADR 0111); `MsgDisputeTrial` by the coordinator's node key (ADR 0114);
//! `MsgHeldOutCommit` / `MsgHeldOutReveal` by a drawn held-out evaluator's node key; the others by accounts (a node key may file
//! `MsgChallengeRound`: its account posts the bond).

use crate::error::Error;
use crate::research::{ResearchSpec, TrialInput};
use crate::state::{OuterPolicy, TrainingSpec};
use magnet_core::msg::{address, amount, decode_any, framed, hash32};
use magnet_core::{sha256, Address, ModuleError};
pub use magnet_proto::jobs::v1::{
    AcceptedDelta, MsgAuditCommit, MsgAuditReveal, MsgCancelJob, MsgChallengeRound, MsgCreateJob,
    MsgDisputeTrial, MsgHeldOutCommit, MsgHeldOutReveal, MsgPayForInference,
    MsgRecordResearchVersion, MsgRecordRound, MsgRevealTestSplit, MsgTrialCheckCommit,
    MsgTrialCheckReveal, RejectedDelta, TrialEntry, WorkClaim,
};
use prost::Name;

/// Most accepted plus rejected entries in one round record.
pub const MAX_ROUND_ENTRIES: usize = 256;

/// The parts of a round record a challenge may name as disagreeing with the recomputation.
pub const CHALLENGE_FIELDS: [&str; 5] = [
    "merged_hash",
    "weights",
    "base",
    "delta_hash",
    "unavailable",
];

/// A checked jobs message (built once per delivered message: the size of `Create` does not
/// matter).
#[allow(clippy::large_enum_variant)]
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
        /// DiLoCo round spec of a training job.
        training: Option<TrainingSpec>,
        /// Search spec of a research job (ADR 0111; never with `training`).
        research: Option<ResearchSpec>,
    },
    /// A research job's coordinator records one version of its search.
    ResearchVersion {
        /// Coordinator node key.
        coordinator: Address,
        /// Job.
        job: u64,
        /// Version (consecutive from 0).
        version: u32,
        /// Trials this version adds.
        entries: Vec<TrialInput>,
        /// Best unit so far (zeros: none).
        best_unit_hash: [u8; 32],
        /// Knowledge-base content address (zeros: none).
        kb_address: [u8; 32],
        /// Report content address (zeros: none).
        report_address: [u8; 32],
        /// The last version.
        last: bool,
    },
    /// A research job's coordinator disputes a worker's signed trial (ADR 0114).
    Dispute {
        /// Coordinator node key.
        coordinator: Address,
        /// Job.
        job: u64,
        /// The disputed entry as its worker signed it.
        entry: TrialInput,
    },
    /// A drawn checker's sealed re-run of a sampled or disputed trial.
    CheckCommit {
        /// Checker node key.
        checker: Address,
        /// Job.
        job: u64,
        /// Unit hash.
        unit: [u8; 32],
        /// [`check_commitment`].
        commitment: [u8; 32],
    },
    /// Opens a sealed re-run.
    CheckReveal {
        /// Checker node key.
        checker: Address,
        /// Job.
        job: u64,
        /// Unit hash.
        unit: [u8; 32],
        /// Re-run out-of-fold hash.
        oof_hash: [u8; 32],
        /// Re-run CV loss × 10^6.
        cv_loss_micro: u64,
        /// Nonce.
        nonce: [u8; 32],
    },
    /// A drawn held-out evaluator's sealed score (ADR 0111 §6).
    HeldOutCommit {
        /// Evaluator node key.
        evaluator: Address,
        /// Job.
        job: u64,
        /// [`heldout_commitment`].
        commitment: [u8; 32],
    },
    /// Opens a sealed held-out score.
    HeldOutReveal {
        /// Evaluator node key.
        evaluator: Address,
        /// Job.
        job: u64,
        /// The final version's test log-loss × 10^6.
        final_test_loss_micro: u64,
        /// The baseline's test log-loss × 10^6.
        baseline_test_loss_micro: u64,
        /// The test split or the final model could not be fetched.
        unavailable: bool,
        /// Nonce.
        nonce: [u8; 32],
    },
    /// The creator opens its sealed test split.
    RevealTest {
        /// Creator.
        creator: Address,
        /// Job.
        job: u64,
        /// Test split content address.
        test_address: [u8; 32],
        /// Salt.
        salt: [u8; 32],
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
        /// Accepted Δs.
        accepted: Vec<Accepted>,
        /// Rejected Δs: (node, Δ hash, reason).
        rejected: Vec<(Address, [u8; 32], String)>,
    },
    /// Challenge a recorded round's merge.
    Challenge {
        /// Challenger (posts the bond).
        challenger: Address,
        /// Job.
        job: u64,
        /// Round.
        round: u64,
        /// Bond.
        bond: u128,
        /// Recomputed merged hash (zeros when the inputs were unavailable).
        recomputed: [u8; 32],
        /// Which part disagreed (one of [`CHALLENGE_FIELDS`]).
        field: String,
    },
    /// A drawn auditor's sealed verdict on a challenged round.
    AuditCommit {
        /// Auditor node key.
        auditor: Address,
        /// Job.
        job: u64,
        /// Round.
        round: u64,
        /// [`verdict_commitment`].
        commitment: [u8; 32],
    },
    /// Opens a sealed verdict.
    AuditReveal {
        /// Auditor node key.
        auditor: Address,
        /// Job.
        job: u64,
        /// Round.
        round: u64,
        /// True: the merge does not re-check.
        fraud: bool,
        /// The merged hash the auditor recomputed (zeros when the inputs were unavailable).
        recomputed: [u8; 32],
        /// The commitment's nonce.
        nonce: [u8; 32],
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

/// An accepted Δ as a round record carries it (stateless checks done).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// Producer's node account.
    pub node: Address,
    /// Its claim (chain id filled in by the handler).
    pub job: u64,
    /// Round in the claim.
    pub round: u64,
    /// Base in the claim.
    pub base_hash: [u8; 32],
    /// Δ hash in the claim.
    pub delta_hash: [u8; 32],
    /// Steps in the claim.
    pub steps: u64,
    /// Tokens in the claim.
    pub tokens: u64,
    /// 64-byte signature.
    pub signature: Vec<u8>,
    /// Weight the leader merged it with.
    pub weight_ppm: u32,
    /// p2p content address of the compressed Δ (zeros when the leader gave none).
    pub content_address: [u8; 32],
}

impl Accepted {
    /// The signed claim on chain `chain_id`.
    pub fn claim(&self, chain_id: &str) -> magnet_rounds::WorkClaim {
        magnet_rounds::WorkClaim {
            chain_id: chain_id.to_string(),
            job: self.job,
            round: self.round,
            base_hash: self.base_hash,
            delta_hash: self.delta_hash,
            steps: self.steps,
            tokens: self.tokens,
        }
    }
}

/// Checks a training spec's ranges.
pub fn training_spec(t: &magnet_proto::jobs::v1::TrainingSpec) -> Result<TrainingSpec, Error> {
    let bad = |f: &'static str, why: &str| field(f, why);
    if t.inner_steps == 0 || t.inner_steps > 1_000_000 {
        return Err(bad("training.inner_steps", "must be in 1..=1000000"));
    }
    if t.batch_size == 0 || t.batch_size > 65_536 {
        return Err(bad("training.batch_size", "must be in 1..=65536"));
    }
    if t.seq_len == 0 || t.seq_len > 1 << 20 {
        return Err(bad("training.seq_len", "must be in 1..=1048576"));
    }
    if t.params == 0 || t.params > 1 << 40 {
        return Err(bad("training.params", "must be in 1..=2^40"));
    }
    if t.blocks_per_round == 0 || t.blocks_per_round > 1_000_000 {
        return Err(bad("training.blocks_per_round", "must be in 1..=1000000"));
    }
    let rule = magnet_rounds::LeaderRule::parse(&t.leader_rule).ok_or_else(|| {
        bad(
            "training.leader_rule",
            "must be \"hash\" or \"round_robin\"",
        )
    })?;
    if t.max_staleness > 16 {
        return Err(bad("training.max_staleness", "must be at most 16"));
    }
    if t.stale_decay_bps > 10_000 {
        return Err(bad("training.stale_decay_bps", "must be at most 10000"));
    }
    Ok(TrainingSpec {
        inner_steps: t.inner_steps,
        batch_size: t.batch_size,
        seq_len: t.seq_len,
        params: t.params,
        first_height: t.first_height,
        blocks_per_round: t.blocks_per_round,
        leader_rule: rule.as_str().to_string(),
        max_staleness: t.max_staleness,
        stale_decay_bps: t.stale_decay_bps,
        outer: t
            .outer
            .as_ref()
            .map(outer_policy)
            .transpose()?
            .unwrap_or_default(),
    })
}

/// Domain of a sealed audit verdict.
pub const VERDICT_DOMAIN: &[u8] = b"MAGNET/jobs/audit-verdict/v1";

/// The commitment of a sealed audit verdict (ADR 0091): SHA-256 of the length-framed domain,
/// chain id, job, round, the auditor's node account, the verdict (1 = fraud, 0 = ok), the
/// merged hash the auditor recomputed and a 32-byte secret nonce. Binding the auditor stops a
/// copied commitment; binding the recomputed hash ties the verdict to a recomputation.
pub fn verdict_commitment(
    chain_id: &str,
    job: u64,
    round: u64,
    auditor: &Address,
    fraud: bool,
    recomputed: &[u8; 32],
    nonce: &[u8; 32],
) -> [u8; 32] {
    sha256(&framed(&[
        VERDICT_DOMAIN,
        chain_id.as_bytes(),
        &job.to_be_bytes(),
        &round.to_be_bytes(),
        auditor.as_bytes(),
        &[u8::from(fraud)],
        recomputed,
        nonce,
    ]))
}

/// Checks an outer-step policy's ranges (the same as `magnet_diloco::MergePolicy::validate`).
pub fn outer_policy(o: &magnet_proto::jobs::v1::OuterPolicy) -> Result<OuterPolicy, Error> {
    let bad = |f: &'static str, why: &str| field(f, why);
    if o.lr_permille == 0 || o.lr_permille > 10_000 {
        return Err(bad("training.outer.lr_permille", "must be in 1..=10000"));
    }
    if o.momentum_permille >= 1_000 {
        return Err(bad(
            "training.outer.momentum_permille",
            "must be in 0..=999",
        ));
    }
    if o.outlier_factor_permille < 1_000 || o.outlier_factor_permille > 1_000_000 {
        return Err(bad(
            "training.outer.outlier_factor_permille",
            "must be in 1000..=1000000",
        ));
    }
    if o.min_contributions == 0 || o.min_contributions as usize > MAX_ROUND_ENTRIES {
        return Err(bad(
            "training.outer.min_contributions",
            "must be in 1..=256",
        ));
    }
    if o.update_chunk > 1 << 20 {
        return Err(bad(
            "training.outer.update_chunk",
            "must be at most 1048576",
        ));
    }
    Ok(OuterPolicy {
        lr_permille: o.lr_permille,
        momentum_permille: o.momentum_permille,
        outlier_factor_permille: o.outlier_factor_permille,
        min_contributions: o.min_contributions,
        update_chunk: o.update_chunk,
    })
}

/// Most trial entries in one research version.
pub const MAX_VERSION_ENTRIES: usize = 256;

/// Research domains a research job may name.
pub const RESEARCH_DOMAINS: [&str; 3] = ["tabular", "timeseries", "bitnet-lm"];

/// Domain of a trial check commitment.
pub const CHECK_DOMAIN: &[u8] = b"MAGNET/jobs/trial-check/v1";

/// Domain of a research job's test-split commitment.
pub const TEST_DOMAIN: &[u8] = b"MAGNET/jobs/research-test/v1";

/// The commitment of a sealed trial re-run (ADR 0111): SHA-256 of the length-framed domain,
/// chain id, the checker's node account, job, unit hash, re-run oof hash, re-run loss and a
/// 32-byte nonce. Binding the checker stops a copied commitment.
pub fn check_commitment(
    chain_id: &str,
    checker: &Address,
    job: u64,
    unit: &[u8; 32],
    oof_hash: &[u8; 32],
    cv_loss_micro: u64,
    nonce: &[u8; 32],
) -> [u8; 32] {
    sha256(&framed(&[
        CHECK_DOMAIN,
        chain_id.as_bytes(),
        checker.as_bytes(),
        &job.to_be_bytes(),
        unit,
        oof_hash,
        &cv_loss_micro.to_be_bytes(),
        nonce,
    ]))
}

/// Domain of a sealed held-out score.
pub const HELDOUT_DOMAIN: &[u8] = b"MAGNET/jobs/heldout/v1";

/// The commitment of a sealed held-out score (ADR 0111 §6): SHA-256 of the length-framed
/// domain, chain id, the evaluator's node account (20 bytes), job (8 BE), the final version's
/// test loss × 10^6 (8 BE), the baseline's (8 BE), `unavailable` (1 byte: 1 or 0) and a
/// 32-byte nonce. Binding the evaluator stops a copied commitment.
pub fn heldout_commitment(
    chain_id: &str,
    evaluator: &Address,
    job: u64,
    final_test_loss_micro: u64,
    baseline_test_loss_micro: u64,
    unavailable: bool,
    nonce: &[u8; 32],
) -> [u8; 32] {
    sha256(&framed(&[
        HELDOUT_DOMAIN,
        chain_id.as_bytes(),
        evaluator.as_bytes(),
        &job.to_be_bytes(),
        &final_test_loss_micro.to_be_bytes(),
        &baseline_test_loss_micro.to_be_bytes(),
        &[u8::from(unavailable)],
        nonce,
    ]))
}

/// A research job's test-split commitment: SHA-256 of the length-framed domain, the test
/// split's content address and a 32-byte salt (the salt keeps a guessable address sealed).
pub fn test_commitment(test_address: &[u8; 32], salt: &[u8; 32]) -> [u8; 32] {
    sha256(&framed(&[TEST_DOMAIN, test_address, salt]))
}

fn opt_hash(name: &'static str, b: &[u8]) -> Result<[u8; 32], Error> {
    if b.is_empty() {
        Ok([0u8; 32])
    } else {
        Ok(hash32(name, b)?)
    }
}

/// Checks a research spec's stateless ranges (the trial budget's and recheck rate's bounds
/// are params, checked by the handler).
pub fn research_spec(r: &magnet_proto::jobs::v1::ResearchSpec) -> Result<ResearchSpec, Error> {
    if !RESEARCH_DOMAINS.contains(&r.domain.as_str()) {
        return Err(field(
            "research.domain",
            "must be tabular, timeseries or bitnet-lm",
        ));
    }
    if r.target.is_empty() || r.target.len() > 128 {
        return Err(field("research.target", "must be 1..=128 bytes"));
    }
    if r.context.len() > 256 {
        return Err(field("research.context", "must be at most 256 bytes"));
    }
    if r.trial_budget == 0 {
        return Err(field("research.trial_budget", "must be ≥ 1"));
    }
    if !(2..=20).contains(&r.folds) {
        return Err(field("research.folds", "must be in 2..=20"));
    }
    if r.recheck_ppm > 1_000_000 {
        return Err(field("research.recheck_ppm", "must be ≤ 1000000"));
    }
    Ok(ResearchSpec {
        domain: r.domain.clone(),
        data_address: hexs(&hash32("research.data_address", &r.data_address)?),
        target: r.target.clone(),
        context: r.context.clone(),
        trial_budget: r.trial_budget,
        seed: r.seed,
        folds: r.folds,
        test_commitment: hexs(&hash32("research.test_commitment", &r.test_commitment)?),
        recheck_ppm: r.recheck_ppm,
    })
}

/// Field names of a trial entry in errors: (unit, worker, oof, signature).
type EntryFields = [&'static str; 4];
const VERSION_ENTRY: EntryFields = [
    "entries.unit_hash",
    "entries.worker",
    "entries.oof_hash",
    "entries.signature",
];
const DISPUTE_ENTRY: EntryFields = [
    "entry.unit_hash",
    "entry.worker",
    "entry.oof_hash",
    "entry.signature",
];

/// Checks one worker-signed trial entry.
fn trial_entry(f: EntryFields, e: &TrialEntry) -> Result<TrialInput, Error> {
    if e.signature.len() != 64 {
        return Err(field(f[3], "must be 64 bytes (r ‖ s)"));
    }
    Ok(TrialInput {
        unit_hash: hash32(f[0], &e.unit_hash)?,
        worker: address(f[1], &e.worker)?,
        oof_hash: hash32(f[2], &e.oof_hash)?,
        cv_loss_micro: e.cv_loss_micro,
        signature: e.signature.clone(),
    })
}

fn hexs(b: &[u8]) -> String {
    hex::encode(b)
}

/// Type URLs handled by this module.
pub fn type_urls() -> Vec<&'static str> {
    vec![
        "/magnet.jobs.v1.MsgCreateJob",
        "/magnet.jobs.v1.MsgCancelJob",
        "/magnet.jobs.v1.MsgRecordRound",
        "/magnet.jobs.v1.MsgPayForInference",
        "/magnet.jobs.v1.MsgChallengeRound",
        "/magnet.jobs.v1.MsgAuditCommit",
        "/magnet.jobs.v1.MsgAuditReveal",
        "/magnet.jobs.v1.MsgRecordResearchVersion",
        "/magnet.jobs.v1.MsgTrialCheckCommit",
        "/magnet.jobs.v1.MsgTrialCheckReveal",
        "/magnet.jobs.v1.MsgRevealTestSplit",
        "/magnet.jobs.v1.MsgDisputeTrial",
        "/magnet.jobs.v1.MsgHeldOutCommit",
        "/magnet.jobs.v1.MsgHeldOutReveal",
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
        if m.training.is_some() && m.research.is_some() {
            return Err(field(
                "research",
                "a job is a training job or a research job, not both",
            ));
        }
        Msg::Create {
            creator: address("creator", &m.creator)?,
            domain: m.domain,
            eval_set_hash: hash32("eval_set_hash", &m.eval_set_hash)?,
            base_checkpoint: hash32("base_checkpoint", &m.base_checkpoint)?,
            budget: amount("budget", &m.budget)?,
            deadline: m.deadline_secs,
            training: m.training.as_ref().map(training_spec).transpose()?,
            research: m.research.as_ref().map(research_spec).transpose()?,
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
            let c = a
                .claim
                .as_ref()
                .ok_or_else(|| field("accepted.claim", "missing"))?;
            if a.signature.len() != 64 {
                return Err(field("accepted.signature", "must be 64 bytes (r ‖ s)"));
            }
            if a.weight_ppm == 0 {
                return Err(field("accepted.weight_ppm", "must be > 0"));
            }
            accepted.push(Accepted {
                node: address("accepted.node", &a.node)?,
                job: c.job,
                round: c.round,
                base_hash: hash32("accepted.claim.base_hash", &c.base_hash)?,
                delta_hash: hash32("accepted.claim.delta_hash", &c.delta_hash)?,
                steps: c.steps,
                tokens: c.tokens,
                signature: a.signature.clone(),
                weight_ppm: a.weight_ppm,
                content_address: if a.content_address.is_empty() {
                    [0u8; 32]
                } else {
                    hash32("accepted.content_address", &a.content_address)?
                },
            });
        }
        let mut rejected = Vec::new();
        for r in &m.rejected {
            if r.reason.len() > 256 {
                return Err(field("rejected.reason", "at most 256 bytes"));
            }
            rejected.push((
                address("rejected.node", &r.node)?,
                hash32("rejected.delta_hash", &r.delta_hash)?,
                r.reason.clone(),
            ));
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
    } else if t == MsgChallengeRound::type_url() {
        let m: MsgChallengeRound = decode_any(any)?;
        if !CHALLENGE_FIELDS.contains(&m.field.as_str()) {
            return Err(field(
                "field",
                "must be one of merged_hash, weights, base, delta_hash, unavailable",
            ));
        }
        Msg::Challenge {
            challenger: address("challenger", &m.challenger)?,
            job: m.job,
            round: m.round,
            bond: amount("bond", &m.bond)?,
            recomputed: if m.recomputed_hash.is_empty() {
                [0u8; 32]
            } else {
                hash32("recomputed_hash", &m.recomputed_hash)?
            },
            field: m.field,
        }
    } else if t == MsgAuditCommit::type_url() {
        let m: MsgAuditCommit = decode_any(any)?;
        Msg::AuditCommit {
            auditor: address("auditor", &m.auditor)?,
            job: m.job,
            round: m.round,
            commitment: hash32("commitment", &m.commitment)?,
        }
    } else if t == MsgAuditReveal::type_url() {
        let m: MsgAuditReveal = decode_any(any)?;
        Msg::AuditReveal {
            auditor: address("auditor", &m.auditor)?,
            job: m.job,
            round: m.round,
            fraud: m.fraud,
            recomputed: if m.recomputed_hash.is_empty() {
                [0u8; 32]
            } else {
                hash32("recomputed_hash", &m.recomputed_hash)?
            },
            nonce: hash32("nonce", &m.nonce)?,
        }
    } else if t == MsgRecordResearchVersion::type_url() {
        let m: MsgRecordResearchVersion = decode_any(any)?;
        if m.entries.len() > MAX_VERSION_ENTRIES {
            return Err(field("entries", "at most 256 trials per version"));
        }
        let mut entries = Vec::with_capacity(m.entries.len());
        let mut seen = std::collections::BTreeSet::new();
        for e in &m.entries {
            let unit = hash32("entries.unit_hash", &e.unit_hash)?;
            if !seen.insert(unit) {
                return Err(field("entries.unit_hash", "a unit is listed twice"));
            }
            entries.push(trial_entry(VERSION_ENTRY, e)?);
        }
        Msg::ResearchVersion {
            coordinator: address("coordinator", &m.coordinator)?,
            job: m.job,
            version: m.version,
            entries,
            best_unit_hash: opt_hash("best_unit_hash", &m.best_unit_hash)?,
            kb_address: opt_hash("kb_address", &m.kb_address)?,
            report_address: opt_hash("report_address", &m.report_address)?,
            last: m.r#final,
        }
    } else if t == MsgDisputeTrial::type_url() {
        let m: MsgDisputeTrial = decode_any(any)?;
        let e = m.entry.as_ref().ok_or_else(|| {
            field(
                "entry",
                "missing: the disputed trial as its worker signed it",
            )
        })?;
        Msg::Dispute {
            coordinator: address("coordinator", &m.coordinator)?,
            job: m.job,
            entry: trial_entry(DISPUTE_ENTRY, e)?,
        }
    } else if t == MsgHeldOutCommit::type_url() {
        let m: MsgHeldOutCommit = decode_any(any)?;
        Msg::HeldOutCommit {
            evaluator: address("evaluator", &m.evaluator)?,
            job: m.job,
            commitment: hash32("commitment", &m.commitment)?,
        }
    } else if t == MsgHeldOutReveal::type_url() {
        let m: MsgHeldOutReveal = decode_any(any)?;
        Msg::HeldOutReveal {
            evaluator: address("evaluator", &m.evaluator)?,
            job: m.job,
            final_test_loss_micro: m.final_test_loss_micro,
            baseline_test_loss_micro: m.baseline_test_loss_micro,
            unavailable: m.unavailable,
            nonce: hash32("nonce", &m.nonce)?,
        }
    } else if t == MsgTrialCheckCommit::type_url() {
        let m: MsgTrialCheckCommit = decode_any(any)?;
        Msg::CheckCommit {
            checker: address("checker", &m.checker)?,
            job: m.job,
            unit: hash32("unit_hash", &m.unit_hash)?,
            commitment: hash32("commitment", &m.commitment)?,
        }
    } else if t == MsgTrialCheckReveal::type_url() {
        let m: MsgTrialCheckReveal = decode_any(any)?;
        Msg::CheckReveal {
            checker: address("checker", &m.checker)?,
            job: m.job,
            unit: hash32("unit_hash", &m.unit_hash)?,
            oof_hash: hash32("oof_hash", &m.oof_hash)?,
            cv_loss_micro: m.cv_loss_micro,
            nonce: hash32("nonce", &m.nonce)?,
        }
    } else if t == MsgRevealTestSplit::type_url() {
        let m: MsgRevealTestSplit = decode_any(any)?;
        Msg::RevealTest {
            creator: address("creator", &m.creator)?,
            job: m.job,
            test_address: hash32("test_address", &m.test_address)?,
            salt: hash32("salt", &m.salt)?,
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
        Msg::Create { creator, .. }
        | Msg::Cancel { creator, .. }
        | Msg::RevealTest { creator, .. } => *creator,
        Msg::ResearchVersion { coordinator, .. } | Msg::Dispute { coordinator, .. } => *coordinator,
        Msg::CheckCommit { checker, .. } | Msg::CheckReveal { checker, .. } => *checker,
        Msg::HeldOutCommit { evaluator, .. } | Msg::HeldOutReveal { evaluator, .. } => *evaluator,
        Msg::Round { leader, .. } => *leader,
        Msg::Challenge { challenger, .. } => *challenger,
        Msg::AuditCommit { auditor, .. } | Msg::AuditReveal { auditor, .. } => *auditor,
        Msg::Pay { payer, .. } => *payer,
    };
    Ok((m, s))
}

/// `MsgCreateJob` as an `Any` (a job without training rounds).
pub fn create_job(
    creator: &Address,
    domain: &str,
    eval_set: [u8; 32],
    base: [u8; 32],
    budget: u128,
    deadline: u64,
) -> prost_types::Any {
    create_training_job(creator, domain, eval_set, base, budget, deadline, None)
}

/// `MsgCreateJob` as an `Any`, with the DiLoCo round spec of a training job.
pub fn create_training_job(
    creator: &Address,
    domain: &str,
    eval_set: [u8; 32],
    base: [u8; 32],
    budget: u128,
    deadline: u64,
    training: Option<&TrainingSpec>,
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgCreateJob {
        creator: creator.to_string(),
        domain: domain.into(),
        eval_set_hash: eval_set.to_vec(),
        base_checkpoint: base.to_vec(),
        budget: budget.to_string(),
        deadline_secs: deadline,
        research: None,
        training: training.map(|t| magnet_proto::jobs::v1::TrainingSpec {
            inner_steps: t.inner_steps,
            batch_size: t.batch_size,
            seq_len: t.seq_len,
            params: t.params,
            first_height: t.first_height,
            blocks_per_round: t.blocks_per_round,
            leader_rule: t.leader_rule.clone(),
            max_staleness: t.max_staleness,
            stale_decay_bps: t.stale_decay_bps,
            outer: Some(magnet_proto::jobs::v1::OuterPolicy {
                lr_permille: t.outer.lr_permille,
                momentum_permille: t.outer.momentum_permille,
                outlier_factor_permille: t.outer.outlier_factor_permille,
                min_contributions: t.outer.min_contributions,
                update_chunk: t.outer.update_chunk,
            }),
        }),
    })
}

/// `MsgCreateJob` as an `Any` for a research job (ADR 0111).
pub fn create_research_job(
    creator: &Address,
    budget: u128,
    deadline: u64,
    spec: &ResearchSpec,
) -> prost_types::Any {
    let unhex = |s: &str| hex::decode(s).unwrap_or_default();
    magnet_core::msg::to_any(&MsgCreateJob {
        creator: creator.to_string(),
        domain: spec.domain.clone(),
        eval_set_hash: unhex(&spec.data_address),
        base_checkpoint: vec![0u8; 32],
        budget: budget.to_string(),
        deadline_secs: deadline,
        training: None,
        research: Some(magnet_proto::jobs::v1::ResearchSpec {
            domain: spec.domain.clone(),
            data_address: unhex(&spec.data_address),
            target: spec.target.clone(),
            context: spec.context.clone(),
            trial_budget: spec.trial_budget,
            seed: spec.seed,
            folds: spec.folds,
            test_commitment: unhex(&spec.test_commitment),
            recheck_ppm: spec.recheck_ppm,
        }),
    })
}

/// `MsgRecordResearchVersion` as an `Any` (signed by the coordinator's node key). Zero
/// hashes are sent empty ("none").
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
) -> prost_types::Any {
    let opt = |h: [u8; 32]| {
        if h == [0u8; 32] {
            Vec::new()
        } else {
            h.to_vec()
        }
    };
    magnet_core::msg::to_any(&MsgRecordResearchVersion {
        coordinator: coordinator_node.to_string(),
        job,
        version,
        entries: entries.iter().map(trial_entry_pb).collect(),
        best_unit_hash: opt(best_unit_hash),
        kb_address: opt(kb_address),
        report_address: opt(report_address),
        r#final: last,
    })
}

fn trial_entry_pb(e: &TrialInput) -> TrialEntry {
    TrialEntry {
        unit_hash: e.unit_hash.to_vec(),
        worker: e.worker.to_string(),
        oof_hash: e.oof_hash.to_vec(),
        cv_loss_micro: e.cv_loss_micro,
        signature: e.signature.clone(),
    }
}

/// `MsgDisputeTrial` as an `Any` (signed by the coordinator's node key): `entry` is the
/// worker-signed trial whose re-run did not match (ADR 0114).
pub fn dispute_trial(coordinator_node: &Address, job: u64, entry: &TrialInput) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgDisputeTrial {
        coordinator: coordinator_node.to_string(),
        job,
        entry: Some(trial_entry_pb(entry)),
    })
}

/// `MsgTrialCheckCommit` as an `Any` (signed by the checker's node key).
pub fn trial_check_commit(
    checker_node: &Address,
    job: u64,
    unit: [u8; 32],
    commitment: [u8; 32],
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgTrialCheckCommit {
        checker: checker_node.to_string(),
        job,
        unit_hash: unit.to_vec(),
        commitment: commitment.to_vec(),
    })
}

/// `MsgTrialCheckReveal` as an `Any` (signed by the checker's node key).
pub fn trial_check_reveal(
    checker_node: &Address,
    job: u64,
    unit: [u8; 32],
    oof_hash: [u8; 32],
    cv_loss_micro: u64,
    nonce: [u8; 32],
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgTrialCheckReveal {
        checker: checker_node.to_string(),
        job,
        unit_hash: unit.to_vec(),
        oof_hash: oof_hash.to_vec(),
        cv_loss_micro,
        nonce: nonce.to_vec(),
    })
}

/// `MsgRevealTestSplit` as an `Any` (signed by the creator).
pub fn reveal_test_split(
    creator: &Address,
    job: u64,
    test_address: [u8; 32],
    salt: [u8; 32],
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgRevealTestSplit {
        creator: creator.to_string(),
        job,
        test_address: test_address.to_vec(),
        salt: salt.to_vec(),
    })
}

/// `MsgHeldOutCommit` as an `Any` (signed by the evaluator's node key): the sealed score
/// [`heldout_commitment`].
pub fn heldout_commit(
    evaluator_node: &Address,
    job: u64,
    commitment: [u8; 32],
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgHeldOutCommit {
        evaluator: evaluator_node.to_string(),
        job,
        commitment: commitment.to_vec(),
    })
}

/// `MsgHeldOutReveal` as an `Any` (signed by the evaluator's node key): opens the sealed score.
pub fn heldout_reveal(
    evaluator_node: &Address,
    job: u64,
    final_test_loss_micro: u64,
    baseline_test_loss_micro: u64,
    unavailable: bool,
    nonce: [u8; 32],
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgHeldOutReveal {
        evaluator: evaluator_node.to_string(),
        job,
        final_test_loss_micro,
        baseline_test_loss_micro,
        unavailable,
        nonce: nonce.to_vec(),
    })
}

/// `MsgCancelJob` as an `Any`.
pub fn cancel_job(creator: &Address, job: u64) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgCancelJob {
        creator: creator.to_string(),
        job,
    })
}

/// `MsgRecordRound` as an `Any`. `accepted` carries each Δ's claim and signature;
/// `rejected` is (node, Δ hash, reason).
pub fn record_round(
    leader_node: &Address,
    job: u64,
    round: u64,
    base: [u8; 32],
    merged: [u8; 32],
    accepted: &[Accepted],
    rejected: &[(Address, [u8; 32], String)],
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgRecordRound {
        leader: leader_node.to_string(),
        job,
        round,
        base_hash: base.to_vec(),
        merged_hash: merged.to_vec(),
        accepted: accepted
            .iter()
            .map(|a| AcceptedDelta {
                node: a.node.to_string(),
                claim: Some(WorkClaim {
                    job: a.job,
                    round: a.round,
                    base_hash: a.base_hash.to_vec(),
                    delta_hash: a.delta_hash.to_vec(),
                    steps: a.steps,
                    tokens: a.tokens,
                }),
                signature: a.signature.clone(),
                weight_ppm: a.weight_ppm,
                content_address: if a.content_address == [0u8; 32] {
                    Vec::new()
                } else {
                    a.content_address.to_vec()
                },
            })
            .collect(),
        rejected: rejected
            .iter()
            .map(|(a, d, r)| RejectedDelta {
                node: a.to_string(),
                delta_hash: d.to_vec(),
                reason: r.clone(),
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

/// `MsgChallengeRound` as an `Any`: `challenger` posts `bond` against round `round` of `job`,
/// with the merged hash it recomputed and the part of the record that disagreed.
pub fn challenge_round(
    challenger: &Address,
    job: u64,
    round: u64,
    bond: u128,
    recomputed: [u8; 32],
    field: &str,
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgChallengeRound {
        challenger: challenger.to_string(),
        job,
        round,
        bond: bond.to_string(),
        recomputed_hash: recomputed.to_vec(),
        field: field.to_string(),
    })
}

/// `MsgAuditCommit` as an `Any` (signed by the auditor's node key): the sealed verdict
/// [`verdict_commitment`].
pub fn audit_commit(
    auditor_node: &Address,
    job: u64,
    round: u64,
    commitment: [u8; 32],
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgAuditCommit {
        auditor: auditor_node.to_string(),
        job,
        round,
        commitment: commitment.to_vec(),
    })
}

/// `MsgAuditReveal` as an `Any` (signed by the auditor's node key): opens the sealed verdict.
pub fn audit_reveal(
    auditor_node: &Address,
    job: u64,
    round: u64,
    fraud: bool,
    recomputed: [u8; 32],
    nonce: [u8; 32],
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgAuditReveal {
        auditor: auditor_node.to_string(),
        job,
        round,
        fraud,
        recomputed_hash: recomputed.to_vec(),
        nonce: nonce.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pinned vector: the daemon, the CLI and the chain must agree on these bytes forever.
    #[test]
    fn the_verdict_commitment_is_pinned() {
        let auditor = Address::from_slice(&[7u8; 20]).expect("20 bytes");
        let c = verdict_commitment("magnet-1", 3, 9, &auditor, true, &[0xAB; 32], &[0x5A; 32]);
        assert_eq!(
            hex::encode(c),
            "10412d71e16166e6148a1565c1142cbbe799f1089533d0f0ef5af4dd4fef12f3"
        );
        // Every field is bound.
        assert_ne!(
            c,
            verdict_commitment("magnet-2", 3, 9, &auditor, true, &[0xAB; 32], &[0x5A; 32])
        );
        assert_ne!(
            c,
            verdict_commitment("magnet-1", 3, 9, &auditor, false, &[0xAB; 32], &[0x5A; 32])
        );
        assert_ne!(
            c,
            verdict_commitment("magnet-1", 3, 9, &auditor, true, &[0xAC; 32], &[0x5A; 32])
        );
        assert_ne!(
            c,
            verdict_commitment("magnet-1", 3, 9, &auditor, true, &[0xAB; 32], &[0x5B; 32])
        );
        assert_ne!(
            c,
            verdict_commitment("magnet-1", 3, 10, &auditor, true, &[0xAB; 32], &[0x5A; 32])
        );
        let other = Address::from_slice(&[8u8; 20]).expect("20 bytes");
        assert_ne!(
            c,
            verdict_commitment("magnet-1", 3, 9, &other, true, &[0xAB; 32], &[0x5A; 32])
        );
    }

    /// A pinned vector: the evaluator daemon and the chain must agree on these bytes forever.
    #[test]
    fn the_heldout_commitment_is_pinned_and_binds_every_field() {
        let a = Address::from_slice(&[7u8; 20]).expect("20 bytes");
        let b = Address::from_slice(&[8u8; 20]).expect("20 bytes");
        let c = heldout_commitment("magnet-1", &a, 3, 550_000, 600_000, false, &[0x5A; 32]);
        assert_eq!(
            hex::encode(c),
            "e0578adbf8c9406f9c862e9f86f0e4172178654c870339c9feab783f40680efd"
        );
        assert_eq!(
            c,
            sha256(&framed(&[
                HELDOUT_DOMAIN,
                b"magnet-1",
                &[7u8; 20],
                &3u64.to_be_bytes(),
                &550_000u64.to_be_bytes(),
                &600_000u64.to_be_bytes(),
                &[0],
                &[0x5A; 32],
            ]))
        );
        for other in [
            heldout_commitment("magnet-2", &a, 3, 550_000, 600_000, false, &[0x5A; 32]),
            heldout_commitment("magnet-1", &b, 3, 550_000, 600_000, false, &[0x5A; 32]),
            heldout_commitment("magnet-1", &a, 4, 550_000, 600_000, false, &[0x5A; 32]),
            heldout_commitment("magnet-1", &a, 3, 550_001, 600_000, false, &[0x5A; 32]),
            heldout_commitment("magnet-1", &a, 3, 550_000, 600_001, false, &[0x5A; 32]),
            heldout_commitment("magnet-1", &a, 3, 550_000, 600_000, true, &[0x5A; 32]),
            heldout_commitment("magnet-1", &a, 3, 550_000, 600_000, false, &[0x5B; 32]),
        ] {
            assert_ne!(c, other);
        }
    }

    #[test]
    fn the_check_and_test_commitments_bind_every_field() {
        let a = Address::from_slice(&[7u8; 20]).expect("20 bytes");
        let b = Address::from_slice(&[8u8; 20]).expect("20 bytes");
        let c = check_commitment("magnet-1", &a, 3, &[1; 32], &[2; 32], 5, &[9; 32]);
        for other in [
            check_commitment("magnet-2", &a, 3, &[1; 32], &[2; 32], 5, &[9; 32]),
            check_commitment("magnet-1", &b, 3, &[1; 32], &[2; 32], 5, &[9; 32]),
            check_commitment("magnet-1", &a, 4, &[1; 32], &[2; 32], 5, &[9; 32]),
            check_commitment("magnet-1", &a, 3, &[0; 32], &[2; 32], 5, &[9; 32]),
            check_commitment("magnet-1", &a, 3, &[1; 32], &[3; 32], 5, &[9; 32]),
            check_commitment("magnet-1", &a, 3, &[1; 32], &[2; 32], 6, &[9; 32]),
            check_commitment("magnet-1", &a, 3, &[1; 32], &[2; 32], 5, &[8; 32]),
        ] {
            assert_ne!(c, other);
        }
        let t = test_commitment(&[1; 32], &[2; 32]);
        assert_ne!(t, test_commitment(&[1; 32], &[3; 32]));
        assert_ne!(t, test_commitment(&[0; 32], &[2; 32]));
        assert_eq!(
            t,
            sha256(&framed(&[TEST_DOMAIN, &[1; 32], &[2; 32]])),
            "SHA-256 of the framed tag, address and salt"
        );
    }
}
