//! Transaction decoding and stateless checks (everything that needs no state).
//!
//! A tx is a Cosmos SDK `TxRaw` (`body_bytes`, `auth_info_bytes`, `signatures`) signed with
//! `SIGN_MODE_DIRECT` by one secp256k1 key. [`decode_tx`] checks, in this order, and stops at
//! the first failure with its own code (see [`crate::error::codes`]):
//!
//! 1. size ≤ `max_tx_bytes` (ErrTxTooLarge) — before any decoding;
//! 2. `TxRaw`, `TxBody`, `AuthInfo` decode (ErrTxDecode);
//! 3. at least one message, no extension options, memo length (ErrInvalidRequest,
//!    ErrUnknownExtensionOptions, ErrMemoTooLarge);
//! 4. every message has a registered type URL (ErrUnknownRequest) and passes its module's
//!    stateless check (e.g. bech32 addresses: ErrInvalidAddress; coins: ErrInvalidCoins);
//! 5. one signer for all messages, exactly one signature (ErrNoSignatures,
//!    ErrTooManySignatures), SIGN_MODE_DIRECT, a secp256k1 public key that hashes to the
//!    signer (ErrInvalidPubKey), a canonical low-S 64-byte signature (magnet/101);
//! 6. fee in `umag` only, a gas limit in `1..=max_tx_gas` (ErrInvalidCoins, ErrInvalidGasLimit).
//!
//! # Guarantees
//! Pure: the result depends only on the bytes and the params, so decoding may run on any
//! thread. Never panics on any input (a fuzz target and its corpus check this).

use crate::auth::{AuthParams, SECP256K1_PUBKEY_URL};
use crate::error::{codes, TxError};
use cosmrs::proto::cosmos::tx::v1beta1 as txpb;
use magnet_core::{Address, Coins};
use prost::Message;

/// What the decoder needs to know about messages: which module validates each type URL.
pub trait MsgValidator {
    /// Stateless check of one message; returns its signer. `None`: no module has this URL.
    fn validate(&self, msg: &prost_types::Any) -> Option<Result<Address, TxError>>;
}

/// A decoded, statelessly valid tx.
#[derive(Clone, Debug)]
pub struct DecodedTx {
    /// SHA-256 of the raw bytes (the CometBFT tx hash).
    pub hash: [u8; 32],
    /// Raw length in bytes.
    pub len: usize,
    /// Signed body bytes.
    pub body_bytes: Vec<u8>,
    /// Signed auth-info bytes.
    pub auth_info_bytes: Vec<u8>,
    /// The 64-byte signature (r ‖ s, low-S); empty only in simulation.
    pub signature: Vec<u8>,
    /// Messages, in order.
    pub msgs: Vec<prost_types::Any>,
    /// The one signer.
    pub signer: Address,
    /// Compressed secp256k1 key from the signer info, if carried.
    pub pub_key: Option<Vec<u8>>,
    /// The sequence the signer claims.
    pub sequence: u64,
    /// Fee offered.
    pub fee: Coins,
    /// Gas limit.
    pub gas_limit: u64,
    /// Block height after which the tx is invalid (0 = none).
    pub timeout_height: u64,
}

/// How strictly to decode: simulation accepts an empty signature and a zero gas limit
/// (cosmjs estimates gas this way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeMode {
    /// CheckTx and FinalizeBlock.
    Strict,
    /// `/cosmos.tx.v1beta1.Service/Simulate`.
    Simulate,
}

fn decode_err(what: &str, e: prost::DecodeError) -> TxError {
    TxError::sdk(
        codes::TX_DECODE,
        format!("tx does not decode: {what}: {e}; send a protobuf cosmos.tx.v1beta1.TxRaw"),
    )
}

