//! Helpers for modules' stateless message checks: decode an `Any`, parse addresses,
//! amounts and fixed-size hashes from protobuf fields into typed values or a clear
//! `sdk/…` error naming the field.

use crate::{Address, ModuleError};

/// Decode `any` as `M`; error if the type URL is not `M`'s or the bytes do not decode.
pub fn decode_any<M: prost::Message + prost::Name + Default>(
    any: &prost_types::Any,
) -> Result<M, ModuleError> {
    if any.type_url != M::type_url() {
        return Err(ModuleError::unknown_msg(&any.type_url));
    }
    M::decode(any.value.as_slice())
        .map_err(|e| ModuleError::new("sdk", 2, format!("cannot decode {}: {e}", M::type_url())))
}

/// Parse a bech32 `magnet1…` address in field `field`.
pub fn address(field: &str, s: &str) -> Result<Address, ModuleError> {
    s.parse::<Address>()
        .map_err(|e| ModuleError::new("sdk", 7, format!("invalid {field}: {e}")))
}

/// Parse a decimal umag amount in field `field` (empty means 0).
pub fn amount(field: &str, s: &str) -> Result<u128, ModuleError> {
    let t = s.trim().trim_end_matches(crate::NATIVE_DENOM);
    if t.is_empty() {
        return Ok(0);
    }
    t.parse::<u128>().map_err(|_| {
        ModuleError::new(
            "sdk",
            10,
            format!("invalid {field} {s:?}: expected a whole number of umag, e.g. 1000000"),
        )
    })
}

/// A 32-byte hash in field `field`.
pub fn hash32(field: &str, b: &[u8]) -> Result<[u8; 32], ModuleError> {
    b.try_into().map_err(|_| {
        ModuleError::new(
            "sdk",
            3,
            format!("{field} must be 32 bytes, got {}", b.len()),
        )
    })
}

/// Length-prefixed concatenation for hashing (`u32` big-endian length, then bytes), so that
/// no two different field lists hash the same.
pub fn framed(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// `Any` of a message (for responses and tests).
pub fn to_any<M: prost::Message + prost::Name>(m: &M) -> prost_types::Any {
    prost_types::Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

/// A [`crate::MsgResult`] holding `M`'s encoding.
pub fn result<M: prost::Message + prost::Name>(m: &M) -> crate::MsgResult {
    crate::MsgResult {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}
