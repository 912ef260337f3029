//! `tx_search` for the embedded node: the CometBFT query language over stored tx results.
//!
//! Queries are parsed by `tendermint-rpc`'s own parser, so the grammar is exactly CometBFT's:
//! conditions joined by `AND`, each `key OP operand` with `=`, `<`, `<=`, `>`, `>=`,
//! `CONTAINS` and `EXISTS`. Keys are
//! * `tx.hash` (hex, any case) and `tx.height`;
//! * `<event type>.<attribute key>` for every event the tx emitted, e.g. `message.sender`,
//!   `transfer.recipient`, or a module's own events (`register_node.node_id`, …);
//! * `tm.event = 'Tx'` is accepted and ignored (every result here is a tx).
//!
//! A condition holds when **any** attribute with that key satisfies it (CometBFT semantics);
//! numbers compare numerically, strings exactly.
//!
//! # Guarantees
//! Results are ordered by (height, index), ascending or descending; `total_count` counts all
//! matches; pages are 1-based with at most [`MAX_PER_PAGE`] entries.
//!
//! # Non-guarantees
//! There is no secondary index: a query without `tx.hash` scans the stored blocks between
//! the bounds its `tx.height` conditions give (all blocks when none), which is linear in the
//! chain length. Date/time operands are not supported (no event carries them).

use tendermint_proto::v0_38::abci as pb;
use tendermint_rpc::query::{Condition, Operand, Operation, Query};

/// Default page size (CometBFT's).
pub const DEFAULT_PER_PAGE: usize = 30;
/// Largest page size (CometBFT's).
pub const MAX_PER_PAGE: usize = 100;

/// A parsed search.
#[derive(Clone, Debug)]
pub struct Search {
    conditions: Vec<Condition>,
}

/// A query that cannot be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SearchError {
    /// Not CometBFT query syntax.
    #[error("cannot parse query {query:?}: {reason}; example: tx.height=5 AND message.sender='magnet1…'")]
    Syntax {
        /// The query.
        query: String,
        /// Parser message.
        reason: String,
    },
    /// A condition the embedded node does not evaluate.
    #[error("unsupported condition on {key:?}: {why}")]
    Unsupported {
        /// Key.
        key: String,
        /// Why.
        why: String,
    },
    /// An empty query.
    #[error("empty query: give at least one condition, e.g. tx.height=5")]
    Empty,
}

fn operand_f64(o: &Operand) -> Option<f64> {
    match o {
        Operand::Signed(n) => Some(*n as f64),
        Operand::Unsigned(n) => Some(*n as f64),
        Operand::Float(f) => Some(*f),
        _ => None,
    }
}

impl Search {
    /// Parse a CometBFT query.
    pub fn parse(q: &str) -> Result<Search, SearchError> {
        if q.trim().is_empty() {
            return Err(SearchError::Empty);
        }
        let parsed: Query = q
            .parse()
            .map_err(|e: tendermint_rpc::Error| SearchError::Syntax {
                query: q.to_string(),
                reason: e.detail().to_string(),
            })?;
        let conditions: Vec<Condition> = parsed
            .conditions
            .into_iter()
            .filter(|c| c.key != "tm.event")
            .collect();
        for c in &conditions {
            if let Operation::Eq(o)
            | Operation::Lt(o)
            | Operation::Lte(o)
            | Operation::Gt(o)
            | Operation::Gte(o) = &c.operation
            {
                if matches!(o, Operand::Date(_) | Operand::DateTime(_)) {
                    return Err(SearchError::Unsupported {
                        key: c.key.clone(),
                        why: "date and time operands are not supported".into(),
                    });
                }
            }
            if c.key == "tx.height" {
                let ok = match &c.operation {
                    Operation::Eq(o)
                    | Operation::Lt(o)
                    | Operation::Lte(o)
                    | Operation::Gt(o)
                    | Operation::Gte(o) => matches!(o, Operand::Unsigned(_) | Operand::Signed(_)),
                    Operation::Exists => true,
                    Operation::Contains(_) => false,
                };
                if !ok {
                    return Err(SearchError::Unsupported {
                        key: c.key.clone(),
                        why: "tx.height compares with a whole number".into(),
                    });
                }
            }
        }
        if conditions.is_empty() {
            return Err(SearchError::Empty);
        }
        Ok(Search { conditions })
    }

