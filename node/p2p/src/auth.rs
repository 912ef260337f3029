//! Signed requests: wallet mode (recoverable secp256k1) and cluster mode (HMAC-SHA256).
//!
//! Every request body travels in a [`Signed`] envelope. The signer commits to
//! `(mode, nodeId, method, timestamp, nonce, SHA-256(body))` under the domain tag
//! `MAGNET/p2p/v1/request` (see [`request_digest`]); the verifier checks, in order:
//!
//! 1. shape: a proof is present, the nonce is 16 bytes, the signed method is the method being
//!    served, the claimed nodeId is well-formed and, when the connection's TLS certificate is
//!    bound to a node key, equals that TLS identity;
//! 2. freshness: the timestamp is within ±[`FRESHNESS_WINDOW_SECS`] of the verifier's clock;
//! 3. the proof: wallet mode — the presented key hashes to the claimed nodeId, the signature is
//!    65 bytes, low-S, and recovers exactly that key; when a [`Registry`] is configured, the
//!    node is registered with that key. Cluster mode — the HMAC matches under the shared secret
//!    (constant-time comparison);
//! 3. replay: `(nodeId, nonce)` has not been seen within the window; it is recorded only after
//!    the proof verified, so unauthenticated traffic cannot fill the cache.
//!
//! Only after all of this does the caller decode the body ([`open`]). Each refusal is its own
//! [`AuthError`] variant with a stable [`AuthError::code`], which servers put in the gRPC status
//! (`magnet-auth-error` metadata) so clients and tests can tell failures apart.
//!
//! Not guaranteed: confidentiality (that is TLS's job) and protection against a verifier whose
//! clock is more than the window off.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use magnet_proto::p2p::v1::{auth::Proof, Auth, Signed, WalletProof};
use prost::Message;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::identity::{NodeId, NodeKey, PublicKey};
use crate::registry::Registry;

/// Domain tag of request digests.
pub const DOMAIN_REQUEST: &[u8] = b"MAGNET/p2p/v1/request";
/// Accepted clock difference between signer and verifier, in seconds (paper §12.2: 5 minutes).
pub const FRESHNESS_WINDOW_SECS: u64 = 300;
/// Nonce length in bytes.
pub const NONCE_LEN: usize = 16;
/// Default bound on remembered nonces.
pub const DEFAULT_REPLAY_CAPACITY: usize = 1 << 20;
/// gRPC metadata key carrying [`AuthError::code`] on refusals.
pub const AUTH_ERROR_METADATA: &str = "magnet-auth-error";

const MODE_WALLET: u8 = 1;
const MODE_CLUSTER: u8 = 2;

/// Why a signed request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The envelope has no `auth` or no proof.
    #[error("request is not signed: the Signed envelope carries no auth proof")]
    Missing,
    /// Wallet proof in cluster mode or HMAC in wallet mode.
    #[error("request uses {got} authentication but this node requires {want}")]
    WrongMode {
        /// Mode the request used.
        got: &'static str,
        /// Mode the node requires.
        want: &'static str,
    },
    /// The claimed nodeId is not `node-` + 16 hex digits.
    #[error("claimed node id {0:?} is malformed")]
    MalformedNodeId(String),
    /// The nonce is not 16 bytes.
    #[error("nonce must be {NONCE_LEN} bytes, got {0}")]
    MalformedNonce(usize),
    /// The signed method differs from the one being served.
    #[error("request was signed for method {signed:?} but sent to {served:?}")]
    MethodMismatch {
        /// Method in the signature.
        signed: String,
        /// Method being served.
        served: String,
    },
    /// The timestamp is outside the freshness window.
    #[error("timestamp {timestamp} is {skew} s away from now ({now}); the window is ±{FRESHNESS_WINDOW_SECS} s: check the clocks")]
    Stale {
        /// Signed timestamp.
        timestamp: u64,
        /// Verifier time.
        now: u64,
        /// |now - timestamp|.
        skew: u64,
    },
    /// The presented key is not a valid compressed secp256k1 point.
    #[error("wallet proof carries an invalid public key")]
    MalformedKey,
    /// The presented key does not hash to the claimed nodeId.
    #[error("public key maps to {derived} but the request claims {claimed}")]
    KeyNotBoundToNodeId {
        /// nodeId claimed.
        claimed: NodeId,
        /// nodeId of the presented key.
        derived: NodeId,
    },
    /// The signature is not 65 bytes or not a valid (r, s, v).
    #[error("signature is malformed: expected 65 bytes r ‖ s ‖ recovery id")]
    MalformedSignature,
    /// s is in the upper half of the group order (malleable form).
    #[error("signature has a high S value; only low-S signatures are accepted")]
    HighS,
    /// The signature does not recover to the presented key (forged or for other data).
    #[error("signature does not verify for the presented key and request digest")]
    BadSignature,
    /// A registry is configured and does not know this node.
    #[error("node {0} is not registered")]
    NotRegistered(NodeId),
    /// The registry holds a different key for this nodeId.
    #[error("node {0} is registered with a different public key")]
    RegisteredKeyMismatch(NodeId),
    /// Cluster mode: the HMAC does not match.
    #[error("cluster HMAC does not match: wrong cluster secret or altered request")]
    BadHmac,
    /// The `(nodeId, nonce)` pair was already used within the window.
    #[error("nonce already used by {0} within the freshness window (replay)")]
    Replayed(NodeId),
    /// The replay cache is full of live nonces; the request is refused rather than risk a replay.
    #[error("replay cache is full ({0} live nonces); retry shortly")]
    ReplayCacheFull(usize),
    /// The signed nodeId differs from the node key bound to the TLS connection.
    #[error("request claims {claimed} but the TLS connection is authenticated as {tls}")]
    TlsIdentityMismatch {
        /// nodeId in the request.
        claimed: NodeId,
        /// nodeId of the TLS peer certificate.
        tls: NodeId,
    },
}

