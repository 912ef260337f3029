//! Table test: every malformed or misdirected GradientReady is rejected with its reason and
//! leaves the leader's state unchanged.

use std::collections::BTreeMap;

use magnet_diloco::eligible::{EligibleSet, Member};
use magnet_diloco::round::{
    Action, Event, GradientReady, Phase, Rejection, RoundConfig, RoundState,
};
use magnet_diloco::{Digest, LeaderRule, MergePolicy, NodeId};
use magnet_rounds::ClaimBound;

fn id(i: usize) -> NodeId {
    NodeId::new(format!("node-{i:016x}")).unwrap()
}

fn leader_collecting() -> (RoundState, Digest) {
    let base = Digest::domain_hash("genesis", &[]);
    let cfg = RoundConfig {
        me: id(0),
        job_id: 3,
        rule: LeaderRule::RoundRobin,
        inner_steps: 10,
        first_height: 100,
        blocks_per_round: 10,
        round_ms: 1_000,
        announce_timeout_ms: 500,
        merge_grace_ms: 500,
        policy: MergePolicy::default(),
        // H = 10 steps of 2 × 8 tokens.
        claim_bound: Some(ClaimBound {
            inner_steps: 10,
            batch_size: 2,
            seq_len: 8,
        }),
    };
    let (s, actions) = RoundState::new(cfg, 0, base);
    assert_eq!(
        actions,
        vec![Action::ReadEligible {
            round: 0,
            height: 100
        }]
    );
    let set = EligibleSet {
        height: 100,
        block_hash: Digest::domain_hash("block", &[]),
        members: (0..3)
            .map(|i| (id(i), Member::default()))
            .collect::<BTreeMap<_, _>>(),
    };
    let (s, actions) = s.step(Event::EligibleRead { round: 0, set }, 10);
    assert!(matches!(s.phase(), Phase::Collecting(_)));
    // Collection state exists before the announcement goes out.
    assert!(matches!(actions[0], Action::Announce { .. }));
    (s, base)
}

fn good(base: Digest, from: usize) -> GradientReady {
    GradientReady {
        job_id: 3,
        round: 0,
        from: id(from),
        base_hash: base,
        delta_hash: Digest::domain_hash("delta", &[&[from as u8]]),
        content_address: format!("cid-{from}"),
        local_loss: 1.5,
        data_size: 100,
        steps: 10,
        signature: String::new(),
    }
}