    /// The hash asked for by a `tx.hash = '…'` condition (decoded), if any.
    pub fn hash(&self) -> Option<Vec<u8>> {
        self.conditions
            .iter()
            .find_map(|c| match (&c.key[..], &c.operation) {
                ("tx.hash", Operation::Eq(Operand::String(s))) => {
                    hex::decode(s.trim_start_matches("0x")).ok()
                }
                _ => None,
            })
    }

    /// The inclusive height range the `tx.height` conditions allow, within `[lo, hi]`.
    pub fn height_range(&self, lo: u64, hi: u64) -> (u64, u64) {
        let (mut lo, mut hi) = (lo, hi);
        for c in &self.conditions {
            if c.key != "tx.height" {
                continue;
            }
            let n = |o: &Operand| match o {
                Operand::Unsigned(n) => *n as i128,
                Operand::Signed(n) => *n as i128,
                _ => 0,
            };
            let clamp = |x: i128| x.clamp(0, u64::MAX as i128) as u64;
            match &c.operation {
                Operation::Eq(o) => {
                    lo = lo.max(clamp(n(o)));
                    hi = hi.min(clamp(n(o)));
                }
                Operation::Gt(o) => lo = lo.max(clamp(n(o) + 1)),
                Operation::Gte(o) => lo = lo.max(clamp(n(o))),
                Operation::Lt(o) => hi = hi.min(clamp(n(o) - 1)),
                Operation::Lte(o) => hi = hi.min(clamp(n(o))),
                Operation::Contains(_) | Operation::Exists => {}
            }
        }
        (lo, hi)
    }

