//! x402 (version 2) payments settled on a MAGNET chain.
//!
//! [x402](https://x402.org) gates an HTTP resource behind a payment: the server answers
//! `402 Payment Required` with a base64 JSON [`PaymentRequired`] in the `PAYMENT-REQUIRED`
//! header (and body); the client retries with a base64 JSON [`PaymentPayload`] in
//! `PAYMENT-SIGNATURE`; the server verifies and settles the payment, serves, and returns a
//! base64 JSON [`SettlementResponse`] in `PAYMENT-RESPONSE`.
//!
//! On a MAGNET chain the only scheme is **`exact`** (ADR 0110): the payload is a signed Cosmos
//! `TxRaw` carrying exactly one `MsgPayForInference { payer, model, server, amount }`, where
//! `model` is the training job whose lineage the payment pays, `server` the serving node
//! (`payTo`) and `amount` at least the requirement's `amount` (umag). The server settles by
//! broadcasting that tx itself and serves only after it is in a block with code 0; the chain
//! splits the amount between the lineage holders, the server and the burn
//! (`jobs` params `api_*_ppm`). The network is the CAIP-2 id `cosmos:<chain-id>`.
//!
//! This module has the wire types and the client side ([`pay_exact`]); the server side is in
//! `magnet-worker serve`.
//!
//! # Security
//! The payment is a transaction the *payer* signed over (body, auth info, chain id, account
//! number): a server cannot change the amount or the payee, and the tx is valid on one chain at
//! one sequence, so it settles at most once. The requirement's figures are the server's claim;
//! the client checks that `payTo`, `network` and `extra.model` are what it asked for before
//! signing, and never pays more than `max_amount`.

use base64::Engine as _;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::tx::{FeeSpec, SignerData};
use crate::{ClientError, Key};
use magnet_core::Address;

/// The x402 protocol version these types speak.
pub const X402_VERSION: u32 = 2;
/// Header of a 402 answer: base64 JSON [`PaymentRequired`].
pub const HEADER_PAYMENT_REQUIRED: &str = "PAYMENT-REQUIRED";
/// Header of a paid request: base64 JSON [`PaymentPayload`].
pub const HEADER_PAYMENT_SIGNATURE: &str = "PAYMENT-SIGNATURE";
/// Header of a paid answer: base64 JSON [`SettlementResponse`].
pub const HEADER_PAYMENT_RESPONSE: &str = "PAYMENT-RESPONSE";
/// The one scheme a MAGNET chain settles.
pub const SCHEME_EXACT: &str = "exact";
/// The asset: the chain's base denomination.
pub const ASSET: &str = "umag";
/// Largest header a server or client decodes (bytes of base64).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The CAIP-2 network id of chain `chain_id`: `cosmos:<chain-id>`.
pub fn network(chain_id: &str) -> String {
    format!("cosmos:{chain_id}")
}

/// The resource a payment is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
    /// The URL path (e.g. `/v1/chat/completions`).
    pub url: String,
    /// What is sold.
    #[serde(default)]
    pub description: String,
    /// Media type of the answer.
    #[serde(default)]
    pub mime_type: String,
}

/// MAGNET-specific fields of a requirement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequirementExtra {
    /// The training job whose model is served (the `model` of `MsgPayForInference`).
    pub model: u64,
    /// Price of one token (prompt or generated) in umag, decimal.
    pub price_per_token: String,
    /// Tokens of the prompt as the server tokenized it.
    pub prompt_tokens: u64,
    /// Most tokens the request may generate (its `max_tokens`).
    pub max_tokens: u64,
}

/// One way to pay (x402 `PaymentRequirements`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequirements {
    /// `exact`.
    pub scheme: String,
    /// `cosmos:<chain-id>`.
    pub network: String,
    /// Amount to pay, in the smallest unit of `asset` (decimal string).
    pub amount: String,
    /// `umag`.
    pub asset: String,
    /// The serving node's address (the `server` of `MsgPayForInference`).
    pub pay_to: String,
    /// How long the server waits for the payment to settle.
    pub max_timeout_seconds: u64,
    /// MAGNET fields.
    pub extra: RequirementExtra,
}

/// The body and `PAYMENT-REQUIRED` header of a 402 answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequired {
    /// [`X402_VERSION`].
    pub x402_version: u32,
    /// Why the request was not served (e.g. "payment required", "underpaid: …").
    #[serde(default)]
    pub error: String,
    /// The resource.
    pub resource: ResourceInfo,
    /// Accepted ways to pay.
    pub accepts: Vec<PaymentRequirements>,
}