#[test]
fn every_bad_gradient_signal_is_rejected_with_its_reason_and_changes_nothing() {
    let (s, base) = leader_collecting();
    // A fast peer's gradient before its delivery ack: accepted (collection was ready).
    let (s, actions) = s.step(Event::GradientReady(good(base, 1)), 20);
    assert!(
        actions.iter().all(|a| !matches!(a, Action::Rejected(_))),
        "{actions:?}"
    );
    type Case = (&'static str, GradientReady, fn(&Rejection) -> bool);
    let cases: Vec<Case> = vec![
        (
            "other job",
            GradientReady {
                job_id: 4,
                ..good(base, 2)
            },
            |r| matches!(r, Rejection::WrongJob { .. }),
        ),
        (
            "past round",
            GradientReady {
                round: 1,
                ..good(base, 2)
            },
            |r| matches!(r, Rejection::WrongRound { .. }),
        ),
        ("not eligible", good(base, 9), |r| {
            matches!(r, Rejection::NotEligible { .. })
        }),
        (
            "second from same sender",
            GradientReady {
                delta_hash: Digest::domain_hash("x", &[]),
                ..good(base, 1)
            },
            |r| matches!(r, Rejection::DuplicateSender { .. }),
        ),
        (
            "same delta from another sender",
            GradientReady {
                delta_hash: good(base, 1).delta_hash,
                ..good(base, 2)
            },
            |r| matches!(r, Rejection::DuplicateDelta { .. }),
        ),
        (
            "nan loss",
            GradientReady {
                local_loss: f32::NAN,
                ..good(base, 2)
            },
            |r| matches!(r, Rejection::NonFiniteLoss { .. }),
        ),
        (
            "empty address",
            GradientReady {
                content_address: String::new(),
                ..good(base, 2)
            },
            |r| matches!(r, Rejection::BadContentAddress { len: 0, .. }),
        ),
        (
            "huge address",
            GradientReady {
                content_address: "x".repeat(1000),
                ..good(base, 2)
            },
            |r| matches!(r, Rejection::BadContentAddress { len: 1000, .. }),
        ),
        (
            "unknown base",
            GradientReady {
                base_hash: Digest::domain_hash("elsewhere", &[]),
                ..good(base, 2)
            },
            |r| matches!(r, Rejection::StaleBase { .. }),
        ),
        (
            "more steps than H",
            GradientReady {
                steps: 11,
                ..good(base, 2)
            },
            |r| matches!(r, Rejection::ClaimOutOfBound { .. }),
        ),
        (
            "more tokens than the steps can see",
            GradientReady {
                steps: 2,
                data_size: 2 * 2 * 8 + 1,
                ..good(base, 2)
            },
            |r| matches!(r, Rejection::ClaimOutOfBound { .. }),
        ),
        (
            "zero steps",
            GradientReady {
                steps: 0,
                ..good(base, 2)
            },
            |r| matches!(r, Rejection::ClaimOutOfBound { .. }),
        ),
    ];
    for (name, signal, want) in cases {
        let before = s.clone();
        let (after, actions) = s.clone().step(Event::GradientReady(signal), 30);
        assert_eq!(actions.len(), 1, "{name}: {actions:?}");
        match &actions[0] {
            Action::Rejected(r) => assert!(want(r), "{name}: got {r}"),
            other => panic!("{name}: expected a rejection, got {other:?}"),
        }
        assert_eq!(after, before, "{name}: state changed");
    }
}

#[test]
fn announcements_from_the_wrong_leader_or_schedule_are_rejected() {
    let base = Digest::domain_hash("genesis", &[]);
    let cfg = RoundConfig {
        me: id(1),
        job_id: 3,
        rule: LeaderRule::RoundRobin,
        inner_steps: 10,
        first_height: 100,
        blocks_per_round: 10,
        round_ms: 1_000,
        announce_timeout_ms: 500,
        merge_grace_ms: 500,
        policy: MergePolicy::default(),
        claim_bound: None,
    };
    let (s, _) = RoundState::new(cfg, 0, base);
    let set = EligibleSet {
        height: 100,
        block_hash: Digest::default(),
        members: (0..3).map(|i| (id(i), Member::default())).collect(),
    };
    // An eligible set for the wrong height is refused.
    let wrong = EligibleSet {
        height: 99,
        ..set.clone()
    };
    let (s, a) = s.step(
        Event::EligibleRead {
            round: 0,
            set: wrong,
        },
        1,
    );
    assert!(matches!(
        a[..],
        [Action::Rejected(Rejection::WrongHeight { .. })]
    ));
    let (s, _) = s.step(Event::EligibleRead { round: 0, set }, 1);
    let ann = magnet_diloco::round::RoundAnnouncement {
        job_id: 3,
        round: 0,
        leader: id(0),
        start_height: 100,
        inner_steps: 10,
        deadline: 1_000,
        base_hash: base,
    };
    let bad_leader = magnet_diloco::round::RoundAnnouncement {
        leader: id(2),
        ..ann.clone()
    };
    let (s2, a) = s.clone().step(Event::Announcement(bad_leader), 2);
    assert!(matches!(
        a[..],
        [Action::Rejected(Rejection::NotLeader { .. })]
    ));
    assert_eq!(s2, s);
    let bad_height = magnet_diloco::round::RoundAnnouncement {
        start_height: 7,
        ..ann.clone()
    };
    let (s2, a) = s.clone().step(Event::Announcement(bad_height), 2);
    assert!(matches!(
        a[..],
        [Action::Rejected(Rejection::BadAnnouncement { .. })]
    ));
    assert_eq!(s2, s);
    // The right one starts training H inner steps from the announced base.
    let (_, a) = s.step(Event::Announcement(ann), 2);
    assert!(
        a.contains(&Action::TrainInner {
            round: 0,
            base_hash: base,
            steps: 10
        }),
        "{a:?}"
    );
}
