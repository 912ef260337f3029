//! Governance through the wired modules: submission checks, stake-weighted votes, tally,
//! and when passed changes take effect.

use magnet_core::Address;
use magnet_gov::msgs;
use magnet_testkit::fixtures::*;
use magnet_testkit::magnet_registry::msgs as reg;
use magnet_testkit::Chain;

const STAKE: u128 = 1_000_000;

fn genesis() -> serde_json::Value {
    let mut g = app_state();
    g["gov"] = serde_json::json!({ "params": {
        "min_deposit": "1000", "deposit_period_secs": 100, "voting_period_secs": 300,
        "quorum_ppm": 334000, "threshold_ppm": 500000, "veto_ppm": 334000,
        "burn_on_veto": true, "burn_on_no_quorum": false
    }});
    g
}

/// Three accounts with governance bonds, and a funded community pool.
fn setup() -> (Chain, Vec<Address>) {
    let voters: Vec<Address> = (0..3).map(|i| node(i).op).collect();
    let mut balances: Vec<(Address, u128)> = voters.iter().map(|a| (*a, FUNDS)).collect();
    balances.push((magnet_core::community_pool(), 5_000));
    let mut c = Chain::genesis(T0, genesis(), &balances);
    c.begin(1).unwrap();
    for v in &voters {
        c.deliver(v, &[reg::bond_gov(v, STAKE)]).unwrap();
    }
    c.end().unwrap();
    (c, voters)
}

fn slashing_params(c: &Chain) -> serde_json::Value {
    c.query("/magnet.slashing.v1/params", b"").unwrap()
}

fn proposal(c: &Chain, id: u64) -> serde_json::Value {
    c.query("/magnet.gov.v1/proposal", id.to_string().as_bytes())
        .unwrap()
}

fn submit_and_pass(c: &mut Chain, voters: &[Address], content: serde_json::Value) -> u64 {
    c.begin(1).unwrap();
    c.deliver(
        &voters[0],
        &[msgs::submit(&voters[0], "change", &content, 1_000)],
    )
    .unwrap();
    let id = c
        .query("/magnet.gov.v1/proposals", b"")
        .unwrap()
        .as_array()
        .unwrap()
        .len() as u64;
    for v in voters {
        c.deliver(v, &[msgs::vote(v, id, "yes")]).unwrap();
    }
    c.end().unwrap();
    id
}

#[test]
fn an_economic_param_change_passes_and_takes_effect_at_the_next_epoch_boundary() {
    let (mut c, voters) = setup();
    let mut p = slashing_params(&c);
    assert_eq!(p["rates"]["downtime"], 100_000);
    p["rates"]["downtime"] = 200_000.into();
    let id = submit_and_pass(
        &mut c,
        &voters,
        serde_json::json!({ "param_change": { "module": "slashing", "params": p } }),
    );
    assert_eq!(
        proposal(&c, id)["status"],
        serde_json::json!({ "voting": { "ends": T0 + 2 + 300 } })
    );
    run_until(&mut c, T0 + 400, 50, &[]);
    assert_eq!(proposal(&c, id)["status"], "passed");
    assert_eq!(c.balance(&voters[0]), FUNDS - STAKE, "deposit refunded");
    // Not yet: economic params wait for the epoch boundary at T0 + 1000.
    run_until(&mut c, T0 + 999, 50, &[]);
    assert_eq!(slashing_params(&c)["rates"]["downtime"], 100_000);
    run_until(&mut c, T0 + 1_000, 50, &[]);
    c.empty_block(1).unwrap();
    assert_eq!(slashing_params(&c)["rates"]["downtime"], 200_000);
}

#[test]
fn a_non_economic_param_change_applies_at_the_next_block() {
    let (mut c, voters) = setup();
    let mut p = c.query("/magnet.gov.v1/params", b"").unwrap();
    p["voting_period_secs"] = 600.into();
    let id = submit_and_pass(
        &mut c,
        &voters,
        serde_json::json!({ "param_change": { "module": "gov", "params": p } }),
    );
    run_until(&mut c, T0 + 302, 300, &[]);
    assert_eq!(proposal(&c, id)["status"], "passed");
    assert_eq!(
        c.query("/magnet.gov.v1/params", b"").unwrap()["voting_period_secs"],
        300
    );
    c.empty_block(1).unwrap();
    assert_eq!(
        c.query("/magnet.gov.v1/params", b"").unwrap()["voting_period_secs"],
        600
    );
}