impl AuthError {
    /// A stable, machine-readable code for this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing-auth",
            AuthError::WrongMode { .. } => "wrong-mode",
            AuthError::MalformedNodeId(_) => "malformed-node-id",
            AuthError::MalformedNonce(_) => "malformed-nonce",
            AuthError::MethodMismatch { .. } => "method-mismatch",
            AuthError::Stale { .. } => "stale-timestamp",
            AuthError::MalformedKey => "malformed-key",
            AuthError::KeyNotBoundToNodeId { .. } => "key-not-bound-to-node-id",
            AuthError::MalformedSignature => "malformed-signature",
            AuthError::HighS => "high-s",
            AuthError::BadSignature => "bad-signature",
            AuthError::NotRegistered(_) => "not-registered",
            AuthError::RegisteredKeyMismatch(_) => "registered-key-mismatch",
            AuthError::BadHmac => "bad-hmac",
            AuthError::Replayed(_) => "replayed-nonce",
            AuthError::ReplayCacheFull(_) => "replay-cache-full",
            AuthError::TlsIdentityMismatch { .. } => "tls-identity-mismatch",
        }
    }

    /// The gRPC status a server returns for this refusal (UNAUTHENTICATED, code in metadata).
    pub fn to_status(&self) -> tonic::Status {
        let mut st = tonic::Status::unauthenticated(format!("{}: {}", self.code(), self));
        if let Ok(v) = self.code().parse() {
            st.metadata_mut().insert(AUTH_ERROR_METADATA, v);
        }
        st
    }
}

/// The [`AuthError::code`] carried by a refused call, if any.
pub fn auth_error_code(status: &tonic::Status) -> Option<String> {
    status
        .metadata()
        .get(AUTH_ERROR_METADATA)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Source of the current Unix time in seconds (injectable for tests).
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now_unix(&self) -> u64;
}

/// The system wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// The digest a request signature or HMAC commits to.
///
/// `SHA-256(DOMAIN_REQUEST ‖ 0x00 ‖ mode ‖ lp(nodeId) ‖ lp(method) ‖ be64(timestamp) ‖
/// lp(nonce) ‖ SHA-256(body))`, where `lp(x) = be32(len x) ‖ x`.
pub fn request_digest(
    mode: u8,
    node_id: &str,
    method: &str,
    timestamp: u64,
    nonce: &[u8],
    body_hash: &[u8; 32],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN_REQUEST);
    h.update([0u8, mode]);
    for part in [node_id.as_bytes(), method.as_bytes()] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part);
    }
    h.update(timestamp.to_be_bytes());
    h.update((nonce.len() as u32).to_be_bytes());
    h.update(nonce);
    h.update(body_hash);
    h.finalize().into()
}

