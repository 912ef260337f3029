//! Merkle proofs of state, for light clients.
//!
//! `Query { path: "/store/key", data: <raw state key>, height, prove: true }` answers with the
//! raw value (empty when absent; `info` is `exists` or `absent`) and `proof_ops` holding one [`PROOF_OP_TYPE`] op: the borsh
//! encoding of jmt's `SparseMerkleProof<Sha256>` for the leaf `SHA-256(key)`. The proof binds
//! the value — or the key's absence — to the app hash of `height` (the root of the jmt version
//! `height`; CometBFT puts it in the header of block `height + 1`). Clients check it with
//! [`verify_proof`] against an app hash they trust.
//!
//! # Guarantees
//! A proof verifies only for the exact (key, value-or-absence, root) it was made for.
//!
//! # Non-guarantees
//! Proofs cover raw state keys only: the module query paths (`/cosmos.bank…`, `/magnet.…`)
//! return computed answers that no single leaf proves. Heights outside the pruning window
//! cannot be proven.

use jmt::proof::SparseMerkleProof;
use jmt::{KeyHash, RootHash};
use tendermint_proto::v0_38::crypto::{ProofOp, ProofOps};

/// The query path that reads (and proves) one raw state key.
pub const STORE_KEY_PATH: &str = "/store/key";
/// Type of the proof op: a borsh-encoded jmt `SparseMerkleProof<Sha256>`.
pub const PROOF_OP_TYPE: &str = "jmt:v1";

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The response carries no proof op of our type.
    #[error("no {PROOF_OP_TYPE} proof op in the response (was the query sent with prove = true?)")]
    Missing,
    /// The op proves another key.
    #[error("the proof is for key {got}, not {want}")]
    WrongKey {
        /// Key asked about (hex).
        want: String,
        /// Key in the op (hex).
        got: String,
    },
    /// The app hash is not 32 bytes.
    #[error("an app hash has 32 bytes, got {0}")]
    BadRoot(usize),
    /// The op's data does not decode.
    #[error("the proof does not decode: {0}")]
    Decode(String),
    /// The proof does not bind this value to this root.
    #[error("the proof does not verify: {0}")]
    Invalid(String),
}

/// Wrap a jmt proof of `key` as ABCI `ProofOps`.
pub fn proof_ops(key: &[u8], proof: &SparseMerkleProof<sha2::Sha256>) -> ProofOps {
    ProofOps {
        ops: vec![ProofOp {
            r#type: PROOF_OP_TYPE.to_string(),
            key: key.to_vec(),
            data: borsh::to_vec(proof).unwrap_or_default(),
        }],
    }
}

/// Check that `value` (`None`: absence) is the value of `key` in the state whose root is
/// `app_hash`, as proven by `ops` (from a `prove = true` query of [`STORE_KEY_PATH`]).
pub fn verify_proof(
    app_hash: &[u8],
    key: &[u8],
    value: Option<&[u8]>,
    ops: &ProofOps,
) -> Result<(), ProofError> {
    let op = ops
        .ops
        .iter()
        .find(|o| o.r#type == PROOF_OP_TYPE)
        .ok_or(ProofError::Missing)?;
    if op.key.as_slice() != key {
        return Err(ProofError::WrongKey {
            want: hex::encode(key),
            got: hex::encode(&op.key),
        });
    }
    let root: [u8; 32] = app_hash
        .try_into()
        .map_err(|_| ProofError::BadRoot(app_hash.len()))?;
    let proof: SparseMerkleProof<sha2::Sha256> =
        borsh::from_slice(&op.data).map_err(|e| ProofError::Decode(e.to_string()))?;
    proof
        .verify(RootHash(root), KeyHash(magnet_core::sha256(key)), value)
        .map_err(|e| ProofError::Invalid(e.to_string()))
}
