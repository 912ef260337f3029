//! The eligible set of a round, read from the chain, with failover across RPC endpoints.
//!
//! A round's leader and its participants come from the chain's eligible set *at the round's
//! start height* (plus the hash of that block, which seeds the election, and each member's
//! on-chain quality score, which weighs its Δ). Workers read it through [`EligibleSource`]s —
//! one per chain RPC endpoint — wrapped in a [`FailoverSource`]:
//!
//! * try the last endpoint that answered first, then the others in ring order;
//! * an endpoint that fails (unreachable, malformed answer, wrong height) cools down for
//!   `cooldown_ms` and is tried only when every endpoint is cooling down;
//! * an endpoint that has not reached the height yet (`NotYet`) is not penalised;
//! * optionally `quorum > 1` endpoints must return the identical set (guards against one
//!   lying RPC).
//!
//! # Guarantees
//! A returned set is for exactly the height asked, and has been agreed by `quorum` endpoints.
//! Time is an argument (`now`, milliseconds), so the policy is tested without sleeping.
//!
//! # Non-guarantees
//! Light-client verification of the answer against the validator set is not done here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::{Digest, NodeId};

/// Basis points meaning a quality score of 1.0.
pub const QUALITY_ONE_BPS: u32 = 10_000;

/// What the chain says about one eligible node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// On-chain quality score in basis points (10000 = 1.0).
    pub quality_bps: u32,
}

impl Default for Member {
    fn default() -> Self {
        Self {
            quality_bps: QUALITY_ONE_BPS,
        }
    }
}

/// The eligible set at one height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EligibleSet {
    /// The height it was read at.
    pub height: u64,
    /// Hash of the block at that height (seeds the election).
    pub block_hash: Digest,
    /// Eligible nodes, sorted by id.
    pub members: BTreeMap<NodeId, Member>,
}

impl EligibleSet {
    /// The member ids, sorted.
    pub fn ids(&self) -> std::collections::BTreeSet<NodeId> {
        self.members.keys().cloned().collect()
    }
}

/// One endpoint could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// Connection refused, timeout, HTTP 5xx, ...
    #[error("{endpoint} is unavailable: {detail}")]
    Unavailable {
        /// Endpoint name.
        endpoint: String,
        /// What happened.
        detail: String,
    },
    /// The endpoint's chain has not reached the height yet.
    #[error("{endpoint} is at height {latest}, below the requested {height}")]
    NotYet {
        /// Endpoint name.
        endpoint: String,
        /// Requested.
        height: u64,
        /// Its latest height.
        latest: u64,
    },
    /// The answer did not parse or made no sense.
    #[error("{endpoint} answered something malformed: {detail}")]
    Malformed {
        /// Endpoint name.
        endpoint: String,
        /// What is wrong.
        detail: String,
    },
}

/// Reads the eligible set at a height from one chain endpoint.
pub trait EligibleSource {
    /// A name for logs and errors (e.g. the URL).
    fn name(&self) -> &str;
    /// The eligible set at exactly `height`.
    fn eligible_at(&mut self, height: u64) -> Result<EligibleSet, SourceError>;
}

/// Every endpoint failed (or they disagreed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailoverError {
    /// No endpoint configured.
    #[error("no chain endpoints configured: pass at least one RPC endpoint")]
    NoSources,
    /// Every endpoint was tried; their errors, in the order tried.
    #[error("no endpoint could give the eligible set at height {height}: {errors:?}")]
    AllFailed {
        /// Requested height.
        height: u64,
        /// Each attempt's error.
        errors: Vec<SourceError>,
    },
    /// Fewer than `quorum` endpoints agreed.
    #[error("endpoints disagree about the eligible set at height {height}: best agreement {agreeing} of the quorum {quorum}")]
    NoQuorum {
        /// Requested height.
        height: u64,
        /// Largest group of identical answers.
        agreeing: usize,
        /// Required.
        quorum: usize,
    },
}

/// Several endpoints with the failover policy in the module docs.
pub struct FailoverSource<S> {
    sources: Vec<S>,
    cooling_until: Vec<u64>,
    preferred: usize,
    cooldown_ms: u64,
    quorum: usize,
}

impl<S: EligibleSource> FailoverSource<S> {
    /// Endpoints in priority order; a failed one rests for `cooldown_ms`; `quorum` ≥ 1 must agree.
    pub fn new(sources: Vec<S>, cooldown_ms: u64, quorum: usize) -> Result<Self, FailoverError> {
        if sources.is_empty() {
            return Err(FailoverError::NoSources);
        }
        let n = sources.len();
        Ok(Self {
            sources,
            cooling_until: vec![0; n],
            preferred: 0,
            cooldown_ms,
            quorum: quorum.clamp(1, n),
        })
    }

    /// Index of the endpoint tried first next time.
    pub fn preferred(&self) -> usize {
        self.preferred
    }

    /// The endpoints.
    pub fn sources(&self) -> &[S] {
        &self.sources
    }

    /// Reads the eligible set at `height` at time `now` (ms).
    pub fn eligible_at(&mut self, height: u64, now: u64) -> Result<EligibleSet, FailoverError> {
        let n = self.sources.len();
        let ring: Vec<usize> = (0..n).map(|k| (self.preferred + k) % n).collect();
        // Rested endpoints first, then cooling ones (still in ring order).
        let order: Vec<usize> = ring
            .iter()
            .copied()
            .filter(|&i| self.cooling_until[i] <= now)
            .chain(
                ring.iter()
                    .copied()
                    .filter(|&i| self.cooling_until[i] > now),
            )
            .collect();
        let mut errors = Vec::new();
        let mut answers: Vec<(usize, EligibleSet)> = Vec::new();
        for i in order {
            let res = self.sources[i].eligible_at(height).and_then(|set| {
                if set.height == height {
                    Ok(set)
                } else {
                    Err(SourceError::Malformed {
                        endpoint: self.sources[i].name().to_string(),
                        detail: format!("asked for height {height}, got {}", set.height),
                    })
                }
            });
            match res {
                Ok(set) => {
                    answers.push((i, set));
                    if let Some(set) = self.agreed(&answers) {
                        self.preferred = answers.first().map_or(i, |a| a.0);
                        return Ok(set);
                    }
                }
                Err(e) => {
                    if !matches!(e, SourceError::NotYet { .. }) {
                        self.cooling_until[i] = now.saturating_add(self.cooldown_ms);
                    }
                    errors.push(e);
                }
            }
        }
        if answers.is_empty() {
            Err(FailoverError::AllFailed { height, errors })
        } else {
            Err(FailoverError::NoQuorum {
                height,
                agreeing: self.best_agreement(&answers),
                quorum: self.quorum,
            })
        }
    }

    fn best_agreement(&self, answers: &[(usize, EligibleSet)]) -> usize {
        answers
            .iter()
            .map(|(_, a)| answers.iter().filter(|(_, b)| b == a).count())
            .max()
            .unwrap_or(0)
    }

    fn agreed(&self, answers: &[(usize, EligibleSet)]) -> Option<EligibleSet> {
        answers
            .iter()
            .find(|(_, a)| answers.iter().filter(|(_, b)| b == a).count() >= self.quorum)
            .map(|(_, a)| a.clone())
    }
}
