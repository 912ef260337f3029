//! Structure-aware fuzzing of whole blocks (feature `fuzzing`, ADR 0102).
//!
//! [`FuzzInput`] is an [`arbitrary`] description of a short chain: a few blocks, each a list
//! of txs, each tx one or more messages of **every message type the app routes** (bank,
//! registry — service advertisements included, ADR 0109 —, contrib, notary, data, jobs, gov:
//! [`MSG_TYPE_URLS`]) whose fields are drawn from
//! small pools of plausible values (the funded keys, small epoch / job / proposal ids, a
//! handful of hashes, so that commits meet their reveals) and from adversarial ones (zero,
//! `u64::MAX`, `u128::MAX` and one past it, negative and non-numeric amounts, empty and
//! overlong strings, bad bech32, wrong prefixes, short and long hashes, bad hex). Each tx also
//! picks its signer among [`KEYS`] keys (one unfunded), its sequence (current, stale, future,
//! arbitrary), its signature (valid, wrong key, bit-flipped, empty, truncated, wrong chain id,
//! wrong account number), its fee and gas (zero, tiny, huge), and whether it is sent twice.
//!
//! The description is abstract: [`run_input`] turns each tx into signed bytes just before its
//! block, against the state the chain is in (account numbers and sequences, the running
//! epoch, the height), so a structurally valid tx stays valid whatever came before it.
//!
//! # Oracles ([`run_input`] returns a [`Finding`] when one fails)
//! * **No panic.** A panic inside a tx is caught by the app (ADR 0094) and surfaces as code
//!   `sdk/111222`: any CheckTx or FinalizeBlock result with that code is a finding. A panic
//!   anywhere else unwinds out of [`run_input`] (libFuzzer reports it as a crash).
//! * **Proposals.** ProcessProposal accepts what PrepareProposal built from the same txs.
//! * **Determinism.** A second app that only runs ProcessProposal, FinalizeBlock and Commit
//!   (no CheckTx, no PrepareProposal: a validator that never saw the txs in its mempool)
//!   reaches the same app hash and the same tx result codes at every height.
//! * **The books** ([`check_books`]): total supply equals the sum of all balances, module
//!   accounts included, after every block.
//!
//! The cargo-fuzz target `fuzz/fuzz_targets/blocks.rs` calls [`run_bytes`];
//! `app/tests/fuzz_blocks.rs` replays the committed corpus `fuzz/corpus/blocks/` through the
//! same function on stable Rust.

use crate::abci as pb;
use crate::testkit::{genesis_app_state, Signer, TxBuilder};
use crate::{AppConfig, Application, MagnetApp, StoreConfig};
use arbitrary::{Arbitrary, Unstructured};
use cosmrs::proto::cosmos::bank::v1beta1 as bankpb;
use cosmrs::proto::cosmos::base::v1beta1::Coin;
use magnet_core::msg::to_any;
use magnet_core::Address;
use prost::Message;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Chain id of the fuzzed chain.
pub const CHAIN_ID: &str = "magnet-fuzz-1";
/// Genesis time (unix seconds).
pub const GENESIS_TIME: i64 = 1_700_000_000;
/// How many keys the txs are signed with; the last one is never funded at genesis.
pub const KEYS: usize = 7;
/// Umag each funded key holds at genesis.
pub const FUNDS: u128 = 1_000_000_000_000;
/// At most this many blocks run per input (the rest of the input is ignored).
pub const MAX_BLOCKS: usize = 6;
/// At most this many txs per block.
pub const MAX_TXS: usize = 8;
/// At most this many messages per tx.
pub const MAX_MSGS: usize = 4;
/// Code the app gives a tx whose execution panicked (codespace `sdk`, ADR 0094).
pub const PANIC_CODE: u32 = crate::error::codes::PANIC;

/// Every message type the app routes, in the order [`FuzzMsg`] lists them.
pub const MSG_TYPE_URLS: [&str; 35] = [
    "/cosmos.bank.v1beta1.MsgSend",
    "/magnet.registry.v1.MsgRegisterNode",
    "/magnet.registry.v1.MsgHeartbeat",
    "/magnet.registry.v1.MsgChangeTier",
    "/magnet.registry.v1.MsgUnbondNode",
    "/magnet.registry.v1.MsgUnjail",
    "/magnet.registry.v1.MsgBondGov",
    "/magnet.registry.v1.MsgUnbondGov",
    "/magnet.contrib.v1.MsgCommit",
    "/magnet.contrib.v1.MsgReveal",
    "/magnet.contrib.v1.MsgEvalCommit",
    "/magnet.contrib.v1.MsgEvalReveal",
    "/magnet.notary.v1.MsgChallenge",
    "/magnet.notary.v1.MsgVote",
    "/magnet.notary.v1.MsgBondNotary",
    "/magnet.data.v1.MsgRegisterData",
    "/magnet.jobs.v1.MsgCreateJob",
    "/magnet.jobs.v1.MsgCancelJob",
    "/magnet.jobs.v1.MsgRecordRound",
    "/magnet.jobs.v1.MsgChallengeRound",
    "/magnet.jobs.v1.MsgAuditCommit",
    "/magnet.jobs.v1.MsgAuditReveal",
    "/magnet.jobs.v1.MsgPayForInference",
    "/magnet.gov.v1.MsgSubmitProposal",
    "/magnet.gov.v1.MsgDeposit",
    "/magnet.gov.v1.MsgVote",
    "/magnet.registry.v1.MsgAdvertiseService",
    "/magnet.registry.v1.MsgWithdrawService",
    "/magnet.jobs.v1.MsgRecordResearchVersion",
    "/magnet.jobs.v1.MsgTrialCheckCommit",
    "/magnet.jobs.v1.MsgTrialCheckReveal",
    "/magnet.jobs.v1.MsgRevealTestSplit",
    "/magnet.jobs.v1.MsgDisputeTrial",
    "/magnet.jobs.v1.MsgHeldOutCommit",
    "/magnet.jobs.v1.MsgHeldOutReveal",
];

// ---------------------------------------------------------------------------------------------
// The input grammar
// ---------------------------------------------------------------------------------------------

/// A fuzz input: a short sequence of blocks.
#[derive(Arbitrary, Clone, Debug)]
pub struct FuzzInput {
    /// The blocks, in height order (at most [`MAX_BLOCKS`] run).
    pub blocks: Vec<FuzzBlock>,
}

/// One block.
#[derive(Clone, Debug)]
pub struct FuzzBlock {
    /// Block time after the previous block.
    pub step: TimeStep,
    /// Txs sent to the mempool before the block (at most [`MAX_TXS`]).
    pub txs: Vec<FuzzTx>,
    /// A byzantine proposer: instead of PrepareProposal's choice, propose every mempool tx
    /// that ProcessProposal accepts (so txs that CheckTx refused for their messages, not their
    /// envelope, are finalized).
    pub raw_proposal: bool,
}

/// Time between two blocks.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum TimeStep {
    /// 5 s.
    Normal,
    /// 1–256 s.
    Seconds(u8),
    /// 1–256 minutes: crosses epochs and windows.
    Minutes(u8),
    /// One day.
    Day,
    /// The same second as the previous block.
    Same,
}

/// One tx: messages plus how it is signed and paid.
#[derive(Clone, Debug)]
pub struct FuzzTx {
    /// Signing key: index into the [`KEYS`] keys (mod [`KEYS`]).
    pub signer: u8,
    /// Messages (at least one is always sent; at most [`MAX_MSGS`]).
    pub msgs: Vec<FuzzMsg>,
    /// At most one thing done wrong in the envelope (None: an honest tx: current sequence,
    /// valid signature, 2,000 umag fee, 400,000 gas). One at a time keeps half the txs past
    /// the ante, so that the messages behind it run.
    pub tamper: Option<Tamper>,
    /// Memo (None: empty).
    pub memo: Option<Text>,
    /// Send the same bytes twice in the block.
    pub duplicate: bool,
}

/// What a dishonest or careless tx gets wrong.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Tamper {
    /// The sequence.
    Sequence(SeqChoice),
    /// The signature.
    Signature(SigChoice),
    /// The fee.
    Fee(FeeChoice),
    /// The gas limit.
    Gas(GasChoice),
}

/// The sequence a tx is signed with.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum SeqChoice {
    /// The signer's next sequence (counting its earlier txs in this block that CheckTx took).
    Current,
    /// One below.
    Stale,
    /// One above.
    Future,
    /// Any value.
    Any(u64),
}

/// How a tx is signed.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum SigChoice {
    /// Correctly.
    Valid,
    /// By another key (index) than the one named in the signer info.
    WrongKey(u8),
    /// A correct signature with one bit flipped.
    Flipped(u8),
    /// No signature bytes (a Simulate-style tx).
    Empty,
    /// The first 63 bytes of a correct signature.
    Truncated,
    /// Signed over another chain id.
    WrongChain,
    /// Signed with another account number.
    WrongAccount(u64),
    /// Without the public key in the signer info.
    NoPubKey,
}

/// A fee.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum FeeChoice {
    /// 2,000 umag.
    Normal,
    /// None.
    Zero,
    /// 0–65,535 umag.
    Small(u16),
    /// More than any account holds.
    Huge,
    /// `u128::MAX`.
    Max,
}

/// A gas limit.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum GasChoice {
    /// 400,000.
    Normal,
    /// 0.
    Zero,
    /// 0–65,535: usually out of gas.
    Tiny(u16),
    /// 10,000,000.
    Large,
    /// `u64::MAX`.
    Max,
}

/// An address field.
#[derive(Clone, Debug)]
pub enum Addr {
    /// The tx's signer.
    Signer,
    /// One of the keys (mod [`KEYS`]).
    Key(u8),
    /// A well-formed address no key owns (20 copies of the byte).
    Nobody(u8),
    /// The community pool module account.
    CommunityPool,
    /// "".
    Empty,
    /// A key's address with its last character changed (bad checksum).
    BadChecksum(u8),
    /// A key's address under the `cosmos` prefix.
    WrongPrefix(u8),
    /// A key's address in upper case (valid bech32, odd form).
    Upper(u8),
    /// Any text.
    Raw(Text),
}

/// A decimal umag amount field.
#[derive(Clone, Debug)]
pub enum Amt {
    /// 1–65,536.
    Small(u16),
    /// A bond-sized amount: 1e9 to 256e9 umag.
    Bond(u8),
    /// "0".
    Zero,
    /// "" (means 0).
    Empty,
    /// `u64::MAX`.
    U64Max,
    /// `u128::MAX`.
    Max,
    /// `u128::MAX + 1`.
    Overflow,
    /// "-1".
    Negative,
    /// "12umag".
    WithDenom(u8),
    /// "1e6", " 7 ", "0x10", "1.5".
    Odd(u8),
    /// Any value.
    Any(u128),
    /// Any text.
    Raw(Text),
}

