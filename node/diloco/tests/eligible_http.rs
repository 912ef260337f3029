//! The eligible set over real local HTTP servers: failover past dead, failing, lagging and
//! malformed endpoints, cooldown, and quorum against a lying endpoint.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use magnet_diloco::eligible::{
    EligibleSet, EligibleSource, FailoverError, FailoverSource, HttpEligibleSource, Member,
    SourceError,
};
use magnet_diloco::{Digest, NodeId};

/// What a test server does with a request for `height`.
#[derive(Clone)]
enum Behaviour {
    /// Serves the real history (chain at `tip`).
    Chain {
        history: BTreeMap<u64, EligibleSet>,
        tip: u64,
    },
    /// HTTP 503.
    Failing,
    /// 200 with garbage.
    Garbage,
}

fn history(members: &[&str]) -> BTreeMap<u64, EligibleSet> {
    (0..50u64)
        .map(|h| {
            let set = EligibleSet {
                height: h,
                block_hash: Digest::domain_hash("block", &[&h.to_be_bytes()]),
                members: members
                    .iter()
                    .map(|m| (NodeId::new(*m).unwrap(), Member { quality_bps: 9_000 }))
                    .collect(),
            };
            (h, set)
        })
        .collect()
}

/// Starts a real HTTP server on 127.0.0.1; returns its URL and a request counter.
fn serve(b: Behaviour) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let h2 = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            h2.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let height: u64 = req
                .split("height=")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|d| d.parse().ok())
                .unwrap_or(u64::MAX);
            let (status, body) = match &b {
                Behaviour::Failing => ("503 Service Unavailable", "busy".to_string()),
                Behaviour::Garbage => ("200 OK", "{not json".to_string()),
                Behaviour::Chain { history, tip } => {
                    if height > *tip {
                        ("404 Not Found", format!("{{\"latest_height\":{tip}}}"))
                    } else {
                        ("200 OK", serde_json::to_string(&history[&height]).unwrap())
                    }
                }
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes());
        }
    });
    (url, hits)
}

fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l); // nothing listens there any more: connection refused
    url
}

fn source(url: &str) -> HttpEligibleSource {
    HttpEligibleSource::new(url, Duration::from_secs(2)).unwrap()
}

#[test]
fn a_single_endpoint_serves_the_set_at_the_height_asked() {
    let (url, _) = serve(Behaviour::Chain {
        history: history(&["node-a", "node-b"]),
        tip: 40,
    });
    let mut s = source(&url);
    let set = s.eligible_at(12).unwrap();
    assert_eq!(set, history(&["node-a", "node-b"])[&12]);
    assert!(matches!(
        s.eligible_at(41),
        Err(SourceError::NotYet {
            latest: 40,
            height: 41,
            ..
        })
    ));
}

#[test]
fn failover_skips_dead_failing_lagging_and_garbage_endpoints_then_prefers_the_good_one() {
    let good_history = history(&["node-a", "node-b", "node-c"]);
    let (failing, failing_hits) = serve(Behaviour::Failing);
    let (garbage, _) = serve(Behaviour::Garbage);
    let (lagging, lagging_hits) = serve(Behaviour::Chain {
        history: good_history.clone(),
        tip: 5,
    });
    let (good, good_hits) = serve(Behaviour::Chain {
        history: good_history.clone(),
        tip: 49,
    });
    let urls = [dead_url(), failing, garbage, lagging, good];
    let mut f = FailoverSource::new(urls.iter().map(|u| source(u)).collect(), 10_000, 1).unwrap();

    let set = f.eligible_at(20, 0).unwrap();
    assert_eq!(set, good_history[&20]);
    assert_eq!(
        f.preferred(),
        4,
        "the endpoint that answered is tried first next time"
    );

    // Next read goes straight to the good endpoint; the failing one is resting.
    let before_fail = failing_hits.load(Ordering::SeqCst);
    let before_good = good_hits.load(Ordering::SeqCst);
    assert_eq!(f.eligible_at(21, 1_000).unwrap(), good_history[&21]);
    assert_eq!(failing_hits.load(Ordering::SeqCst), before_fail);
    assert_eq!(good_hits.load(Ordering::SeqCst), before_good + 1);
    // The lagging endpoint was asked but not penalised (it is merely behind).
    assert!(lagging_hits.load(Ordering::SeqCst) >= 1);
}

#[test]
fn when_every_endpoint_fails_the_error_lists_each_one() {
    let (failing, _) = serve(Behaviour::Failing);
    let (lagging, _) = serve(Behaviour::Chain {
        history: history(&["node-a"]),
        tip: 3,
    });
    let mut f = FailoverSource::new(
        vec![source(&dead_url()), source(&failing), source(&lagging)],
        500,
        1,
    )
    .unwrap();
    match f.eligible_at(10, 0) {
        Err(FailoverError::AllFailed { height: 10, errors }) => {
            assert_eq!(errors.len(), 3);
            assert!(errors
                .iter()
                .any(|e| matches!(e, SourceError::NotYet { latest: 3, .. })));
            assert!(
                errors
                    .iter()
                    .filter(|e| matches!(e, SourceError::Unavailable { .. }))
                    .count()
                    == 2
            );
        }
        other => panic!("expected AllFailed, got {other:?}"),
    }
    // The lagging endpoint was not penalised for being behind: it still serves older heights.
    assert!(f.eligible_at(2, 100).is_ok());
}

#[test]
fn a_quorum_of_endpoints_outvotes_a_lying_one() {
    let honest = history(&["node-a", "node-b"]);
    let liar = history(&["node-a", "node-evil"]);
    let (h1, _) = serve(Behaviour::Chain {
        history: honest.clone(),
        tip: 49,
    });
    let (h2, _) = serve(Behaviour::Chain {
        history: honest.clone(),
        tip: 49,
    });
    let (l1, _) = serve(Behaviour::Chain {
        history: liar,
        tip: 49,
    });
    let mut f = FailoverSource::new(vec![source(&l1), source(&h1), source(&h2)], 500, 2).unwrap();
    assert_eq!(f.eligible_at(7, 0).unwrap(), honest[&7]);
    assert_eq!(f.preferred(), 1, "the liar is not preferred");
    let (l2, _) = serve(Behaviour::Chain {
        history: history(&["node-x"]),
        tip: 49,
    });
    let mut split = FailoverSource::new(vec![source(&l2), source(&h1)], 500, 2).unwrap();
    assert!(matches!(
        split.eligible_at(7, 0),
        Err(FailoverError::NoQuorum {
            agreeing: 1,
            quorum: 2,
            ..
        })
    ));
}

#[test]
fn bad_urls_and_empty_lists_are_typed_errors() {
    for bad in [
        "https://x:1",
        "ftp://x",
        "http://",
        "http://nohostport/path",
    ] {
        assert!(
            HttpEligibleSource::new(bad, Duration::from_secs(1)).is_err(),
            "{bad}"
        );
    }
    let ok = HttpEligibleSource::new("http://127.0.0.1:9/prefix/", Duration::from_secs(1)).unwrap();
    assert_eq!(ok.name(), "http://127.0.0.1:9/prefix/");
    assert!(matches!(
        FailoverSource::<HttpEligibleSource>::new(vec![], 1, 1),
        Err(FailoverError::NoSources)
    ));
}
