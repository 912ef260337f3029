//! Registry messages (from `proto/magnet/registry/v1/tx.proto`) and their stateless checks.
//! [`check`] returns the typed message and the address that must sign it: the operator for
//! bond-moving messages, the node key for heartbeats.

use crate::error::Error;
use crate::state::SsdRecord;
use magnet_core::msg::{address, amount, decode_any};
use magnet_core::{Address, ModuleError};
pub use magnet_proto::registry::v1::{
    MsgAdvertiseService, MsgBondGov, MsgChangeTier, MsgHeartbeat, MsgRegisterNode, MsgUnbondGov,
    MsgUnbondNode, MsgUnjail, MsgWithdrawService, SsdReport,
};
use prost::Name;

/// Longest endpoint, region or hardware profile accepted.
pub const MAX_FIELD: usize = 512;

/// Longest service endpoint accepted (bytes).
pub const MAX_SERVICE_ENDPOINT: usize = 256;
/// Highest `price_per_token` accepted: 10^12 umag (a million MAG) per token, so that a price
/// times any `u64` token count fits a `u128`.
pub const MAX_PRICE_PER_TOKEN: u128 = 1_000_000_000_000;
/// Largest `max_context` accepted (tokens).
pub const MAX_CONTEXT: u64 = 1 << 24;

/// A checked registry message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// Register a node.
    Register {
        /// Operator (signer).
        operator: Address,
        /// Compressed node key.
        node_pubkey: Vec<u8>,
        /// Node key address.
        node: Address,
        /// Tier.
        tier: String,
        /// Endpoint.
        endpoint: String,
        /// Region.
        region: String,
        /// Hardware profile.
        hardware_profile: String,
        /// Bond.
        bond: u128,
        /// SSD provisioning report.
        ssd: Option<SsdRecord>,
    },
    /// Heartbeat (node key signs).
    Heartbeat {
        /// Node key address.
        node: Address,
    },
    /// Change tier.
    ChangeTier {
        /// Operator.
        operator: Address,
        /// New tier.
        tier: String,
        /// Extra bond.
        extra_bond: u128,
        /// SSD provisioning report (replaces the stored one when given).
        ssd: Option<SsdRecord>,
    },
    /// Unbond the node.
    UnbondNode {
        /// Operator.
        operator: Address,
    },
    /// Leave jail.
    Unjail {
        /// Operator.
        operator: Address,
    },
    /// Governance bond.
    BondGov {
        /// Owner.
        owner: Address,
        /// Amount.
        amount: u128,
    },
    /// Unbond governance bond.
    UnbondGov {
        /// Owner.
        owner: Address,
        /// Amount.
        amount: u128,
    },
    /// Advertise an inference service (node key signs).
    AdvertiseService {
        /// Node-key address.
        node: Address,
        /// Job whose model is served (> 0).
        job: u64,
        /// Checked `http(s)://` URL.
        endpoint: String,
        /// umag per token.
        price_per_token: u128,
        /// Longest context (tokens).
        max_context: u64,
    },
    /// Withdraw an advertisement (node key signs).
    WithdrawService {
        /// Node-key address.
        node: Address,
        /// Job.
        job: u64,
    },
}

/// Type URLs handled by this module.
pub fn type_urls() -> Vec<&'static str> {
    vec![
        "/magnet.registry.v1.MsgRegisterNode",
        "/magnet.registry.v1.MsgHeartbeat",
        "/magnet.registry.v1.MsgChangeTier",
        "/magnet.registry.v1.MsgUnbondNode",
        "/magnet.registry.v1.MsgUnjail",
        "/magnet.registry.v1.MsgBondGov",
        "/magnet.registry.v1.MsgUnbondGov",
        "/magnet.registry.v1.MsgAdvertiseService",
        "/magnet.registry.v1.MsgWithdrawService",
    ]
}

