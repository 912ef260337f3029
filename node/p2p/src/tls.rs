//! TLS bound to the node key (paper §12.3, hardened).
//!
//! **Key-bound mode (default).** Each node generates a self-signed certificate for a fresh
//! ECDSA P-256 TLS key. The certificate carries an X.509 extension ([`KEY_EXTENSION_OID`])
//! holding the node's compressed secp256k1 public key and a 65-byte recoverable, low-S signature
//! by that key over `SHA-256("MAGNET/p2p/v1/tls-key" ‖ 0x00 ‖ SubjectPublicKeyInfo)` — the same
//! construction as libp2p-tls. The TLS handshake proves possession of the TLS key, the extension
//! proves the node key vouches for it, so a handshake authenticates the node key. A client dials
//! with an [`Expect`]ation: a nodeId or a key (no blind first contact), or — only for peers with
//! no known key — trust-on-first-use pinning by address, where a later mismatch refuses the
//! connection. Servers demand a client certificate bound the same way and hand the client's
//! nodeId to the services ([`ConnInfo`]), which then require signed requests to claim that same
//! nodeId.
//!
//! **CA mode.** When `MAGNET_P2P_CERT`, `MAGNET_P2P_KEY` and `MAGNET_P2P_CA` are all set, both
//! sides use the operator's PKI (webpki chain validation, mutual TLS) instead; identity then
//! comes from signed requests alone.
//!
//! Not guaranteed: certificate validity periods are not checked in key-bound mode (the binding
//! is to the node key, which has no expiry), and there is no revocation beyond the registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    RootCertStore, ServerConfig, SignatureScheme,
};
use sha2::{Digest, Sha256};

use crate::auth::verify_recoverable;
use crate::der;
use crate::identity::{NodeId, NodeKey, PublicKey};

/// OID of the key-binding extension: 1.3.6.1.3.1296123726.1 (IANA "experimental" arc;
/// 1296123726 is "MAGN" in ASCII). See docs/adr/0051.
pub const KEY_EXTENSION_OID: &[u64] = &[1, 3, 6, 1, 3, 1_296_123_726, 1];
/// Domain tag of the signature over the TLS key.
pub const DOMAIN_TLS_KEY: &[u8] = b"MAGNET/p2p/v1/tls-key";
/// Environment variable naming the CA-mode certificate chain (PEM).
pub const ENV_CERT: &str = "MAGNET_P2P_CERT";
/// Environment variable naming the CA-mode private key (PEM).
pub const ENV_KEY: &str = "MAGNET_P2P_KEY";
/// Environment variable naming the CA bundle (PEM).
pub const ENV_CA: &str = "MAGNET_P2P_CA";

/// Why a TLS peer or TLS configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// The certificate is not parseable DER X.509.
    #[error("peer certificate is malformed: {0}")]
    MalformedCertificate(String),
    /// The certificate has no node-key extension.
    #[error("peer certificate carries no MAGNET node-key extension")]
    MissingKeyExtension,
    /// The extension's contents are malformed.
    #[error("MAGNET node-key extension is malformed")]
    MalformedKeyExtension,
    /// The node key did not sign this certificate's TLS key.
    #[error("MAGNET node-key extension signature does not cover this certificate's TLS key")]
    BadKeyBinding,
    /// The peer proved a different node key than the one expected.
    #[error("TLS peer is {got} but {expected} was expected")]
    PeerKeyMismatch {
        /// Expected identity.
        expected: String,
        /// Identity the peer proved.
        got: NodeId,
    },
    /// TOFU: the peer at this address differs from the pinned one.
    #[error("TLS peer at {address} presents {got}, but {pinned} is pinned for it (TOFU); remove the pin only if the peer really changed")]
    PinMismatch {
        /// The address.
        address: String,
        /// Pinned fingerprint.
        pinned: String,
        /// Presented fingerprint.
        got: String,
    },
    /// Reading or writing the pin store failed.
    #[error("TOFU pin store {path}: {reason}")]
    PinStore {
        /// Its path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Certificate generation or configuration failed.
    #[error("TLS configuration: {0}")]
    Config(String),
}