/// How this node proves its requests.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)] // one per node, cloned rarely; boxing buys nothing
pub enum Signer {
    /// Wallet mode: sign with the node key.
    Wallet(NodeKey),
    /// Cluster mode: HMAC with the shared secret, claiming `node_id`.
    Cluster {
        /// The nodeId this node claims.
        node_id: NodeId,
        /// Shared cluster secret.
        secret: Arc<[u8]>,
    },
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Wallet(k) => write!(f, "Signer::Wallet({})", k.node_id()),
            Signer::Cluster { node_id, .. } => write!(f, "Signer::Cluster({node_id})"),
        }
    }
}

impl Signer {
    /// The nodeId requests are signed as.
    pub fn node_id(&self) -> &NodeId {
        match self {
            Signer::Wallet(k) => k.node_id(),
            Signer::Cluster { node_id, .. } => node_id,
        }
    }

    /// Signs `body` for `method` at `timestamp` with a fresh random nonce.
    pub fn auth(&self, method: &str, body: &[u8], timestamp: u64) -> Auth {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        self.auth_with_nonce(method, body, timestamp, &nonce)
    }

    /// Signs with a caller-chosen nonce (conformance vectors and tests).
    pub fn auth_with_nonce(&self, method: &str, body: &[u8], timestamp: u64, nonce: &[u8]) -> Auth {
        let body_hash: [u8; 32] = Sha256::digest(body).into();
        let node_id = self.node_id().as_str().to_owned();
        let proof = match self {
            Signer::Wallet(k) => {
                let d = request_digest(MODE_WALLET, &node_id, method, timestamp, nonce, &body_hash);
                Proof::Wallet(WalletProof {
                    public_key: k.public_key().to_bytes().to_vec(),
                    signature: k.sign_digest(&d).to_vec(),
                })
            }
            Signer::Cluster { secret, .. } => {
                let d =
                    request_digest(MODE_CLUSTER, &node_id, method, timestamp, nonce, &body_hash);
                Proof::Hmac(hmac_tag(secret, &d).to_vec())
            }
        };
        Auth {
            node_id,
            method: method.to_owned(),
            timestamp,
            nonce: nonce.to_vec(),
            proof: Some(proof),
        }
    }

    /// Encodes `msg` and wraps it in a signed envelope for `method`, timestamped now.
    pub fn seal<M: Message>(&self, method: &str, msg: &M) -> Signed {
        let body = msg.encode_to_vec();
        let auth = self.auth(method, &body, SystemClock.now_unix());
        Signed {
            auth: Some(auth),
            body,
        }
    }
}

fn hmac_tag(secret: &[u8], digest: &[u8; 32]) -> [u8; 32] {
    // HMAC accepts keys of any length, so new_from_slice cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return [0u8; 32],
    };
    mac.update(digest);
    mac.finalize().into_bytes().into()
}

/// What a verified request proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The authenticated nodeId.
    pub node_id: NodeId,
    /// The sender's key (wallet mode only).
    pub public_key: Option<PublicKey>,
}

/// Which proofs this node accepts.
#[derive(Clone)]
pub enum VerifyMode {
    /// Wallet mode, optionally restricted to registered nodes.
    Wallet {
        /// When set, only registered nodes with the registered key are accepted.
        registry: Option<Arc<dyn Registry>>,
    },
    /// Cluster mode with a shared secret.
    Cluster {
        /// Shared cluster secret.
        secret: Arc<[u8]>,
    },
}

/// Bounded memory of `(nodeId, nonce)` pairs seen within the freshness window.
#[derive(Debug)]
struct ReplayCache {
    seen: BTreeMap<(String, [u8; NONCE_LEN]), u64>,
    order: VecDeque<(u64, (String, [u8; NONCE_LEN]))>,
    capacity: usize,
}

impl ReplayCache {
    fn evict(&mut self, now: u64) {
        // Entries are expired once `now > expiry`: the freshness check refuses them then.
        while let Some((exp, _)) = self.order.front() {
            if *exp >= now {
                break;
            }
            if let Some((exp, key)) = self.order.pop_front() {
                if self.seen.get(&key) == Some(&exp) {
                    self.seen.remove(&key);
                }
            }
        }
    }