/// A bytes field meant to hold a 32-byte hash.
#[derive(Clone, Copy, Debug)]
pub enum Hash {
    /// One of 8 fixed hashes (`sha256([i])`).
    Pool(u8),
    /// 32 zero bytes.
    Zero,
    /// No bytes.
    Empty,
    /// 31 bytes.
    Short,
    /// 33 bytes.
    Long,
    /// Any 32 bytes.
    Any([u8; 32]),
}

/// A u64 field (epoch, job id, round, proposal id, height, size …).
#[derive(Clone, Copy, Debug)]
pub enum Num {
    /// 0–7.
    Small(u8),
    /// The field's current value (the running epoch, the height …) plus −4…+3.
    Near(u8),
    /// `u64::MAX`.
    Max,
    /// `u64::MAX − 1`.
    MaxMinus1,
    /// `i64::MAX` (+1 overflows a signed conversion).
    I64Max,
    /// Any value.
    Any(u64),
}

/// A string field.
#[derive(Clone, Debug)]
pub enum Text {
    /// A short plausible value for the field (from the field's pool).
    Plausible(u8),
    /// "".
    Empty,
    /// `n` bytes of 'x', up to 20,000 (past every length limit).
    Long(u16),
    /// Multi-byte UTF-8, control characters and a NUL.
    Odd,
    /// Any text (cut to 600 bytes).
    Any(String),
}

/// A work result (contrib) as its fields.
#[derive(Arbitrary, Clone, Debug)]
pub struct WorkSpec {
    /// Kind: 0–3 the valid kinds, else invalid text.
    pub kind: u8,
    /// Checkpoint hash.
    pub checkpoint: Hash,
    /// Data hash.
    pub data: Hash,
    /// Steps.
    pub steps: Num,
    /// Parameter count.
    pub params: Num,
    /// Lineage entries (round, Δ hash), at most 4 (a repeated Δ is invalid).
    pub entries: Vec<(Num, Hash)>,
}

/// A commitment field: either the honest commitment to some content, or any bytes.
#[derive(Arbitrary, Clone, Debug)]
pub enum Commitment<T> {
    /// The commitment the module computes for this content and nonce.
    To(T, u8),
    /// Any bytes.
    Bytes(Hash),
}

/// A nonce field.
#[derive(Clone, Copy, Debug)]
pub enum Nonce {
    /// One of 256 fixed 16-byte nonces.
    Pool(u8),
    /// No bytes.
    Empty,
    /// 65 bytes (over the limit).
    Long,
}

/// A DiLoCo training spec of a job.
#[derive(Arbitrary, Clone, Debug)]
pub enum Training {
    /// A valid spec: rounds start `first` blocks ahead and last `blocks` blocks.
    Valid {
        /// Blocks from now to round 0.
        first: u8,
        /// Blocks per round.
        blocks: u8,
        /// Leader rule round_robin (else hash).
        round_robin: bool,
    },
    /// Raw field values (mostly invalid).
    Raw {
        /// inner_steps, batch_size, seq_len.
        sizes: (u32, u32, u32),
        /// params, first_height, blocks_per_round.
        counts: (u64, u64, u64),
        /// Leader rule.
        rule: Text,
        /// max_staleness, stale_decay_bps.
        staleness: (u32, u32),
        /// lr, momentum, outlier factor, min contributions, update chunk.
        outer: Option<(u32, u32, u32, u32, u32)>,
    },
}

/// One accepted Δ of a round record.
#[derive(Arbitrary, Clone, Debug)]
pub struct AcceptedSpec {
    /// The contributing node's key (index).
    pub node: u8,
    /// The claim's job and round ([`Num::Near`] is the record's own).
    pub job: Num,
    /// The claim's round.
    pub round: Num,
    /// Base and Δ hashes.
    pub hashes: (Hash, Hash),
    /// Steps and tokens.
    pub work: (Num, Num),
    /// Signed correctly by the node (else garbage of the right length).
    pub signed: bool,
    /// Merge weight (ppm).
    pub weight_ppm: u32,
    /// Content address.
    pub content: Hash,
}

/// A governance proposal's content.
#[derive(Arbitrary, Clone, Debug)]
pub enum Content {
    /// Change one field of a module's current params to an adversarial value.
    ParamChange {
        /// Module (index into a list of module names, or any text).
        module: u8,
        /// Field index into the module's current params (mod their count).
        field: u8,
        /// The new value.
        value: ParamValue,
    },
    /// Replace the notary panel.
    NotarySet {
        /// Members.
        members: Vec<Addr>,
    },
    /// Add, change or remove (power 0) a validator.
    ValidatorSet {
        /// 32 bytes as hex (else bad hex).
        key: Hash,
        /// Hex-encode it (else a raw non-hex string).
        hex: bool,
        /// Voting power.
        power: Num,
        /// Operator.
        operator: Option<Addr>,
    },
    /// Pay from the community pool.
    CommunitySpend {
        /// Recipient.
        recipient: Addr,
        /// Amount.
        amount: Amt,
    },
    /// Halt for a software upgrade.
    SoftwareUpgrade {
        /// Upgrade name.
        name: Text,
        /// Halt height ([`Num::Near`]: near the current height).
        halt_height: Num,
    },
    /// Overturn a notary challenge.
    Overturn {
        /// Challenge id.
        id: Num,
    },
    /// Text.
    Text {
        /// Body.
        body: Text,
    },
    /// Any JSON text as `content_json`.
    RawJson(Text),
}

/// A value written into a params field.
#[derive(Arbitrary, Clone, Debug)]
pub enum ParamValue {
    /// 0.
    Zero,
    /// A small number.
    Small(u8),
    /// `u64::MAX`.
    U64Max,
    /// `u128::MAX` as a decimal string.
    U128MaxString,
    /// -1.
    Negative,
    /// A string.
    Text(Text),
    /// null.
    Null,
    /// true.
    Bool,
}

/// One message, of every type the app routes ([`MSG_TYPE_URLS`] in the same order).
#[allow(missing_docs)]
#[derive(Arbitrary, Clone, Debug)]
pub enum FuzzMsg {
    BankSend {
        from: Addr,
        to: Addr,
        amount: Amt,
        other_denom: bool,
    },
    RegisterNode {
        operator: Addr,
        /// Node key index; 255 gives an invalid point, 254 a short key.
        node_key: u8,
        tier: Text,
        endpoint: Text,
        region: Text,
        hardware: Text,
        bond: Amt,
    },
    Heartbeat {
        node: Addr,
    },
    ChangeTier {
        operator: Addr,
        tier: Text,
        extra_bond: Amt,
    },
    UnbondNode {
        operator: Addr,
    },
    Unjail {
        operator: Addr,
    },
    BondGov {
        owner: Addr,
        amount: Amt,
    },
    UnbondGov {
        owner: Addr,
        amount: Amt,
    },
    ContribCommit {
        node: Addr,
        epoch: Num,
        job: Num,
        commitment: Commitment<WorkSpec>,
    },
    ContribReveal {
        node: Addr,
        epoch: Num,
        job: Num,
        work: Option<WorkSpec>,
        nonce: Nonce,
    },
    EvalCommit {
        node: Addr,
        epoch: Num,
        job: Num,
        contributor: Addr,
        commitment: Commitment<i64>,
    },
    EvalReveal {
        node: Addr,
        epoch: Num,
        job: Num,
        contributor: Addr,
        score: i64,
        nonce: Nonce,
    },
    NotaryChallenge {
        challenger: Addr,
        /// Some((epoch, job, operator)): a contrib target; None: a data record target.
        contrib: Option<(Num, Num, Addr)>,
        data_id: Num,
        raw_target: Option<Text>,
        bond: Amt,
        evidence: Hash,
    },
    NotaryVote {
        notary: Addr,
        id: Num,
        uphold: bool,
    },
    NotaryBond {
        notary: Addr,
        amount: Amt,
    },
    RegisterData {
        contributor: Addr,
        hash: Hash,
        size: Num,
        domain: Text,
    },
    CreateJob {
        creator: Addr,
        domain: Text,
        eval_set: Hash,
        base: Hash,
        budget: Amt,
        /// Deadline ([`Num::Near`]: near the block time).
        deadline: Num,
        training: Option<Training>,
    },
    CancelJob {
        creator: Addr,
        job: Num,
    },
    RecordRound {
        leader: Addr,
        job: Num,
        round: Num,
        base: Hash,
        merged: Hash,
        accepted: Vec<AcceptedSpec>,
        rejected: Vec<(Addr, Hash, Text)>,
    },
    ChallengeRound {
        challenger: Addr,
        job: Num,
        round: Num,
        bond: Amt,
        recomputed: Hash,
        field: Text,
    },
    AuditCommit {
        auditor: Addr,
        job: Num,
        round: Num,
        commitment: Commitment<(bool, Hash)>,
    },
    AuditReveal {
        auditor: Addr,
        job: Num,
        round: Num,
        fraud: bool,
        recomputed: Hash,
        nonce: u8,
    },
    PayForInference {
        payer: Addr,
        model: Num,
        server: Addr,
        amount: Amt,
    },
    GovSubmit {
        proposer: Addr,
        title: Text,
        content: Content,
        deposit: Amt,
    },
    GovDeposit {
        depositor: Addr,
        id: Num,
        amount: Amt,
    },
    GovVote {
        voter: Addr,
        id: Num,
        option: Text,
    },
    AdvertiseService {
        node: Addr,
        job: Num,
        endpoint: Text,
        price: Amt,
        max_context: Num,
    },
    WithdrawService {
        node: Addr,
        job: Num,
    },
    RecordResearchVersion {
        coordinator: Addr,
        job: Num,
        version: Num,
        /// (unit, worker, oof hash, loss, signature halves)
        entries: Vec<(Hash, Addr, Hash, u32, Hash, Hash)>,
        best: Hash,
        last: bool,
    },
    TrialCheckCommit {
        checker: Addr,
        job: Num,
        unit: Hash,
        commitment: Commitment<(Hash, u32)>,
    },
    TrialCheckReveal {
        checker: Addr,
        job: Num,
        unit: Hash,
        oof: Hash,
        loss: u32,
        nonce: u8,
    },
    RevealTestSplit {
        creator: Addr,
        job: Num,
        test: Hash,
        salt: Hash,
    },
    DisputeTrial {
        coordinator: Addr,
        job: Num,
        /// (unit, worker, oof hash, loss, signature halves)
        entry: (Hash, Addr, Hash, u32, Hash, Hash),
    },
    HeldOutCommit {
        evaluator: Addr,
        job: Num,
        /// (final loss, baseline loss, unavailable)
        commitment: Commitment<(u32, u32, bool)>,
    },
    HeldOutReveal {
        evaluator: Addr,
        job: Num,
        final_loss: u32,
        baseline_loss: u32,
        unavailable: bool,
        nonce: u8,
    },
}