impl TlsError {
    /// Wraps this error so rustls aborts the handshake with it (retrievable by [`find_tls_error`]).
    fn into_rustls(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(self))))
    }
}

/// Finds a [`TlsError`] anywhere in an error's source chain (e.g. inside a tonic connect error).
pub fn find_tls_error(err: &(dyn std::error::Error + 'static)) -> Option<TlsError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<TlsError>() {
            return Some(t.clone());
        }
        if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(o))) =
            e.downcast_ref::<rustls::Error>()
        {
            if let Some(t) = o.0.downcast_ref::<TlsError>() {
                return Some(t.clone());
            }
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                if let Some(t) = find_tls_error(inner) {
                    return Some(t);
                }
            }
        }
        cur = e.source();
    }
    None
}

fn oid_der(arcs: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    if arcs.len() < 2 {
        return out;
    }
    let mut push = |mut v: u64| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        tmp.reverse();
        out.extend(tmp);
    };
    push(arcs[0] * 40 + arcs[1]);
    for a in &arcs[2..] {
        push(*a);
    }
    out
}

fn tls_key_digest(spki: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN_TLS_KEY);
    h.update([0u8]);
    h.update(spki);
    h.finalize().into()
}

/// The node identity a certificate proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// The node's secp256k1 key.
    pub public_key: PublicKey,
    /// Its nodeId.
    pub node_id: NodeId,
}

/// Extracts and checks the node-key binding of a certificate: `Ok(None)` if it has none.
pub fn cert_identity(cert_der: &[u8]) -> Result<Option<CertIdentity>, TlsError> {
    let parts = der::cert_parts(cert_der, &oid_der(KEY_EXTENSION_OID))
        .map_err(|e| TlsError::MalformedCertificate(e.to_string()))?;
    let Some(ext) = parts.extension else {
        return Ok(None);
    };
    let bad = |_| TlsError::MalformedKeyExtension;
    let (seq, _) = der::expect(ext, 0x30).map_err(bad)?;
    let (pk, rest) = der::expect(seq.content, 0x04).map_err(bad)?;
    let (sig, rest) = der::expect(rest, 0x04).map_err(bad)?;
    if !rest.is_empty() {
        return Err(TlsError::MalformedKeyExtension);
    }
    let public_key =
        PublicKey::from_bytes(pk.content).map_err(|_| TlsError::MalformedKeyExtension)?;
    verify_recoverable(&tls_key_digest(parts.spki), sig.content, &public_key)
        .map_err(|_| TlsError::BadKeyBinding)?;
    Ok(Some(CertIdentity {
        node_id: public_key.node_id(),
        public_key,
    }))
}

/// A certificate and its private key.
#[derive(Debug)]
pub struct CertifiedKey {
    /// Certificate chain, end entity first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The TLS private key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for CertifiedKey {
    fn clone(&self) -> Self {
        CertifiedKey {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// Generates a self-signed certificate for a fresh P-256 TLS key, bound to `node_key`.
pub fn generate_key_bound_cert(node_key: &NodeKey) -> Result<CertifiedKey, TlsError> {
    let cfg = |e: rcgen::Error| TlsError::Config(e.to_string());
    let tls_key = rcgen::KeyPair::generate().map_err(cfg)?;
    let spki = tls_key.public_key_der();
    let sig = node_key.sign_digest(&tls_key_digest(&spki));
    let pk = node_key.public_key().to_bytes();
    let mut inner = der::header(0x04, pk.len());
    inner.extend_from_slice(&pk);
    inner.extend(der::header(0x04, sig.len()));
    inner.extend_from_slice(&sig);
    let mut content = der::header(0x30, inner.len());
    content.extend(inner);
    let name = node_key.node_id().as_str().to_owned();
    let mut params = rcgen::CertificateParams::new(vec![name.clone()]).map_err(cfg)?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, name);
    params.distinguished_name = dn;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(
            KEY_EXTENSION_OID,
            content,
        ));
    let cert = params.self_signed(&tls_key).map_err(cfg)?;
    Ok(CertifiedKey {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(tls_key.serialize_der())),
    })
}

