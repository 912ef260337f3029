//! Every registry storage key, and typed access.
//!
//! * `registry/params` → [`Params`] (JSON)
//! * `registry/node/<operator:20>` → [`NodeRecord`] (borsh)
//! * `registry/nodekey/<node:20>` → operator (20 bytes)
//! * `registry/hb/<epoch:8 BE><operator:20>` → counted heartbeats in that epoch (u64 borsh)
//! * `registry/gov/<owner:20>` → governance bond (u128 borsh)
//! * `registry/unbond/<completes_at:8 BE><seq:8 BE>` → [`UnbondEntry`] (borsh)
//! * `registry/seq` → next unbonding sequence number (u64 borsh)
//! * `registry/svc/<node:20><job:8 BE>` → [`ServiceRecord`] (borsh): a node's advertised
//!   inference service for a job (ADR 0109)
//! * `registry/svcjob/<job:8 BE><node:20>` → `0x01`: the same advertisements indexed by job
//!
//! Escrow: every bond (node and governance, bonded or unbonding) sits in the module account
//! `Address::module("registry")`, so `escrow balance = Σ bonds` at all times.

use crate::error::Error;
use crate::params::Params;
use borsh::{BorshDeserialize, BorshSerialize};
use magnet_core::{Address, Ctx, KvStore, ModuleError};

/// Name of the escrow module account.
pub const ESCROW: &str = "registry";
/// Params key.
pub const PARAMS_KEY: &[u8] = b"registry/params";
/// Node records.
pub const NODE_PREFIX: &[u8] = b"registry/node/";
/// Node key → operator.
pub const NODEKEY_PREFIX: &[u8] = b"registry/nodekey/";
/// Heartbeat counts.
pub const HB_PREFIX: &[u8] = b"registry/hb/";
/// Governance bonds.
pub const GOV_PREFIX: &[u8] = b"registry/gov/";
/// Unbonding queue.
pub const UNBOND_PREFIX: &[u8] = b"registry/unbond/";
/// Sequence counter.
pub const SEQ_KEY: &[u8] = b"registry/seq";
/// Advertised services by node key, then job.
pub const SVC_PREFIX: &[u8] = b"registry/svc/";
/// Advertised services by job, then node key (index; value `0x01`).
pub const SVC_JOB_PREFIX: &[u8] = b"registry/svcjob/";

/// Escrow account address.
pub fn escrow() -> Address {
    Address::module(ESCROW)
}

/// A node's lifecycle state.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub enum NodeStatus {
    /// Bonded and working.
    Active,
    /// Unbonding; the bond returns at this block time (still slashable until then).
    Unbonding {
        /// Block time of completion.
        completes_at: u64,
    },
}

/// A registered node.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct NodeRecord {
    /// Operator account.
    pub operator: Address,
    /// Node key address.
    pub node: Address,
    /// Compressed node public key.
    #[serde(with = "hex_bytes")]
    pub node_pubkey: Vec<u8>,
    /// `node-<16 hex>`.
    pub node_id: String,
    /// Tier name.
    pub tier: String,
    /// p2p endpoint.
    pub endpoint: String,
    /// Region.
    pub region: String,
    /// Hardware profile.
    pub hardware_profile: String,
    /// Bond (umag).
    #[serde(with = "magnet_core::coins::u128_string")]
    pub bond: u128,
    /// Status.
    pub status: NodeStatus,
    /// Jailed until `MsgUnjail`.
    pub jailed: bool,
    /// Earliest block time `MsgUnjail` is accepted.
    pub jail_until: u64,
    /// Epoch of registration.
    pub registered_epoch: u64,
    /// Block time of the last heartbeat.
    pub last_heartbeat: u64,
    /// Block time of the last heartbeat that counted.
    pub last_counted_heartbeat: u64,
    /// The SSD provisioning test's result the operator signed with its registration or its
    /// last tier change (ADR 0107); `None` if it sent none.
    pub ssd: Option<SsdRecord>,
}