// The leaf choices are biased towards plausible values (the first byte picks the variant: the
// plausible variants own most of its range), so that most messages get past their stateless
// checks and reach the handlers; an exhausted input reads as zeros: the most plausible value.

impl<'a> Arbitrary<'a> for FuzzBlock {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let step = u.arbitrary()?;
        let raw_proposal = u.arbitrary()?;
        // An explicit count (not a continue-bit per element) so that a block holds 0..=8 txs
        // evenly, not one on average.
        let n = usize::from(u.arbitrary::<u8>()?) % (MAX_TXS + 1);
        let mut txs = Vec::with_capacity(n);
        for _ in 0..n {
            txs.push(u.arbitrary()?);
        }
        Ok(FuzzBlock {
            step,
            txs,
            raw_proposal,
        })
    }
}

impl<'a> Arbitrary<'a> for FuzzTx {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let signer = u.arbitrary()?;
        let tamper = u.arbitrary()?;
        let memo = u.arbitrary()?;
        let duplicate = u.arbitrary::<u8>()? >= 224;
        // Mostly one message (each message must pass for the tx to), sometimes up to 4.
        let n = match u.arbitrary::<u8>()? {
            0..=159 => 1,
            160..=223 => 2,
            224..=243 => 3,
            _ => MAX_MSGS,
        };
        let mut msgs = Vec::with_capacity(n);
        for _ in 0..n {
            msgs.push(u.arbitrary()?);
        }
        Ok(FuzzTx {
            signer,
            msgs,
            tamper,
            memo,
            duplicate,
        })
    }
}