/// Check a service endpoint: an `http://` or `https://` URL of at most
/// [`MAX_SERVICE_ENDPOINT`] bytes, printable ASCII without spaces, with a host (a DNS name, an
/// IPv4 address or a bracketed IPv6 address), an optional port in 1..=65535, no user info,
/// then an optional path, query or fragment.
pub fn check_endpoint(endpoint: &str) -> Result<(), Error> {
    if endpoint.len() > MAX_SERVICE_ENDPOINT {
        return Err(Error::FieldTooLong {
            field: "endpoint",
            len: endpoint.len(),
            max: MAX_SERVICE_ENDPOINT,
        });
    }
    let bad = |why: &str| {
        Err(Error::InvalidEndpoint {
            endpoint: endpoint.to_string(),
            why: why.to_string(),
        })
    };
    if !endpoint.bytes().all(|b| b.is_ascii_graphic()) {
        return bad("it must be printable ASCII without spaces");
    }
    let Some(rest) = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
    else {
        return bad("the scheme must be http:// or https://");
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains('@') {
        return bad("user info (user@host) is not allowed");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some(close) = v6.find(']') else {
            return bad("an IPv6 host must be closed with ]");
        };
        let (h, after) = (&v6[..close], &v6[close + 1..]);
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return bad("the IPv6 host is not hex digits and colons");
        }
        match after {
            "" => (h, None),
            p if p.starts_with(':') => (h, Some(&p[1..])),
            _ => return bad("only :port may follow an IPv6 host"),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if !host.bytes().any(|b| b.is_ascii_alphanumeric()) {
        return bad("it has no host");
    }
    if !authority.starts_with('[')
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return bad("the host may hold only letters, digits, '-' and '.'");
    }
    if let Some(p) = port {
        let ok = !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| (1..=65_535).contains(&n));
        if !ok {
            return bad("the port must be a number in 1..=65535");
        }
    }
    Ok(())
}

/// Parse a service price: a whole number of umag (an optional `umag` suffix), at most
/// [`MAX_PRICE_PER_TOKEN`]; `"0"` is free, an empty string is refused.
pub fn parse_price(price: &str) -> Result<u128, Error> {
    let bad = |why: String| Error::InvalidPrice {
        price: price.to_string(),
        why,
    };
    let t = price
        .strip_suffix(magnet_core::NATIVE_DENOM)
        .unwrap_or(price);
    if t.is_empty() || t.len() > 39 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(
            "expected a whole number of umag per token, e.g. 0 (free) or 25".into(),
        ));
    }
    let v: u128 = t
        .parse()
        .map_err(|_| bad("does not fit a 128-bit number".into()))?;
    if v > MAX_PRICE_PER_TOKEN {
        return Err(bad(format!(
            "above the most a token may cost, {MAX_PRICE_PER_TOKEN} umag"
        )));
    }
    Ok(v)
}

fn short(field: &'static str, s: &str) -> Result<String, Error> {
    if s.len() > MAX_FIELD {
        return Err(Error::FieldTooLong {
            field,
            len: s.len(),
            max: MAX_FIELD,
        });
    }
    Ok(s.to_string())
}