/// Trust-on-first-use pins: address → fingerprint, persisted as JSON.
///
/// The fingerprint is `key:<hex node key>` for key-bound certificates (so a node may rotate its
/// TLS key) and `cert:<hex SHA-256 of the certificate>` otherwise.
#[derive(Debug)]
pub struct PinStore {
    path: Option<PathBuf>,
    pins: Mutex<BTreeMap<String, String>>,
}

impl PinStore {
    /// An in-memory pin store (lost at exit).
    pub fn in_memory() -> Self {
        PinStore {
            path: None,
            pins: Mutex::new(BTreeMap::new()),
        }
    }

    /// Opens (or starts) the pin file at `path`.
    pub fn open(path: &Path) -> Result<Self, TlsError> {
        let err = |reason: String| TlsError::PinStore {
            path: path.display().to_string(),
            reason,
        };
        let pins = if path.exists() {
            let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
            serde_json::from_str(&text)
                .map_err(|e| err(format!("not a JSON object of strings: {e}")))?
        } else {
            BTreeMap::new()
        };
        Ok(PinStore {
            path: Some(path.to_owned()),
            pins: Mutex::new(pins),
        })
    }

    /// Checks `fingerprint` for `address`, pinning it on first contact.
    pub fn check_or_pin(&self, address: &str, fingerprint: &str) -> Result<(), TlsError> {
        let mut pins = self.pins.lock().map_err(|_| TlsError::PinStore {
            path: self.describe(),
            reason: "lock poisoned".into(),
        })?;
        match pins.get(address) {
            Some(p) if p == fingerprint => Ok(()),
            Some(p) => Err(TlsError::PinMismatch {
                address: address.to_owned(),
                pinned: p.clone(),
                got: fingerprint.to_owned(),
            }),
            None => {
                tracing::warn!(address, fingerprint, "TOFU: pinning peer on first contact");
                pins.insert(address.to_owned(), fingerprint.to_owned());
                if let Some(path) = &self.path {
                    let text =
                        serde_json::to_string_pretty(&*pins).map_err(|e| TlsError::PinStore {
                            path: self.describe(),
                            reason: e.to_string(),
                        })?;
                    let tmp = path.with_extension("tmp");
                    std::fs::write(&tmp, text)
                        .and_then(|_| std::fs::rename(&tmp, path))
                        .map_err(|e| TlsError::PinStore {
                            path: self.describe(),
                            reason: e.to_string(),
                        })?;
                }
                Ok(())
            }
        }
    }

    /// The pinned fingerprint for `address`.
    pub fn get(&self, address: &str) -> Option<String> {
        self.pins.lock().ok()?.get(address).cloned()
    }

    fn describe(&self) -> String {
        self.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<memory>".into())
    }
}

/// Fingerprint used for TOFU pins.
pub fn fingerprint(cert_der: &[u8]) -> Result<String, TlsError> {
    Ok(match cert_identity(cert_der)? {
        Some(id) => format!("key:{}", hex::encode(id.public_key.to_bytes())),
        None => format!("cert:{}", hex::encode(Sha256::digest(cert_der))),
    })
}

/// What a client requires of the server it dials.
#[derive(Debug, Clone)]
pub enum Expect {
    /// The peer must prove this nodeId.
    NodeId(NodeId),
    /// The peer must prove exactly this key.
    Key(PublicKey),
    /// No known key: pin the peer at `address` on first contact (fallback only).
    Tofu {
        /// The dialled address, used as the pin's name.
        address: String,
    },
}

impl Expect {
    /// The nodeId this expectation names, if any.
    pub fn node_id(&self) -> Option<NodeId> {
        match self {
            Expect::NodeId(n) => Some(n.clone()),
            Expect::Key(k) => Some(k.node_id()),
            Expect::Tofu { .. } => None,
        }
    }
}