/// The `exact` scheme's payload on a Cosmos chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExactCosmosPayload {
    /// The signed `TxRaw`, base64 (standard alphabet, padded).
    pub transaction: String,
}

/// The `PAYMENT-SIGNATURE` header of a paid request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentPayload {
    /// [`X402_VERSION`].
    pub x402_version: u32,
    /// The resource paid for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceInfo>,
    /// The requirement this payment meets (copied from the 402 answer).
    pub accepted: PaymentRequirements,
    /// The scheme's payload.
    pub payload: ExactCosmosPayload,
}

/// The `PAYMENT-RESPONSE` header of a paid answer (or of a refused payment).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettlementResponse {
    /// Whether the payment settled.
    pub success: bool,
    /// Why not, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<String>,
    /// The payer's address.
    pub payer: String,
    /// The settling tx hash (upper-case hex), empty when none.
    pub transaction: String,
    /// `cosmos:<chain-id>`.
    pub network: String,
    /// Block height of the settlement (0 when none).
    #[serde(default)]
    pub height: u64,
}

/// Base64 (standard, padded) of the JSON of `v`: how every x402 header is carried.
pub fn encode_header<T: Serialize>(v: &T) -> String {
    // Serializing these plain structs cannot fail.
    let json = serde_json::to_vec(v).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(json)
}