    /// Does the tx at `height` with `hash` and `events` satisfy every condition?
    pub fn matches(&self, height: u64, hash: &[u8], events: &[pb::Event]) -> bool {
        let hash_hex = hex::encode_upper(hash);
        let height_s = height.to_string();
        self.conditions.iter().all(|c| {
            let values: Vec<&str> = match c.key.as_str() {
                "tx.height" => vec![height_s.as_str()],
                "tx.hash" => vec![hash_hex.as_str()],
                key => events
                    .iter()
                    .flat_map(|e| {
                        e.attributes.iter().filter_map(move |a| {
                            let composite = key.len() == e.r#type.len() + 1 + a.key.len()
                                && key.starts_with(e.r#type.as_str())
                                && key.as_bytes()[e.r#type.len()] == b'.'
                                && key.ends_with(a.key.as_str());
                            composite.then_some(a.value.as_str())
                        })
                    })
                    .collect(),
            };
            match &c.operation {
                Operation::Exists => !values.is_empty(),
                op => values
                    .iter()
                    .any(|v| value_matches(op, v, c.key == "tx.hash")),
            }
        })
    }
}

fn value_matches(op: &Operation, value: &str, case_insensitive: bool) -> bool {
    let num = value.trim().parse::<f64>().ok();
    let cmp = |o: &Operand| -> Option<std::cmp::Ordering> {
        match o {
            Operand::String(s) => Some(if case_insensitive {
                value
                    .to_uppercase()
                    .cmp(&s.trim_start_matches("0x").to_uppercase())
            } else {
                value.cmp(s.as_str())
            }),
            other => {
                // Integers compare exactly when both sides are integers.
                if let (Ok(v), Operand::Unsigned(n)) = (value.trim().parse::<i128>(), other) {
                    return Some(v.cmp(&i128::from(*n)));
                }
                if let (Ok(v), Operand::Signed(n)) = (value.trim().parse::<i128>(), other) {
                    return Some(v.cmp(&i128::from(*n)));
                }
                num?.partial_cmp(&operand_f64(other)?)
            }
        }
    };
    use std::cmp::Ordering::*;
    match op {
        Operation::Eq(o) => cmp(o) == Some(Equal),
        Operation::Lt(o) => cmp(o) == Some(Less),
        Operation::Lte(o) => matches!(cmp(o), Some(Less | Equal)),
        Operation::Gt(o) => cmp(o) == Some(Greater),
        Operation::Gte(o) => matches!(cmp(o), Some(Greater | Equal)),
        Operation::Contains(s) => value.contains(s.as_str()),
        Operation::Exists => true,
    }
}

/// Page `page` (1-based) of `total` items, `per_page` each: the index range, or an error
/// message in CometBFT's words.
pub fn page_range(
    total: usize,
    page: Option<u64>,
    per_page: Option<u64>,
) -> Result<std::ops::Range<usize>, String> {
    let per = per_page
        .map(|p| (p as usize).clamp(1, MAX_PER_PAGE))
        .unwrap_or(DEFAULT_PER_PAGE);
    let pages = total.div_ceil(per).max(1);
    let page = page.unwrap_or(1);
    if page == 0 || page as usize > pages {
        return Err(format!(
            "page should be within [1, {pages}] range, given {page}"
        ));
    }
    let start = (page as usize - 1) * per;
    Ok(start..(start + per).min(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, attrs: &[(&str, &str)]) -> pb::Event {
        pb::Event {
            r#type: kind.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| pb::EventAttribute {
                    key: (*k).into(),
                    value: (*v).into(),
                    index: true,
                })
                .collect(),
        }
    }

    #[test]
    fn conditions_match_event_attributes_heights_and_hashes() {
        let events = vec![
            ev("message", &[("sender", "magnet1alice"), ("module", "bank")]),
            ev(
                "transfer",
                &[("recipient", "magnet1bob"), ("amount", "700umag")],
            ),
            ev("register_node", &[("bond", "300")]),
        ];
        let hash = [0xAB; 32];
        let table = [
            ("message.sender='magnet1alice'", true),
            ("message.sender='magnet1bob'", false),
            ("tx.height=7", true),
            ("tx.height=8", false),
            ("tx.height>6 AND tx.height<=7", true),
            ("tx.height>=8", false),
            (
                "message.sender='magnet1alice' AND transfer.recipient='magnet1bob'",
                true,
            ),
            (
                "message.sender='magnet1alice' AND transfer.recipient='magnet1carol'",
                false,
            ),
            ("register_node.bond>299", true),
            ("register_node.bond=300", true),
            ("register_node.bond<300", false),
            ("transfer.amount CONTAINS 'umag'", true),
            ("register_node.bond EXISTS", true),
            ("slash.amount EXISTS", false),
            ("tm.event='Tx' AND tx.height=7", true),
            (&*format!("tx.hash='{}'", "ab".repeat(32)), true),
            (&*format!("tx.hash='{}'", "cd".repeat(32)), false),
            // An event type that is a prefix of another's must not match it.
            ("messag.sender='magnet1alice'", false),
        ];
        for (q, want) in table {
            let s = Search::parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
            assert_eq!(s.matches(7, &hash, &events), want, "{q}");
        }
    }

    #[test]
    fn bad_queries_are_refused_with_their_own_errors() {
        assert_eq!(Search::parse("  ").unwrap_err(), SearchError::Empty);
        assert_eq!(
            Search::parse("tm.event='Tx'").unwrap_err(),
            SearchError::Empty
        );
        assert!(matches!(
            Search::parse("tx.height=").unwrap_err(),
            SearchError::Syntax { .. }
        ));
        assert!(matches!(
            Search::parse("tx.height='abc'").unwrap_err(),
            SearchError::Unsupported { .. }
        ));
        assert!(matches!(
            Search::parse("block.time > 2026-01-01T00:00:00Z").unwrap_err(),
            SearchError::Unsupported { .. } | SearchError::Syntax { .. }
        ));
    }

    #[test]
    fn height_conditions_bound_the_scan() {
        let s = Search::parse("tx.height>3 AND tx.height<=9 AND message.sender='x'").unwrap();
        assert_eq!(s.height_range(1, 100), (4, 9));
        let s = Search::parse("tx.height=5").unwrap();
        assert_eq!(s.height_range(1, 100), (5, 5));
        let s = Search::parse("message.sender='x'").unwrap();
        assert_eq!(s.height_range(1, 100), (1, 100));
        assert_eq!(
            Search::parse(&format!("tx.hash='{}'", "0A".repeat(32)))
                .unwrap()
                .hash(),
            Some(vec![0x0a; 32])
        );
    }

    #[test]
    fn pages_are_one_based_and_bounded() {
        assert_eq!(page_range(0, None, None), Ok(0..0));
        assert_eq!(page_range(45, None, None), Ok(0..30));
        assert_eq!(page_range(45, Some(2), None), Ok(30..45));
        assert_eq!(page_range(45, Some(2), Some(20)), Ok(20..40));
        assert_eq!(page_range(5, Some(1), Some(1000)), Ok(0..5));
        assert!(page_range(45, Some(3), None).is_err());
        assert!(page_range(45, Some(0), None).is_err());
    }
}