    fn insert(
        &mut self,
        key: (String, [u8; NONCE_LEN]),
        expiry: u64,
        now: u64,
    ) -> Result<(), AuthError> {
        self.evict(now);
        if self.seen.contains_key(&key) {
            return Err(AuthError::Replayed(
                NodeId::parse(&key.0).map_err(|_| AuthError::MalformedNodeId(key.0.clone()))?,
            ));
        }
        if self.seen.len() >= self.capacity {
            return Err(AuthError::ReplayCacheFull(self.seen.len()));
        }
        // Keep `order` sorted by expiry so eviction can stop at the first live entry.
        let pos = self.order.partition_point(|(e, _)| *e <= expiry);
        self.order.insert(pos, (expiry, key.clone()));
        self.seen.insert(key, expiry);
        Ok(())
    }
}

/// Verifies signed requests. Cheap to share (`Arc`); the replay cache is internal.
pub struct Verifier {
    mode: VerifyMode,
    clock: Arc<dyn Clock>,
    replay: Mutex<ReplayCache>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.mode {
            VerifyMode::Wallet { registry } => {
                if registry.is_some() {
                    "wallet+registry"
                } else {
                    "wallet"
                }
            }
            VerifyMode::Cluster { .. } => "cluster",
        };
        write!(f, "Verifier({mode})")
    }
}

impl Verifier {
    /// A verifier with the system clock and the default replay-cache bound.
    pub fn new(mode: VerifyMode) -> Self {
        Self::with_clock(mode, Arc::new(SystemClock), DEFAULT_REPLAY_CAPACITY)
    }

    /// A verifier with an explicit clock and replay-cache bound.
    pub fn with_clock(mode: VerifyMode, clock: Arc<dyn Clock>, replay_capacity: usize) -> Self {
        Verifier {
            mode,
            clock,
            replay: Mutex::new(ReplayCache {
                seen: BTreeMap::new(),
                order: VecDeque::new(),
                capacity: replay_capacity.max(1),
            }),
        }
    }

    /// Checks `auth` for `body` sent to `served_method`. `tls_peer` is the node identity bound
    /// to the connection's TLS certificate, if any. Records the nonce on success.
    pub fn verify(
        &self,
        auth: Option<&Auth>,
        served_method: &str,
        body: &[u8],
        tls_peer: Option<&NodeId>,
    ) -> Result<Verified, AuthError> {
        let auth = auth.ok_or(AuthError::Missing)?;
        let proof = auth.proof.as_ref().ok_or(AuthError::Missing)?;
        let node_id = NodeId::parse(&auth.node_id)
            .map_err(|_| AuthError::MalformedNodeId(auth.node_id.chars().take(64).collect()))?;
        let nonce: [u8; NONCE_LEN] = auth
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| AuthError::MalformedNonce(auth.nonce.len()))?;
        if auth.method != served_method {
            return Err(AuthError::MethodMismatch {
                signed: auth.method.chars().take(128).collect(),
                served: served_method.to_owned(),
            });
        }
        if let Some(tls) = tls_peer {
            if *tls != node_id {
                return Err(AuthError::TlsIdentityMismatch {
                    claimed: node_id,
                    tls: tls.clone(),
                });
            }
        }
        let now = self.clock.now_unix();
        let skew = now.abs_diff(auth.timestamp);
        if skew > FRESHNESS_WINDOW_SECS {
            return Err(AuthError::Stale {
                timestamp: auth.timestamp,
                now,
                skew,
            });
        }
        let body_hash: [u8; 32] = Sha256::digest(body).into();
        let public_key = match (&self.mode, proof) {
            (VerifyMode::Wallet { registry }, Proof::Wallet(w)) => {
                let pk = self.check_wallet(auth, &node_id, w, &body_hash)?;
                if let Some(reg) = registry {
                    match reg.lookup(&node_id) {
                        None => return Err(AuthError::NotRegistered(node_id)),
                        Some(r) if r.public_key != pk => {
                            return Err(AuthError::RegisteredKeyMismatch(node_id))
                        }
                        Some(_) => {}
                    }
                }
                Some(pk)
            }
            (VerifyMode::Cluster { secret }, Proof::Hmac(tag)) => {
                let d = request_digest(
                    MODE_CLUSTER,
                    &auth.node_id,
                    &auth.method,
                    auth.timestamp,
                    &auth.nonce,
                    &body_hash,
                );
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
                    .map_err(|_| AuthError::BadHmac)?;
                mac.update(&d);
                // verify_slice compares in constant time.
                mac.verify_slice(tag).map_err(|_| AuthError::BadHmac)?;
                None
            }
            (VerifyMode::Wallet { .. }, Proof::Hmac(_)) => {
                return Err(AuthError::WrongMode {
                    got: "cluster-hmac",
                    want: "wallet",
                })
            }
            (VerifyMode::Cluster { .. }, Proof::Wallet(_)) => {
                return Err(AuthError::WrongMode {
                    got: "wallet",
                    want: "cluster-hmac",
                })
            }
        };
        let expiry = auth.timestamp.saturating_add(FRESHNESS_WINDOW_SECS);
        self.replay
            .lock()
            .map_err(|_| AuthError::ReplayCacheFull(0))?
            .insert((node_id.as_str().to_owned(), nonce), expiry, now)?;
        Ok(Verified {
            node_id,
            public_key,
        })
    }

    fn check_wallet(
        &self,
        auth: &Auth,
        node_id: &NodeId,
        w: &WalletProof,
        body_hash: &[u8; 32],
    ) -> Result<PublicKey, AuthError> {
        let pk = PublicKey::from_bytes(&w.public_key).map_err(|_| AuthError::MalformedKey)?;
        let derived = pk.node_id();
        if derived != *node_id {
            return Err(AuthError::KeyNotBoundToNodeId {
                claimed: node_id.clone(),
                derived,
            });
        }
        let d = request_digest(
            MODE_WALLET,
            &auth.node_id,
            &auth.method,
            auth.timestamp,
            &auth.nonce,
            body_hash,
        );
        verify_recoverable(&d, &w.signature, &pk)?;
        Ok(pk)
    }
}