/// Decode and statelessly check a tx; see the module docs.
pub fn decode_tx(
    bytes: &[u8],
    params: &AuthParams,
    msgs: &dyn MsgValidator,
    mode: DecodeMode,
) -> Result<DecodedTx, TxError> {
    if bytes.len() as u64 > params.max_tx_bytes {
        return Err(TxError::sdk(
            codes::TX_TOO_LARGE,
            format!(
                "tx is {} bytes; the limit is {} (auth.max_tx_bytes)",
                bytes.len(),
                params.max_tx_bytes
            ),
        ));
    }
    if bytes.is_empty() {
        return Err(TxError::sdk(
            codes::TX_DECODE,
            "tx does not decode: empty tx",
        ));
    }
    let raw = txpb::TxRaw::decode(bytes).map_err(|e| decode_err("TxRaw", e))?;
    let body =
        txpb::TxBody::decode(raw.body_bytes.as_slice()).map_err(|e| decode_err("TxBody", e))?;
    let auth = txpb::AuthInfo::decode(raw.auth_info_bytes.as_slice())
        .map_err(|e| decode_err("AuthInfo", e))?;

    if body.messages.is_empty() {
        return Err(TxError::sdk(codes::INVALID_REQUEST, "tx has no messages"));
    }
    if !body.extension_options.is_empty() || !body.non_critical_extension_options.is_empty() {
        return Err(TxError::sdk(
            codes::UNKNOWN_EXTENSION_OPTIONS,
            "tx extension options are not supported",
        ));
    }
    let memo_chars = body.memo.chars().count() as u64;
    if memo_chars > params.max_memo_characters {
        return Err(TxError::sdk(
            codes::MEMO_TOO_LARGE,
            format!(
                "memo has {memo_chars} characters; the limit is {}",
                params.max_memo_characters
            ),
        ));
    }

    let mut signer: Option<Address> = None;
    let mut out_msgs = Vec::with_capacity(body.messages.len());
    for (i, m) in body.messages.iter().enumerate() {
        let any = prost_types::Any {
            type_url: m.type_url.clone(),
            value: m.value.clone(),
        };
        let s = match msgs.validate(&any) {
            None => {
                return Err(TxError::sdk(
                    codes::UNKNOWN_REQUEST,
                    format!("message {i}: unrecognized message type {:?}", m.type_url),
                ))
            }
            Some(r) => r.map_err(|mut e| {
                e.log = format!("message {i} ({}): {}", m.type_url, e.log);
                e
            })?,
        };
        match signer {
            None => signer = Some(s),
            Some(prev) if prev != s => {
                return Err(TxError::magnet(
                    codes::UNSUPPORTED_SIGNING,
                    format!("messages have different signers ({prev} and {s}); one signer per tx"),
                ))
            }
            _ => {}
        }
        out_msgs.push(any);
    }
    let signer =
        signer.ok_or_else(|| TxError::sdk(codes::INVALID_REQUEST, "tx has no messages"))?;

    match raw.signatures.len() {
        0 => {
            return Err(TxError::sdk(
                codes::NO_SIGNATURES,
                format!("no signatures supplied; the tx must be signed by {signer}"),
            ))
        }
        1 => {}
        n => {
            return Err(TxError::sdk(
                codes::TOO_MANY_SIGNATURES,
                format!("{n} signatures supplied; this tx has exactly one signer ({signer})"),
            ))
        }
    }
    let [info] = auth.signer_infos.as_slice() else {
        return Err(TxError::sdk(
            codes::UNAUTHORIZED,
            format!(
                "{} signer infos for 1 signature; send exactly one",
                auth.signer_infos.len()
            ),
        ));
    };
    let direct = txpb::mode_info::Sum::Single(txpb::mode_info::Single {
        mode: cosmrs::proto::cosmos::tx::signing::v1beta1::SignMode::Direct as i32,
    });
    // cosmjs simulates with SIGN_MODE_UNSPECIFIED (and an empty signature); accept that there.
    let unspecified = txpb::mode_info::Sum::Single(txpb::mode_info::Single { mode: 0 });
    let mode_sum = info.mode_info.as_ref().and_then(|m| m.sum.as_ref());
    let simulating_unspecified =
        mode == DecodeMode::Simulate && (mode_sum.is_none() || mode_sum == Some(&unspecified));
    if mode_sum != Some(&direct) && !simulating_unspecified {
        return Err(TxError::magnet(
            codes::UNSUPPORTED_SIGNING,
            "only SIGN_MODE_DIRECT single-key signatures are supported",
        ));
    }
    let pub_key = match &info.public_key {
        None => None,
        Some(pk) => {
            if pk.type_url != SECP256K1_PUBKEY_URL {
                return Err(TxError::sdk(
                    codes::INVALID_PUBKEY,
                    format!(
                        "public key type {:?} is not supported; use {SECP256K1_PUBKEY_URL}",
                        pk.type_url
                    ),
                ));
            }
            let key = cosmrs::proto::cosmos::crypto::secp256k1::PubKey::decode(pk.value.as_slice())
                .map_err(|e| {
                    TxError::sdk(
                        codes::INVALID_PUBKEY,
                        format!("public key does not decode: {e}"),
                    )
                })?
                .key;
            if key.len() != 33 || k256::ecdsa::VerifyingKey::from_sec1_bytes(&key).is_err() {
                return Err(TxError::sdk(
                    codes::INVALID_PUBKEY,
                    "public key is not a 33-byte compressed secp256k1 point",
                ));
            }
            if Address::from_pubkey(&key) != signer {
                return Err(TxError::sdk(
                    codes::INVALID_PUBKEY,
                    format!(
                        "public key belongs to {}, but the messages are signed by {signer}",
                        Address::from_pubkey(&key)
                    ),
                ));
            }
            Some(key)
        }
    };
    let signature = raw.signatures.into_iter().next().unwrap_or_default();
    if !(mode == DecodeMode::Simulate && signature.is_empty()) {
        check_signature_form(&signature)?;
    }

    let fee = auth.fee.unwrap_or_default();
    if !fee.payer.is_empty() || !fee.granter.is_empty() {
        return Err(TxError::sdk(
            codes::INVALID_REQUEST,
            "fee payer and fee granter are not supported; the signer pays",
        ));
    }
    let fee_coins = crate::bank::parse_coins("fee.amount", &fee.amount)?;
    if let Some((d, _)) = fee_coins
        .iter()
        .find(|(d, _)| *d != magnet_core::NATIVE_DENOM)
    {
        return Err(TxError::sdk(
            codes::INVALID_COINS,
            format!(
                "fees are paid in {} only, not {d}",
                magnet_core::NATIVE_DENOM
            ),
        ));
    }
    if fee.gas_limit > params.max_tx_gas || (fee.gas_limit == 0 && mode == DecodeMode::Strict) {
        return Err(TxError::sdk(
            codes::INVALID_GAS_LIMIT,
            format!(
                "gas limit {} is outside 1..={} (auth.max_tx_gas)",
                fee.gas_limit, params.max_tx_gas
            ),
        ));
    }

    Ok(DecodedTx {
        hash: magnet_core::sha256(bytes),
        len: bytes.len(),
        body_bytes: raw.body_bytes,
        auth_info_bytes: raw.auth_info_bytes,
        signature,
        msgs: out_msgs,
        signer,
        pub_key,
        sequence: info.sequence,
        fee: fee_coins,
        gas_limit: fee.gas_limit,
        timeout_height: body.timeout_height,
    })
}