#[derive(Debug)]
struct KeyBoundServerVerifier {
    expect: Expect,
    pins: Arc<PinStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for KeyBoundServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let check = || -> Result<(), TlsError> {
            match &self.expect {
                Expect::Tofu { address } => {
                    self.pins.check_or_pin(address, &fingerprint(end_entity)?)
                }
                Expect::NodeId(want) => {
                    let id = cert_identity(end_entity)?.ok_or(TlsError::MissingKeyExtension)?;
                    if id.node_id != *want {
                        return Err(TlsError::PeerKeyMismatch {
                            expected: want.to_string(),
                            got: id.node_id,
                        });
                    }
                    Ok(())
                }
                Expect::Key(want) => {
                    let id = cert_identity(end_entity)?.ok_or(TlsError::MissingKeyExtension)?;
                    if id.public_key != *want {
                        return Err(TlsError::PeerKeyMismatch {
                            expected: format!(
                                "{} (key {})",
                                want.node_id(),
                                hex::encode(want.to_bytes())
                            ),
                            got: id.node_id,
                        });
                    }
                    Ok(())
                }
            }
        };
        check().map_err(|e| {
            tracing::warn!(code = "tls-peer-refused", "refusing TLS server: {e}");
            e.into_rustls()
        })?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[derive(Debug)]
struct KeyBoundClientVerifier {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for KeyBoundClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match cert_identity(end_entity) {
            Ok(Some(_)) => Ok(ClientCertVerified::assertion()),
            Ok(None) => Err(TlsError::MissingKeyExtension.into_rustls()),
            Err(e) => Err(e.into_rustls()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[derive(Debug, Clone)]
enum Mode {
    KeyBound,
    Ca(Arc<RootCertStore>),
}

/// A node's TLS setup: its certificate and how it judges peers.
#[derive(Debug, Clone)]
pub struct NodeTls {
    mode: Mode,
    cert: CertifiedKey,
    pins: Arc<PinStore>,
    provider: Arc<CryptoProvider>,
}

/// The ring provider (pure Rust plus ring's own small C/asm; no cmake, no aws-lc).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl NodeTls {
    /// Key-bound mode with a fresh certificate for `node_key`.
    pub fn key_bound(node_key: &NodeKey, pins: Arc<PinStore>) -> Result<Self, TlsError> {
        Ok(NodeTls {
            mode: Mode::KeyBound,
            cert: generate_key_bound_cert(node_key)?,
            pins,
            provider: provider(),
        })
    }

    /// Key-bound mode with a given certificate (tests, or a persisted certificate).
    pub fn key_bound_with_cert(cert: CertifiedKey, pins: Arc<PinStore>) -> Self {
        NodeTls {
            mode: Mode::KeyBound,
            cert,
            pins,
            provider: provider(),
        }
    }

    /// CA mode from PEM files.
    pub fn ca(cert_pem: &Path, key_pem: &Path, ca_pem: &Path) -> Result<Self, TlsError> {
        let cfg = |what: &str, p: &Path, e: String| {
            TlsError::Config(format!("{what} {}: {e}", p.display()))
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_pem)
            .map_err(|e| cfg("certificate file", cert_pem, e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| cfg("certificate file", cert_pem, e.to_string()))?;
        if chain.is_empty() {
            return Err(cfg(
                "certificate file",
                cert_pem,
                "no CERTIFICATE block".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_file(key_pem)
            .map_err(|e| cfg("key file", key_pem, e.to_string()))?;
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca_pem)
            .map_err(|e| cfg("CA file", ca_pem, e.to_string()))?
        {
            let c = c.map_err(|e| cfg("CA file", ca_pem, e.to_string()))?;
            roots
                .add(c)
                .map_err(|e| cfg("CA file", ca_pem, e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(cfg("CA file", ca_pem, "no CERTIFICATE block".into()));
        }
        Ok(NodeTls {
            mode: Mode::Ca(Arc::new(roots)),
            cert: CertifiedKey { chain, key },
            pins: Arc::new(PinStore::in_memory()),
            provider: provider(),
        })
    }

    /// CA mode when `MAGNET_P2P_CERT`, `MAGNET_P2P_KEY` and `MAGNET_P2P_CA` are all set;
    /// key-bound mode when none is; an error when only some are.
    pub fn from_env(node_key: &NodeKey, pins: Arc<PinStore>) -> Result<Self, TlsError> {
        let vars: Vec<Option<String>> = [ENV_CERT, ENV_KEY, ENV_CA]
            .iter()
            .map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .collect();
        match (&vars[0], &vars[1], &vars[2]) {
            (Some(c), Some(k), Some(a)) => Self::ca(Path::new(c), Path::new(k), Path::new(a)),
            (None, None, None) => Self::key_bound(node_key, pins),
            _ => Err(TlsError::Config(format!(
                "CA mode needs all of {ENV_CERT}, {ENV_KEY} and {ENV_CA}; only some are set"
            ))),
        }
    }

    /// Whether this node runs in CA mode.
    pub fn is_ca_mode(&self) -> bool {
        matches!(self.mode, Mode::Ca(_))
    }

    /// This node's certificate (end entity).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert.chain[0]
    }

    /// The server-side rustls configuration (mutual TLS, ALPN h2).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let builder = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let verifier: Arc<dyn ClientCertVerifier> = match &self.mode {
            Mode::KeyBound => Arc::new(KeyBoundClientVerifier {
                provider: self.provider.clone(),
            }),
            Mode::Ca(roots) => rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.clone(),
                self.provider.clone(),
            )
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?,
        };
        let mut cfg = builder
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.cert.chain.clone(), self.cert.key.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// The client-side rustls configuration for dialling a peer expected to be `expect`.
    pub fn client_config(&self, expect: &Expect) -> Result<Arc<ClientConfig>, TlsError> {
        let builder = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.mode {
            Mode::KeyBound => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(KeyBoundServerVerifier {
                    expect: expect.clone(),
                    pins: self.pins.clone(),
                    provider: self.provider.clone(),
                })),
            Mode::Ca(roots) => builder.with_root_certificates(roots.clone()),
        };
        let mut cfg = builder
            .with_client_auth_cert(self.cert.chain.clone(), self.cert.key.clone_key())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// What the server knows about a connection: its address and the TLS-proved node, if any.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The peer's socket address.
    pub remote: std::net::SocketAddr,
    /// The nodeId bound to the client's certificate (key-bound mode).
    pub identity: Option<NodeId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_encodes_as_der() {
        // 1.3.6.1.3 → 2b 06 01 03; 1296123726 → base 128; 1.
        let d = oid_der(KEY_EXTENSION_OID);
        assert_eq!(&d[..4], &[0x2b, 0x06, 0x01, 0x03]);
        assert_eq!(*d.last().unwrap(), 0x01);
    }

    #[test]
    fn generated_certificate_proves_the_node_key() {
        let k = NodeKey::generate();
        let c = generate_key_bound_cert(&k).unwrap();
        let id = cert_identity(&c.chain[0]).unwrap().unwrap();
        assert_eq!(&id.node_id, k.node_id());
        assert_eq!(id.public_key, k.public_key());
    }

    #[test]
    fn flipping_any_extension_byte_breaks_the_binding() {
        let k = NodeKey::generate();
        let c = generate_key_bound_cert(&k).unwrap();
        let der = c.chain[0].to_vec();
        let pk = k.public_key().to_bytes();
        let pos = der.windows(33).position(|w| w == pk).unwrap();
        for off in [0usize, 10, 32, 40, 80] {
            let mut bad = der.clone();
            bad[pos + off] ^= 0x01;
            assert!(
                !matches!(cert_identity(&bad), Ok(Some(ref id)) if id.public_key == k.public_key()),
                "offset {off} still verified"
            );
        }
    }

    #[test]
    fn tofu_pins_then_refuses_a_different_peer() {
        let pins = PinStore::in_memory();
        pins.check_or_pin("127.0.0.1:1", "key:aa").unwrap();
        pins.check_or_pin("127.0.0.1:1", "key:aa").unwrap();
        assert!(matches!(
            pins.check_or_pin("127.0.0.1:1", "key:bb"),
            Err(TlsError::PinMismatch { .. })
        ));
    }
}