/// Decode and check `any`; returns the message and its required signer.
pub fn check(any: &prost_types::Any) -> Result<(Msg, Address), Error> {
    let t = any.type_url.as_str();
    let m = if t == MsgRegisterNode::type_url() {
        let m: MsgRegisterNode = decode_any(any)?;
        let operator = address("operator", &m.operator)?;
        if m.node_pubkey.len() != 33 {
            return Err(Error::InvalidPubkey(format!(
                "{} bytes",
                m.node_pubkey.len()
            )));
        }
        k256::PublicKey::from_sec1_bytes(&m.node_pubkey)
            .map_err(|e| Error::InvalidPubkey(e.to_string()))?;
        let bond = amount("bond", &m.bond)?;
        if bond == 0 {
            return Err(Error::ZeroAmount("bond"));
        }
        Msg::Register {
            operator,
            node: Address::from_pubkey(&m.node_pubkey),
            node_pubkey: m.node_pubkey,
            tier: short("tier", &m.tier)?,
            endpoint: short("endpoint", &m.endpoint)?,
            region: short("region", &m.region)?,
            hardware_profile: short("hardware_profile", &m.hardware_profile)?,
            bond,
            ssd: m.ssd.map(SsdRecord::from),
        }
    } else if t == MsgHeartbeat::type_url() {
        let m: MsgHeartbeat = decode_any(any)?;
        Msg::Heartbeat {
            node: address("node", &m.node)?,
        }
    } else if t == MsgChangeTier::type_url() {
        let m: MsgChangeTier = decode_any(any)?;
        Msg::ChangeTier {
            operator: address("operator", &m.operator)?,
            tier: short("tier", &m.tier)?,
            extra_bond: amount("extra_bond", &m.extra_bond)?,
            ssd: m.ssd.map(SsdRecord::from),
        }
    } else if t == MsgUnbondNode::type_url() {
        let m: MsgUnbondNode = decode_any(any)?;
        Msg::UnbondNode {
            operator: address("operator", &m.operator)?,
        }
    } else if t == MsgUnjail::type_url() {
        let m: MsgUnjail = decode_any(any)?;
        Msg::Unjail {
            operator: address("operator", &m.operator)?,
        }
    } else if t == MsgBondGov::type_url() || t == MsgUnbondGov::type_url() {
        let (owner, amt, bond) = if t == MsgBondGov::type_url() {
            let m: MsgBondGov = decode_any(any)?;
            (m.owner, m.amount, true)
        } else {
            let m: MsgUnbondGov = decode_any(any)?;
            (m.owner, m.amount, false)
        };
        let owner = address("owner", &owner)?;
        let amount = amount("amount", &amt)?;
        if amount == 0 {
            return Err(Error::ZeroAmount("amount"));
        }
        if bond {
            Msg::BondGov { owner, amount }
        } else {
            Msg::UnbondGov { owner, amount }
        }
    } else if t == MsgAdvertiseService::type_url() {
        let m: MsgAdvertiseService = decode_any(any)?;
        let node = address("node", &m.node)?;
        if m.job == 0 {
            return Err(Error::ZeroAmount("job"));
        }
        check_endpoint(&m.endpoint)?;
        let price_per_token = parse_price(&m.price_per_token)?;
        if m.max_context == 0 || m.max_context > MAX_CONTEXT {
            return Err(Error::InvalidMaxContext {
                have: m.max_context,
                max: MAX_CONTEXT,
            });
        }
        Msg::AdvertiseService {
            node,
            job: m.job,
            endpoint: m.endpoint,
            price_per_token,
            max_context: m.max_context,
        }
    } else if t == MsgWithdrawService::type_url() {
        let m: MsgWithdrawService = decode_any(any)?;
        let node = address("node", &m.node)?;
        if m.job == 0 {
            return Err(Error::ZeroAmount("job"));
        }
        Msg::WithdrawService { node, job: m.job }
    } else {
        return Err(ModuleError::unknown_msg(t).into());
    };
    let signer = match &m {
        Msg::Register { operator, .. }
        | Msg::ChangeTier { operator, .. }
        | Msg::UnbondNode { operator }
        | Msg::Unjail { operator } => *operator,
        Msg::Heartbeat { node }
        | Msg::AdvertiseService { node, .. }
        | Msg::WithdrawService { node, .. } => *node,
        Msg::BondGov { owner, .. } | Msg::UnbondGov { owner, .. } => *owner,
    };
    Ok((m, signer))
}

/// `MsgRegisterNode` without an SSD report, as an `Any` (for clients and tests; tier
/// `storage_node` needs [`register_node_with_ssd`]).
#[allow(clippy::too_many_arguments)]
pub fn register_node(
    operator: &Address,
    node_pubkey: &[u8],
    tier: &str,
    endpoint: &str,
    region: &str,
    hardware_profile: &str,
    bond: u128,
) -> prost_types::Any {
    register_node_with_ssd(
        operator,
        node_pubkey,
        tier,
        endpoint,
        region,
        hardware_profile,
        bond,
        None,
    )
}

/// `MsgRegisterNode` with the SSD provisioning test's report, as an `Any`.
#[allow(clippy::too_many_arguments)]
pub fn register_node_with_ssd(
    operator: &Address,
    node_pubkey: &[u8],
    tier: &str,
    endpoint: &str,
    region: &str,
    hardware_profile: &str,
    bond: u128,
    ssd: Option<SsdReport>,
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgRegisterNode {
        ssd,
        operator: operator.to_string(),
        node_pubkey: node_pubkey.to_vec(),
        tier: tier.into(),
        endpoint: endpoint.into(),
        region: region.into(),
        hardware_profile: hardware_profile.into(),
        bond: bond.to_string(),
    })
}

/// `MsgHeartbeat` as an `Any`.
pub fn heartbeat(node: &Address) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgHeartbeat {
        node: node.to_string(),
    })
}

/// `MsgUnjail` as an `Any`.
pub fn unjail(operator: &Address) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgUnjail {
        operator: operator.to_string(),
    })
}

/// `MsgChangeTier` without an SSD report (the stored one stays), as an `Any`.
pub fn change_tier(operator: &Address, tier: &str, extra_bond: u128) -> prost_types::Any {
    change_tier_with_ssd(operator, tier, extra_bond, None)
}