/// Decodes an x402 header written by [`encode_header`].
pub fn decode_header<T: DeserializeOwned>(what: &str, s: &str) -> Result<T, ClientError> {
    let fmt = |reason: String| ClientError::Format {
        what: what.to_string(),
        reason,
    };
    if s.len() > MAX_HEADER_BYTES {
        return Err(fmt(format!(
            "{} bytes, more than the {MAX_HEADER_BYTES} accepted",
            s.len()
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| fmt(format!("not base64: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| fmt(format!("not the expected JSON: {e}")))
}

/// What a client is willing to pay, checked against a requirement before it signs.
#[derive(Clone, Debug)]
pub struct PayLimits {
    /// The chain id the client trusts (from its own node).
    pub chain_id: String,
    /// Most umag it pays for this request.
    pub max_amount: u128,
    /// The model (job) it meant to use, if it cares.
    pub model: Option<u64>,
}

/// Picks the `exact` requirement on `limits.chain_id` from a 402 answer and checks it is
/// within `limits`; returns it with its amount.
pub fn choose<'a>(
    required: &'a PaymentRequired,
    limits: &PayLimits,
) -> Result<(&'a PaymentRequirements, u128), ClientError> {
    let net = network(&limits.chain_id);
    let req = required
        .accepts
        .iter()
        .find(|r| r.scheme == SCHEME_EXACT && r.network == net && r.asset == ASSET)
        .ok_or_else(|| {
            ClientError::Tx(format!(
                "the server accepts no `exact` payment in {ASSET} on {net} (it offers: {})",
                required
                    .accepts
                    .iter()
                    .map(|r| format!("{} on {}", r.scheme, r.network))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let amount: u128 = req.amount.parse().map_err(|_| ClientError::Format {
        what: "the requirement's amount".into(),
        reason: format!("{:?} is not a whole number of umag", req.amount),
    })?;
    if amount > limits.max_amount {
        return Err(ClientError::Tx(format!(
            "the server asks {amount} umag, more than the {} umag limit; raise --max-amount \
             if that is what you want to pay",
            limits.max_amount
        )));
    }
    if let Some(m) = limits.model {
        if req.extra.model != m {
            return Err(ClientError::Tx(format!(
                "the server would charge for job {}'s model, not job {m}'s",
                req.extra.model
            )));
        }
    }
    Ok((req, amount))
}

/// Signs the `exact` payment for `req`: a `TxRaw` carrying one `MsgPayForInference` from
/// `key` to `req.pay_to` for `amount` umag on `req.extra.model`, bound to `signer`'s chain,
/// account number and sequence.
pub fn pay_exact(
    key: &Key,
    req: &PaymentRequirements,
    amount: u128,
    resource: Option<ResourceInfo>,
    fee: &FeeSpec,
    signer: &SignerData,
) -> Result<PaymentPayload, ClientError> {
    let server: Address = req.pay_to.parse().map_err(|e| ClientError::Format {
        what: "the requirement's payTo".into(),
        reason: format!("{e}"),
    })?;
    let msg = crate::msgs::pay_for_inference(&key.address(), req.extra.model, &server, amount);
    let tx = crate::tx::sign_tx(key, vec![msg], "x402", fee, signer)?;
    Ok(PaymentPayload {
        x402_version: X402_VERSION,
        resource,
        accepted: req.clone(),
        payload: ExactCosmosPayload {
            transaction: base64::engine::general_purpose::STANDARD.encode(tx),
        },
    })
}

/// The `TxRaw` bytes of a payload.
pub fn payload_tx(p: &PaymentPayload) -> Result<Vec<u8>, ClientError> {
    base64::engine::general_purpose::STANDARD
        .decode(p.payload.transaction.trim())
        .map_err(|e| ClientError::Format {
            what: "payload.transaction".into(),
            reason: format!("not base64: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn required(chain: &str, amount: &str) -> PaymentRequired {
        PaymentRequired {
            x402_version: X402_VERSION,
            error: "payment required".into(),
            resource: ResourceInfo {
                url: "/v1/completions".into(),
                description: "completion".into(),
                mime_type: "application/json".into(),
            },
            accepts: vec![PaymentRequirements {
                scheme: SCHEME_EXACT.into(),
                network: network(chain),
                amount: amount.into(),
                asset: ASSET.into(),
                pay_to: Key::generate().unwrap().address().to_string(),
                max_timeout_seconds: 30,
                extra: RequirementExtra {
                    model: 1,
                    price_per_token: "10".into(),
                    prompt_tokens: 3,
                    max_tokens: 7,
                },
            }],
        }
    }

    #[test]
    fn headers_round_trip_as_base64_json_with_x402_field_names() {
        let r = required("magnet-devnet-1", "100");
        let h = encode_header(&r);
        let json = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(&h)
                .unwrap(),
        )
        .unwrap();
        for f in [
            "x402Version",
            "payTo",
            "maxTimeoutSeconds",
            "accepts",
            "pricePerToken",
        ] {
            assert!(json.contains(f), "{f} in {json}");
        }
        assert_eq!(decode_header::<PaymentRequired>("h", &h).unwrap(), r);
    }

    #[test]
    fn bad_headers_are_refused_with_a_reason() {
        for (h, why) in [
            ("%%%", "not base64"),
            ("aGVsbG8=", "not the expected JSON"),
            (&"A".repeat(MAX_HEADER_BYTES + 1)[..], "more than"),
        ] {
            let e = decode_header::<PaymentRequired>("h", h).unwrap_err();
            assert!(e.to_string().contains(why), "{h:.10}: {e}");
        }
    }

    #[test]
    fn a_client_refuses_requirements_beyond_its_limits() {
        let r = required("magnet-devnet-1", "100");
        let ok = PayLimits {
            chain_id: "magnet-devnet-1".into(),
            max_amount: 100,
            model: Some(1),
        };
        assert_eq!(choose(&r, &ok).unwrap().1, 100);
        for (limits, why) in [
            (
                PayLimits {
                    max_amount: 99,
                    ..ok.clone()
                },
                "more than the 99 umag limit",
            ),
            (
                PayLimits {
                    chain_id: "other-1".into(),
                    ..ok.clone()
                },
                "no `exact` payment",
            ),
            (
                PayLimits {
                    model: Some(2),
                    ..ok.clone()
                },
                "not job 2's",
            ),
        ] {
            let e = choose(&r, &limits).unwrap_err();
            assert!(e.to_string().contains(why), "{e}");
        }
        let bad = required("magnet-devnet-1", "1e3");
        assert!(choose(&bad, &ok).is_err());
    }

    #[test]
    fn a_payment_carries_one_signed_pay_for_inference_to_the_payee() {
        let key = Key::generate().unwrap();
        let r = required("magnet-devnet-1", "100");
        let signer = SignerData {
            chain_id: "magnet-devnet-1".into(),
            account_number: 4,
            sequence: 9,
        };
        let fee = FeeSpec::at_price(200_000, "0").unwrap();
        let p = pay_exact(&key, &r.accepts[0], 100, None, &fee, &signer).unwrap();
        let raw = payload_tx(&p).unwrap();
        let tx = cosmrs::Tx::from_bytes(&raw).unwrap();
        assert_eq!(tx.body.messages.len(), 1);
        assert_eq!(
            tx.body.messages[0].type_url,
            "/magnet.jobs.v1.MsgPayForInference"
        );
        assert_eq!(tx.auth_info.signer_infos[0].sequence, 9);
        let back: PaymentPayload = decode_header("p", &encode_header(&p)).unwrap();
        assert_eq!(back, p);
    }
}