/// Checks a signed envelope as **evidence**, at any later time: the wallet signature over
/// `method` and `body` by the key its nodeId names — without the freshness window or the
/// replay cache, which protect a live request and say nothing about who signed what.
/// Returns the signer. Cluster (HMAC) envelopes are not evidence: anyone holding the shared
/// secret could have made them.
pub fn verify_evidence(
    auth: Option<&Auth>,
    method: &str,
    body: &[u8],
) -> Result<(NodeId, PublicKey), AuthError> {
    let auth = auth.ok_or(AuthError::Missing)?;
    let Some(Proof::Wallet(w)) = auth.proof.as_ref() else {
        return Err(AuthError::WrongMode {
            got: "cluster-hmac",
            want: "wallet",
        });
    };
    let node_id = NodeId::parse(&auth.node_id)
        .map_err(|_| AuthError::MalformedNodeId(auth.node_id.chars().take(64).collect()))?;
    if auth.method != method {
        return Err(AuthError::MethodMismatch {
            signed: auth.method.chars().take(128).collect(),
            served: method.to_owned(),
        });
    }
    let pk = PublicKey::from_bytes(&w.public_key).map_err(|_| AuthError::MalformedKey)?;
    if pk.node_id() != node_id {
        return Err(AuthError::KeyNotBoundToNodeId {
            claimed: node_id,
            derived: pk.node_id(),
        });
    }
    let body_hash: [u8; 32] = Sha256::digest(body).into();
    let d = request_digest(
        MODE_WALLET,
        &auth.node_id,
        &auth.method,
        auth.timestamp,
        &auth.nonce,
        &body_hash,
    );
    verify_recoverable(&d, &w.signature, &pk)?;
    Ok((node_id, pk))
}

/// Checks a 65-byte low-S recoverable signature over `digest` recovers exactly `pk`.
pub fn verify_recoverable(digest: &[u8; 32], sig: &[u8], pk: &PublicKey) -> Result<(), AuthError> {
    if sig.len() != 65 {
        return Err(AuthError::MalformedSignature);
    }
    let s = Signature::from_slice(&sig[..64]).map_err(|_| AuthError::MalformedSignature)?;
    if s.normalize_s().is_some() {
        return Err(AuthError::HighS);
    }
    let recid = RecoveryId::from_byte(sig[64]).ok_or(AuthError::MalformedSignature)?;
    let recovered = VerifyingKey::recover_from_prehash(digest, &s, recid)
        .map_err(|_| AuthError::BadSignature)?;
    if PublicKey::from_verifying_key(recovered) != *pk {
        return Err(AuthError::BadSignature);
    }
    Ok(())
}