/// `MsgChangeTier` with a fresh SSD report (replacing the stored one), as an `Any`.
pub fn change_tier_with_ssd(
    operator: &Address,
    tier: &str,
    extra_bond: u128,
    ssd: Option<SsdReport>,
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgChangeTier {
        ssd,
        operator: operator.to_string(),
        tier: tier.into(),
        extra_bond: extra_bond.to_string(),
    })
}

/// `MsgUnbondNode` as an `Any`.
pub fn unbond_node(operator: &Address) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgUnbondNode {
        operator: operator.to_string(),
    })
}

/// `MsgBondGov` as an `Any`.
pub fn bond_gov(owner: &Address, amount: u128) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgBondGov {
        owner: owner.to_string(),
        amount: amount.to_string(),
    })
}

/// `MsgUnbondGov` as an `Any`.
pub fn unbond_gov(owner: &Address, amount: u128) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgUnbondGov {
        owner: owner.to_string(),
        amount: amount.to_string(),
    })
}

/// `MsgAdvertiseService` as an `Any`: `node` (the node-key address, which signs) serves job
/// `job`'s model at `endpoint` for `price_per_token` umag per token (0: free), contexts up to
/// `max_context` tokens.
pub fn advertise_service(
    node: &Address,
    job: u64,
    endpoint: &str,
    price_per_token: u128,
    max_context: u64,
) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgAdvertiseService {
        node: node.to_string(),
        job,
        endpoint: endpoint.into(),
        price_per_token: price_per_token.to_string(),
        max_context,
    })
}

/// `MsgWithdrawService` as an `Any` (signed by the node key).
pub fn withdraw_service(node: &Address, job: u64) -> prost_types::Any {
    magnet_core::msg::to_any(&MsgWithdrawService {
        node: node.to_string(),
        job,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_need_an_http_scheme_a_host_and_a_valid_port() {
        for ok in [
            "http://a",
            "https://serve.example",
            "https://serve.example:8443/v1",
            "http://10.0.0.7:8000",
            "https://[::1]",
            "https://[2001:db8::1]:443/v1/chat?x=1#f",
            "https://serve.example?x",
            "https://serve.example:65535",
        ] {
            check_endpoint(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        let long = format!("https://{}", "a".repeat(MAX_SERVICE_ENDPOINT - 8));
        check_endpoint(&long).unwrap();
        assert!(matches!(
            check_endpoint(&format!("{long}a")),
            Err(Error::FieldTooLong { len: 257, .. })
        ));
        for bad in [
            "",
            "serve.example",
            "ftp://serve.example",
            "https://",
            "https://...",
            "https://:1",
            "https://a@b",
            "https://a:0",
            "https://a:65536",
            "https://a:",
            "https://a:+1",
            "https://a b",
            "https://a\n",
            "https://[::1",
            "https://[g::1]",
            "https://[::1]:",
            "https://[::1]x",
        ] {
            assert!(
                matches!(check_endpoint(bad), Err(Error::InvalidEndpoint { .. })),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn prices_are_whole_umag_up_to_the_limit() {
        assert_eq!(parse_price("0").unwrap(), 0);
        assert_eq!(parse_price("25umag").unwrap(), 25);
        assert_eq!(
            parse_price(&MAX_PRICE_PER_TOKEN.to_string()).unwrap(),
            MAX_PRICE_PER_TOKEN
        );
        for bad in [
            "",
            "umag",
            "-1",
            "+1",
            "1.5",
            " 1",
            "0x10",
            "1000000000001",
            "340282366920938463463374607431768211456",
        ] {
            assert!(
                matches!(parse_price(bad), Err(Error::InvalidPrice { .. })),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn service_messages_are_signed_by_the_node_key_and_checked_statelessly() {
        let node = Address([2; 20]);
        let (m, s) = check(&advertise_service(&node, 4, "https://a", 3, 4096)).unwrap();
        assert_eq!(s, node);
        assert_eq!(
            m,
            Msg::AdvertiseService {
                node,
                job: 4,
                endpoint: "https://a".into(),
                price_per_token: 3,
                max_context: 4096,
            }
        );
        let (m, s) = check(&withdraw_service(&node, 4)).unwrap();
        assert_eq!((m, s), (Msg::WithdrawService { node, job: 4 }, node));
        assert!(matches!(
            check(&withdraw_service(&node, 0)),
            Err(Error::ZeroAmount("job"))
        ));
        assert!(type_urls().contains(&"/magnet.registry.v1.MsgAdvertiseService"));
        assert!(type_urls().contains(&"/magnet.registry.v1.MsgWithdrawService"));
    }
}