/// A signature must be 64 bytes, both scalars in range, and low-S (as the Cosmos SDK requires).
pub fn check_signature_form(sig: &[u8]) -> Result<k256::ecdsa::Signature, TxError> {
    let s = k256::ecdsa::Signature::from_slice(sig).map_err(|_| {
        TxError::magnet(
            codes::MALFORMED_SIGNATURE,
            format!(
                "signature is malformed: {} bytes, expected 64 (r ‖ s) with 0 < r, s < n",
                sig.len()
            ),
        )
    })?;
    if s.normalize_s().is_some() {
        return Err(TxError::magnet(
            codes::MALFORMED_SIGNATURE,
            "signature is malformed: high-S form; sign with a low-S (canonical) signer",
        ));
    }
    Ok(s)
}

/// Bytes signed under SIGN_MODE_DIRECT.
pub fn sign_doc_bytes(tx: &DecodedTx, chain_id: &str, account_number: u64) -> Vec<u8> {
    txpb::SignDoc {
        body_bytes: tx.body_bytes.clone(),
        auth_info_bytes: tx.auth_info_bytes.clone(),
        chain_id: chain_id.to_string(),
        account_number,
    }
    .encode_to_vec()
}

/// Verify the tx's signature with `pub_key` over its SignDoc. Pure (safe to run in parallel).
pub fn verify_signature(
    tx: &DecodedTx,
    pub_key: &[u8],
    chain_id: &str,
    account_number: u64,
) -> bool {
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    let Ok(sig) = check_signature_form(&tx.signature) else {
        return false;
    };
    let Ok(vk) = k256::ecdsa::VerifyingKey::from_sec1_bytes(pub_key) else {
        return false;
    };
    let digest = magnet_core::sha256(&sign_doc_bytes(tx, chain_id, account_number));
    vk.verify_prehash(&digest, &sig).is_ok()
}

/// Decode with the default params and the registered modules, in both modes; returns the
/// strict result. The fuzz target and its corpus replay call this: it must never panic.
pub fn decode_standalone(bytes: &[u8]) -> Result<DecodedTx, TxError> {
    let modules = match crate::modules::ModuleSet::new(crate::modules::registered_modules()) {
        Ok(m) => m,
        Err(e) => return Err(TxError::sdk(codes::INTERNAL, e.to_string())),
    };
    let params = AuthParams::default();
    let _ = decode_tx(bytes, &params, &modules, DecodeMode::Simulate);
    decode_tx(bytes, &params, &modules, DecodeMode::Strict)
}
