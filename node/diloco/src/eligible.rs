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
                        // Prefer next time the first endpoint that gave the agreed answer.
                        self.preferred = answers.iter().find(|a| a.1 == set).map_or(i, |a| a.0);
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

/// Path of the eligible-set endpoint served by the chain node (JSON body = [`EligibleSet`]).
pub const ELIGIBLE_PATH: &str = "/magnet/diloco/v1/eligible";

/// Body of a 404 answer from an endpoint that has not reached the height yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotYetBody {
    /// The endpoint's latest height.
    pub latest_height: u64,
}

/// An [`EligibleSource`] over plain HTTP/1.1 (`GET {base}/magnet/diloco/v1/eligible?height=H`).
///
/// Answers: `200` + JSON [`EligibleSet`]; `404` + JSON [`NotYetBody`] when the height is not
/// reached yet; anything else is `Unavailable`. Only `http://host:port[/prefix]` URLs (TLS
/// termination belongs in front of the chain node). Blocking, with connect and read timeouts;
/// the answer is capped at `max_body` bytes.
#[derive(Clone, Debug)]
pub struct HttpEligibleSource {
    url: String,
    host_port: String,
    prefix: String,
    timeout: std::time::Duration,
    max_body: usize,
}

impl HttpEligibleSource {
    /// A source for `url` (`http://host:port[/prefix]`).
    pub fn new(url: &str, timeout: std::time::Duration) -> Result<Self, SourceError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| SourceError::Malformed {
                endpoint: url.to_string(),
                detail: "only http://host:port[/prefix] URLs are supported".into(),
            })?;
        let (host_port, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if host_port.is_empty() || !host_port.contains(':') {
            return Err(SourceError::Malformed {
                endpoint: url.to_string(),
                detail: "the URL needs an explicit host:port".into(),
            });
        }
        Ok(Self {
            url: url.to_string(),
            host_port: host_port.to_string(),
            prefix: prefix.to_string(),
            timeout,
            max_body: 16 << 20,
        })
    }

    fn unavailable(&self, detail: impl std::fmt::Display) -> SourceError {
        SourceError::Unavailable {
            endpoint: self.url.clone(),
            detail: detail.to_string(),
        }
    }

    fn malformed(&self, detail: impl std::fmt::Display) -> SourceError {
        SourceError::Malformed {
            endpoint: self.url.clone(),
            detail: detail.to_string(),
        }
    }

    fn get(&self, height: u64) -> Result<(u16, Vec<u8>), SourceError> {
        use std::io::{Read, Write};
        use std::net::ToSocketAddrs;
        let addr = self
            .host_port
            .to_socket_addrs()
            .map_err(|e| self.unavailable(format!("cannot resolve {}: {e}", self.host_port)))?
            .next()
            .ok_or_else(|| self.unavailable("host resolves to no address"))?;
        let mut stream = std::net::TcpStream::connect_timeout(&addr, self.timeout)
            .map_err(|e| self.unavailable(format!("connect: {e}")))?;
        stream
            .set_read_timeout(Some(self.timeout))
            .and_then(|_| stream.set_write_timeout(Some(self.timeout)))
            .map_err(|e| self.unavailable(e))?;
        let req = format!(
            "GET {}{ELIGIBLE_PATH}?height={height} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
            self.prefix, self.host_port
        );
        stream
            .write_all(req.as_bytes())
            .map_err(|e| self.unavailable(format!("send: {e}")))?;
        let mut raw = Vec::new();
        stream
            .take(self.max_body as u64 + 64 * 1024)
            .read_to_end(&mut raw)
            .map_err(|e| self.unavailable(format!("read: {e}")))?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| self.malformed("no end of HTTP headers"))?;
        let head = std::str::from_utf8(&raw[..split])
            .map_err(|_| self.malformed("headers are not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.malformed(format!("bad status line {status_line:?}")))?;
        let mut body = raw[split + 4..].to_vec();
        let content_length = lines.find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        });
        if let Some(n) = content_length {
            if body.len() < n {
                return Err(self.malformed(format!("body cut short: {} of {n} bytes", body.len())));
            }
            body.truncate(n);
        }
        if body.len() > self.max_body {
            return Err(self.malformed("body too large"));
        }
        Ok((status, body))
    }
}

impl EligibleSource for HttpEligibleSource {
    fn name(&self) -> &str {
        &self.url
    }

    fn eligible_at(&mut self, height: u64) -> Result<EligibleSet, SourceError> {
        let (status, body) = self.get(height)?;
        match status {
            200 => serde_json::from_slice(&body)
                .map_err(|e| self.malformed(format!("eligible set JSON: {e}"))),
            404 => {
                let nb: NotYetBody = serde_json::from_slice(&body)
                    .map_err(|e| self.malformed(format!("404 without a latest height: {e}")))?;
                Err(SourceError::NotYet {
                    endpoint: self.url.clone(),
                    height,
                    latest: nb.latest_height,
                })
            }
            s => Err(self.unavailable(format!("HTTP {s}"))),
        }
    }
}