/// An SSD provisioning report as stored (`SsdReport` of the registry proto).
#[derive(
    Clone, Debug, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize,
)]
pub struct SsdRecord {
    /// 4 KiB random-read throughput, kB/s.
    pub read_kbps: u64,
    /// 4 KiB random-write throughput, kB/s.
    pub write_kbps: u64,
    /// Block size of the test (bytes).
    pub block_size: u32,
    /// Size of the test file (bytes).
    pub file_bytes: u64,
    /// Whether the test bypassed the page cache (O_DIRECT).
    pub direct_io: bool,
}

impl From<magnet_proto::registry::v1::SsdReport> for SsdRecord {
    fn from(r: magnet_proto::registry::v1::SsdReport) -> Self {
        SsdRecord {
            read_kbps: r.read_kbps,
            write_kbps: r.write_kbps,
            block_size: r.block_size,
            file_bytes: r.file_bytes,
            direct_io: r.direct_io,
        }
    }
}

impl From<&SsdRecord> for magnet_proto::registry::v1::SsdReport {
    fn from(r: &SsdRecord) -> Self {
        magnet_proto::registry::v1::SsdReport {
            read_kbps: r.read_kbps,
            write_kbps: r.write_kbps,
            block_size: r.block_size,
            file_bytes: r.file_bytes,
            direct_io: r.direct_io,
        }
    }
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
}

/// Whose bond an unbonding entry returns, and from where.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum UnbondKind {
    /// A whole node bond (amount read from the node record at completion).
    Node,
    /// Part of a governance bond.
    Gov(u128),
}

/// One pending unbonding.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct UnbondEntry {
    /// Owner.
    pub owner: Address,
    /// What returns.
    pub kind: UnbondKind,
}

/// `nodeId = "node-" ‖ hex(SHA-256(compressed node pubkey))[..16]`.
pub fn node_id(pubkey: &[u8]) -> String {
    format!("node-{}", &hex::encode(magnet_core::sha256(pubkey))[..16])
}

/// Current params (defaults if genesis wrote none).
pub fn params(store: &dyn KvStore) -> Result<Params, ModuleError> {
    magnet_core::params::load(store)
}

/// Write params.
pub fn set_params(store: &mut dyn KvStore, p: &Params) {
    magnet_core::params::save(store, p)
}

fn node_key(op: &Address) -> Vec<u8> {
    [NODE_PREFIX, op.as_bytes()].concat()
}

/// The node of `op`.
pub fn node(ctx: &mut Ctx, op: &Address) -> Result<Option<NodeRecord>, Error> {
    Ok(ctx.get_borsh(&node_key(op))?)
}

/// Write a node record.
pub fn set_node(ctx: &mut Ctx, n: &NodeRecord) -> Result<(), Error> {
    ctx.set_borsh(&node_key(&n.operator), n)?;
    Ok(())
}

/// Delete a node record and its key binding.
pub fn delete_node(ctx: &mut Ctx, n: &NodeRecord) -> Result<(), Error> {
    ctx.delete(&node_key(&n.operator))?;
    ctx.delete(&[NODEKEY_PREFIX, n.node.as_bytes()].concat())?;
    Ok(())
}

/// The node of `op`, or `NotRegistered`.
pub fn must_node(ctx: &mut Ctx, op: &Address) -> Result<NodeRecord, Error> {
    node(ctx, op)?.ok_or_else(|| Error::NotRegistered(op.to_string()))
}

/// Operator of a node key.
pub fn operator_of(ctx: &mut Ctx, node: &Address) -> Result<Option<Address>, Error> {
    let k = [NODEKEY_PREFIX, node.as_bytes()].concat();
    match ctx.get(&k)? {
        None => Ok(None),
        Some(b) => Ok(Some(
            Address::from_slice(&b).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?,
        )),
    }
}

