//! The outer-step policy lives on chain (ADR 0091): a training job carries η, μ, the outlier
//! factor, the minimum contributions and the int8 update chunk in its spec, validated at
//! creation; a spec without one gets `MergePolicy::default()`'s values.

use magnet_jobs::msgs;
use magnet_jobs::state::OuterPolicy;
use magnet_testkit::fixtures::*;
use magnet_testkit::flow::*;

const BUDGET: u128 = 10_000_000;

fn create(
    c: &mut magnet_testkit::Chain,
    op: &magnet_core::Address,
    outer: Option<magnet_proto::jobs::v1::OuterPolicy>,
) -> Result<u64, magnet_core::ModuleError> {
    let s = spec(1_000, c.block.height + 1);
    let mut any = msgs::create_training_job(
        op,
        "bitnet-lm",
        [1; 32],
        BASE_CHECKPOINT,
        BUDGET,
        T0 + 50_000,
        Some(&s),
    );
    let mut m: msgs::MsgCreateJob = prost::Message::decode(any.value.as_slice()).unwrap();
    if let Some(t) = m.training.as_mut() {
        t.outer = outer;
    }
    any.value = prost::Message::encode_to_vec(&m);
    c.deliver(op, &[any])?;
    Ok(c.query("/magnet.jobs.v1/jobs", b"")
        .unwrap()
        .as_array()
        .unwrap()
        .len() as u64)
}

fn outer_of(c: &magnet_testkit::Chain, job: u64) -> serde_json::Value {
    c.query("/magnet.jobs.v1/job", job.to_string().as_bytes())
        .unwrap()["training"]["outer"]
        .clone()
}

fn pb(o: OuterPolicy) -> magnet_proto::jobs::v1::OuterPolicy {
    magnet_proto::jobs::v1::OuterPolicy {
        lr_permille: o.lr_permille,
        momentum_permille: o.momentum_permille,
        outlier_factor_permille: o.outlier_factor_permille,
        min_contributions: o.min_contributions,
        update_chunk: o.update_chunk,
    }
}

#[test]
fn a_spec_without_an_outer_policy_gets_the_merge_policy_defaults_and_a_given_one_is_stored() {
    let (mut c, nodes) = setup(3);
    c.begin(1).unwrap();
    let plain = create(&mut c, &nodes[0].op, None).unwrap();
    let tuned = OuterPolicy {
        lr_permille: 1_000,
        momentum_permille: 0,
        outlier_factor_permille: 3_000,
        min_contributions: 2,
        update_chunk: 256,
    };
    let custom = create(&mut c, &nodes[0].op, Some(pb(tuned))).unwrap();
    c.end().unwrap();
    let d = outer_of(&c, plain);
    assert_eq!(
        (
            d["lr_permille"].as_u64(),
            d["momentum_permille"].as_u64(),
            d["outlier_factor_permille"].as_u64(),
            d["min_contributions"].as_u64(),
            d["update_chunk"].as_u64()
        ),
        (Some(700), Some(900), Some(4_000), Some(1), Some(0)),
        "MergePolicy::default()"
    );
    assert_eq!(
        serde_json::from_value::<OuterPolicy>(outer_of(&c, custom)).unwrap(),
        tuned
    );
}

#[test]
fn every_out_of_range_outer_policy_is_refused_at_creation_and_changes_nothing() {
    let (mut c, nodes) = setup(3);
    let d = OuterPolicy::default();
    let cases: [(&str, OuterPolicy); 7] = [
        (
            "lr_permille",
            OuterPolicy {
                lr_permille: 0,
                ..d
            },
        ),
        (
            "lr_permille",
            OuterPolicy {
                lr_permille: 10_001,
                ..d
            },
        ),
        (
            "momentum_permille",
            OuterPolicy {
                momentum_permille: 1_000,
                ..d
            },
        ),
        (
            "outlier_factor_permille",
            OuterPolicy {
                outlier_factor_permille: 999,
                ..d
            },
        ),
        (
            "min_contributions",
            OuterPolicy {
                min_contributions: 0,
                ..d
            },
        ),
        (
            "min_contributions",
            OuterPolicy {
                min_contributions: 257,
                ..d
            },
        ),
        (
            "update_chunk",
            OuterPolicy {
                update_chunk: (1 << 20) + 1,
                ..d
            },
        ),
    ];
    c.begin(1).unwrap();
    for (field, o) in cases {
        let before = c.snapshot();
        let e = create(&mut c, &nodes[0].op, Some(pb(o))).unwrap_err();
        assert_eq!(
            (e.codespace.as_str(), e.code),
            ("jobs", 9),
            "{field}: {}",
            e.log
        );
        assert!(
            e.log.contains(&format!("training.outer.{field}")),
            "{}",
            e.log
        );
        assert_eq!(c.snapshot(), before, "{field} changed the state");
    }
    c.end().unwrap();
}