#[test]
fn an_invalid_param_change_is_refused_at_submission_with_the_modules_error() {
    let (mut c, voters) = setup();
    let mut bad_rate = slashing_params(&c);
    bad_rate["rates"]["downtime"] = 50_000.into();
    let bad_epoch = serde_json::json!({ "duration_secs": 0, "max_ends_per_block": 16 });
    let mut bad_cap = c.query("/magnet.emission.v1/params", b"").unwrap();
    bad_cap["annual_cap"] = "1".into();
    let cases = [
        ("slashing", bad_rate, "rates.downtime"),
        ("epochs", bad_epoch, "duration_secs"),
        ("emission", bad_cap, "annual_cap"),
        ("nonexistent", serde_json::json!({}), "no module"),
    ];
    c.begin(1).unwrap();
    let before = c.snapshot();
    for (module, params, why) in cases {
        let content = serde_json::json!({ "param_change": { "module": module, "params": params } });
        let e = c
            .deliver(
                &voters[0],
                &[msgs::submit(&voters[0], "bad", &content, 1_000)],
            )
            .unwrap_err();
        assert_eq!((e.codespace.as_str(), e.code), ("gov", 2), "{}", e.log);
        assert!(e.log.contains(why), "{module}: {}", e.log);
    }
    assert_eq!(c.snapshot(), before);
    c.end().unwrap();
}

#[test]
fn votes_need_bonded_stake_and_an_open_voting_period() {
    let (mut c, voters) = setup();
    let outsider = Address([77; 20]);
    let content = serde_json::json!({ "text": { "body": "hello" } });
    c.begin(1).unwrap();
    c.deliver(&voters[0], &[msgs::submit(&voters[0], "t", &content, 10)])
        .unwrap();
    // Deposit period: votes are refused (5); unknown proposal (3); no stake (7).
    let e = c
        .deliver(&voters[1], &[msgs::vote(&voters[1], 1, "yes")])
        .unwrap_err();
    assert_eq!(e.code, 5);
    let e = c
        .deliver(&voters[1], &[msgs::vote(&voters[1], 9, "yes")])
        .unwrap_err();
    assert_eq!(e.code, 3);
    c.deliver(&voters[1], &[msgs::deposit(&voters[1], 1, 990)])
        .unwrap();
    let e = c
        .deliver(&outsider, &[msgs::vote(&outsider, 1, "yes")])
        .unwrap_err();
    assert_eq!(e.code, 7);
    let e = c
        .deliver(&voters[1], &[msgs::vote(&voters[1], 1, "maybe")])
        .unwrap_err();
    assert_eq!(e.code, 6);
    c.end().unwrap();
}

#[test]
fn a_vetoed_proposal_burns_its_deposit_and_a_passed_spend_pays_from_the_pool() {
    let (mut c, voters) = setup();
    let r = Address([55; 20]);
    let spend =
        serde_json::json!({ "community_spend": { "recipient": r.to_string(), "amount": "4000" } });
    c.begin(1).unwrap();
    c.deliver(
        &voters[0],
        &[msgs::submit(&voters[0], "spend", &spend, 1_000)],
    )
    .unwrap();
    c.deliver(&voters[0], &[msgs::vote(&voters[0], 1, "veto")])
        .unwrap();
    c.deliver(&voters[1], &[msgs::vote(&voters[1], 1, "veto")])
        .unwrap();
    c.deliver(&voters[2], &[msgs::vote(&voters[2], 1, "yes")])
        .unwrap();
    c.end().unwrap();
    let supply = c.supply();
    run_until(&mut c, T0 + 400, 100, &[]);
    assert_eq!(proposal(&c, 1)["status"], "vetoed");
    assert_eq!(c.supply(), supply - 1_000, "deposit burned");
    assert_eq!(c.balance(&r), 0);
    let id = submit_and_pass(&mut c, &voters, spend);
    run_until(&mut c, T0 + 800, 100, &[]);
    assert_eq!(proposal(&c, id)["status"], "passed");
    assert_eq!(c.balance(&r), 4_000);
}

#[test]
fn validator_set_json_keeps_its_form_and_validator_set_changes_lists_several() {
    let k = |b: u8| hex::encode([b; 32]);
    let op = node(0).op.to_bech32();
    // The one-change form, as before ADR 0104, is one change.
    let old: msgs::Content = serde_json::from_value(serde_json::json!({"validator_set": {
        "pub_key_ed25519_hex": k(1), "power": 7, "operator": op}}))
    .unwrap();
    let want = vec![msgs::ValidatorChange {
        pub_key_ed25519_hex: k(1),
        power: 7,
        operator: Some(op.clone()),
    }];
    assert_eq!(old.validator_changes(), Some(want));
    assert!(msgs::check_content(&old).is_ok());
    // The list form round-trips through its JSON.
    let json = serde_json::json!({"validator_set_changes": {"changes": [
        {"pub_key_ed25519_hex": k(2), "power": 10, "operator": op},
        {"pub_key_ed25519_hex": k(1), "power": 0}]}});
    let new: msgs::Content = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(serde_json::to_value(&new).unwrap(), json);
    let checked = msgs::checked_validator_changes(&new).unwrap().unwrap();
    assert_eq!(checked.len(), 2);
    assert_eq!(checked[0].pub_key, vec![2u8; 32]);
    assert_eq!(checked[1].power, 0);
    assert!(checked[1].operator.is_none());
    // Other contents change no validator.
    let text: msgs::Content =
        serde_json::from_value(serde_json::json!({"text": {"body": "hi"}})).unwrap();
    assert_eq!(msgs::checked_validator_changes(&text).unwrap(), None);
}