/// Bind a node key to an operator.
pub fn set_operator_of(ctx: &mut Ctx, node: &Address, op: &Address) -> Result<(), Error> {
    ctx.set(
        &[NODEKEY_PREFIX, node.as_bytes()].concat(),
        op.as_bytes().to_vec(),
    )?;
    Ok(())
}

/// All node records, by operator.
pub fn all_nodes(store: &dyn KvStore) -> Result<Vec<NodeRecord>, ModuleError> {
    magnet_core::store::scan_prefix(store, NODE_PREFIX)
        .into_iter()
        .map(|(k, v)| {
            NodeRecord::try_from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
        })
        .collect()
}

fn hb_key(epoch: u64, op: &Address) -> Vec<u8> {
    [HB_PREFIX, &epoch.to_be_bytes(), op.as_bytes()].concat()
}

/// Counted heartbeats of `op` in `epoch`.
pub fn heartbeats(ctx: &mut Ctx, epoch: u64, op: &Address) -> Result<u64, Error> {
    Ok(ctx.get_borsh::<u64>(&hb_key(epoch, op))?.unwrap_or(0))
}

/// Set counted heartbeats.
pub fn set_heartbeats(ctx: &mut Ctx, epoch: u64, op: &Address, n: u64) -> Result<(), Error> {
    ctx.set_borsh(&hb_key(epoch, op), &n)?;
    Ok(())
}

/// Governance bond of `owner`.
pub fn gov_bond(ctx: &mut Ctx, owner: &Address) -> Result<u128, Error> {
    Ok(ctx
        .get_borsh::<u128>(&[GOV_PREFIX, owner.as_bytes()].concat())?
        .unwrap_or(0))
}

/// Set a governance bond (0 deletes).
pub fn set_gov_bond(ctx: &mut Ctx, owner: &Address, amount: u128) -> Result<(), Error> {
    let k = [GOV_PREFIX, owner.as_bytes()].concat();
    if amount == 0 {
        ctx.delete(&k)?;
    } else {
        ctx.set_borsh(&k, &amount)?;
    }
    Ok(())
}

/// All governance bonds.
pub fn all_gov_bonds(store: &dyn KvStore) -> Result<Vec<(Address, u128)>, ModuleError> {
    magnet_core::store::scan_prefix(store, GOV_PREFIX)
        .into_iter()
        .map(|(k, v)| {
            let a = Address::from_slice(&k[GOV_PREFIX.len()..])
                .map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?;
            let n =
                u128::try_from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?;
            Ok((a, n))
        })
        .collect()
}

/// Queue an unbonding that completes at `at`.
pub fn push_unbond(ctx: &mut Ctx, at: u64, entry: &UnbondEntry) -> Result<(), Error> {
    let seq = ctx.get_borsh::<u64>(SEQ_KEY)?.unwrap_or(0);
    ctx.set_borsh(SEQ_KEY, &(seq + 1))?;
    let k = [UNBOND_PREFIX, &at.to_be_bytes(), &seq.to_be_bytes()].concat();
    ctx.set_borsh(&k, entry)?;
    Ok(())
}

/// Remove and return every unbonding that completes at or before `now`, oldest first.
pub fn pop_matured(ctx: &mut Ctx, now: u64) -> Result<Vec<UnbondEntry>, Error> {
    let end = [UNBOND_PREFIX, &now.saturating_add(1).to_be_bytes()].concat();
    let rows = ctx.store().range(UNBOND_PREFIX, Some(&end));
    let mut out = Vec::new();
    for (k, v) in rows {
        let e = UnbondEntry::try_from_slice(&v)
            .map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?;
        ctx.delete(&k)?;
        out.push(e);
    }
    Ok(out)
}

