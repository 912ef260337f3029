//! `magnetd tx <module> …` and `magnetd query <module> …` for the incentive modules
//! (registry, emission, contrib, rewards, slashing, notary, data, jobs, gov).
//!
//! Txs are built with [`magnet_client::msgs`], signed with a keyring key, broadcast, and
//! waited for; a tx that fails in its block is an error carrying the module's code and log.
//! Queries are the modules' JSON ABCI queries (`/magnet.<module>.v1/<what>`), printed as
//! indented `key: value` text or, with `--output json`, as the module's JSON document.

use super::{default_fee, keyring, node_url, print_json, resolve_address, KeyringArgs, Output};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use magnet_chain::home::Home;
use magnet_client::msgs::{self, NodeRegistration, RoundRecord, Work};
use magnet_client::tx::{FeeSpec, DEFAULT_GAS};
use magnet_client::{ChainClient, Key, TxOutcome};
use magnet_core::{Address, Coins};
use prost::Message;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// How long a tx may take to be included before the CLI gives up waiting.
const INCLUSION_TIMEOUT: Duration = Duration::from_secs(60);

/// Flags every module tx takes.
#[derive(Args, Debug, Clone)]
pub(super) struct TxArgs {
    /// Key that signs (a name in the keyring). Which key a message needs is in its help:
    /// the operator key for bonds and funds, the node key for the node's own work.
    #[arg(long)]
    from: String,
    /// Fee coins (default: gas × 0.025umag rounded up).
    #[arg(long)]
    fees: Option<String>,
    /// Gas limit.
    #[arg(long, default_value_t = DEFAULT_GAS)]
    gas: u64,
    /// Memo.
    #[arg(long, default_value = "")]
    memo: String,
    /// Skip the confirmation prompt.
    #[arg(long, short = 'y')]
    yes: bool,
    #[command(flatten)]
    keyring: KeyringArgs,
    /// RPC endpoint of a node (default: this home's config.toml [rpc] laddr).
    #[arg(long)]
    node: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

/// Flags every module query takes.
#[derive(Args, Debug, Clone)]
pub(super) struct QArgs {
    /// RPC endpoint of a node (default: this home's config.toml [rpc] laddr).
    #[arg(long)]
    node: Option<String>,
    /// Query the state as of this past height (within the node's pruning window).
    #[arg(long)]
    height: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

/// Incentive-module txs, flattened into `magnetd tx`.
#[derive(Subcommand, Debug)]
pub(super) enum ModuleTxCmd {
    /// Node registry: register a node, heartbeats, tiers, bonds, unjail.
    #[command(subcommand)]
    Registry(RegistryTx),
    /// Commit-reveal contribution proofs and evaluator scores (signed by node keys).
    #[command(subcommand)]
    Contrib(ContribTx),
    /// Notary challenges and votes.
    #[command(subcommand)]
    Notary(NotaryTx),
    /// Data registration.
    #[command(subcommand)]
    Data(DataTx),
    /// Research jobs, DiLoCo round records (model lineage), pay-per-inference.
    #[command(subcommand)]
    Jobs(JobsTx),
    /// Governance: proposals, deposits, votes.
    #[command(subcommand)]
    Gov(GovTx),
}

/// The SSD provisioning test's result (`magnet-worker storage provision` prints it), required
/// for tier storage_node (ADR 0107).
#[derive(clap::Args, Debug, Default)]
pub(super) struct SsdArgs {
    /// 4 KiB random-read throughput of the SSD test, kB/s (tier storage_node needs ≥ the
    /// registry's ssd_min_read_mbps × 1000).
    #[arg(long, requires = "ssd_write_kbps")]
    ssd_read_kbps: Option<u64>,
    /// 4 KiB random-write throughput of the SSD test, kB/s.
    #[arg(long, requires = "ssd_read_kbps")]
    ssd_write_kbps: Option<u64>,
    /// Test file size (bytes).
    #[arg(long, default_value_t = 0)]
    ssd_file_bytes: u64,
}

impl SsdArgs {
    fn report(&self) -> Option<msgs::SsdReport> {
        Some(msgs::SsdReport {
            read_kbps: self.ssd_read_kbps?,
            write_kbps: self.ssd_write_kbps?,
            block_size: 4096,
            file_bytes: self.ssd_file_bytes,
            direct_io: true,
        })
    }
}

#[derive(Subcommand, Debug)]
pub(super) enum RegistryTx {
    /// Register a node: signed by the OPERATOR key; the bond moves into escrow.
    ///
    /// The node key is a separate key (make one with `magnetd keys add node1`); it only
    /// signs the node's work (heartbeats, commits, reveals), so a stolen node key cannot
    /// move the bond. The node key's account must hold some umag to pay its own tx fees.
    ///
    /// Example:
    ///   magnetd tx registry register-node --from alice --node-key node1 \
    ///     --tier gpu_compute --bond 1000000000 --endpoint https://10.0.0.5:7000 --region eu --yes
    #[command(verbatim_doc_comment)]
    RegisterNode {
        /// Node key: a keyring name, or its compressed public key in hex (66 characters).
        #[arg(long)]
        node_key: String,
        /// orchestrator | gpu_compute | storage_node | cpu_only | mobile_light
        #[arg(long)]
        tier: String,
        /// Bond (umag, e.g. 100000000 or 100000000umag); at least the tier's min_bond
        /// (see `magnetd query registry params`).
        #[arg(long)]
        bond: String,
        /// P2P endpoint, e.g. https://host:7000.
        #[arg(long, default_value = "")]
        endpoint: String,
        /// Region label.
        #[arg(long, default_value = "")]
        region: String,
        /// Hardware profile (free text or JSON).
        #[arg(long, default_value = "")]
        hardware_profile: String,
        #[command(flatten)]
        ssd: SsdArgs,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Liveness heartbeat: signed by the NODE key (`--from <node key>`).
    ///
    /// Example: magnetd tx registry heartbeat --from node1 --yes
    #[command(verbatim_doc_comment)]
    Heartbeat {
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Change the node's tier, topping up the bond: signed by the OPERATOR.
    ///
    /// Example: magnetd tx registry change-tier orchestrator --extra-bond 400000000 --from alice --yes
    #[command(verbatim_doc_comment)]
    ChangeTier {
        /// New tier.
        tier: String,
        /// Added bond (umag).
        #[arg(long, default_value = "0")]
        extra_bond: String,
        #[command(flatten)]
        ssd: SsdArgs,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Start unbonding the node's whole bond (it stops earning at once): signed by the OPERATOR.
    ///
    /// Example: magnetd tx registry unbond --from alice --yes
    #[command(verbatim_doc_comment)]
    Unbond {
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Leave jail after the jail period: signed by the OPERATOR.
    ///
    /// Example: magnetd tx registry unjail --from alice --yes
    #[command(verbatim_doc_comment)]
    Unjail {
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Post a plain governance bond (voting weight only).
    ///
    /// Example: magnetd tx registry bond-gov 5000000umag --from bob --yes
    #[command(verbatim_doc_comment)]
    BondGov {
        /// Amount (umag).
        amount: String,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Start unbonding part of a governance bond.
    ///
    /// Example: magnetd tx registry unbond-gov 5000000umag --from bob --yes
    #[command(verbatim_doc_comment)]
    UnbondGov {
        /// Amount (umag).
        amount: String,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Advertise that this node serves a job's model (OpenAI-compatible API, paid with
    /// MsgPayForInference): signed by the NODE key (`--from <node key>`). The job needs a
    /// merged round; re-advertising a job replaces the advertisement (ADR 0109).
    ///
    /// Example:
    ///   magnetd tx registry advertise-service 1 --endpoint https://10.0.0.5:8443 \
    ///     --price-per-token 2 --max-context 4096 --from node1 --yes
    #[command(verbatim_doc_comment)]
    AdvertiseService {
        /// Job id whose model is served.
        job: u64,
        /// http:// or https:// URL of the API (at most 256 bytes).
        #[arg(long)]
        endpoint: String,
        /// umag per token (0: free).
        #[arg(long, default_value = "0")]
        price_per_token: String,
        /// Longest context accepted (tokens).
        #[arg(long)]
        max_context: u64,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Withdraw this node's advertisement for a job: signed by the NODE key.
    ///
    /// Example: magnetd tx registry withdraw-service 1 --from node1 --yes
    #[command(verbatim_doc_comment)]
    WithdrawService {
        /// Job id.
        job: u64,
        #[command(flatten)]
        tx: TxArgs,
    },
}

/// What a contributor did (hashed into its commitment).
#[derive(Args, Debug, Clone)]
pub(super) struct WorkArgs {
    /// Checkpoint hash (64 hex).
    #[arg(long)]
    checkpoint_hash: String,
    /// Training steps.
    #[arg(long)]
    steps: u64,
    /// Model parameter count.
    #[arg(long)]
    params: u64,
    /// Data hash (64 hex).
    #[arg(long)]
    data_hash: String,
    /// research | training | storage | inference
    #[arg(long)]
    kind: String,
    /// Training: a lineage entry this result claims, as ROUND:DELTA_HASH (64 hex) — an
    /// accepted Δ of this node in the job's lineage, never claimed before (repeat).
    #[arg(long = "entry")]
    entries: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub(super) enum ContribTx {
    /// Commit to a work result: signed by the NODE key. Prints the nonce: keep it for reveal.
    ///
    /// The commitment H("MAGNET/contrib/v1" ‖ chain_id ‖ epoch ‖ job ‖ operator ‖ result ‖ nonce)
    /// is computed here from the result, so nobody can copy it or replay its reveal.
    ///
    /// Example:
    ///   magnetd tx contrib commit --from node1 --epoch 3 --job 1 --checkpoint-hash <64 hex> \
    ///     --steps 500 --params 124000000 --data-hash <64 hex> --kind training --nonce 0badc0de --yes
    #[command(verbatim_doc_comment)]
    Commit {
        /// Epoch.
        #[arg(long)]
        epoch: u64,
        /// Job id.
        #[arg(long)]
        job: u64,
        #[command(flatten)]
        work: WorkArgs,
        /// Nonce (hex, up to 64 bytes); random when omitted (printed: keep it).
        #[arg(long)]
        nonce: Option<String>,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Reveal the committed result and nonce: signed by the NODE key.
    ///
    /// Example:
    ///   magnetd tx contrib reveal --from node1 --epoch 3 --job 1 --checkpoint-hash <64 hex> \
    ///     --steps 500 --params 124000000 --data-hash <64 hex> --kind training --nonce 0badc0de --yes
    #[command(verbatim_doc_comment)]
    Reveal {
        /// Epoch.
        #[arg(long)]
        epoch: u64,
        /// Job id.
        #[arg(long)]
        job: u64,
        #[command(flatten)]
        work: WorkArgs,
        /// The nonce used in the commit (hex).
        #[arg(long)]
        nonce: String,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// An assigned evaluator commits its score for a contributor: signed by the NODE key.
    ///
    /// Score = validation-loss improvement over the job's base checkpoint, fixed-point 10^6.
    ///
    /// Example: magnetd tx contrib eval-commit --from node2 --epoch 3 --job 1 \
    ///   --contributor magnet1… --score 12000 --nonce 01 --yes
    #[command(verbatim_doc_comment)]
    EvalCommit {
        /// Epoch.
        #[arg(long)]
        epoch: u64,
        /// Job id.
        #[arg(long)]
        job: u64,
        /// The contributor's operator address.
        #[arg(long)]
        contributor: String,
        /// Score (fixed-point 10^6).
        #[arg(long, allow_hyphen_values = true)]
        score: i64,
        /// Nonce (hex); random when omitted (printed: keep it).
        #[arg(long)]
        nonce: Option<String>,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Reveal an evaluator score: signed by the NODE key.
    ///
    /// Example: magnetd tx contrib eval-reveal --from node2 --epoch 3 --job 1 \
    ///   --contributor magnet1… --score 12000 --nonce 01 --yes
    #[command(verbatim_doc_comment)]
    EvalReveal {
        /// Epoch.
        #[arg(long)]
        epoch: u64,
        /// Job id.
        #[arg(long)]
        job: u64,
        /// The contributor's operator address.
        #[arg(long)]
        contributor: String,
        /// Score (fixed-point 10^6).
        #[arg(long, allow_hyphen_values = true)]
        score: i64,
        /// The nonce of the eval commit (hex).
        #[arg(long)]
        nonce: String,
        #[command(flatten)]
        tx: TxArgs,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum NotaryTx {
    /// Challenge a contribution or a data record, posting a bond.
    ///
    /// Targets: contrib/<epoch>/<job>/<operator> or data/<id>. If the notaries uphold it,
    /// the target is slashed; if they reject it, the challenger is; no quorum refunds the
    /// bond minus a fee.
    ///
    /// Example: magnetd tx notary challenge data/1 --bond 10000000 --evidence-hash <64 hex> --from bob --yes
    #[command(verbatim_doc_comment)]
    Challenge {
        /// contrib/<epoch>/<job>/<operator> | data/<id>
        target: String,
        /// Bond (umag).
        #[arg(long)]
        bond: String,
        /// SHA-256 of the evidence (64 hex).
        #[arg(long)]
        evidence_hash: String,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// A notary's vote on a challenge: `uphold` (the target misbehaved) or `reject`.
    ///
    /// Example: magnetd tx notary vote 1 uphold --from notary1 --yes
    #[command(verbatim_doc_comment)]
    Vote {
        /// Challenge id.
        id: u64,
        /// uphold | reject
        decision: String,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Post or top up a notary bond (panel members only).
    ///
    /// Example: magnetd tx notary bond 100000000umag --from notary1 --yes
    #[command(verbatim_doc_comment)]
    Bond {
        /// Amount (umag).
        amount: String,
        #[command(flatten)]
        tx: TxArgs,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum DataTx {
    /// Register a dataset (the registration fee is taken from --from): pending → challenge
    /// window → confirmed, or rejected by a notary resolution.
    ///
    /// Give either --file (hash and size are computed) or --hash and --size.
    ///
    /// Example: magnetd tx data register --file corpus.txt --domain text --from alice --yes
    #[command(verbatim_doc_comment)]
    Register {
        /// The data file: its SHA-256 and size are registered.
        #[arg(long, conflicts_with_all = ["hash", "size"])]
        file: Option<PathBuf>,
        /// SHA-256 of the data (64 hex).
        #[arg(long, requires = "size")]
        hash: Option<String>,
        /// Size in bytes.
        #[arg(long, requires = "hash")]
        size: Option<u64>,
        /// Domain (e.g. text, code, vision).
        #[arg(long)]
        domain: String,
        #[command(flatten)]
        tx: TxArgs,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum JobsTx {
    /// Create a research job, escrowing its budget until the deadline. A training job (DiLoCo
    /// rounds) also takes its round spec: all of --inner-steps --batch-size --seq-len --params
    /// --first-height --blocks-per-round --leader-rule --max-staleness --stale-decay-bps, or
    /// none of them.
    ///
    /// Example: magnetd tx jobs create --domain text --eval-set-hash <64 hex> \
    ///   --base-checkpoint <64 hex> --budget 500000000 --deadline-secs 1767312000 \
    ///   --inner-steps 20 --batch-size 8 --seq-len 32 --params 1200000 --first-height 500 \
    ///   --blocks-per-round 20 --leader-rule hash --max-staleness 2 --stale-decay-bps 5000 \
    ///   --from alice --yes
    #[command(verbatim_doc_comment)]
    Create {
        /// Domain.
        #[arg(long)]
        domain: String,
        /// Hash of the evaluation corpus (64 hex): for a BitNet training job, what
        /// `magnet-worker job-hash` prints as `eval_set_hash` (all training tokens, then the
        /// validation split); evaluators refuse to score if their corpus does not match it.
        #[arg(long)]
        eval_set_hash: String,
        /// Hash of the base checkpoint (64 hex).
        #[arg(long)]
        base_checkpoint: String,
        /// Budget (umag).
        #[arg(long)]
        budget: String,
        /// Deadline as block time (Unix seconds).
        #[arg(long)]
        deadline_secs: u64,
        #[command(flatten)]
        training: TrainingArgs,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Create a research job (ADR 0111): an autoresearch search over one CONFIRMED data record
    /// (register it with `magnetd tx data register` and wait out the data challenge window),
    /// escrowing the budget until the deadline. The chain draws its coordinator from the live
    /// orchestrator-tier nodes (none → refused, nothing escrowed). 80 % of the budget pays
    /// trials and re-checks by slot, 20 % is the quality pool (params research_*_ppm).
    ///
    /// The test split stays sealed until after the final version: pass its content address
    /// and a secret 32-byte salt (--test-address, --salt: the commitment is computed here and
    /// printed as test_commitment — keep the address and salt for `reveal-test`), or a
    /// commitment you computed yourself
    /// (--test-commitment = SHA-256(framed("MAGNET/jobs/research-test/v1", address, salt))).
    /// If you do not reveal a matching split within test_reveal_blocks of the final version,
    /// the whole quality pool goes to the coordinator.
    ///
    /// Example: magnetd tx jobs create-research --research-domain tabular \
    ///   --data <64 hex> --target y --context t --trial-budget 200 --seed 7 --folds 5 \
    ///   --recheck-ppm 100000 --test-address <64 hex> --salt <64 hex> \
    ///   --budget 500000000 --deadline-secs 1767312000 --from alice --yes
    #[command(verbatim_doc_comment)]
    CreateResearch {
        /// tabular | timeseries | bitnet-lm.
        #[arg(long)]
        research_domain: String,
        /// Content address of the data set (64 hex): a confirmed data record.
        #[arg(long)]
        data: String,
        /// Target column (1..=128 bytes).
        #[arg(long)]
        target: String,
        /// Context column(s) (0..=256 bytes).
        #[arg(long, default_value = "")]
        context: String,
        /// Most trials paid (1..=jobs params max_trial_budget).
        #[arg(long)]
        trial_budget: u32,
        /// The search's seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Cross-validation folds (2..=20).
        #[arg(long, default_value_t = 5)]
        folds: u32,
        /// Share of trials re-checked by drawn checkers, ppm (≥ jobs params min_recheck_ppm).
        #[arg(long, default_value_t = 50_000)]
        recheck_ppm: u32,
        /// The sealed test split's commitment (64 hex); or give --test-address and --salt.
        #[arg(long, conflicts_with_all = ["test_address", "salt"])]
        test_commitment: Option<String>,
        /// The test split's content address (64 hex), sealed with --salt.
        #[arg(long, requires = "salt")]
        test_address: Option<String>,
        /// A secret 32-byte salt (64 hex) that keeps a guessable test address sealed.
        #[arg(long, requires = "test_address")]
        salt: Option<String>,
        /// Budget (umag).
        #[arg(long)]
        budget: String,
        /// Deadline as block time (Unix seconds).
        #[arg(long)]
        deadline_secs: u64,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Open a research job's sealed test split (creator only), after its final version and
    /// within test_reveal_blocks of it: SHA-256(framed("MAGNET/jobs/research-test/v1",
    /// address, salt)) must equal the job's commitment, or the reveal is refused and nothing
    /// changes. A valid reveal draws the held-out evaluators, who score the final version and
    /// the baseline on the split; the coordinator is paid from the quality pool by the
    /// improvement, the rest comes back to you.
    ///
    /// Example: magnetd tx jobs reveal-test --job 3 --test-address <64 hex> --salt <64 hex> \
    ///   --from alice --yes
    #[command(verbatim_doc_comment)]
    RevealTest {
        /// Job id.
        #[arg(long)]
        job: u64,
        /// The test split's content address (64 hex).
        #[arg(long)]
        test_address: String,
        /// The salt of the commitment (64 hex).
        #[arg(long)]
        salt: String,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Cancel a job (creator only; see the jobs module's cancellation rules).
    ///
    /// Example: magnetd tx jobs cancel 1 --from alice --yes
    #[command(verbatim_doc_comment)]
    Cancel {
        /// Job id.
        job: u64,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Record a DiLoCo round (the model's lineage) from a record file: signed by the round's
    /// elected leader's NODE key. The file is JSON:
    ///   {"job": 1, "round": 0, "base_hash": "<64 hex>", "merged_hash": "<64 hex>",
    ///    "accepted": [{"node": "<producer's node account>", "base_hash": "<64 hex>",
    ///                  "delta_hash": "<64 hex>", "steps": 20, "tokens": 5120,
    ///                  "signature": "<128 hex: the producer's signed work claim>",
    ///                  "weight_ppm": 1000000}],
    ///    "rejected": [{"node": "<node account>", "delta_hash": "<64 hex>", "reason": "..."}]}
    /// Each claim is (chain id, job, round, base, Δ, steps, tokens) signed by the producer's
    /// node key; the chain recomputes every weight from the claims.
    ///
    /// Example: magnetd tx jobs record-round --record round-0.json --from node1 --yes
    #[command(verbatim_doc_comment)]
    RecordRound {
        /// The round record (JSON file, see above).
        #[arg(long)]
        record: PathBuf,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Challenge the merge of a recorded round (ADR 0089). Anyone may, within the job's
    /// challenge window (jobs params challenge_window_blocks after the round was recorded),
    /// once per round, posting at least challenge_bond umag. The round's drawn auditors
    /// (`magnetd query jobs audit <job> <round>`) re-run the merge from its base checkpoint
    /// and accepted Δs and seal, then reveal, verdicts (audit-commit, audit-reveal); more
    /// "fraud" than "ok" revealed verdicts → the leader is
    /// slashed for fraudulent_merge (all of its bond), you get your bond back plus
    /// challenger_reward_ppm of the slash, and the job's head rolls back to the round's base;
    /// otherwise you lose the whole bond; no verdict at all → the bond comes back.
    /// --field names what disagreed: merged_hash, weights, base, delta_hash or unavailable
    /// (a Δ or the base could not be fetched); --recomputed-hash is the merged hash you got.
    ///
    /// Example: magnetd tx jobs challenge 1 4 --bond 100000umag --field merged_hash \
    ///   --recomputed-hash <64 hex> --from alice --yes
    #[command(verbatim_doc_comment)]
    Challenge {
        /// Job id.
        job: u64,
        /// Round.
        round: u64,
        /// Bond (umag; at least jobs params challenge_bond).
        #[arg(long)]
        bond: String,
        /// What disagreed: merged_hash | weights | base | delta_hash | unavailable.
        #[arg(long, default_value = "merged_hash")]
        field: String,
        /// The merged hash you recomputed (64 hex; omit when the inputs were unavailable).
        #[arg(long)]
        recomputed_hash: Option<String>,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Seal a drawn auditor's verdict on a challenged round (ADR 0091): step 1 of 2.
    ///
    /// Only the round's drawn auditors (`magnetd query jobs audit <job> <round>`) vote, and
    /// they vote blind: within the commit period (challenge height + jobs params
    /// verdict_blocks, the challenge's commits_until) each files the commitment
    ///   H("MAGNET/jobs/audit-verdict/v1" ‖ chain id ‖ job ‖ round ‖ auditor node account ‖
    ///     verdict ‖ recomputed merged hash ‖ nonce)
    /// computed here, then opens it with `audit-reveal` once the commit period is over (or
    /// everyone committed). Nobody can copy a verdict they cannot see, and a copied commitment
    /// cannot be opened (it binds its auditor). Only revealed verdicts count. At resolution a
    /// drawn auditor with no revealed verdict is slashed no_reveal; one on the losing side of
    /// a strict majority is slashed audit_deviation (small).
    /// --ok: the merge re-checks; --recomputed-hash must then be the recorded merged hash.
    /// --fraud: it does not; --recomputed-hash is what you got (omit it when the inputs were
    /// unavailable). Signed by the auditor's NODE key. Prints the nonce: keep it for the
    /// reveal. (magnet-worker does all this by itself; this command is for operators and tests.)
    ///
    /// Example: magnetd tx jobs audit-commit 1 4 --fraud --recomputed-hash <64 hex> \
    ///   --from node1 --yes
    #[command(verbatim_doc_comment)]
    AuditCommit {
        /// Job id.
        job: u64,
        /// Round.
        round: u64,
        #[command(flatten)]
        verdict: VerdictArgs,
        /// Nonce (64 hex = 32 bytes); random when omitted (printed: keep it for the reveal).
        #[arg(long)]
        nonce: Option<String>,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Open a sealed verdict (ADR 0091): step 2 of 2, with exactly the verdict, recomputed
    /// hash and nonce of `audit-commit`. Allowed after the commit period (the challenge's
    /// commits_until), or as soon as every drawn auditor committed, until reveals_until.
    /// Signed by the auditor's NODE key.
    ///
    /// Example: magnetd tx jobs audit-reveal 1 4 --fraud --recomputed-hash <64 hex> \
    ///   --nonce <64 hex> --from node1 --yes
    #[command(verbatim_doc_comment)]
    AuditReveal {
        /// Job id.
        job: u64,
        /// Round.
        round: u64,
        #[command(flatten)]
        verdict: VerdictArgs,
        /// The nonce `audit-commit` printed (64 hex).
        #[arg(long)]
        nonce: String,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Pay for inference of a served model (a job id) at a serving node's operator; split
    /// among the model's contributors, the server, the community pool and burn.
    ///
    /// Example: magnetd tx jobs pay-inference 1 magnet1…server 250000umag --from carol --yes
    #[command(verbatim_doc_comment)]
    PayInference {
        /// Model (job id).
        model: u64,
        /// Serving node's operator address.
        server: String,
        /// Amount (umag).
        amount: String,
        #[command(flatten)]
        tx: TxArgs,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum GovTx {
    /// Submit a proposal from a JSON file: {"title", "deposit", "content"}.
    ///
    /// `content` is one of: param_change {module, params (the module's full params)},
    /// community_spend {recipient, amount}, text {body}, software_upgrade {name,
    /// halt_height}, validator_set {pub_key_ed25519_hex, power, operator?},
    /// validator_set_changes {changes: [{pub_key_ed25519_hex, power, operator?}, …]},
    /// notary_set {members}, overturn {challenge_id}. Examples: docs/proposals/*.json. An
    /// invalid proposal (a rate outside [0.1, 1.0], a zero epoch, …) is refused at submission.
    ///
    /// validator_set_changes applies all its changes in one block or none (power 0 removes;
    /// `magnetd genesis show-validator` on the new node prints its pub_key_ed25519_hex).
    /// Refused: removing a key not in the set, an empty result, adding 1/3 or more of the
    /// new total power, or removing 1/3 or more of the current total (ADR 0104). E.g. add a
    /// fifth validator and remove one of four of power 10:
    ///   {"title": "Replace val3 by val4", "deposit": "1000000000umag",
    ///    "content": {"validator_set_changes": {"changes": [
    ///      {"pub_key_ed25519_hex": "<val4's 64 hex>", "power": 10, "operator": "magnet1…"},
    ///      {"pub_key_ed25519_hex": "<val3's 64 hex>", "power": 0}]}}}
    ///
    /// Example: magnetd tx gov submit-proposal docs/proposals/param-change.json --from alice --yes
    /// Example: magnetd tx gov submit-proposal docs/proposals/validator-set-changes.json --from alice --yes
    #[command(verbatim_doc_comment)]
    SubmitProposal {
        /// Proposal file.
        file: PathBuf,
        /// For a param_change whose `params` lists only the fields to change: fill in the
        /// rest from the module's current params (read from the node) before submitting.
        /// Without it, `params` must be the module's full params document.
        #[arg(long)]
        merge_params: bool,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Add to a proposal's deposit; at min_deposit it enters voting.
    ///
    /// Example: magnetd tx gov deposit 1 1000000000umag --from bob --yes
    #[command(verbatim_doc_comment)]
    Deposit {
        /// Proposal id.
        id: u64,
        /// Amount (umag).
        amount: String,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Vote, weighted by your bonded stake (node and governance bonds).
    ///
    /// Example: magnetd tx gov vote 1 yes --from alice --yes
    #[command(verbatim_doc_comment)]
    Vote {
        /// Proposal id.
        id: u64,
        /// yes | no | abstain | veto
        option: String,
        #[command(flatten)]
        tx: TxArgs,
    },
}

/// Incentive-module queries, flattened into `magnetd query`.
#[derive(Subcommand, Debug)]
pub(super) enum ModuleQueryCmd {
    /// Search transactions with the CometBFT query language (tx_search).
    ///
    /// Keys: tx.height, tx.hash, and <event type>.<attribute> of any event, e.g.
    /// message.sender, transfer.recipient, magnet.registry.gov_bonded.owner; operators
    /// =, <, <=, >, >=, CONTAINS, EXISTS, joined by AND.
    ///
    /// Example: magnetd query txs "message.sender='magnet1…' AND tx.height>100" --per-page 10
    #[command(verbatim_doc_comment)]
    Txs {
        /// The query.
        query: String,
        /// Page (1-based).
        #[arg(long, default_value_t = 1)]
        page: u32,
        /// Results per page (at most 100).
        #[arg(long, default_value_t = 30)]
        per_page: u8,
        /// Newest first.
        #[arg(long)]
        desc: bool,
        #[command(flatten)]
        q: QArgs,
    },
    /// The epoch clock: current epoch, its start, params.
    ///
    /// Example: magnetd query epochs state
    Epochs {
        #[command(subcommand)]
        q: EpochsQ,
    },
    /// Registry: params, nodes, a node, governance bonds.
    ///
    /// Example: magnetd query registry nodes --output json
    Registry {
        #[command(subcommand)]
        q: RegistryQ,
    },
    /// Emission: params, per-epoch pools, total minted.
    ///
    /// Example: magnetd query emission pool 3
    Emission {
        #[command(subcommand)]
        q: EmissionQ,
    },
    /// Contrib: params, an epoch's contributions, evaluator assignments.
    ///
    /// Example: magnetd query contrib assignments 3 1 magnet1…
    Contrib {
        #[command(subcommand)]
        q: ContribQ,
    },
    /// Rewards: params, settlement records.
    ///
    /// Example: magnetd query rewards settlement 3
    Rewards {
        #[command(subcommand)]
        q: RewardsQ,
    },
    /// Slashing: params, slash records.
    ///
    /// Example: magnetd query slashing records
    Slashing {
        #[command(subcommand)]
        q: SlashingQ,
    },
    /// Notary: params, the panel, challenges.
    ///
    /// Example: magnetd query notary challenge 1
    Notary {
        #[command(subcommand)]
        q: NotaryQ,
    },
    /// Data: params, records.
    ///
    /// Example: magnetd query data record 1
    Data {
        #[command(subcommand)]
        q: DataQ,
    },
    /// Jobs: params, jobs, lineage.
    ///
    /// Example: magnetd query jobs lineage 1
    Jobs {
        #[command(subcommand)]
        q: JobsQ,
    },
    /// Governance: params, proposals, votes, tally, scheduled upgrade.
    ///
    /// Example: magnetd query gov tally 1
    Gov {
        #[command(subcommand)]
        q: GovQ,
    },
    /// Storage custody: stripes, challenges, holders, epoch totals (ADR 0107).
    ///
    /// Example: magnetd query custody challenges 7 magnet1…
    Custody {
        #[command(subcommand)]
        q: CustodyQ,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum CustodyQ {
    /// Module params (slash rate, jail streak, storage share, retention, RS K/M).
    Params(QArgs),
    /// The stripe of an object (its SHA-256 in hex): placements, roots, expiry.
    Stripe {
        /// Object hash (64 hex characters).
        object: String,
        #[command(flatten)]
        q: QArgs,
    },
    /// Stripes whose label (Δ hash, checkpoint hash, …) is this hash.
    ByLabel {
        /// Label hash (64 hex characters).
        label: String,
        #[command(flatten)]
        q: QArgs,
    },
    /// Challenges of an epoch, optionally of one holder (node-key address or key name).
    Challenges {
        /// Epoch.
        epoch: u64,
        /// Holder's node-key address (or keyring name).
        holder: Option<String>,
        #[command(flatten)]
        q: QArgs,
    },
    /// A holder: shards held, audits/custody/repairs per epoch, failing streak.
    Holder {
        /// Holder's node-key address (or keyring name).
        addr: String,
        #[command(flatten)]
        q: QArgs,
    },
    /// Custody totals of an epoch (challenges, proven, failed, bytes credited).
    Epoch {
        /// Epoch.
        epoch: u64,
        #[command(flatten)]
        q: QArgs,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum EpochsQ {
    /// Current epoch, its start time and height, params in force and pending.
    State(QArgs),
}

#[derive(Subcommand, Debug)]
pub(super) enum RegistryQ {
    /// Module params (tiers, min bonds, liveness window, unbonding delay).
    Params(QArgs),
    /// All registered nodes.
    Nodes(QArgs),
    /// Node-key addresses of the storage-capable nodes (a tier with the `storage` kind and an
    /// SSD report passing today's thresholds): the nodes stripes may be placed on.
    StorageNodes(QArgs),
    /// Advertised inference services (node, operator, job, endpoint, price per token, max
    /// context, height) of nodes neither jailed nor unbonding; pay the listed operator with
    /// `magnetd tx jobs pay-for-inference`.
    ///
    /// Example: magnetd query registry services --job 1 --output json
    #[command(verbatim_doc_comment)]
    Services {
        /// Only the services of this job.
        #[arg(long)]
        job: Option<u64>,
        #[command(flatten)]
        q: QArgs,
    },
    /// The node of an operator.
    Node {
        /// Operator address or key name.
        operator: String,
        #[command(flatten)]
        q: QArgs,
    },
    /// Governance bond of an address.
    GovBond {
        /// Address or key name.
        owner: String,
        #[command(flatten)]
        q: QArgs,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum EmissionQ {
    /// Module params (schedule, caps, fee split).
    Params(QArgs),
    /// Every epoch's minted pool.
    Pools(QArgs),
    /// One epoch's pool.
    Pool {
        /// Epoch.
        epoch: u64,
        #[command(flatten)]
        q: QArgs,
    },
    /// Total minted so far.
    MintedTotal(QArgs),
}

#[derive(Subcommand, Debug)]
pub(super) enum ContribQ {
    /// Module params (windows, evaluator count, bands).
    Params(QArgs),
    /// An epoch's phase and contributions.
    Epoch {
        /// Epoch.
        epoch: u64,
        #[command(flatten)]
        q: QArgs,
    },
    /// Evaluators assigned to a contribution.
    Assignments {
        /// Epoch.
        epoch: u64,
        /// Job.
        job: u64,
        /// Contributor's operator address.
        operator: String,
        #[command(flatten)]
        q: QArgs,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum RewardsQ {
    /// Module params.
    Params(QArgs),
    /// Every settlement record.
    Settlements(QArgs),
    /// The settlement of one epoch (payouts, dust).
    Settlement {
        /// Epoch.
        epoch: u64,
        #[command(flatten)]
        q: QArgs,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum SlashingQ {
    /// Module params (offence rates, burn share, jail time).
    Params(QArgs),
    /// Every slash record.
    Records(QArgs),
}

#[derive(Subcommand, Debug)]
pub(super) enum NotaryQ {
    /// Module params.
    Params(QArgs),
    /// The notary panel.
    Panel(QArgs),
    /// All challenges.
    Challenges(QArgs),
    /// One challenge.
    Challenge {
        /// Challenge id.
        id: u64,
        #[command(flatten)]
        q: QArgs,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum DataQ {
    /// Module params (fee, window, fee split).
    Params(QArgs),
    /// All data records.
    Records(QArgs),
    /// One data record.
    Record {
        /// Record id.
        id: u64,
        #[command(flatten)]
        q: QArgs,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum JobsQ {
    /// Module params.
    Params(QArgs),
    /// All jobs.
    Jobs(QArgs),
    /// One job.
    Job {
        /// Job id.
        id: u64,
        #[command(flatten)]
        q: QArgs,
    },
    /// A model's lineage: its DiLoCo rounds and contributor shares.
    Lineage {
        /// Job id.
        id: u64,
        #[command(flatten)]
        q: QArgs,
    },
    /// A training round's election: the live nodes at its start height, that block's hash
    /// and the elected leader (null before the round starts).
    Election {
        /// Job id.
        id: u64,
        /// Round.
        round: u64,
        #[command(flatten)]
        q: QArgs,
    },
    /// Merge audits (ADR 0089) of one job, or of every job when no id is given: per audited
    /// round its drawn auditors, the last height it may be challenged (window_ends), its
    /// challenge (challenger, bond, evidence, sealed and revealed verdicts, commits_until, reveals_until) and its outcome
    /// (open, upheld, rejected, no_verdict, dropped). A worker drawn as an auditor re-checks
    /// the round; an upheld challenge shows as a fraudulent_merge slash
    /// (`magnetd query slashing records`) and a rolled-back head (`magnetd query jobs job`).
    ///
    /// Example: magnetd query jobs audits 1
    #[command(verbatim_doc_comment)]
    Audits {
        /// Job id (all jobs when omitted).
        id: Option<u64>,
        #[command(flatten)]
        q: QArgs,
    },
    /// One round's merge audit (null when the round was neither sampled nor challenged).
    ///
    /// Example: magnetd query jobs audit 1 4
    #[command(verbatim_doc_comment)]
    Audit {
        /// Job id.
        id: u64,
        /// Round.
        round: u64,
        #[command(flatten)]
        q: QArgs,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum GovQ {
    /// Module params (deposit, periods, quorum, threshold, veto).
    Params(QArgs),
    /// All proposals.
    Proposals(QArgs),
    /// One proposal.
    Proposal {
        /// Proposal id.
        id: u64,
        #[command(flatten)]
        q: QArgs,
    },
    /// The votes cast on a proposal.
    Votes {
        /// Proposal id.
        id: u64,
        #[command(flatten)]
        q: QArgs,
    },
    /// Current vote counts of a proposal (stake weights apply at the end of voting).
    Tally {
        /// Proposal id.
        id: u64,
        #[command(flatten)]
        q: QArgs,
    },
    /// The scheduled software upgrade, if any.
    Upgrade(QArgs),
}

// ------------------------------------------------------------------------- parsing

/// A whole umag amount: `1000`, `1000umag`.
pub(super) fn umag(s: &str) -> Result<u128> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse()
            .with_context(|| format!("amount {s:?} does not fit in 128 bits"));
    }
    let c: Coins = t
        .parse()
        .with_context(|| format!("amount {s:?}: expected e.g. 1000000 or 1000000umag"))?;
    let n = c.amount_of(magnet_core::NATIVE_DENOM);
    if c.iter().count() != 1 || n == 0 {
        bail!("amount {s:?}: expected a positive amount of umag, e.g. 1000000umag");
    }
    Ok(n)
}

/// 32 bytes from 64 hex characters (an optional `0x` is allowed).
pub(super) fn hash32(what: &str, s: &str) -> Result<[u8; 32]> {
    let t = s.trim().trim_start_matches("0x");
    let mut out = [0u8; 32];
    hex::decode_to_slice(t, &mut out)
        .map_err(|e| anyhow!("{what} {s:?}: {e}; expected 64 hex characters (a SHA-256)"))?;
    Ok(out)
}

fn nonce_or_random(s: Option<&str>) -> Result<Vec<u8>> {
    match s {
        Some(s) => nonce(s),
        None => {
            use rand::RngCore;
            let mut n = vec![0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut n);
            Ok(n)
        }
    }
}

fn nonce(s: &str) -> Result<Vec<u8>> {
    let n = hex::decode(s.trim().trim_start_matches("0x"))
        .map_err(|e| anyhow!("nonce {s:?}: {e}; give it in hex"))?;
    if n.is_empty() || n.len() > 64 {
        bail!("nonce must be 1 to 64 bytes, got {}", n.len());
    }
    Ok(n)
}

fn work(w: &WorkArgs) -> Result<Work> {
    let entries = w
        .entries
        .iter()
        .map(|e| {
            let (r, d) = e
                .split_once(':')
                .ok_or_else(|| anyhow!("--entry {e:?}: expected ROUND:DELTA_HASH"))?;
            let r: u64 = r
                .parse()
                .with_context(|| format!("--entry {e:?}: round is not a whole number"))?;
            Ok((r, hash32("--entry", d)?))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Work {
        checkpoint_hash: hash32("--checkpoint-hash", &w.checkpoint_hash)?,
        steps: w.steps,
        params: w.params,
        data_hash: hash32("--data-hash", &w.data_hash)?,
        kind: w.kind.clone(),
        entries,
    })
}

/// A merge verdict as `audit-commit` / `audit-reveal` take it.
#[derive(clap::Args, Debug)]
pub(super) struct VerdictArgs {
    /// The merge does not re-check.
    #[arg(long, conflicts_with = "ok", required_unless_present = "ok")]
    fraud: bool,
    /// The merge re-checks.
    #[arg(long)]
    ok: bool,
    /// The merged hash you recomputed (64 hex): the recorded one with --ok; with --fraud what
    /// you got, omitted when the inputs were unavailable (zeros).
    #[arg(long)]
    recomputed_hash: Option<String>,
}

impl VerdictArgs {
    /// (fraud, recomputed hash).
    fn parse(&self) -> Result<(bool, [u8; 32])> {
        let h = match &self.recomputed_hash {
            Some(h) => hash32("--recomputed-hash", h)?,
            None if self.fraud => [0u8; 32],
            None => bail!(
                "--ok needs --recomputed-hash: the recorded merged hash you re-derived \
                 (`magnetd query jobs lineage <job>`)"
            ),
        };
        Ok((self.fraud, h))
    }
}

/// The DiLoCo round spec flags of `jobs create` (all or none).
#[derive(clap::Args, Debug, Default)]
pub(super) struct TrainingArgs {
    /// Training job: inner steps H per round.
    #[arg(long)]
    inner_steps: Option<u32>,
    /// Training job: sequences per inner step.
    #[arg(long)]
    batch_size: Option<u32>,
    /// Training job: tokens per sequence.
    #[arg(long)]
    seq_len: Option<u32>,
    /// Training job: model parameter count.
    #[arg(long)]
    params: Option<u64>,
    /// Training job: height at which round 0 starts (above the height the tx lands at).
    #[arg(long)]
    first_height: Option<u64>,
    /// Training job: blocks between round starts.
    #[arg(long)]
    blocks_per_round: Option<u64>,
    /// Training job: leader rule, `hash` or `round_robin`.
    #[arg(long)]
    leader_rule: Option<String>,
    /// Training job: most merges a Δ's base may be behind the round's base.
    #[arg(long)]
    max_staleness: Option<u32>,
    /// Training job: weight multiplier per merge of staleness, in basis points.
    #[arg(long)]
    stale_decay_bps: Option<u32>,
    /// Training job, optional: outer learning rate η in thousandths (default 700). The outer
    /// step is on chain (ADR 0091): every leader merges and every auditor re-checks with it.
    #[arg(long)]
    outer_lr_permille: Option<u32>,
    /// Training job, optional: outer Nesterov momentum μ in thousandths (default 900).
    #[arg(long)]
    outer_momentum_permille: Option<u32>,
    /// Training job, optional: reject a Δ whose norm exceeds this × the median, in
    /// thousandths (default 4000).
    #[arg(long)]
    outlier_factor_permille: Option<u32>,
    /// Training job, optional: fewer accepted Δs than this → no merge (default 1).
    #[arg(long)]
    min_contributions: Option<u32>,
    /// Training job, optional: 0 = exact fp32 outer step; N = int8 step with one scale per N
    /// values (default 0).
    #[arg(long)]
    update_chunk: Option<u32>,
}

impl TrainingArgs {
    /// `None` when no training flag is given, the spec when all are, an error otherwise.
    fn spec(&self) -> Result<Option<msgs::TrainingSpec>> {
        let given = [
            ("--inner-steps", self.inner_steps.is_some()),
            ("--batch-size", self.batch_size.is_some()),
            ("--seq-len", self.seq_len.is_some()),
            ("--params", self.params.is_some()),
            ("--first-height", self.first_height.is_some()),
            ("--blocks-per-round", self.blocks_per_round.is_some()),
            ("--leader-rule", self.leader_rule.is_some()),
            ("--max-staleness", self.max_staleness.is_some()),
            ("--stale-decay-bps", self.stale_decay_bps.is_some()),
        ];
        let missing: Vec<&str> = given.iter().filter(|(_, g)| !g).map(|(f, _)| *f).collect();
        let outer = [
            ("--outer-lr-permille", self.outer_lr_permille.is_some()),
            (
                "--outer-momentum-permille",
                self.outer_momentum_permille.is_some(),
            ),
            (
                "--outlier-factor-permille",
                self.outlier_factor_permille.is_some(),
            ),
            ("--min-contributions", self.min_contributions.is_some()),
            ("--update-chunk", self.update_chunk.is_some()),
        ];
        if missing.len() == given.len() {
            if let Some((f, _)) = outer.iter().find(|(_, g)| *g) {
                bail!(
                    "{f} sets the outer step of a training job: give the training flags too \
                     (--inner-steps … --stale-decay-bps)"
                );
            }
            return Ok(None);
        }
        if !missing.is_empty() {
            bail!(
                "a training spec needs every training flag; missing {} (give all of them for a \
                 training job, none for a job without DiLoCo rounds)",
                missing.join(", ")
            );
        }
        let rule = self.leader_rule.clone().unwrap_or_default();
        let rule = magnet_rounds::LeaderRule::parse(&rule)
            .ok_or_else(|| anyhow!("--leader-rule {rule:?}: expected hash or round_robin"))?;
        Ok(Some(msgs::TrainingSpec {
            inner_steps: self.inner_steps.unwrap_or_default(),
            batch_size: self.batch_size.unwrap_or_default(),
            seq_len: self.seq_len.unwrap_or_default(),
            params: self.params.unwrap_or_default(),
            first_height: self.first_height.unwrap_or_default(),
            blocks_per_round: self.blocks_per_round.unwrap_or_default(),
            leader_rule: rule.as_str().to_string(),
            max_staleness: self.max_staleness.unwrap_or_default(),
            stale_decay_bps: self.stale_decay_bps.unwrap_or_default(),
            outer: {
                let d = msgs::OuterPolicy::default();
                msgs::OuterPolicy {
                    lr_permille: self.outer_lr_permille.unwrap_or(d.lr_permille),
                    momentum_permille: self.outer_momentum_permille.unwrap_or(d.momentum_permille),
                    outlier_factor_permille: self
                        .outlier_factor_permille
                        .unwrap_or(d.outlier_factor_permille),
                    min_contributions: self.min_contributions.unwrap_or(d.min_contributions),
                    update_chunk: self.update_chunk.unwrap_or(d.update_chunk),
                }
            },
        }))
    }
}

/// A round record file for `jobs record-round` (hashes hex, addresses bech32).
#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RecordFile {
    job: u64,
    round: u64,
    base_hash: String,
    merged_hash: String,
    accepted: Vec<RecordAccepted>,
    #[serde(default)]
    rejected: Vec<RecordRejected>,
}

#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RecordAccepted {
    node: String,
    base_hash: String,
    delta_hash: String,
    steps: u64,
    tokens: u64,
    signature: String,
    weight_ppm: u32,
    /// p2p content address of the compressed Δ (hex; optional).
    #[serde(default)]
    content_address: String,
}

#[derive(serde::Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RecordRejected {
    node: String,
    delta_hash: String,
    reason: String,
}

fn record_of(home: &Home, keyring: &KeyringArgs, f: &RecordFile) -> Result<RoundRecord> {
    let accepted = f
        .accepted
        .iter()
        .map(|a| {
            let signature = hex::decode(&a.signature)
                .ok()
                .filter(|s| s.len() == 64)
                .ok_or_else(|| {
                    anyhow!("accepted {}: signature must be 64 bytes (128 hex)", a.node)
                })?;
            Ok(msgs::Accepted {
                node: resolve_address(home, &a.node, keyring)?,
                job: f.job,
                round: f.round,
                base_hash: hash32("accepted.base_hash", &a.base_hash)?,
                delta_hash: hash32("accepted.delta_hash", &a.delta_hash)?,
                steps: a.steps,
                tokens: a.tokens,
                signature,
                weight_ppm: a.weight_ppm,
                content_address: if a.content_address.is_empty() {
                    [0u8; 32]
                } else {
                    hash32("accepted.content_address", &a.content_address)?
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let rejected = f
        .rejected
        .iter()
        .map(|r| {
            Ok((
                resolve_address(home, &r.node, keyring)?,
                hash32("rejected.delta_hash", &r.delta_hash)?,
                r.reason.clone(),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RoundRecord {
        job: f.job,
        round: f.round,
        base_hash: hash32("base_hash", &f.base_hash)?,
        merged_hash: hash32("merged_hash", &f.merged_hash)?,
        accepted,
        rejected,
    })
}

/// A proposal file: `{"title": "...", "deposit": "1000umag", "content": {...}}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProposalFile {
    /// Title (1..=256 bytes).
    pub title: String,
    /// Initial deposit (umag, `"1000"` or `"1000umag"`).
    pub deposit: String,
    /// The proposal body.
    pub content: Value,
}

pub(super) fn read_proposal(path: &std::path::Path) -> Result<ProposalFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading proposal file {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: a proposal file is {{\"title\": \"…\", \"deposit\": \"1000000000umag\", \"content\": {{…}}}}",
            path.display()
        )
    })
}

// ------------------------------------------------------------------------- txs

struct Signer {
    key: Key,
    client: ChainClient,
    fee: FeeSpec,
}

fn signer(home: &Home, t: &TxArgs) -> Result<Signer> {
    let key = keyring(home, &t.keyring).get(&t.from)?;
    let client = ChainClient::new(&node_url(
        home,
        &super::NodeArgs {
            node: t.node.clone(),
            output: t.output,
        },
    ))?;
    let fee = FeeSpec {
        amount: match &t.fees {
            Some(f) => f.parse()?,
            None => default_fee(t.gas),
        },
        gas_limit: t.gas,
    };
    Ok(Signer { key, client, fee })
}

/// Decode the known message responses of a tx into JSON.
fn responses(o: &TxOutcome) -> Vec<Value> {
    use magnet_proto::{contrib, data, gov, jobs, notary, registry};
    let Ok(d) = cosmrs::proto::cosmos::base::abci::v1beta1::TxMsgData::decode(o.data.as_slice())
    else {
        return vec![];
    };
    d.msg_responses
        .iter()
        .map(|a| {
            let v = a.value.as_slice();
            let fields = match a.type_url.as_str() {
                "/magnet.registry.v1.MsgRegisterNodeResponse" => {
                    registry::v1::MsgRegisterNodeResponse::decode(v)
                        .map(|r| json!({"node_id": r.node_id}))
                }
                "/magnet.registry.v1.MsgUnbondNodeResponse" => {
                    registry::v1::MsgUnbondNodeResponse::decode(v)
                        .map(|r| json!({"completes_at_secs": r.completes_at_secs}))
                }
                "/magnet.registry.v1.MsgUnbondGovResponse" => {
                    registry::v1::MsgUnbondGovResponse::decode(v)
                        .map(|r| json!({"completes_at_secs": r.completes_at_secs}))
                }
                "/magnet.contrib.v1.MsgRevealResponse" => {
                    contrib::v1::MsgRevealResponse::decode(v).map(|r| json!({"matched": r.matched}))
                }
                "/magnet.contrib.v1.MsgEvalRevealResponse" => {
                    contrib::v1::MsgEvalRevealResponse::decode(v)
                        .map(|r| json!({"matched": r.matched}))
                }
                "/magnet.notary.v1.MsgChallengeResponse" => {
                    notary::v1::MsgChallengeResponse::decode(v)
                        .map(|r| json!({"challenge_id": r.challenge_id}))
                }
                "/magnet.data.v1.MsgRegisterDataResponse" => {
                    data::v1::MsgRegisterDataResponse::decode(v).map(|r| json!({"id": r.id}))
                }
                "/magnet.jobs.v1.MsgCreateJobResponse" => {
                    jobs::v1::MsgCreateJobResponse::decode(v).map(|r| json!({"job": r.job}))
                }
                "/magnet.gov.v1.MsgSubmitProposalResponse" => {
                    gov::v1::MsgSubmitProposalResponse::decode(v)
                        .map(|r| json!({"proposal_id": r.proposal_id}))
                }
                _ => Ok(json!({})),
            };
            let mut out = fields.unwrap_or_else(|_| json!({}));
            out["@type"] = json!(a.type_url);
            out
        })
        .collect()
}

/// Sign, confirm, broadcast, wait; print the outcome.
async fn send(
    home: &Home,
    t: &TxArgs,
    what: &str,
    msgs: Vec<cosmrs::Any>,
    extra: Value,
) -> Result<()> {
    let s = signer(home, t)?;
    if !t.yes {
        eprintln!(
            "{what}, signed by {} ({}), fee {}, gas {}? [y/N]",
            t.from,
            s.key.address(),
            s.fee.amount,
            s.fee.gas_limit
        );
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            bail!("aborted");
        }
    }
    let o = s
        .client
        .broadcast_and_wait(&s.key, msgs, &t.memo, &s.fee, INCLUSION_TIMEOUT)
        .await?;
    let mut v = json!({
        "txhash": o.hash,
        "height": o.height,
        "code": 0,
        "gas_wanted": o.gas_wanted,
        "gas_used": o.gas_used,
        "responses": responses(&o),
    });
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    if t.output == Output::Json {
        return print_json(&v);
    }
    println!("{what}: included");
    print_text(&v, 0);
    Ok(())
}

/// The operator whose node key is `node` (from the registry).
async fn operator_of(c: &ChainClient, node: &Address) -> Result<Address> {
    let nodes: Vec<Value> = c.query_json("/magnet.registry.v1/nodes", b"").await?;
    for n in nodes {
        if n["node"].as_str() == Some(node.to_bech32().as_str()) {
            let op = n["operator"]
                .as_str()
                .ok_or_else(|| anyhow!("registry answered a node without an operator"))?;
            return Ok(op.parse()?);
        }
    }
    bail!("no registered node has the node key {node}: sign contrib messages with the node key (--from <node key>) of a registered node")
}

pub(super) async fn tx(home: &Home, cmd: ModuleTxCmd) -> Result<()> {
    match cmd {
        ModuleTxCmd::Registry(r) => tx_registry(home, r).await,
        ModuleTxCmd::Contrib(c) => tx_contrib(home, c).await,
        ModuleTxCmd::Notary(n) => tx_notary(home, n).await,
        ModuleTxCmd::Data(d) => tx_data(home, d).await,
        ModuleTxCmd::Jobs(j) => tx_jobs(home, j).await,
        ModuleTxCmd::Gov(g) => tx_gov(home, g).await,
    }
}

fn from_addr(home: &Home, t: &TxArgs) -> Result<Address> {
    Ok(keyring(home, &t.keyring).info(&t.from)?.address.parse()?)
}

async fn tx_registry(home: &Home, r: RegistryTx) -> Result<()> {
    match r {
        RegistryTx::RegisterNode {
            node_key,
            tier,
            bond,
            endpoint,
            region,
            hardware_profile,
            ssd,
            tx,
        } => {
            if !msgs::TIERS.contains(&tier.as_str()) {
                bail!("unknown tier {tier:?}: use one of {:?}", msgs::TIERS);
            }
            let node_pubkey =
                if node_key.len() == 66 && node_key.bytes().all(|b| b.is_ascii_hexdigit()) {
                    hex::decode(&node_key)?
                } else {
                    keyring(home, &tx.keyring)
                        .get(&node_key)
                        .with_context(|| {
                            format!(
                            "--node-key {node_key:?} is neither a key name nor 66 hex characters"
                        )
                        })?
                        .public_key_bytes()
                };
            let op = from_addr(home, &tx)?;
            let node_id = magnet_registry_node_id(&node_pubkey);
            let reg = NodeRegistration {
                node_pubkey,
                tier,
                endpoint,
                region,
                hardware_profile,
                bond: umag(&bond)?,
                ssd: ssd.report(),
            };
            let m = msgs::register_node(&op, &reg);
            send(
                home,
                &tx,
                &format!(
                    "register node {node_id} ({}, bond {}umag)",
                    reg.tier, reg.bond
                ),
                vec![m],
                json!({"node_id": node_id}),
            )
            .await
        }
        RegistryTx::Heartbeat { tx } => {
            let node = from_addr(home, &tx)?;
            send(
                home,
                &tx,
                "heartbeat",
                vec![msgs::heartbeat(&node)],
                json!({}),
            )
            .await
        }
        RegistryTx::ChangeTier {
            tier,
            extra_bond,
            ssd,
            tx,
        } => {
            let op = from_addr(home, &tx)?;
            let extra = if extra_bond.trim() == "0" {
                0
            } else {
                umag(&extra_bond)?
            };
            send(
                home,
                &tx,
                &format!("change tier to {tier}"),
                vec![msgs::change_tier(&op, &tier, extra, ssd.report())],
                json!({}),
            )
            .await
        }
        RegistryTx::Unbond { tx } => {
            let op = from_addr(home, &tx)?;
            send(
                home,
                &tx,
                "unbond the node",
                vec![msgs::unbond_node(&op)],
                json!({}),
            )
            .await
        }
        RegistryTx::Unjail { tx } => {
            let op = from_addr(home, &tx)?;
            send(
                home,
                &tx,
                "unjail the node",
                vec![msgs::unjail(&op)],
                json!({}),
            )
            .await
        }
        RegistryTx::BondGov { amount, tx } => {
            let o = from_addr(home, &tx)?;
            let a = umag(&amount)?;
            send(
                home,
                &tx,
                &format!("bond {a}umag for governance"),
                vec![msgs::bond_gov(&o, a)],
                json!({}),
            )
            .await
        }
        RegistryTx::AdvertiseService {
            job,
            endpoint,
            price_per_token,
            max_context,
            tx,
        } => {
            let node = from_addr(home, &tx)?;
            let price = match price_per_token.trim() {
                "0" | "0umag" => 0,
                p => umag(p)?,
            };
            send(
                home,
                &tx,
                &format!("advertise serving job {job} at {endpoint} for {price} umag/token"),
                vec![msgs::advertise_service(
                    &node,
                    job,
                    &endpoint,
                    price,
                    max_context,
                )],
                json!({"node": node.to_string(), "job": job}),
            )
            .await
        }
        RegistryTx::WithdrawService { job, tx } => {
            let node = from_addr(home, &tx)?;
            send(
                home,
                &tx,
                &format!("withdraw the service for job {job}"),
                vec![msgs::withdraw_service(&node, job)],
                json!({"node": node.to_string(), "job": job}),
            )
            .await
        }
        RegistryTx::UnbondGov { amount, tx } => {
            let o = from_addr(home, &tx)?;
            let a = umag(&amount)?;
            send(
                home,
                &tx,
                &format!("unbond {a}umag of governance bond"),
                vec![msgs::unbond_gov(&o, a)],
                json!({}),
            )
            .await
        }
    }
}

/// `node-` ‖ hex(SHA-256(pubkey))[..16], the registry's display name.
fn magnet_registry_node_id(pubkey: &[u8]) -> String {
    format!("node-{}", &hex::encode(magnet_core::sha256(pubkey))[..16])
}

async fn tx_contrib(home: &Home, c: ContribTx) -> Result<()> {
    match c {
        ContribTx::Commit {
            epoch,
            job,
            work: w,
            nonce: n,
            tx,
        } => {
            let s = signer(home, &tx)?;
            let node = s.key.address();
            let op = operator_of(&s.client, &node).await?;
            let chain_id = s.client.status().await?.node_info.network.to_string();
            let n = nonce_or_random(n.as_deref())?;
            let w = work(&w)?;
            let c = msgs::work_commitment(&chain_id, epoch, job, &op, &w, &n);
            send(
                home,
                &tx,
                &format!("commit work for epoch {epoch}, job {job}"),
                vec![msgs::contrib_commit(&node, epoch, job, c)],
                json!({"nonce": hex::encode(&n), "commitment": hex::encode(c), "operator": op}),
            )
            .await
        }
        ContribTx::Reveal {
            epoch,
            job,
            work: w,
            nonce: n,
            tx,
        } => {
            let node = from_addr(home, &tx)?;
            let n = nonce(&n)?;
            let w = work(&w)?;
            send(
                home,
                &tx,
                &format!("reveal work for epoch {epoch}, job {job}"),
                vec![msgs::contrib_reveal(&node, epoch, job, &w, &n)],
                json!({}),
            )
            .await
        }
        ContribTx::EvalCommit {
            epoch,
            job,
            contributor,
            score,
            nonce: n,
            tx,
        } => {
            let s = signer(home, &tx)?;
            let node = s.key.address();
            let me = operator_of(&s.client, &node).await?;
            let contributor: Address = contributor.parse()?;
            let chain_id = s.client.status().await?.node_info.network.to_string();
            let n = nonce_or_random(n.as_deref())?;
            let c = msgs::score_commitment(&chain_id, epoch, job, &contributor, &me, score, &n);
            send(
                home,
                &tx,
                &format!("commit score for {contributor} in epoch {epoch}, job {job}"),
                vec![msgs::eval_commit(&node, epoch, job, &contributor, c)],
                json!({"nonce": hex::encode(&n), "commitment": hex::encode(c)}),
            )
            .await
        }
        ContribTx::EvalReveal {
            epoch,
            job,
            contributor,
            score,
            nonce: n,
            tx,
        } => {
            let node = from_addr(home, &tx)?;
            let contributor: Address = contributor.parse()?;
            let n = nonce(&n)?;
            send(
                home,
                &tx,
                &format!("reveal score {score} for {contributor}"),
                vec![msgs::eval_reveal(
                    &node,
                    epoch,
                    job,
                    &contributor,
                    score,
                    &n,
                )],
                json!({}),
            )
            .await
        }
    }
}

async fn tx_notary(home: &Home, n: NotaryTx) -> Result<()> {
    match n {
        NotaryTx::Challenge {
            target,
            bond,
            evidence_hash,
            tx,
        } => {
            let me = from_addr(home, &tx)?;
            let b = umag(&bond)?;
            let e = hash32("--evidence-hash", &evidence_hash)?;
            send(
                home,
                &tx,
                &format!("challenge {target} with bond {b}umag"),
                vec![msgs::challenge(&me, &target, b, e)],
                json!({}),
            )
            .await
        }
        NotaryTx::Vote { id, decision, tx } => {
            let uphold = match decision.as_str() {
                "uphold" | "yes" => true,
                "reject" | "no" => false,
                other => bail!("decision {other:?}: use uphold (the target misbehaved) or reject"),
            };
            let me = from_addr(home, &tx)?;
            send(
                home,
                &tx,
                &format!("vote {decision} on challenge {id}"),
                vec![msgs::notary_vote(&me, id, uphold)],
                json!({}),
            )
            .await
        }
        NotaryTx::Bond { amount, tx } => {
            let me = from_addr(home, &tx)?;
            let a = umag(&amount)?;
            send(
                home,
                &tx,
                &format!("post a notary bond of {a}umag"),
                vec![msgs::bond_notary(&me, a)],
                json!({}),
            )
            .await
        }
    }
}

async fn tx_data(home: &Home, d: DataTx) -> Result<()> {
    let DataTx::Register {
        file,
        hash,
        size,
        domain,
        tx,
    } = d;
    let (h, sz) = match (file, hash, size) {
        (Some(f), _, _) => {
            let bytes = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
            (magnet_core::sha256(&bytes), bytes.len() as u64)
        }
        (None, Some(h), Some(s)) => (hash32("--hash", &h)?, s),
        _ => bail!("give --file, or both --hash and --size"),
    };
    let me = from_addr(home, &tx)?;
    send(
        home,
        &tx,
        &format!("register data {} ({sz} bytes, {domain})", hex::encode(h)),
        vec![msgs::register_data(&me, h, sz, &domain)],
        json!({"hash": hex::encode(h), "size": sz}),
    )
    .await
}

async fn tx_jobs(home: &Home, j: JobsTx) -> Result<()> {
    match j {
        JobsTx::Create {
            domain,
            eval_set_hash,
            base_checkpoint,
            budget,
            deadline_secs,
            training,
            tx,
        } => {
            let spec = training.spec()?;
            let me = from_addr(home, &tx)?;
            let b = umag(&budget)?;
            let m = msgs::create_training_job(
                &me,
                &domain,
                hash32("--eval-set-hash", &eval_set_hash)?,
                hash32("--base-checkpoint", &base_checkpoint)?,
                b,
                deadline_secs,
                spec.as_ref(),
            );
            let what = match &spec {
                Some(t) => format!(
                    "create a {domain} training job (H {}, rounds every {} blocks from height {}) \
                     with budget {b}umag",
                    t.inner_steps, t.blocks_per_round, t.first_height
                ),
                None => format!("create a {domain} job with budget {b}umag"),
            };
            send(home, &tx, &what, vec![m], json!({})).await
        }
        JobsTx::CreateResearch {
            research_domain,
            data,
            target,
            context,
            trial_budget,
            seed,
            folds,
            recheck_ppm,
            test_commitment,
            test_address,
            salt,
            budget,
            deadline_secs,
            tx,
        } => {
            let commitment = match (test_commitment, test_address, salt) {
                (Some(c), _, _) => hash32("--test-commitment", &c)?,
                (None, Some(a), Some(s)) => {
                    msgs::test_commitment(&hash32("--test-address", &a)?, &hash32("--salt", &s)?)
                }
                _ => bail!(
                    "give --test-address and --salt (the commitment is computed from them), or \
                     --test-commitment"
                ),
            };
            let spec = msgs::ResearchSpec {
                domain: research_domain.clone(),
                data_address: hex::encode(hash32("--data", &data)?),
                target,
                context,
                trial_budget,
                seed,
                folds,
                test_commitment: hex::encode(commitment),
                recheck_ppm,
            };
            let me = from_addr(home, &tx)?;
            let b = umag(&budget)?;
            send(
                home,
                &tx,
                &format!(
                    "create a {research_domain} research job over data {} ({trial_budget} \
                     trials, re-check {recheck_ppm} ppm) with budget {b}umag",
                    spec.data_address
                ),
                vec![msgs::create_research_job(&me, b, deadline_secs, &spec)],
                json!({"test_commitment": spec.test_commitment}),
            )
            .await
        }
        JobsTx::RevealTest {
            job,
            test_address,
            salt,
            tx,
        } => {
            let me = from_addr(home, &tx)?;
            let a = hash32("--test-address", &test_address)?;
            let s = hash32("--salt", &salt)?;
            send(
                home,
                &tx,
                &format!("reveal the test split {} of job {job}", hex::encode(a)),
                vec![msgs::reveal_test_split(&me, job, a, s)],
                json!({}),
            )
            .await
        }
        JobsTx::Cancel { job, tx } => {
            let me = from_addr(home, &tx)?;
            send(
                home,
                &tx,
                &format!("cancel job {job}"),
                vec![msgs::cancel_job(&me, job)],
                json!({}),
            )
            .await
        }
        JobsTx::RecordRound { record, tx } => {
            let node = from_addr(home, &tx)?;
            let text = std::fs::read_to_string(&record)
                .with_context(|| format!("reading {}", record.display()))?;
            let f: RecordFile = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a round record", record.display()))?;
            let r = record_of(home, &tx.keyring, &f)?;
            let (job, round) = (r.job, r.round);
            send(
                home,
                &tx,
                &format!(
                    "record round {round} of job {job} ({} accepted, {} rejected)",
                    r.accepted.len(),
                    r.rejected.len()
                ),
                vec![msgs::record_round(&node, &r)],
                json!({}),
            )
            .await
        }
        JobsTx::Challenge {
            job,
            round,
            bond,
            field,
            recomputed_hash,
            tx,
        } => {
            let me = from_addr(home, &tx)?;
            let b = umag(&bond)?;
            let recomputed = match &recomputed_hash {
                Some(h) => hash32("--recomputed-hash", h)?,
                None => [0u8; 32],
            };
            send(
                home,
                &tx,
                &format!("challenge the merge of round {round} of job {job} ({field}) with a {b}umag bond"),
                vec![msgs::challenge_round(&me, job, round, b, recomputed, &field)],
                json!({}),
            )
            .await
        }
        JobsTx::AuditCommit {
            job,
            round,
            verdict,
            nonce,
            tx,
        } => {
            let s = signer(home, &tx)?;
            let node = s.key.address();
            let chain_id = s.client.status().await?.node_info.network.to_string();
            let (fraud, recomputed) = verdict.parse()?;
            let n = match &nonce {
                Some(h) => hash32("--nonce", h)?,
                None => {
                    use rand::RngCore;
                    let mut n = [0u8; 32];
                    rand::rngs::OsRng.fill_bytes(&mut n);
                    n
                }
            };
            let c = msgs::verdict_commitment(&chain_id, job, round, &node, fraud, &recomputed, &n);
            let v = if fraud { "fraud" } else { "ok" };
            send(
                home,
                &tx,
                &format!("seal verdict {v} on the merge of round {round} of job {job}"),
                vec![msgs::audit_commit(&node, job, round, c)],
                json!({"nonce": hex::encode(n), "commitment": hex::encode(c)}),
            )
            .await
        }
        JobsTx::AuditReveal {
            job,
            round,
            verdict,
            nonce,
            tx,
        } => {
            let node = from_addr(home, &tx)?;
            let (fraud, recomputed) = verdict.parse()?;
            let n = hash32("--nonce", &nonce)?;
            let v = if fraud { "fraud" } else { "ok" };
            send(
                home,
                &tx,
                &format!("reveal verdict {v} on the merge of round {round} of job {job}"),
                vec![msgs::audit_reveal(&node, job, round, fraud, recomputed, n)],
                json!({}),
            )
            .await
        }
        JobsTx::PayInference {
            model,
            server,
            amount,
            tx,
        } => {
            let me = from_addr(home, &tx)?;
            let server = resolve_address(home, &server, &tx.keyring)?;
            let a = umag(&amount)?;
            send(
                home,
                &tx,
                &format!("pay {a}umag for inference of model {model} served by {server}"),
                vec![msgs::pay_for_inference(&me, model, &server, a)],
                json!({}),
            )
            .await
        }
    }
}

async fn tx_gov(home: &Home, g: GovTx) -> Result<()> {
    match g {
        GovTx::SubmitProposal {
            file,
            merge_params,
            tx,
        } => {
            let mut p = read_proposal(&file)?;
            if merge_params {
                p.content = merged_param_change(home, &tx, p.content).await?;
            }
            let me = from_addr(home, &tx)?;
            let d = if p.deposit.trim() == "0" {
                0
            } else {
                umag(&p.deposit)?
            };
            let m = msgs::submit_proposal(&me, &p.title, &p.content, d);
            send(
                home,
                &tx,
                &format!("submit proposal {:?} with deposit {d}umag", p.title),
                vec![m],
                json!({}),
            )
            .await
        }
        GovTx::Deposit { id, amount, tx } => {
            let me = from_addr(home, &tx)?;
            let a = umag(&amount)?;
            send(
                home,
                &tx,
                &format!("deposit {a}umag on proposal {id}"),
                vec![msgs::gov_deposit(&me, id, a)],
                json!({}),
            )
            .await
        }
        GovTx::Vote { id, option, tx } => {
            if !msgs::GOV_VOTE_OPTIONS.contains(&option.as_str()) {
                bail!("vote option {option:?}: use one of yes, no, abstain, veto");
            }
            let me = from_addr(home, &tx)?;
            send(
                home,
                &tx,
                &format!("vote {option} on proposal {id}"),
                vec![msgs::gov_vote(&me, id, &option)],
                json!({}),
            )
            .await
        }
    }
}

/// `a` with every field of `b` written over it, objects merged recursively (arrays and
/// scalars are replaced whole).
pub(super) fn deep_merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(slot) => deep_merge(slot, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Complete a partial `param_change` with the module's current params.
async fn merged_param_change(home: &Home, t: &TxArgs, mut content: Value) -> Result<Value> {
    let module = content["param_change"]["module"]
        .as_str()
        .ok_or_else(|| anyhow!("--merge-params needs a param_change proposal with a module name"))?
        .to_string();
    let partial = content["param_change"]["params"].take();
    if !partial.is_object() {
        bail!("param_change.params must be a JSON object");
    }
    let c = ChainClient::new(&node_url(
        home,
        &super::NodeArgs {
            node: t.node.clone(),
            output: t.output,
        },
    ))?;
    let mut current: Value = if module == "epochs" {
        let st: Value = c.query_json("/magnet.epochs.v1/state", b"").await?;
        st["params"].clone()
    } else {
        c.query_json(&format!("/magnet.{module}.v1/params"), b"")
            .await
            .with_context(|| format!("reading the current params of module {module:?}"))?
    };
    deep_merge(&mut current, partial);
    content["param_change"]["params"] = current;
    Ok(content)
}

// ------------------------------------------------------------------------- queries

/// Print a JSON value as indented `key: value` lines.
pub(super) fn print_text(v: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if m.is_empty() => println!("{pad}(empty)"),
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::Object(o) if !o.is_empty() => {
                        println!("{pad}{k}:");
                        print_text(x, indent + 2);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        println!("{pad}{k}:");
                        print_text(x, indent + 2);
                    }
                    _ => println!("{pad}{k}: {}", scalar(x)),
                }
            }
        }
        Value::Array(a) if a.is_empty() => println!("{pad}(none)"),
        Value::Array(a) => {
            for x in a {
                match x {
                    Value::Object(_) | Value::Array(_) => {
                        println!("{pad}-");
                        print_text(x, indent + 2);
                    }
                    _ => println!("{pad}- {}", scalar(x)),
                }
            }
        }
        other => println!("{pad}{}", scalar(other)),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
        other => other.to_string(),
    }
}

async fn show(home: &Home, q: &QArgs, path: &str, data: String) -> Result<()> {
    let c = ChainClient::new(&node_url(
        home,
        &super::NodeArgs {
            node: q.node.clone(),
            output: q.output,
        },
    ))?;
    let v: Value = c
        .query_json_at(path, data.as_bytes(), q.height)
        .await
        .with_context(|| format!("querying {path}"))?;
    if q.output == Output::Json {
        return print_json(&v);
    }
    print_text(&v, 0);
    Ok(())
}

async fn search_txs(
    home: &Home,
    query: &str,
    page: u32,
    per_page: u8,
    desc: bool,
    q: &QArgs,
) -> Result<()> {
    use tendermint_rpc::Client;
    let c = ChainClient::new(&node_url(
        home,
        &super::NodeArgs {
            node: q.node.clone(),
            output: q.output,
        },
    ))?;
    let parsed: tendermint_rpc::query::Query = query
        .parse()
        .map_err(|e: tendermint_rpc::Error| anyhow!("query {query:?}: {}", e.detail()))?;
    let order = if desc {
        tendermint_rpc::Order::Descending
    } else {
        tendermint_rpc::Order::Ascending
    };
    let r = c
        .http()
        .tx_search(parsed, false, page, per_page, order)
        .await
        .with_context(|| format!("tx_search {query:?}"))?;
    let rows: Vec<Value> = r
        .txs
        .iter()
        .map(|t| {
            json!({
                "txhash": t.hash.to_string(),
                "height": t.height.value(),
                "index": t.index,
                "code": t.tx_result.code.value(),
                "codespace": t.tx_result.codespace,
                "log": t.tx_result.log,
                "gas_used": t.tx_result.gas_used,
            })
        })
        .collect();
    if q.output == Output::Json {
        return print_json(&json!({"total_count": r.total_count, "page": page, "txs": rows}));
    }
    println!("{} matching txs (page {page})", r.total_count);
    for t in &r.txs {
        println!(
            "{}  height {}  code {}",
            t.hash,
            t.height,
            t.tx_result.code.value()
        );
    }
    Ok(())
}

pub(super) async fn query(home: &Home, cmd: ModuleQueryCmd) -> Result<()> {
    let kr = KeyringArgs {
        keyring_backend: magnet_client::KeyringBackend::Test,
    };
    let (q, path, data) = match cmd {
        ModuleQueryCmd::Txs {
            query,
            page,
            per_page,
            desc,
            q,
        } => return search_txs(home, &query, page, per_page, desc, &q).await,
        ModuleQueryCmd::Epochs {
            q: EpochsQ::State(q),
        } => (q, "/magnet.epochs.v1/state", String::new()),
        ModuleQueryCmd::Registry { q } => match q {
            RegistryQ::Params(q) => (q, "/magnet.registry.v1/params", String::new()),
            RegistryQ::Nodes(q) => (q, "/magnet.registry.v1/nodes", String::new()),
            RegistryQ::StorageNodes(q) => (q, "/magnet.registry.v1/storage_nodes", String::new()),
            RegistryQ::Services { job, q } => {
                return show_services(home, &q, job).await;
            }
            RegistryQ::Node { operator, q } => (
                q,
                "/magnet.registry.v1/node",
                resolve_address(home, &operator, &kr)?.to_string(),
            ),
            RegistryQ::GovBond { owner, q } => (
                q,
                "/magnet.registry.v1/gov_bond",
                resolve_address(home, &owner, &kr)?.to_string(),
            ),
        },
        ModuleQueryCmd::Emission { q } => match q {
            EmissionQ::Params(q) => (q, "/magnet.emission.v1/params", String::new()),
            EmissionQ::Pools(q) => (q, "/magnet.emission.v1/pools", String::new()),
            EmissionQ::Pool { epoch, q } => (q, "/magnet.emission.v1/pool", epoch.to_string()),
            EmissionQ::MintedTotal(q) => (q, "/magnet.emission.v1/minted_total", String::new()),
        },
        ModuleQueryCmd::Contrib { q } => match q {
            ContribQ::Params(q) => (q, "/magnet.contrib.v1/params", String::new()),
            ContribQ::Epoch { epoch, q } => (q, "/magnet.contrib.v1/epoch", epoch.to_string()),
            ContribQ::Assignments {
                epoch,
                job,
                operator,
                q,
            } => {
                let op = resolve_address(home, &operator, &kr)?;
                (
                    q,
                    "/magnet.contrib.v1/assignments",
                    format!("{epoch}/{job}/{op}"),
                )
            }
        },
        ModuleQueryCmd::Rewards { q } => match q {
            RewardsQ::Params(q) => (q, "/magnet.rewards.v1/params", String::new()),
            RewardsQ::Settlements(q) => (q, "/magnet.rewards.v1/settlements", String::new()),
            RewardsQ::Settlement { epoch, q } => {
                (q, "/magnet.rewards.v1/settlement", epoch.to_string())
            }
        },
        ModuleQueryCmd::Slashing { q } => match q {
            SlashingQ::Params(q) => (q, "/magnet.slashing.v1/params", String::new()),
            SlashingQ::Records(q) => (q, "/magnet.slashing.v1/records", String::new()),
        },
        ModuleQueryCmd::Notary { q } => match q {
            NotaryQ::Params(q) => (q, "/magnet.notary.v1/params", String::new()),
            NotaryQ::Panel(q) => (q, "/magnet.notary.v1/panel", String::new()),
            NotaryQ::Challenges(q) => (q, "/magnet.notary.v1/challenges", String::new()),
            NotaryQ::Challenge { id, q } => (q, "/magnet.notary.v1/challenge", id.to_string()),
        },
        ModuleQueryCmd::Data { q } => match q {
            DataQ::Params(q) => (q, "/magnet.data.v1/params", String::new()),
            DataQ::Records(q) => (q, "/magnet.data.v1/records", String::new()),
            DataQ::Record { id, q } => (q, "/magnet.data.v1/record", id.to_string()),
        },
        ModuleQueryCmd::Jobs { q } => match q {
            JobsQ::Params(q) => (q, "/magnet.jobs.v1/params", String::new()),
            JobsQ::Jobs(q) => (q, "/magnet.jobs.v1/jobs", String::new()),
            JobsQ::Job { id, q } => (q, "/magnet.jobs.v1/job", id.to_string()),
            JobsQ::Lineage { id, q } => (q, "/magnet.jobs.v1/lineage", id.to_string()),
            JobsQ::Election { id, round, q } => {
                (q, "/magnet.jobs.v1/election", format!("{id}/{round}"))
            }
            JobsQ::Audits { id, q } => (
                q,
                "/magnet.jobs.v1/audits",
                id.map(|i| i.to_string()).unwrap_or_default(),
            ),
            JobsQ::Audit { id, round, q } => (q, "/magnet.jobs.v1/audit", format!("{id}/{round}")),
        },
        ModuleQueryCmd::Gov { q } => match q {
            GovQ::Params(q) => (q, "/magnet.gov.v1/params", String::new()),
            GovQ::Proposals(q) => (q, "/magnet.gov.v1/proposals", String::new()),
            GovQ::Proposal { id, q } => (q, "/magnet.gov.v1/proposal", id.to_string()),
            GovQ::Votes { id, q } => (q, "/magnet.gov.v1/votes", id.to_string()),
            GovQ::Tally { id, q } => (q, "/magnet.gov.v1/tally", id.to_string()),
            GovQ::Upgrade(q) => (q, "/magnet.gov.v1/upgrade", String::new()),
        },
        ModuleQueryCmd::Custody { q } => match q {
            CustodyQ::Params(q) => (q, "/magnet.custody.v1/params", String::new()),
            CustodyQ::Stripe { object, q } => (
                q,
                "/magnet.custody.v1/stripe",
                hex32_arg("object", &object)?,
            ),
            CustodyQ::ByLabel { label, q } => (
                q,
                "/magnet.custody.v1/by_label",
                hex32_arg("label", &label)?,
            ),
            CustodyQ::Challenges { epoch, holder, q } => {
                let data = match holder {
                    Some(h) => format!("{epoch}/{}", resolve_address(home, &h, &kr)?),
                    None => epoch.to_string(),
                };
                (q, "/magnet.custody.v1/challenges", data)
            }
            CustodyQ::Holder { addr, q } => (
                q,
                "/magnet.custody.v1/holder",
                resolve_address(home, &addr, &kr)?.to_string(),
            ),
            CustodyQ::Epoch { epoch, q } => (q, "/magnet.custody.v1/epoch", epoch.to_string()),
        },
    };
    show(home, &q, path, data).await
}

/// `query registry services`: JSON as the chain returns it, or one line per service.
async fn show_services(home: &Home, q: &QArgs, job: Option<u64>) -> Result<()> {
    let path = "/magnet.registry.v1/services";
    let data = job.map(|j| j.to_string()).unwrap_or_default();
    let c = ChainClient::new(&node_url(
        home,
        &super::NodeArgs {
            node: q.node.clone(),
            output: q.output,
        },
    ))?;
    let v: Value = c
        .query_json_at(path, data.as_bytes(), q.height)
        .await
        .with_context(|| format!("querying {path}"))?;
    if q.output == Output::Json {
        return print_json(&v);
    }
    let rows = v.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        match job {
            Some(j) => println!("no node advertises a service for job {j}"),
            None => println!("no node advertises a service"),
        }
        return Ok(());
    }
    for r in &rows {
        println!("{}", service_line(r));
    }
    Ok(())
}

/// One human line of a `/magnet.registry.v1/services` row.
fn service_line(r: &Value) -> String {
    let s = |k: &str| match &r[k] {
        Value::String(x) => x.clone(),
        x => x.to_string(),
    };
    let price = match s("price_per_token").as_str() {
        "0" => "free".to_string(),
        p => format!("{p} umag/token"),
    };
    format!(
        "job {}  {}  {}  {}  max context {} tokens  operator {}  node {}  height {}",
        s("job"),
        s("node_id"),
        s("endpoint"),
        price,
        s("max_context"),
        s("operator"),
        s("node"),
        s("height")
    )
}

/// A 32-byte hash argument as lowercase hex, or an error naming the argument.
fn hex32_arg(what: &str, s: &str) -> Result<String> {
    let t = s.trim().trim_start_matches("0x");
    match hex::decode(t) {
        Ok(b) if b.len() == 32 => Ok(hex::encode(b)),
        _ => bail!("{what} must be 64 hex characters (a SHA-256), got {s:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_with_or_without_the_denom_and_reject_the_rest() {
        assert_eq!(umag("1000").unwrap(), 1000);
        assert_eq!(umag("1000umag").unwrap(), 1000);
        for bad in [
            "",
            "umag",
            "10uatom",
            "-5",
            "1.5umag",
            "0umag",
            "5umag,3uatom",
        ] {
            assert!(umag(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn a_service_row_prints_on_one_line_with_free_for_price_zero() {
        let row = json!({
            "node": "magnet1node", "operator": "magnet1op", "node_id": "node-0123456789abcdef",
            "job": 3, "endpoint": "https://a:8443", "price_per_token": "0",
            "max_context": 4096, "height": 12,
        });
        assert_eq!(
            service_line(&row),
            "job 3  node-0123456789abcdef  https://a:8443  free  max context 4096 tokens  \
             operator magnet1op  node magnet1node  height 12"
        );
        let mut paid = row.clone();
        paid["price_per_token"] = json!("25");
        assert!(service_line(&paid).contains("  25 umag/token  "));
    }

    #[test]
    fn hashes_must_be_32_bytes_of_hex() {
        assert_eq!(hash32("h", &"ab".repeat(32)).unwrap(), [0xab; 32]);
        assert_eq!(
            hash32("h", &format!("0x{}", "01".repeat(32))).unwrap(),
            [1; 32]
        );
        for bad in ["", "abc", &"ab".repeat(31), &"zz".repeat(32)] {
            assert!(hash32("h", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nonces_are_hex_of_one_to_64_bytes() {
        assert_eq!(nonce("0badc0de").unwrap(), vec![0x0b, 0xad, 0xc0, 0xde]);
        assert!(nonce("").is_err());
        assert!(nonce(&"00".repeat(65)).is_err());
        assert_eq!(nonce_or_random(None).unwrap().len(), 16);
    }

    #[test]
    fn every_example_proposal_file_parses() {
        let dir = std::path::Path::new(
            &std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../../docs/proposals");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                let f = read_proposal(&p).unwrap();
                assert!(!f.title.is_empty(), "{}", p.display());
                assert!(f.content.is_object(), "{}", p.display());
                n += 1;
            }
        }
        assert!(n >= 5, "expected the five example proposals, found {n}");
    }

    #[test]
    fn partial_params_merge_over_the_current_ones() {
        let mut cur = json!({"a": 1, "rates": {"x": 1, "y": 2}, "tiers": [1, 2], "b": true});
        deep_merge(
            &mut cur,
            json!({"rates": {"y": 5}, "tiers": [3], "c": "new"}),
        );
        assert_eq!(
            cur,
            json!({"a": 1, "rates": {"x": 1, "y": 5}, "tiers": [3], "b": true, "c": "new"})
        );
    }

    #[test]
    fn training_flags_are_all_or_nothing() {
        assert_eq!(TrainingArgs::default().spec().unwrap(), None);
        let full = TrainingArgs {
            inner_steps: Some(8),
            batch_size: Some(4),
            seq_len: Some(64),
            params: Some(1000),
            first_height: Some(20),
            blocks_per_round: Some(10),
            leader_rule: Some("round-robin".into()),
            max_staleness: Some(2),
            stale_decay_bps: Some(5000),
            ..TrainingArgs::default()
        };
        let spec = full.spec().unwrap().unwrap();
        assert_eq!(spec.leader_rule, "round_robin");
        assert_eq!((spec.inner_steps, spec.first_height), (8, 20));
        // The outer step defaults to MergePolicy::default()'s and each flag overrides one field.
        assert_eq!(spec.outer, msgs::OuterPolicy::default());
        let tuned = TrainingArgs {
            outer_momentum_permille: Some(0),
            update_chunk: Some(256),
            ..full
        };
        let o = tuned.spec().unwrap().unwrap().outer;
        assert_eq!(
            (o.lr_permille, o.momentum_permille, o.update_chunk),
            (700, 0, 256)
        );
        let full = TrainingArgs {
            outer_momentum_permille: None,
            update_chunk: None,
            ..tuned
        };
        let lone = TrainingArgs {
            outer_lr_permille: Some(900),
            ..TrainingArgs::default()
        };
        assert!(lone
            .spec()
            .unwrap_err()
            .to_string()
            .contains("--outer-lr-permille"));
        let partial = TrainingArgs {
            seq_len: None,
            stale_decay_bps: None,
            ..full
        };
        let e = partial.spec().unwrap_err().to_string();
        assert!(e.contains("--seq-len, --stale-decay-bps"), "{e}");
        let bad_rule = TrainingArgs {
            leader_rule: Some("dice".into()),
            ..TrainingArgs {
                seq_len: Some(64),
                stale_decay_bps: Some(5000),
                ..partial
            }
        };
        assert!(bad_rule
            .spec()
            .unwrap_err()
            .to_string()
            .contains("--leader-rule"));
    }

    #[test]
    fn work_entries_are_round_colon_delta_hash() {
        let mut w = WorkArgs {
            checkpoint_hash: "11".repeat(32),
            steps: 1,
            params: 2,
            data_hash: "22".repeat(32),
            kind: "training".into(),
            entries: vec![format!("3:{}", "44".repeat(32))],
        };
        assert_eq!(work(&w).unwrap().entries, vec![(3, [0x44; 32])]);
        for bad in ["nocolon", "x:00", "3:abcd"] {
            w.entries = vec![bad.to_string()];
            assert!(work(&w).is_err(), "{bad}");
        }
    }
}