/// Verifies a [`Signed`] envelope and only then decodes its body as `M`.
pub fn open<M: Message + Default>(
    verifier: &Verifier,
    signed: &Signed,
    served_method: &str,
    tls_peer: Option<&NodeId>,
) -> Result<(Verified, M), tonic::Status> {
    let v = verifier
        .verify(signed.auth.as_ref(), served_method, &signed.body, tls_peer)
        .map_err(|e| {
            tracing::warn!(
                method = served_method,
                code = e.code(),
                "refused request: {e}"
            );
            e.to_status()
        })?;
    let m = M::decode(signed.body.as_slice()).map_err(|e| {
        tonic::Status::invalid_argument(format!("{served_method}: body does not decode: {e}"))
    })?;
    Ok((v, m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct FixedClock(AtomicU64);
    impl Clock for FixedClock {
        fn now_unix(&self) -> u64 {
            self.0.load(Ordering::Relaxed)
        }
    }

    const T0: u64 = 1_700_000_000;
    const M: &str = "/magnet.p2p.v1.PeerService/Heartbeat";

    fn verifier(mode: VerifyMode, cap: usize) -> (Verifier, Arc<FixedClock>) {
        let clock = Arc::new(FixedClock(AtomicU64::new(T0)));
        (Verifier::with_clock(mode, clock.clone(), cap), clock)
    }

    /// Golden vectors computed independently (Python hashlib/hmac); a change here breaks
    /// every deployed peer.
    #[test]
    fn request_digest_and_hmac_match_golden_vectors() {
        let body_hash: [u8; 32] = Sha256::digest(b"hello").into();
        let nonce: Vec<u8> = (0u8..16).collect();
        let n = "node-0123456789abcdef";
        let d1 = request_digest(MODE_WALLET, n, M, T0, &nonce, &body_hash);
        assert_eq!(
            hex::encode(d1),
            "10cd377f1515f09640affec70e4fa3908e902f9ebfb7834d1d7fa11c763adb0f"
        );
        let d2 = request_digest(MODE_CLUSTER, n, M, T0, &nonce, &body_hash);
        assert_eq!(
            hex::encode(d2),
            "7ffa14b47ce71d8115ed39523d3ad39b149d80b10c4e2f8de5e43e22a9f66c21"
        );
        assert_eq!(
            hex::encode(hmac_tag(b"cluster-secret", &d2)),
            "8295699ad802846fce426118b7d7043c87a625e2d44c82d4ce8fe3ad51ed068d"
        );
        // Secret key 1: the public key is the generator G.
        let mut one = [0u8; 32];
        one[31] = 1;
        let k = NodeKey::from_secret_bytes(&one).unwrap();
        assert_eq!(k.node_id().as_str(), "node-0f715baf5d4c2ed3");
    }

    #[test]
    fn wallet_signatures_verify_and_every_tamper_is_caught() {
        let key = NodeKey::generate();
        let signer = Signer::Wallet(key.clone());
        let (v, _) = verifier(VerifyMode::Wallet { registry: None }, 16);
        let a = signer.auth(M, b"body", T0);
        let ok = v.verify(Some(&a), M, b"body", None).unwrap();
        assert_eq!(&ok.node_id, key.node_id());
        assert_eq!(ok.public_key, Some(key.public_key()));
        let a = signer.auth(M, b"body", T0);
        assert_eq!(
            v.verify(Some(&a), M, b"bodx", None),
            Err(AuthError::BadSignature)
        );
        let mut b = signer.auth(M, b"body", T0);
        b.timestamp += 1;
        assert_eq!(
            v.verify(Some(&b), M, b"body", None),
            Err(AuthError::BadSignature)
        );
        let mut c = signer.auth(M, b"body", T0);
        if let Some(Proof::Wallet(w)) = c.proof.as_mut() {
            w.signature.truncate(64);
        }
        assert_eq!(
            v.verify(Some(&c), M, b"body", None),
            Err(AuthError::MalformedSignature)
        );
        let mut d = signer.auth(M, b"body", T0);
        if let Some(Proof::Wallet(w)) = d.proof.as_mut() {
            w.public_key[0] = 9;
        }
        assert_eq!(
            v.verify(Some(&d), M, b"body", None),
            Err(AuthError::MalformedKey)
        );
        let mut e = signer.auth(M, b"body", T0);
        e.nonce.pop();
        assert_eq!(
            v.verify(Some(&e), M, b"body", None),
            Err(AuthError::MalformedNonce(15))
        );
    }

    #[test]
    fn freshness_window_is_five_minutes_each_way() {
        let signer = Signer::Wallet(NodeKey::generate());
        let (v, _) = verifier(VerifyMode::Wallet { registry: None }, 16);
        for (ts, ok) in [
            (T0 - 300, true),
            (T0 + 300, true),
            (T0 - 301, false),
            (T0 + 301, false),
            (0, false),
            (u64::MAX, false),
        ] {
            let a = signer.auth(M, b"", ts);
            let r = v.verify(Some(&a), M, b"", None);
            assert_eq!(r.is_ok(), ok, "ts {ts}: {r:?}");
            if !ok {
                assert!(matches!(r, Err(AuthError::Stale { .. })));
            }
        }
    }

    #[test]
    fn replay_cache_is_bounded_and_forgets_only_expired_nonces() {
        let signer = Signer::Wallet(NodeKey::generate());
        let (v, clock) = verifier(VerifyMode::Wallet { registry: None }, 2);
        let a = signer.auth(M, b"", T0);
        v.verify(Some(&a), M, b"", None).unwrap();
        assert!(matches!(
            v.verify(Some(&a), M, b"", None),
            Err(AuthError::Replayed(_))
        ));
        v.verify(Some(&signer.auth(M, b"", T0)), M, b"", None)
            .unwrap();
        // Full of live nonces: refuse rather than forget one.
        assert_eq!(
            v.verify(Some(&signer.auth(M, b"", T0)), M, b"", None),
            Err(AuthError::ReplayCacheFull(2))
        );
        // Once they expire the cache has room again, and the old request is stale anyway.
        clock
            .0
            .store(T0 + FRESHNESS_WINDOW_SECS + 1, Ordering::Relaxed);
        v.verify(Some(&signer.auth(M, b"", T0 + 301)), M, b"", None)
            .unwrap();
        assert!(matches!(
            v.verify(Some(&a), M, b"", None),
            Err(AuthError::Stale { .. })
        ));
    }

    #[test]
    fn forged_requests_do_not_consume_cache_space() {
        let signer = Signer::Wallet(NodeKey::generate());
        let (v, _) = verifier(VerifyMode::Wallet { registry: None }, 1);
        for _ in 0..10 {
            let a = signer.auth(M, b"x", T0);
            assert_eq!(
                v.verify(Some(&a), M, b"y", None),
                Err(AuthError::BadSignature)
            );
        }
        v.verify(Some(&signer.auth(M, b"x", T0)), M, b"x", None)
            .unwrap();
    }

    #[test]
    fn cluster_mode_checks_the_hmac() {
        let key = NodeKey::generate();
        let good = Signer::Cluster {
            node_id: key.node_id().clone(),
            secret: Arc::from(&b"k1"[..]),
        };
        let bad = Signer::Cluster {
            node_id: key.node_id().clone(),
            secret: Arc::from(&b"k2"[..]),
        };
        let (v, _) = verifier(
            VerifyMode::Cluster {
                secret: Arc::from(&b"k1"[..]),
            },
            16,
        );
        assert!(v
            .verify(Some(&good.auth(M, b"b", T0)), M, b"b", None)
            .is_ok());
        assert_eq!(
            v.verify(Some(&bad.auth(M, b"b", T0)), M, b"b", None),
            Err(AuthError::BadHmac)
        );
        assert_eq!(
            v.verify(Some(&good.auth(M, b"b", T0)), M, b"c", None),
            Err(AuthError::BadHmac)
        );
        assert!(matches!(
            v.verify(Some(&Signer::Wallet(key).auth(M, b"b", T0)), M, b"b", None),
            Err(AuthError::WrongMode { .. })
        ));
    }

    #[test]
    fn registry_mode_requires_the_registered_key() {
        let key = NodeKey::generate();
        let reg = Arc::new(crate::registry::StaticRegistry::new());
        let (v, _) = verifier(
            VerifyMode::Wallet {
                registry: Some(reg.clone()),
            },
            16,
        );
        let s = Signer::Wallet(key.clone());
        assert!(matches!(
            v.verify(Some(&s.auth(M, b"", T0)), M, b"", None),
            Err(AuthError::NotRegistered(_))
        ));
        reg.register(key.public_key(), "eu");
        assert!(v.verify(Some(&s.auth(M, b"", T0)), M, b"", None).is_ok());
        assert!(reg.deregister(key.node_id()));
        assert!(matches!(
            v.verify(Some(&s.auth(M, b"", T0)), M, b"", None),
            Err(AuthError::NotRegistered(_))
        ));
    }
}
