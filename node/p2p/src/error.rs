//! The crate-level error for dialling peers and calling them.

use crate::auth::{auth_error_code, AuthError};
use crate::backend::BackendError;
use crate::stream::IntegrityError;
use crate::tls::TlsError;

/// Everything that can go wrong talking to a peer.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// The TLS handshake refused the peer (or our configuration).
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// Connecting failed below TLS (refused, unreachable, timed out).
    #[error("transport to {addr}: {source}")]
    Transport {
        /// Peer address.
        addr: String,
        /// Cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// The peer refused our signed request; `code` is its [`AuthError::code`].
    #[error("peer refused authentication ({code}): {message}")]
    Refused {
        /// Stable refusal code.
        code: String,
        /// The peer's message.
        message: String,
    },
    /// The call failed with a gRPC status.
    #[error("rpc failed: {0}")]
    Rpc(tonic::Status),
    /// A signed response from the peer did not verify.
    #[error("peer response failed verification: {0}")]
    BadResponse(#[from] AuthError),
    /// Transferred data did not match its manifest.
    #[error("integrity: {0}")]
    Integrity(#[from] IntegrityError),
    /// The peer violated the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Local storage failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The holder's custody receipt did not verify.
    #[error("custody receipt: {0}")]
    Receipt(#[from] crate::receipt::ReceiptError),
    /// Local I/O failed.
    #[error("i/o: {0}")]
    Io(std::io::Error),
}

impl From<tonic::Status> for P2pError {
    fn from(s: tonic::Status) -> Self {
        match auth_error_code(&s) {
            Some(code) => P2pError::Refused {
                code,
                message: s.message().to_owned(),
            },
            None => P2pError::Rpc(s),
        }
    }
}

impl P2pError {
    /// The peer's refusal code, if the peer refused our authentication.
    pub fn refusal_code(&self) -> Option<&str> {
        match self {
            P2pError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}