impl<'a> Arbitrary<'a> for Addr {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.arbitrary::<u8>()? {
            0..=215 => Addr::Signer,
            216..=229 => Addr::Key(u.arbitrary()?),
            230..=233 => Addr::Nobody(u.arbitrary()?),
            234 => Addr::CommunityPool,
            235..=237 => Addr::Empty,
            238..=241 => Addr::BadChecksum(u.arbitrary()?),
            242..=245 => Addr::WrongPrefix(u.arbitrary()?),
            246..=248 => Addr::Upper(u.arbitrary()?),
            _ => Addr::Raw(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for Amt {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.arbitrary::<u8>()? {
            0..=159 => Amt::Small(u.arbitrary()?),
            160..=219 => Amt::Bond(u.arbitrary()?),
            220..=223 => Amt::Zero,
            224..=225 => Amt::Empty,
            226..=229 => Amt::U64Max,
            230..=233 => Amt::Max,
            234..=237 => Amt::Overflow,
            238..=240 => Amt::Negative,
            241..=243 => Amt::WithDenom(u.arbitrary()?),
            244..=247 => Amt::Odd(u.arbitrary()?),
            248..=251 => Amt::Any(u.arbitrary()?),
            _ => Amt::Raw(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for Hash {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.arbitrary::<u8>()? {
            0..=223 => Hash::Pool(u.arbitrary()?),
            224..=231 => Hash::Zero,
            232..=237 => Hash::Empty,
            238..=243 => Hash::Short,
            244..=249 => Hash::Long,
            _ => Hash::Any(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for Num {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.arbitrary::<u8>()? {
            0..=149 => Num::Small(u.arbitrary()?),
            150..=219 => Num::Near(u.arbitrary()?),
            220..=229 => Num::Max,
            230..=235 => Num::MaxMinus1,
            236..=243 => Num::I64Max,
            _ => Num::Any(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for Text {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.arbitrary::<u8>()? {
            0..=219 => Text::Plausible(u.arbitrary()?),
            220..=229 => Text::Empty,
            230..=239 => Text::Long(u.arbitrary()?),
            240..=245 => Text::Odd,
            _ => Text::Any(u.arbitrary()?),
        })
    }
}

impl<'a> Arbitrary<'a> for Nonce {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.arbitrary::<u8>()? {
            0..=223 => Nonce::Pool(u.arbitrary()?),
            224..=239 => Nonce::Empty,
            _ => Nonce::Long,
        })
    }
}

impl FuzzMsg {
    /// The type URL this message is sent under.
    pub fn type_url(&self) -> &'static str {
        MSG_TYPE_URLS[self.index()]
    }

    fn index(&self) -> usize {
        match self {
            FuzzMsg::BankSend { .. } => 0,
            FuzzMsg::RegisterNode { .. } => 1,
            FuzzMsg::Heartbeat { .. } => 2,
            FuzzMsg::ChangeTier { .. } => 3,
            FuzzMsg::UnbondNode { .. } => 4,
            FuzzMsg::Unjail { .. } => 5,
            FuzzMsg::BondGov { .. } => 6,
            FuzzMsg::UnbondGov { .. } => 7,
            FuzzMsg::ContribCommit { .. } => 8,
            FuzzMsg::ContribReveal { .. } => 9,
            FuzzMsg::EvalCommit { .. } => 10,
            FuzzMsg::EvalReveal { .. } => 11,
            FuzzMsg::NotaryChallenge { .. } => 12,
            FuzzMsg::NotaryVote { .. } => 13,
            FuzzMsg::NotaryBond { .. } => 14,
            FuzzMsg::RegisterData { .. } => 15,
            FuzzMsg::CreateJob { .. } => 16,
            FuzzMsg::CancelJob { .. } => 17,
            FuzzMsg::RecordRound { .. } => 18,
            FuzzMsg::ChallengeRound { .. } => 19,
            FuzzMsg::AuditCommit { .. } => 20,
            FuzzMsg::AuditReveal { .. } => 21,
            FuzzMsg::PayForInference { .. } => 22,
            FuzzMsg::GovSubmit { .. } => 23,
            FuzzMsg::GovDeposit { .. } => 24,
            FuzzMsg::GovVote { .. } => 25,
            FuzzMsg::AdvertiseService { .. } => 26,
            FuzzMsg::WithdrawService { .. } => 27,
            FuzzMsg::RecordResearchVersion { .. } => 28,
            FuzzMsg::TrialCheckCommit { .. } => 29,
            FuzzMsg::TrialCheckReveal { .. } => 30,
            FuzzMsg::RevealTestSplit { .. } => 31,
            FuzzMsg::DisputeTrial { .. } => 32,
            FuzzMsg::HeldOutCommit { .. } => 33,
            FuzzMsg::HeldOutReveal { .. } => 34,
        }
    }
}

impl FuzzInput {
    /// Parse raw fuzzer bytes (what the fuzz target and the corpus replay both do). Never
    /// fails: missing bytes read as zeros, so any byte string is some input.
    pub fn from_bytes(data: &[u8]) -> FuzzInput {
        let u = Unstructured::new(data);
        FuzzInput::arbitrary_take_rest(u).unwrap_or(FuzzInput { blocks: Vec::new() })
    }
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

/// What a failed oracle found.
#[derive(Debug, thiserror::Error)]
pub enum Finding {
    /// A tx's execution panicked (the app turned it into `sdk/111222`).
    #[error("height {height}: {stage} of tx {index} panicked (sdk/{PANIC_CODE}): {log}")]
    TxPanicked {
        /// Block height.
        height: i64,
        /// "CheckTx" or "FinalizeBlock".
        stage: &'static str,
        /// Tx index in the block (or in the mempool order for CheckTx).
        index: usize,
        /// The result's log.
        log: String,
    },
    /// ProcessProposal rejected PrepareProposal's own block.
    #[error("height {height}: ProcessProposal rejected the block PrepareProposal built")]
    OwnProposalRejected {
        /// Block height.
        height: i64,
    },
    /// The two apps disagree.
    #[error("height {height}: the replica diverged: {what}")]
    Diverged {
        /// Block height.
        height: i64,
        /// What differs.
        what: String,
    },
    /// Supply ≠ Σ balances, or the books could not be read.
    #[error("height {height}: books do not balance: {what}")]
    Books {
        /// Block height.
        height: i64,
        /// What is wrong.
        what: String,
    },
    /// FinalizeBlock could not run (a store error; an upgrade halt is not a finding).
    #[error("height {height}: FinalizeBlock failed: {what}")]
    Finalize {
        /// Block height.
        height: i64,
        /// The error.
        what: String,
    },
    /// The harness could not set up its apps (not a bug in the app; reported, not ignored).
    #[error("harness setup: {0}")]
    Setup(String),
}

/// What one input did (for corpus checks and statistics).
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    /// Blocks finalized and committed.
    pub blocks: usize,
    /// Txs finalized.
    pub txs: usize,
    /// Txs finalized with code 0.
    pub txs_ok: usize,
    /// Per message type URL: (messages in finalized txs, of which in txs that succeeded).
    pub msgs: BTreeMap<&'static str, (usize, usize)>,
    /// Per message type URL: messages in txs sent to CheckTx.
    pub checked: BTreeMap<&'static str, usize>,
    /// The chain stopped at a governance upgrade halt height.
    pub halted_for_upgrade: bool,
}

/// The fixed genesis `app_state`: keys 0..KEYS-1 funded with [`FUNDS`] (the last key is not),
/// a funded community pool, keys 3 and 4 on the notary panel, and short epochs, windows and
/// voting periods so that a few blocks of fuzzed time reach epoch ends and tallies.
pub fn genesis() -> serde_json::Value {
    let keys = keys();
    let mut funded: Vec<(Address, u128)> = keys
        .iter()
        .take(KEYS - 1)
        .enumerate()
        .map(|(i, _)| (key_address(i), FUNDS))
        .collect();
    funded.push((magnet_core::services::community_pool(), FUNDS));
    let mut g = genesis_app_state(&funded);
    g["epochs"] =
        serde_json::json!({ "params": { "duration_secs": 120, "max_ends_per_block": 16 } });
    let mut reg = serde_json::to_value(magnet_registry::Params::default()).unwrap_or_default();
    reg["heartbeat_interval_secs"] = 10.into();
    reg["min_heartbeats_per_epoch"] = 2.into();
    reg["liveness_window_secs"] = 100.into();
    reg["unbonding_delay_secs"] = 300.into();
    g["registry"] = serde_json::json!({ "params": reg });
    let mut co = serde_json::to_value(magnet_contrib::Params::default()).unwrap_or_default();
    co["commit_window_secs"] = 60.into();
    co["reveal_window_secs"] = 30.into();
    co["eval_commit_window_secs"] = 30.into();
    co["eval_reveal_window_secs"] = 30.into();
    co["challenge_window_secs"] = 60.into();
    co["evaluator_slots"] = 3.into();
    co["min_evaluations"] = 1.into();
    g["contrib"] = serde_json::json!({ "params": co });
    g["gov"] = serde_json::json!({ "params": {
        "min_deposit": "1000", "deposit_period_secs": 60, "voting_period_secs": 60,
        "quorum_ppm": 334000, "threshold_ppm": 500000, "veto_ppm": 334000,
        "burn_on_veto": true, "burn_on_no_quorum": false
    }});
    g["notary"] = serde_json::json!({
        "params": { "min_notary_bond": "1000", "min_challenge_bond": "1000",
                    "vote_window_secs": 60, "quorum_ppm": 500000, "no_quorum_fee_ppm": 100000 },
        "panel": [key_address(3).to_string(), key_address(4).to_string()],
    });
    g
}

/// The [`KEYS`] signing keys (`Signer::from_seed(0xF0 + i)`).
pub fn keys() -> Vec<Signer> {
    (0..KEYS as u64)
        .map(|i| Signer::from_seed(0xF0 + i))
        .collect()
}

/// Key `i`'s (compressed public key, address), computed once per process: deriving a public
/// key is a scalar multiplication, and every address field of every input needs one.
fn key_info(i: usize) -> &'static (Vec<u8>, Address) {
    static INFO: std::sync::OnceLock<Vec<(Vec<u8>, Address)>> = std::sync::OnceLock::new();
    let info = INFO.get_or_init(|| {
        keys()
            .iter()
            .map(|k| {
                let pk = k.pub_key();
                let a = Address::from_pubkey(&pk);
                (pk, a)
            })
            .collect()
    });
    &info[i % KEYS]
}

fn key_address(i: usize) -> Address {
    key_info(i).1
}

/// Parse `data` as a [`FuzzInput`] and [`run_input`] it with stores under the temp dir.
pub fn run_bytes(data: &[u8]) -> Result<RunSummary, Finding> {
    run_input(&FuzzInput::from_bytes(data), &std::env::temp_dir())
}

/// A directory removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(base: &Path, tag: &str) -> Result<ScratchDir, Finding> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = base.join(format!("magnet-fuzz-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).map_err(|e| Finding::Setup(format!("{}: {e}", p.display())))?;
        Ok(ScratchDir(p))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config() -> AppConfig {
    AppConfig {
        store: StoreConfig {
            keep_recent: 0,
            fsync: false,
        },
        min_gas_price: "0".into(),
        snapshot: Default::default(),
    }
}

fn open_app(dir: &Path) -> Result<MagnetApp, Finding> {
    let app = MagnetApp::open(dir, config()).map_err(|e| Finding::Setup(e.to_string()))?;
    static GENESIS: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let state = GENESIS
        .get_or_init(|| serde_json::to_vec(&genesis()).unwrap_or_default())
        .clone();
    app.init_chain(pb::RequestInitChain {
        time: Some(timestamp(GENESIS_TIME)),
        chain_id: CHAIN_ID.into(),
        consensus_params: None,
        validators: vec![],
        app_state_bytes: state.into(),
        initial_height: 1,
    });
    Ok(app)
}

fn timestamp(secs: i64) -> tendermint_proto::google::protobuf::Timestamp {
    tendermint_proto::google::protobuf::Timestamp {
        seconds: secs,
        nanos: 0,
    }
}

fn is_panic(codespace: &str, code: u32) -> bool {
    codespace == "sdk" && code == PANIC_CODE
}

/// Run `input` on two fresh apps (stores under `base`) and check every oracle after every
/// block (see the module docs). `Ok` carries what ran; `Err` is a bug in the app. With the
/// environment variable `MAGNET_FUZZ_TRACE` set, every CheckTx and FinalizeBlock result is
/// printed to stderr (to read a crash input).
pub fn run_input(input: &FuzzInput, base: &Path) -> Result<RunSummary, Finding> {
    let dir_a = ScratchDir::new(base, "a")?;
    let dir_b = ScratchDir::new(base, "b")?;
    let a = open_app(&dir_a.0)?;
    let b = open_app(&dir_b.0)?;
    let keys = keys();
    let mut summary = RunSummary::default();
    let mut time = GENESIS_TIME;
    let proposer: Vec<u8> = vec![1u8; 20];
    let trace = std::env::var_os("MAGNET_FUZZ_TRACE").is_some();
    // Height 1 is the fixed prelude (CheckTx refuses txs until the chain has committed a
    // block, and stateful messages need something to act on).
    // Signing is deterministic (RFC 6979), so the prelude's bytes are built once per process.
    static PRELUDE: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    let prelude = PRELUDE.get_or_init(|| prelude_txs(&keys));
    for app in [&a, &b] {
        let f = app
            .try_finalize_block(pb::RequestFinalizeBlock {
                txs: prelude.iter().cloned().map(Into::into).collect(),
                decided_last_commit: None,
                misbehavior: vec![],
                hash: block_hash(1).into(),
                height: 1,
                time: Some(timestamp(time)),
                next_validators_hash: Default::default(),
                proposer_address: proposer.clone().into(),
            })
            .map_err(|e| Finding::Finalize {
                height: 1,
                what: e.to_string(),
            })?;
        if let Some((i, r)) = f.tx_results.iter().enumerate().find(|(_, r)| r.code != 0) {
            return Err(Finding::Setup(format!(
                "prelude tx {i} failed: {} {} {}",
                r.codespace, r.code, r.log
            )));
        }
        app.commit();
    }
    for (i, block) in input.blocks.iter().take(MAX_BLOCKS).enumerate() {
        let height = i as i64 + 2;
        time = time.saturating_add(match block.step {
            TimeStep::Normal => 5,
            TimeStep::Seconds(s) => i64::from(s) + 1,
            TimeStep::Minutes(m) => (i64::from(m) + 1) * 60,
            TimeStep::Day => 86_400,
            TimeStep::Same => 0,
        });
        // The mempool: materialize each tx against the committed state, then CheckTx it.
        let mut pending = [0u64; KEYS];
        let mut mempool: Vec<Vec<u8>> = Vec::new();
        let ctx = StateCtx::read(&a, height, time);
        for (t, tx) in block.txs.iter().take(MAX_TXS).enumerate() {
            let bytes = ctx.materialize(tx, &keys, &pending);
            for m in tx.msgs.iter().take(MAX_MSGS) {
                *summary.checked.entry(m.type_url()).or_default() += 1;
            }
            let copies = if tx.duplicate { 2 } else { 1 };
            for _ in 0..copies {
                let r = a.check_tx(pb::RequestCheckTx {
                    tx: bytes.clone().into(),
                    r#type: 0,
                });
                if is_panic(&r.codespace, r.code) {
                    return Err(Finding::TxPanicked {
                        height,
                        stage: "CheckTx",
                        index: t,
                        log: r.log,
                    });
                }
                if trace {
                    eprintln!(
                        "h{height} checktx {t} signer {} tamper {:?} msgs {:?}: {} {} {}",
                        tx.signer as usize % KEYS,
                        tx.tamper,
                        tx.msgs
                            .iter()
                            .take(MAX_MSGS)
                            .map(FuzzMsg::type_url)
                            .collect::<Vec<_>>(),
                        r.codespace,
                        r.code,
                        r.log
                    );
                }
                if r.code == 0 {
                    let s = usize::from(tx.signer) % KEYS;
                    pending[s] = pending[s].saturating_add(1);
                }
                mempool.push(bytes.clone());
            }
        }
        let prepared = a.prepare_proposal(pb::RequestPrepareProposal {
            max_tx_bytes: 4 << 20,
            txs: mempool.iter().cloned().map(Into::into).collect(),
            local_last_commit: None,
            misbehavior: vec![],
            height,
            time: Some(timestamp(time)),
            next_validators_hash: Default::default(),
            proposer_address: proposer.clone().into(),
        });
        let process = |app: &MagnetApp, txs: &[prost::bytes::Bytes]| {
            app.process_proposal(pb::RequestProcessProposal {
                txs: txs.to_vec(),
                proposed_last_commit: None,
                misbehavior: vec![],
                hash: block_hash(height).into(),
                height,
                time: Some(timestamp(time)),
                next_validators_hash: Default::default(),
                proposer_address: proposer.clone().into(),
            })
            .status
        };
        let accept = pb::response_process_proposal::ProposalStatus::Accept as i32;
        let own = process(&a, &prepared.txs);
        if own != accept {
            return Err(Finding::OwnProposalRejected { height });
        }
        if process(&b, &prepared.txs) != own {
            return Err(Finding::Diverged {
                height,
                what: "ProcessProposal verdict on the prepared block".into(),
            });
        }
        let mut txs = prepared.txs;
        if block.raw_proposal {
            // The byzantine proposer keeps every mempool tx, in order, that ProcessProposal
            // still accepts after the ones kept so far: txs that CheckTx refused for what
            // their messages say (not their envelope) reach FinalizeBlock this way.
            let mut raw: Vec<prost::bytes::Bytes> = Vec::new();
            for tx in &mempool {
                raw.push(tx.clone().into());
                if process(&a, &raw) != accept {
                    raw.pop();
                }
            }
            if process(&b, &raw) != accept {
                return Err(Finding::Diverged {
                    height,
                    what: "ProcessProposal verdict on the byzantine block".into(),
                });
            }
            txs = raw;
        }
        let req = pb::RequestFinalizeBlock {
            txs: txs.clone(),
            decided_last_commit: None,
            misbehavior: vec![],
            hash: block_hash(height).into(),
            height,
            time: Some(timestamp(time)),
            next_validators_hash: Default::default(),
            proposer_address: proposer.clone().into(),
        };
        let fa = a.try_finalize_block(req.clone());
        let fb = b.try_finalize_block(req);
        let (fa, fb) = match (fa, fb) {
            (Ok(fa), Ok(fb)) => (fa, fb),
            (
                Err(crate::FinalizeError::UpgradeNeeded { .. }),
                Err(crate::FinalizeError::UpgradeNeeded { .. }),
            ) => {
                summary.halted_for_upgrade = true;
                return Ok(summary);
            }
            (Err(e), _) | (_, Err(e)) => {
                return Err(Finding::Finalize {
                    height,
                    what: e.to_string(),
                })
            }
        };
        for (index, r) in fa.tx_results.iter().enumerate() {
            if trace {
                eprintln!(
                    "h{height} finalize {index}: {} {} {}",
                    r.codespace, r.code, r.log
                );
            }
            if is_panic(&r.codespace, r.code) {
                return Err(Finding::TxPanicked {
                    height,
                    stage: "FinalizeBlock",
                    index,
                    log: r.log.clone(),
                });
            }
        }
        let codes = |f: &pb::ResponseFinalizeBlock| -> Vec<(u32, String)> {
            f.tx_results
                .iter()
                .map(|r| (r.code, r.codespace.clone()))
                .collect()
        };
        if codes(&fa) != codes(&fb) {
            return Err(Finding::Diverged {
                height,
                what: format!("tx results {:?} vs {:?}", codes(&fa), codes(&fb)),
            });
        }
        if fa.app_hash != fb.app_hash {
            return Err(Finding::Diverged {
                height,
                what: format!(
                    "app hash {} vs {}",
                    hex::encode(&fa.app_hash),
                    hex::encode(&fb.app_hash)
                ),
            });
        }
        if fa.validator_updates != fb.validator_updates {
            return Err(Finding::Diverged {
                height,
                what: "validator updates".into(),
            });
        }
        a.commit();
        b.commit();
        if a.last_commit() != b.last_commit() {
            return Err(Finding::Diverged {
                height,
                what: "committed (height, app hash)".into(),
            });
        }
        check_books(&a).map_err(|what| Finding::Books { height, what })?;
        summary.blocks += 1;
        for (tx, r) in txs.iter().zip(&fa.tx_results) {
            summary.txs += 1;
            if r.code == 0 {
                summary.txs_ok += 1;
            }
            if let Ok(d) = crate::tx::decode_standalone(tx) {
                for m in &d.msgs {
                    if let Some(url) = MSG_TYPE_URLS.iter().find(|u| **u == m.type_url) {
                        let e = summary.msgs.entry(url).or_default();
                        e.0 += 1;
                        if r.code == 0 {
                            e.1 += 1;
                        }
                    }
                }
            }
        }
    }
    Ok(summary)
}

/// The prelude block (height 1, every tx must succeed): keys 0, 1 and 2 register nodes whose
/// node keys are keys 3, 4 and 5 and bond for governance; keys 3 and 4 (the notary panel)
/// bond as notaries; key 0 creates a training job (job 1) and key 1 a plain one (job 2);
/// key 2 registers a data record (record 1); key 0 submits a text proposal with its full
/// deposit (proposal 1, in its voting period).
pub fn prelude_txs(keys: &[Signer]) -> Vec<Vec<u8>> {
    use magnet_gov::msgs as gv;
    use magnet_jobs::msgs as jb;
    use magnet_notary::msgs as no;
    use magnet_registry::msgs as rg;
    let addr = key_address;
    let mut per_key: Vec<Vec<prost_types::Any>> = vec![Vec::new(); KEYS];
    for (op, node, tier, bond) in [
        (0, 3, "orchestrator", 20_000_000_000u128),
        (1, 4, "gpu_compute", 2_000_000_000),
        (2, 5, "gpu_compute", 2_000_000_000),
    ] {
        per_key[op].push(to_any(&rg::MsgRegisterNode {
            operator: addr(op).to_bech32(),
            node_pubkey: key_info(node).0.clone(),
            tier: tier.into(),
            endpoint: format!("https://node{op}.example:26656"),
            region: "eu".into(),
            hardware_profile: "{}".into(),
            bond: bond.to_string(),
            ssd: None,
        }));
        per_key[op].push(rg::bond_gov(&addr(op), 1_000_000_000));
    }
    for n in [3, 4] {
        per_key[n].push(no::bond(&addr(n), 1_000_000));
    }
    per_key[0].push(to_any(&jb::MsgCreateJob {
        creator: addr(0).to_bech32(),
        domain: "code".into(),
        eval_set_hash: magnet_core::sha256(b"eval").to_vec(),
        base_checkpoint: magnet_core::sha256(b"base").to_vec(),
        budget: "5000000000".into(),
        deadline_secs: (GENESIS_TIME as u64).saturating_add(86_400 * 30),
        training: Some(magnet_proto::jobs::v1::TrainingSpec {
            inner_steps: 10,
            batch_size: 4,
            seq_len: 64,
            params: 1_000_000,
            first_height: 3,
            blocks_per_round: 2,
            leader_rule: "round_robin".into(),
            max_staleness: 1,
            stale_decay_bps: 5_000,
            outer: None,
        }),
        research: None,
    }));
    per_key[1].push(jb::create_job(
        &addr(1),
        "math",
        magnet_core::sha256(b"eval2"),
        magnet_core::sha256(b"base2"),
        1_000_000_000,
        (GENESIS_TIME as u64).saturating_add(86_400 * 30),
    ));
    per_key[2].push(magnet_data::msgs::register(
        &addr(2),
        magnet_core::sha256(&[0]),
        1 << 20,
        "code",
    ));
    per_key[0].push(gv::submit(
        &addr(0),
        "a text proposal",
        &serde_json::json!({ "text": { "body": "hello" } }),
        1_000,
    ));
    per_key
        .into_iter()
        .enumerate()
        .filter(|(_, msgs)| !msgs.is_empty())
        .map(|(i, msgs)| {
            let mut b = TxBuilder::new(CHAIN_ID, i as u64, 0).fee(2_000, 10_000_000);
            b.msgs = msgs
                .into_iter()
                .map(|a| cosmrs::Any {
                    type_url: a.type_url,
                    value: a.value,
                })
                .collect();
            b.sign(&keys[i])
        })
        .collect()
}

fn block_hash(height: i64) -> Vec<u8> {
    let mut hash = [0u8; 32];
    hash[..8].copy_from_slice(&height.to_be_bytes());
    hash.to_vec()
}

/// The books after a commit: the umag total supply (`/cosmos.bank.v1beta1.Query/TotalSupply`)
/// equals the sum of every umag balance in state, module accounts included (read from
/// [`MagnetApp::export`]'s bank section).
///
/// Then the whole-app invariant set on the committed state ([`crate::invariants::check_all`]:
/// supply = Σ balances per denom, every module escrow = the records that claim it, settlements
/// without gaps, no overflowed amount — ADR 0100), so every fuzz input and every corpus replay
/// checks all of them.
pub fn check_books(app: &MagnetApp) -> Result<(), String> {
    let r = app.query(pb::RequestQuery {
        data: bankpb::QueryTotalSupplyRequest { pagination: None }
            .encode_to_vec()
            .into(),
        path: "/cosmos.bank.v1beta1.Query/TotalSupply".into(),
        height: 0,
        prove: false,
    });
    if r.code != 0 {
        return Err(format!("TotalSupply query failed: {}", r.log));
    }
    let supply: u128 = bankpb::QueryTotalSupplyResponse::decode(r.value.as_ref())
        .map_err(|e| format!("TotalSupply response: {e}"))?
        .supply
        .iter()
        .filter(|c| c.denom == magnet_core::NATIVE_DENOM)
        .map(|c| {
            c.amount
                .parse::<u128>()
                .map_err(|e| format!("supply {:?}: {e}", c.amount))
        })
        .sum::<Result<u128, String>>()?;
    let exported = app.export().map_err(|e| format!("export: {e}"))?;
    let balances = exported.app_state["bank"]["balances"]
        .as_array()
        .ok_or("export has no bank.balances")?;
    let mut sum: u128 = 0;
    for b in balances {
        for c in b["coins"].as_array().ok_or("a balance without coins")? {
            if c["denom"] != magnet_core::NATIVE_DENOM {
                continue;
            }
            let a = match &c["amount"] {
                serde_json::Value::String(s) => s.parse::<u128>().map_err(|e| e.to_string())?,
                v => v.as_u64().map(u128::from).ok_or("a non-numeric amount")?,
            };
            sum = sum
                .checked_add(a)
                .ok_or("the sum of balances overflows u128")?;
        }
    }
    if sum != supply {
        return Err(format!("supply {supply} ≠ Σ balances {sum}"));
    }
    app.with_committed_state(crate::invariants::check_all)
        .map_err(|e| format!("reading the committed state: {e}"))?
        .map_err(|v| format!("invariant {}: {v}", v.name()))
}

// ---------------------------------------------------------------------------------------------
// Materializing txs against the chain's state
// ---------------------------------------------------------------------------------------------

/// What materializing a tx reads from the chain before a block.
struct StateCtx<'a> {
    app: &'a MagnetApp,
    height: i64,
    time: i64,
    epoch: u64,
    /// Per key: (account number, committed sequence), None if the account does not exist.
    accounts: Vec<Option<(u64, u64)>>,
}

impl<'a> StateCtx<'a> {
    fn read(app: &'a MagnetApp, height: i64, time: i64) -> StateCtx<'a> {
        let r = app.query(pb::RequestQuery {
            data: Default::default(),
            path: "/magnet.epochs.v1/state".into(),
            height: 0,
            prove: false,
        });
        let epoch = serde_json::from_slice::<serde_json::Value>(&r.value)
            .ok()
            .and_then(|v| v["current"].as_u64())
            .unwrap_or(0);
        let accounts = (0..KEYS).map(|i| account(app, &key_address(i))).collect();
        StateCtx {
            app,
            height,
            time,
            epoch,
            accounts,
        }
    }

    fn materialize(&self, tx: &FuzzTx, keys: &[Signer], pending: &[u64; KEYS]) -> Vec<u8> {
        let si = usize::from(tx.signer) % KEYS;
        let signer = &keys[si];
        let (num, seq) = self.accounts[si].unwrap_or((0, 0));
        let current = seq.saturating_add(pending[si]);
        let (mut seq_c, mut sig_c, mut fee_c, mut gas_c) = (
            SeqChoice::Current,
            SigChoice::Valid,
            FeeChoice::Normal,
            GasChoice::Normal,
        );
        match tx.tamper {
            None => {}
            Some(Tamper::Sequence(c)) => seq_c = c,
            Some(Tamper::Signature(c)) => sig_c = c,
            Some(Tamper::Fee(c)) => fee_c = c,
            Some(Tamper::Gas(c)) => gas_c = c,
        }
        let sequence = match seq_c {
            SeqChoice::Current => current,
            SeqChoice::Stale => current.wrapping_sub(1),
            SeqChoice::Future => current.wrapping_add(1),
            SeqChoice::Any(s) => s,
        };
        let fee = match fee_c {
            FeeChoice::Normal => 2_000,
            FeeChoice::Zero => 0,
            FeeChoice::Small(n) => u128::from(n),
            FeeChoice::Huge => FUNDS * 1_000,
            FeeChoice::Max => u128::MAX,
        };
        let gas = match gas_c {
            GasChoice::Normal => 400_000,
            GasChoice::Zero => 0,
            GasChoice::Tiny(n) => u64::from(n),
            GasChoice::Large => 10_000_000,
            GasChoice::Max => u64::MAX,
        };
        let mut b = TxBuilder::new(CHAIN_ID, num, sequence).fee(fee, gas);
        if let Some(memo) = &tx.memo {
            b.memo = self.text(memo, &["", "hello", "gm"]);
        }
        let mut msgs: Vec<&FuzzMsg> = tx.msgs.iter().take(MAX_MSGS).collect();
        let fallback = FuzzMsg::BankSend {
            from: Addr::Signer,
            to: Addr::Key(1),
            amount: Amt::Small(1),
            other_denom: false,
        };
        if msgs.is_empty() {
            msgs.push(&fallback);
        }
        for m in msgs {
            let a = self.msg(m, si, keys);
            b.msgs.push(cosmrs::Any {
                type_url: a.type_url,
                value: a.value,
            });
        }
        match sig_c {
            SigChoice::Valid => b.sign(signer),
            SigChoice::WrongKey(k) => {
                // The signer info names `signer`'s key; the signature is another key's.
                let other = &keys[(si + 1 + usize::from(k) % (KEYS - 1)) % KEYS];
                let good = b.sign(signer);
                let forged = b.sign(other);
                replace_signature(&good, signature_of(&forged))
            }
            SigChoice::Flipped(bit) => {
                let good = b.sign(signer);
                let mut sig = signature_of(&good);
                if !sig.is_empty() {
                    let i = usize::from(bit) % (sig.len() * 8);
                    sig[i / 8] ^= 1 << (i % 8);
                }
                replace_signature(&good, sig)
            }
            SigChoice::Empty => b.for_simulation(signer),
            SigChoice::Truncated => {
                let good = b.sign(signer);
                let mut sig = signature_of(&good);
                sig.truncate(63);
                replace_signature(&good, sig)
            }
            SigChoice::WrongChain => {
                b.chain_id = "magnet-other-1".into();
                b.sign(signer)
            }
            SigChoice::WrongAccount(n) => {
                b.account_number = n;
                b.sign(signer)
            }
            SigChoice::NoPubKey => {
                b.include_pub_key = false;
                b.sign(signer)
            }
        }
    }

    fn addr(&self, a: &Addr, signer: usize) -> String {
        let key = |k: &u8| key_address(usize::from(*k)).to_bech32();
        match a {
            Addr::Signer => key_address(signer).to_bech32(),
            Addr::Key(k) => key(k),
            Addr::Nobody(b) => Address([*b; 20]).to_bech32(),
            Addr::CommunityPool => magnet_core::services::community_pool().to_bech32(),
            Addr::Empty => String::new(),
            Addr::BadChecksum(k) => {
                let mut s = key(k);
                let last = if s.ends_with('q') { 'p' } else { 'q' };
                s.pop();
                s.push(last);
                s
            }
            Addr::WrongPrefix(k) => {
                let s = key(k);
                match s.split_once('1') {
                    Some((_, rest)) => format!("cosmos1{rest}"),
                    None => s,
                }
            }
            Addr::Upper(k) => key(k).to_uppercase(),
            Addr::Raw(t) => self.text(t, &["magnet1", "magnet1qqqq", "1", "x"]),
        }
    }

    fn amt(&self, a: &Amt) -> String {
        match a {
            Amt::Small(n) => (u32::from(*n) + 1).to_string(),
            Amt::Bond(n) => ((u128::from(*n) + 1) * 1_000_000_000).to_string(),
            Amt::Zero => "0".into(),
            Amt::Empty => String::new(),
            Amt::U64Max => u64::MAX.to_string(),
            Amt::Max => u128::MAX.to_string(),
            Amt::Overflow => "340282366920938463463374607431768211456".into(),
            Amt::Negative => "-1".into(),
            Amt::WithDenom(n) => format!("{n}umag"),
            Amt::Odd(n) => [
                "1e6",
                " 7 ",
                "0x10",
                "1.5",
                "+5",
                "٣",
                "00000000000000000000000042",
            ][usize::from(*n) % 7]
                .into(),
            Amt::Any(n) => n.to_string(),
            Amt::Raw(t) => self.text(t, &["1000", "abc", "1,000"]),
        }
    }

    fn text(&self, t: &Text, pool: &[&str]) -> String {
        match t {
            Text::Plausible(i) => pool
                .get(usize::from(*i) % pool.len().max(1))
                .map(|s| s.to_string())
                .unwrap_or_default(),
            Text::Empty => String::new(),
            Text::Long(n) => "x".repeat(usize::from(*n) % 20_001),
            Text::Odd => "é\u{0}\u{1b}[31m\u{202e}𝕏\n\t\"'\\".into(),
            Text::Any(s) => {
                let mut s = s.clone();
                let mut cut = s.len().min(600);
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                s.truncate(cut);
                s
            }
        }
    }

    /// `n` for a field whose "current" value is `near` (the epoch, the height, …).
    fn num(&self, n: &Num, near: u64) -> u64 {
        match n {
            Num::Small(v) => u64::from(*v % 8),
            Num::Near(d) => near.saturating_add(u64::from(*d % 8)).saturating_sub(4),
            Num::Max => u64::MAX,
            Num::MaxMinus1 => u64::MAX - 1,
            Num::I64Max => i64::MAX as u64,
            Num::Any(v) => *v,
        }
    }

    fn work(&self, w: &WorkSpec) -> magnet_contrib::msgs::WorkResult {
        magnet_contrib::msgs::WorkResult {
            checkpoint_hash: hash(&w.checkpoint),
            steps: self.num(&w.steps, 1_000),
            params: self.num(&w.params, 1_000_000),
            data_hash: hash(&w.data),
            kind: magnet_contrib::msgs::KINDS
                .get(usize::from(w.kind))
                .map(|s| s.to_string())
                .unwrap_or_else(|| format!("kind-{}", w.kind)),
            entries: w
                .entries
                .iter()
                .take(4)
                .map(|(r, d)| magnet_contrib::msgs::LineageEntry {
                    round: self.num(r, 0),
                    delta_hash: hash(d),
                })
                .collect(),
        }
    }

    fn msg(&self, m: &FuzzMsg, signer: usize, keys: &[Signer]) -> prost_types::Any {
        use magnet_contrib::msgs as co;
        use magnet_data::msgs as da;
        use magnet_gov::msgs as gv;
        use magnet_jobs::msgs as jb;
        use magnet_notary::msgs as no;
        use magnet_registry::msgs as rg;
        let ad = |a: &Addr| self.addr(a, signer);
        let tiers = &magnet_registry::params::TIER_NAMES;
        let h = self.height.max(0) as u64;
        match m {
            FuzzMsg::BankSend {
                from,
                to,
                amount,
                other_denom,
            } => prost_types::Any {
                type_url: crate::bank::MSG_SEND_URL.into(),
                value: bankpb::MsgSend {
                    from_address: ad(from),
                    to_address: ad(to),
                    amount: vec![Coin {
                        denom: if *other_denom { "uatom" } else { "umag" }.into(),
                        amount: self.amt(amount),
                    }],
                }
                .encode_to_vec(),
            },
            FuzzMsg::RegisterNode {
                operator,
                node_key,
                tier,
                endpoint,
                region,
                hardware,
                bond,
            } => to_any(&rg::MsgRegisterNode {
                operator: ad(operator),
                node_pubkey: match node_key {
                    255 => {
                        let mut k = vec![0x02];
                        k.extend_from_slice(&[0xff; 32]);
                        k
                    }
                    254 => vec![0x02; 32],
                    k => key_info(usize::from(*k)).0.clone(),
                },
                tier: self.text(tier, tiers),
                endpoint: self.text(endpoint, &["https://node.example:26656", "tcp://1.2.3.4:1"]),
                region: self.text(region, &["eu", "us-east"]),
                hardware_profile: self.text(hardware, &["{\"gpu\":\"h100\"}", "cpu"]),
                bond: self.amt(bond),
                // Region "eu" carries a passing SSD report, others none: both sides of the
                // storage_node gate are reached without changing the input format.
                ssd: (self.text(region, &["eu", "us-east"]) == "eu").then_some(rg::SsdReport {
                    read_kbps: 200_000,
                    write_kbps: 100_000,
                    block_size: 4096,
                    file_bytes: 1 << 30,
                    direct_io: true,
                }),
            }),
            FuzzMsg::Heartbeat { node } => to_any(&rg::MsgHeartbeat { node: ad(node) }),
            FuzzMsg::ChangeTier {
                operator,
                tier,
                extra_bond,
            } => to_any(&rg::MsgChangeTier {
                operator: ad(operator),
                tier: self.text(tier, tiers),
                extra_bond: self.amt(extra_bond),
                ssd: None,
            }),
            FuzzMsg::UnbondNode { operator } => to_any(&rg::MsgUnbondNode {
                operator: ad(operator),
            }),
            FuzzMsg::Unjail { operator } => to_any(&rg::MsgUnjail {
                operator: ad(operator),
            }),
            FuzzMsg::BondGov { owner, amount } => to_any(&rg::MsgBondGov {
                owner: ad(owner),
                amount: self.amt(amount),
            }),
            FuzzMsg::UnbondGov { owner, amount } => to_any(&rg::MsgUnbondGov {
                owner: ad(owner),
                amount: self.amt(amount),
            }),
            FuzzMsg::ContribCommit {
                node,
                epoch,
                job,
                commitment,
            } => {
                let node_s = ad(node);
                let epoch = self.num(epoch, self.epoch);
                let job = self.num(job, 1);
                let commitment = match commitment {
                    Commitment::To(w, nonce) => {
                        match (node_s.parse::<Address>(), co::work(Some(&self.work(w)))) {
                            (Ok(a), Ok(work)) => co::work_commitment(
                                CHAIN_ID,
                                epoch,
                                job,
                                &a,
                                &work,
                                &nonce_bytes(&Nonce::Pool(*nonce)),
                            )
                            .to_vec(),
                            _ => hash(&Hash::Pool(*nonce)),
                        }
                    }
                    Commitment::Bytes(b) => hash(b),
                };
                to_any(&co::MsgCommit {
                    node: node_s,
                    epoch,
                    job,
                    commitment,
                })
            }
            FuzzMsg::ContribReveal {
                node,
                epoch,
                job,
                work,
                nonce,
            } => to_any(&co::MsgReveal {
                node: ad(node),
                epoch: self.num(epoch, self.epoch),
                job: self.num(job, 1),
                result: work.as_ref().map(|w| self.work(w)),
                nonce: nonce_bytes(nonce),
            }),
            FuzzMsg::EvalCommit {
                node,
                epoch,
                job,
                contributor,
                commitment,
            } => {
                let node_s = ad(node);
                let contributor_s = ad(contributor);
                let epoch = self.num(epoch, self.epoch);
                let job = self.num(job, 1);
                let commitment = match commitment {
                    Commitment::To(score, nonce) => {
                        match (node_s.parse::<Address>(), contributor_s.parse::<Address>()) {
                            (Ok(n), Ok(c)) => co::score_commitment(
                                CHAIN_ID,
                                epoch,
                                job,
                                &c,
                                &n,
                                *score,
                                &nonce_bytes(&Nonce::Pool(*nonce)),
                            )
                            .to_vec(),
                            _ => hash(&Hash::Pool(*nonce)),
                        }
                    }
                    Commitment::Bytes(b) => hash(b),
                };
                to_any(&co::MsgEvalCommit {
                    node: node_s,
                    epoch,
                    job,
                    contributor: contributor_s,
                    commitment,
                })
            }
            FuzzMsg::EvalReveal {
                node,
                epoch,
                job,
                contributor,
                score,
                nonce,
            } => to_any(&co::MsgEvalReveal {
                node: ad(node),
                epoch: self.num(epoch, self.epoch),
                job: self.num(job, 1),
                contributor: ad(contributor),
                score: *score,
                nonce: nonce_bytes(nonce),
            }),
            FuzzMsg::NotaryChallenge {
                challenger,
                contrib,
                data_id,
                raw_target,
                bond,
                evidence,
            } => {
                let target = match (raw_target, contrib) {
                    (Some(t), _) => self.text(t, &["contrib/", "data/", "contrib/0/0/x"]),
                    (None, Some((e, j, op))) => format!(
                        "contrib/{}/{}/{}",
                        self.num(e, self.epoch),
                        self.num(j, 1),
                        ad(op)
                    ),
                    (None, None) => format!("data/{}", self.num(data_id, 1)),
                };
                to_any(&no::MsgChallenge {
                    challenger: ad(challenger),
                    target,
                    bond: self.amt(bond),
                    evidence_hash: hash(evidence),
                })
            }
            FuzzMsg::NotaryVote { notary, id, uphold } => to_any(&no::MsgVote {
                notary: ad(notary),
                challenge_id: self.num(id, 1),
                uphold: *uphold,
            }),
            FuzzMsg::NotaryBond { notary, amount } => to_any(&no::MsgBondNotary {
                notary: ad(notary),
                amount: self.amt(amount),
            }),
            FuzzMsg::RegisterData {
                contributor,
                hash: hsh,
                size,
                domain,
            } => to_any(&da::MsgRegisterData {
                contributor: ad(contributor),
                hash: hash(hsh),
                size: self.num(size, 1 << 20),
                domain: self.text(domain, &["code", "math", "web"]),
            }),
            FuzzMsg::CreateJob {
                creator,
                domain,
                eval_set,
                base,
                budget,
                deadline,
                training,
            } => to_any(&jb::MsgCreateJob {
                creator: ad(creator),
                domain: self.text(domain, &["code", "math"]),
                eval_set_hash: hash(eval_set),
                base_checkpoint: hash(base),
                budget: self.amt(budget),
                deadline_secs: self.num(deadline, (self.time.max(0) as u64).saturating_add(600)),
                training: training.as_ref().map(|t| self.training(t, h)),
                research: None,
            }),
            FuzzMsg::CancelJob { creator, job } => to_any(&jb::MsgCancelJob {
                creator: ad(creator),
                job: self.num(job, 1),
            }),
            FuzzMsg::RecordRound {
                leader,
                job,
                round,
                base,
                merged,
                accepted,
                rejected,
            } => {
                let job_n = self.num(job, 1);
                let round_n = self.num(round, 0);
                to_any(&jb::MsgRecordRound {
                    leader: ad(leader),
                    job: job_n,
                    round: round_n,
                    base_hash: hash(base),
                    merged_hash: hash(merged),
                    accepted: accepted
                        .iter()
                        .take(4)
                        .map(|a| self.accepted(a, job_n, round_n, keys))
                        .collect(),
                    rejected: rejected
                        .iter()
                        .take(4)
                        .map(|(n, d, r)| jb::RejectedDelta {
                            node: ad(n),
                            delta_hash: hash(d),
                            reason: self.text(r, &["norm outlier", "stale"]),
                        })
                        .collect(),
                })
            }
            FuzzMsg::ChallengeRound {
                challenger,
                job,
                round,
                bond,
                recomputed,
                field,
            } => to_any(&jb::MsgChallengeRound {
                challenger: ad(challenger),
                job: self.num(job, 1),
                round: self.num(round, 0),
                bond: self.amt(bond),
                recomputed_hash: hash(recomputed),
                field: self.text(field, &jb::CHALLENGE_FIELDS),
            }),
            FuzzMsg::AuditCommit {
                auditor,
                job,
                round,
                commitment,
            } => {
                let auditor_s = ad(auditor);
                let job = self.num(job, 1);
                let round = self.num(round, 0);
                let commitment = match commitment {
                    Commitment::To((fraud, recomputed), nonce) => {
                        match auditor_s.parse::<Address>() {
                            Ok(a) => jb::verdict_commitment(
                                CHAIN_ID,
                                job,
                                round,
                                &a,
                                *fraud,
                                &hash32(recomputed),
                                &hash32(&Hash::Pool(*nonce)),
                            )
                            .to_vec(),
                            Err(_) => hash(&Hash::Pool(*nonce)),
                        }
                    }
                    Commitment::Bytes(b) => hash(b),
                };
                to_any(&jb::MsgAuditCommit {
                    auditor: auditor_s,
                    job,
                    round,
                    commitment,
                })
            }
            FuzzMsg::AuditReveal {
                auditor,
                job,
                round,
                fraud,
                recomputed,
                nonce,
            } => to_any(&jb::MsgAuditReveal {
                auditor: ad(auditor),
                job: self.num(job, 1),
                round: self.num(round, 0),
                fraud: *fraud,
                recomputed_hash: hash(recomputed),
                nonce: hash(&Hash::Pool(*nonce)),
            }),
            FuzzMsg::PayForInference {
                payer,
                model,
                server,
                amount,
            } => to_any(&jb::MsgPayForInference {
                payer: ad(payer),
                model: self.num(model, 1),
                server: ad(server),
                amount: self.amt(amount),
            }),
            FuzzMsg::GovSubmit {
                proposer,
                title,
                content,
                deposit,
            } => to_any(&gv::MsgSubmitProposal {
                proposer: ad(proposer),
                title: self.text(title, &["raise the fee", "upgrade"]),
                content_json: self.content(content, signer),
                deposit: self.amt(deposit),
            }),
            FuzzMsg::GovDeposit {
                depositor,
                id,
                amount,
            } => to_any(&gv::MsgDeposit {
                depositor: ad(depositor),
                proposal_id: self.num(id, 1),
                amount: self.amt(amount),
            }),
            FuzzMsg::GovVote { voter, id, option } => to_any(&gv::MsgVote {
                voter: ad(voter),
                proposal_id: self.num(id, 1),
                option: self.text(option, &["yes", "no", "abstain", "veto", "no_with_veto"]),
            }),
            FuzzMsg::AdvertiseService {
                node,
                job,
                endpoint,
                price,
                max_context,
            } => to_any(&rg::MsgAdvertiseService {
                node: ad(node),
                job: self.num(job, 1),
                endpoint: self.text(
                    endpoint,
                    &[
                        "https://serve.example:8443/v1",
                        "http://10.0.0.7:8000",
                        "https://[::1]:0",
                        "ftp://serve.example",
                    ],
                ),
                price_per_token: self.amt(price),
                max_context: self.num(max_context, 4096),
            }),
            FuzzMsg::WithdrawService { node, job } => to_any(&rg::MsgWithdrawService {
                node: ad(node),
                job: self.num(job, 1),
            }),
            FuzzMsg::RecordResearchVersion {
                coordinator,
                job,
                version,
                entries,
                best,
                last,
            } => to_any(&jb::MsgRecordResearchVersion {
                coordinator: ad(coordinator),
                job: self.num(job, 1),
                version: u32::try_from(self.num(version, 0)).unwrap_or(u32::MAX),
                entries: entries
                    .iter()
                    .take(8)
                    .map(|(u, w, o, l, s1, s2)| jb::TrialEntry {
                        unit_hash: hash(u),
                        worker: ad(w),
                        oof_hash: hash(o),
                        cv_loss_micro: u64::from(*l),
                        signature: [hash(s1), hash(s2)].concat(),
                    })
                    .collect(),
                best_unit_hash: hash(best),
                kb_address: Vec::new(),
                report_address: Vec::new(),
                r#final: *last,
            }),
            FuzzMsg::TrialCheckCommit {
                checker,
                job,
                unit,
                commitment,
            } => {
                let checker_s = ad(checker);
                let job = self.num(job, 1);
                let commitment = match commitment {
                    Commitment::To((oof, loss), nonce) => match checker_s.parse::<Address>() {
                        Ok(a) => jb::check_commitment(
                            CHAIN_ID,
                            &a,
                            job,
                            &hash32(unit),
                            &hash32(oof),
                            u64::from(*loss),
                            &hash32(&Hash::Pool(*nonce)),
                        )
                        .to_vec(),
                        Err(_) => hash(&Hash::Pool(*nonce)),
                    },
                    Commitment::Bytes(b) => hash(b),
                };
                to_any(&jb::MsgTrialCheckCommit {
                    checker: checker_s,
                    job,
                    unit_hash: hash(unit),
                    commitment,
                })
            }
            FuzzMsg::TrialCheckReveal {
                checker,
                job,
                unit,
                oof,
                loss,
                nonce,
            } => to_any(&jb::MsgTrialCheckReveal {
                checker: ad(checker),
                job: self.num(job, 1),
                unit_hash: hash(unit),
                oof_hash: hash(oof),
                cv_loss_micro: u64::from(*loss),
                nonce: hash(&Hash::Pool(*nonce)),
            }),
            FuzzMsg::RevealTestSplit {
                creator,
                job,
                test,
                salt,
            } => to_any(&jb::MsgRevealTestSplit {
                creator: ad(creator),
                job: self.num(job, 1),
                test_address: hash(test),
                salt: hash(salt),
            }),
            FuzzMsg::DisputeTrial {
                coordinator,
                job,
                entry: (u, w, o, l, s1, s2),
            } => to_any(&jb::MsgDisputeTrial {
                coordinator: ad(coordinator),
                job: self.num(job, 1),
                entry: Some(jb::TrialEntry {
                    unit_hash: hash(u),
                    worker: ad(w),
                    oof_hash: hash(o),
                    cv_loss_micro: u64::from(*l),
                    signature: [hash(s1), hash(s2)].concat(),
                }),
            }),
            FuzzMsg::HeldOutCommit {
                evaluator,
                job,
                commitment,
            } => {
                let evaluator_s = ad(evaluator);
                let job = self.num(job, 1);
                let commitment = match commitment {
                    Commitment::To((fin, base, unavailable), nonce) => {
                        match evaluator_s.parse::<Address>() {
                            Ok(a) => jb::heldout_commitment(
                                CHAIN_ID,
                                &a,
                                job,
                                u64::from(*fin),
                                u64::from(*base),
                                *unavailable,
                                &hash32(&Hash::Pool(*nonce)),
                            )
                            .to_vec(),
                            Err(_) => hash(&Hash::Pool(*nonce)),
                        }
                    }
                    Commitment::Bytes(b) => hash(b),
                };
                to_any(&jb::MsgHeldOutCommit {
                    evaluator: evaluator_s,
                    job,
                    commitment,
                })
            }
            FuzzMsg::HeldOutReveal {
                evaluator,
                job,
                final_loss,
                baseline_loss,
                unavailable,
                nonce,
            } => to_any(&jb::MsgHeldOutReveal {
                evaluator: ad(evaluator),
                job: self.num(job, 1),
                final_test_loss_micro: u64::from(*final_loss),
                baseline_test_loss_micro: u64::from(*baseline_loss),
                unavailable: *unavailable,
                nonce: hash(&Hash::Pool(*nonce)),
            }),
        }
    }

    fn training(&self, t: &Training, height: u64) -> magnet_proto::jobs::v1::TrainingSpec {
        use magnet_proto::jobs::v1::{
            OuterPolicy as OuterPolicyPb, TrainingSpec as TrainingSpecPb,
        };
        match t {
            Training::Valid {
                first,
                blocks,
                round_robin,
            } => TrainingSpecPb {
                inner_steps: 10,
                batch_size: 4,
                seq_len: 64,
                params: 1_000_000,
                first_height: height.saturating_add(u64::from(*first % 8) + 1),
                blocks_per_round: u64::from(*blocks % 8) + 1,
                leader_rule: if *round_robin { "round_robin" } else { "hash" }.into(),
                max_staleness: 1,
                stale_decay_bps: 5_000,
                outer: None,
            },
            Training::Raw {
                sizes,
                counts,
                rule,
                staleness,
                outer,
            } => TrainingSpecPb {
                inner_steps: sizes.0,
                batch_size: sizes.1,
                seq_len: sizes.2,
                params: counts.0,
                first_height: counts.1,
                blocks_per_round: counts.2,
                leader_rule: self.text(rule, &["hash", "round_robin"]),
                max_staleness: staleness.0,
                stale_decay_bps: staleness.1,
                outer: outer.map(|o| OuterPolicyPb {
                    lr_permille: o.0,
                    momentum_permille: o.1,
                    outlier_factor_permille: o.2,
                    min_contributions: o.3,
                    update_chunk: o.4,
                }),
            },
        }
    }

    fn accepted(
        &self,
        a: &AcceptedSpec,
        job: u64,
        round: u64,
        keys: &[Signer],
    ) -> magnet_jobs::msgs::AcceptedDelta {
        use magnet_jobs::msgs as jb;
        let node = &keys[usize::from(a.node) % KEYS];
        let acc = jb::Accepted {
            node: key_address(usize::from(a.node)),
            job: self.num(&a.job, job),
            round: self.num(&a.round, round),
            base_hash: hash32(&a.hashes.0),
            delta_hash: hash32(&a.hashes.1),
            steps: self.num(&a.work.0, 10),
            tokens: self.num(&a.work.1, 2_560),
            signature: Vec::new(),
            weight_ppm: a.weight_ppm,
            content_address: hash32(&a.content),
        };
        let signature = if a.signed {
            acc.claim(CHAIN_ID)
                .sign(&node.secret_bytes())
                .map(|s| s.to_vec())
                .unwrap_or_default()
        } else {
            vec![0x11; 64]
        };
        jb::AcceptedDelta {
            node: key_address(usize::from(a.node)).to_bech32(),
            claim: Some(jb::WorkClaim {
                job: acc.job,
                round: acc.round,
                base_hash: hash(&a.hashes.0),
                delta_hash: hash(&a.hashes.1),
                steps: acc.steps,
                tokens: acc.tokens,
            }),
            signature,
            weight_ppm: a.weight_ppm,
            content_address: hash(&a.content),
        }
    }

    fn content(&self, c: &Content, signer: usize) -> String {
        const MODULES: [&str; 12] = [
            "auth", "bank", "registry", "slashing", "emission", "contrib", "rewards", "notary",
            "data", "jobs", "gov", "epochs",
        ];
        let ad = |a: &Addr| self.addr(a, signer);
        let v = match c {
            Content::ParamChange {
                module,
                field,
                value,
            } => {
                let name = MODULES[usize::from(*module) % MODULES.len()];
                let mut params = self
                    .app
                    .export()
                    .ok()
                    .map(|e| e.app_state[name]["params"].clone())
                    .unwrap_or(serde_json::Value::Null);
                if let Some(obj) = params.as_object_mut() {
                    let names: Vec<String> = obj.keys().cloned().collect();
                    if !names.is_empty() {
                        let k = &names[usize::from(*field) % names.len()];
                        obj.insert(k.clone(), self.param_value(value));
                    }
                }
                serde_json::json!({ "param_change": { "module": name, "params": params } })
            }
            Content::NotarySet { members } => serde_json::json!({ "notary_set": {
                "members": members.iter().take(6).map(ad).collect::<Vec<_>>() } }),
            Content::ValidatorSet {
                key,
                hex,
                power,
                operator,
            } => {
                let k = if *hex {
                    hex::encode(hash(key))
                } else {
                    "zz".repeat(32)
                };
                let mut v =
                    serde_json::json!({ "pub_key_ed25519_hex": k, "power": self.num(power, 10) });
                if let Some(op) = operator {
                    v["operator"] = ad(op).into();
                }
                serde_json::json!({ "validator_set": v })
            }
            Content::CommunitySpend { recipient, amount } => serde_json::json!({
                "community_spend": { "recipient": ad(recipient), "amount": self.amt(amount) } }),
            Content::SoftwareUpgrade { name, halt_height } => serde_json::json!({
                "software_upgrade": {
                    "name": self.text(name, &["v2", "v3"]),
                    "halt_height": self.num(halt_height, (self.height.max(0) as u64).saturating_add(8)),
                } }),
            Content::Overturn { id } => {
                serde_json::json!({ "overturn": { "challenge_id": self.num(id, 1) } })
            }
            Content::Text { body } => {
                serde_json::json!({ "text": { "body": self.text(body, &["hello"]) } })
            }
            Content::RawJson(t) => {
                return self.text(t, &["{}", "{\"text\":{}}", "[]", "{\"text\":{\"body\":1}}"])
            }
        };
        v.to_string()
    }

    fn param_value(&self, v: &ParamValue) -> serde_json::Value {
        match v {
            ParamValue::Zero => 0.into(),
            ParamValue::Small(n) => u64::from(*n).into(),
            ParamValue::U64Max => u64::MAX.into(),
            ParamValue::U128MaxString => u128::MAX.to_string().into(),
            ParamValue::Negative => (-1i64).into(),
            ParamValue::Text(t) => self.text(t, &["0", "1000", "0.5"]).into(),
            ParamValue::Null => serde_json::Value::Null,
            ParamValue::Bool => true.into(),
        }
    }
}

fn account(app: &MagnetApp, addr: &Address) -> Option<(u64, u64)> {
    use cosmrs::proto::cosmos::auth::v1beta1 as a;
    let r = app.query(pb::RequestQuery {
        data: a::QueryAccountRequest {
            address: addr.to_bech32(),
        }
        .encode_to_vec()
        .into(),
        path: "/cosmos.auth.v1beta1.Query/Account".into(),
        height: 0,
        prove: false,
    });
    if r.code != 0 {
        return None;
    }
    let any = a::QueryAccountResponse::decode(r.value.as_ref())
        .ok()?
        .account?;
    let acct = a::BaseAccount::decode(any.value.as_slice()).ok()?;
    Some((acct.account_number, acct.sequence))
}

fn hash(h: &Hash) -> Vec<u8> {
    match h {
        Hash::Pool(i) => magnet_core::sha256(&[*i % 8]).to_vec(),
        Hash::Zero => vec![0; 32],
        Hash::Empty => Vec::new(),
        Hash::Short => vec![0xAB; 31],
        Hash::Long => vec![0xAB; 33],
        Hash::Any(b) => b.to_vec(),
    }
}

fn hash32(h: &Hash) -> [u8; 32] {
    let v = hash(h);
    v.as_slice().try_into().unwrap_or([0u8; 32])
}

fn nonce_bytes(n: &Nonce) -> Vec<u8> {
    match n {
        Nonce::Pool(i) => magnet_core::sha256(&[b'n', *i])[..16].to_vec(),
        Nonce::Empty => Vec::new(),
        Nonce::Long => vec![7; 65],
    }
}

fn signature_of(tx: &[u8]) -> Vec<u8> {
    cosmrs::proto::cosmos::tx::v1beta1::TxRaw::decode(tx)
        .ok()
        .and_then(|t| t.signatures.into_iter().next())
        .unwrap_or_default()
}

fn replace_signature(tx: &[u8], sig: Vec<u8>) -> Vec<u8> {
    match cosmrs::proto::cosmos::tx::v1beta1::TxRaw::decode(tx) {
        Ok(mut t) => {
            t.signatures = vec![sig];
            t.encode_to_vec()
        }
        Err(_) => tx.to_vec(),
    }
}