/// An inference service a node advertises for a job's model (ADR 0109).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct ServiceRecord {
    /// Node-key address that signed the advertisement.
    pub node: Address,
    /// Job whose model is served.
    pub job: u64,
    /// `http://` or `https://` URL of the OpenAI-compatible API.
    pub endpoint: String,
    /// umag per token (0: free).
    #[serde(with = "magnet_core::coins::u128_string")]
    pub price_per_token: u128,
    /// Longest context accepted (tokens).
    pub max_context: u64,
    /// Height of the block that wrote this advertisement.
    pub height: u64,
}

fn svc_key(node: &Address, job: u64) -> Vec<u8> {
    [SVC_PREFIX, node.as_bytes(), &job.to_be_bytes()].concat()
}

fn svc_job_key(job: u64, node: &Address) -> Vec<u8> {
    [SVC_JOB_PREFIX, &job.to_be_bytes(), node.as_bytes()].concat()
}

/// The advertisement of `node` for `job`.
pub fn service(ctx: &mut Ctx, node: &Address, job: u64) -> Result<Option<ServiceRecord>, Error> {
    Ok(ctx.get_borsh(&svc_key(node, job))?)
}

/// Write an advertisement and its job index entry.
pub fn set_service(ctx: &mut Ctx, s: &ServiceRecord) -> Result<(), Error> {
    ctx.set_borsh(&svc_key(&s.node, s.job), s)?;
    ctx.set(&svc_job_key(s.job, &s.node), vec![1])?;
    Ok(())
}

/// Delete an advertisement and its job index entry.
pub fn delete_service(ctx: &mut Ctx, node: &Address, job: u64) -> Result<(), Error> {
    ctx.delete(&svc_key(node, job))?;
    ctx.delete(&svc_job_key(job, node))?;
    Ok(())
}

/// The jobs `node` advertises, ascending.
pub fn service_jobs(store: &dyn KvStore, node: &Address) -> Result<Vec<u64>, ModuleError> {
    let prefix = [SVC_PREFIX, node.as_bytes()].concat();
    magnet_core::store::scan_prefix(store, &prefix)
        .into_iter()
        .map(|(k, _)| {
            let b: [u8; 8] = k[prefix.len()..]
                .try_into()
                .map_err(|_| ModuleError::corrupt(&k, "service key is not node ‖ job"))?;
            Ok(u64::from_be_bytes(b))
        })
        .collect()
}

/// Advertisements by (job, node) ascending; only job `job`'s when given. Read through the job
/// index, so the order is the same for both.
pub fn services(store: &dyn KvStore, job: Option<u64>) -> Result<Vec<ServiceRecord>, ModuleError> {
    let prefix = match job {
        Some(j) => [SVC_JOB_PREFIX, &j.to_be_bytes()].concat(),
        None => SVC_JOB_PREFIX.to_vec(),
    };
    let mut out = Vec::new();
    for (k, _) in magnet_core::store::scan_prefix(store, &prefix) {
        let rest = &k[SVC_JOB_PREFIX.len()..];
        if rest.len() != 28 {
            return Err(ModuleError::corrupt(
                &k,
                "service index key is not job ‖ node",
            ));
        }
        let (j, n) = rest.split_at(8);
        let mut jb = [0u8; 8];
        jb.copy_from_slice(j);
        let node = Address::from_slice(n).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?;
        let rk = svc_key(&node, u64::from_be_bytes(jb));
        let rec: ServiceRecord = magnet_core::store::get_borsh(store, &rk)
            .map_err(|e| ModuleError::corrupt(&rk, &e.to_string()))?
            .ok_or_else(|| ModuleError::corrupt(&k, "service index entry without its record"))?;
        out.push(rec);
    }
    Ok(out)
}

/// Operator of a node key, read from a store (queries).
pub fn operator_of_in(store: &dyn KvStore, node: &Address) -> Result<Option<Address>, ModuleError> {
    let k = [NODEKEY_PREFIX, node.as_bytes()].concat();
    match store.get(&k) {
        None => Ok(None),
        Some(b) => Ok(Some(
            Address::from_slice(&b).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?,
        )),
    }
}
