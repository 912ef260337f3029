//! Data messages (`proto/magnet/data/v1/tx.proto`) and their stateless checks.

use crate::error::Error;
use magnet_core::msg::{address, decode_any, hash32};
use magnet_core::{Address, ModuleError};
pub use magnet_proto::data::v1::MsgRegisterData;
use prost::Name;

/// A checked `MsgRegisterData`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Register {
    /// Contributor (signer).
    pub contributor: Address,
    /// Content hash.
    pub hash: [u8; 32],
    /// Size in bytes (> 0).
    pub size: u64,
    /// Domain (1..=64 bytes).
    pub domain: String,
}

/// Type URLs handled by this module.
pub fn type_urls() -> Vec<&'static str> {
    vec!["/magnet.data.v1.MsgRegisterData"]
}

/// Decode and check.
pub fn check(any: &prost_types::Any) -> Result<(Register, Address), Error> {
    if any.type_url != MsgRegisterData::type_url() {
        return Err(ModuleError::unknown_msg(&any.type_url).into());
    }
    let m: MsgRegisterData = decode_any(any)?;
    if m.size == 0 {
        return Err(Error::InvalidField {
            field: "size",
            why: "must be > 0".into(),
        });
    }
    if m.domain.is_empty() || m.domain.len() > 64 {
        return Err(Error::InvalidField {
            field: "domain",
            why: "must be 1..=64 bytes".into(),
        });
    }
    let r = Register {
        contributor: address("contributor", &m.contributor)?,
        hash: hash32("hash", &m.hash)?,
        size: m.size,
        domain: m.domain,
    };
    let s = r.contributor;
    Ok((r, s))
}

/// `MsgRegisterData` as an `Any`.
pub fn register(
    contributor: &Address,
    hash: [u8; 32],
    size: u64,
    domain: &str,
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgRegisterData {
        contributor: contributor.to_string(),
        hash: hash.to_vec(),
        size,
        domain: domain.into(),
    })
}
