//! The app's validator set as a service, through the whole app with real signed txs:
//! fee payouts to validator operators pro rata to power, validator-set governance proposals
//! (one change, or several at once: ADR 0104) that reach CometBFT as `validator_updates` and
//! the refusals that keep CometBFT from ever seeing an invalid set, double-sign evidence that
//! slashes and removes.

mod common;

use common::chain::*;

use magnet_app::abci as pb;
use magnet_app::testkit::Signer;
use magnet_app::Application;
use magnet_testkit::magnet_gov::msgs as gm;
use magnet_testkit::magnet_registry::msgs as rm;

#[test]
fn validator_operators_are_paid_the_fee_share_pro_rata_to_power_and_the_rest_goes_to_the_pool() {
    let sender = Signer::from_seed(1);
    let (op_a, op_b) = (
        Signer::from_seed(2).address(),
        Signer::from_seed(3).address(),
    );
    let mut c = Chain::new(
        &[(sender.address(), FUNDS)],
        // v3 has no operator; v4 does not sign.
        &[(vpk(1), 3), (vpk(2), 1), (vpk(3), 2), (vpk(4), 5)],
        &[(vpk(1), op_a), (vpk(2), op_b), (vpk(4), op_b)],
        serde_json::json!({}),
    );
    c.votes[3].2 = false;
    let pool = magnet_core::community_pool();
    let tx = c.tx(&sender, vec![rm::heartbeat(&sender.address())]);
    // The heartbeat fails (no node) but its fee is collected all the same.
    let req = c.request(vec![tx], 5);
    let r = c.h.app.finalize_block(req);
    c.h.app.commit();
    c.h.height += 1;
    assert_ne!(r.tx_results[0].code, 0);
    let pool_before = c.h.balance(&pool);
    // The next block splits the previous block's fees.
    c.block(vec![], 5);
    let p = c.q("/magnet.emission.v1/params", "");
    let ppm = |k: &str| p[k].as_u64().unwrap() as u128;
    let burned = FEE * ppm("fee_burn_ppm") / 1_000_000;
    let share = FEE * ppm("fee_validators_ppm") / 1_000_000;
    // Signed power: 3 + 1 + 2 = 6 (v4 did not sign).
    let a = share * 3 / 6;
    let b = share / 6;
    assert_eq!(c.h.balance(&op_a), a);
    assert_eq!(
        c.h.balance(&op_b),
        b,
        "the absent validator's operator earns nothing"
    );
    assert_eq!(
        c.h.balance(&pool) - pool_before,
        FEE - burned - a - b,
        "the operatorless validator's share and the dust go to the community pool"
    );
    assert!(a > 0 && b > 0);
}

#[test]
fn validator_set_proposals_pass_reach_comet_bft_as_updates_and_are_checked_again_when_they_execute()
{
    let voter = Signer::from_seed(1);
    let new_op = Signer::from_seed(5).address();
    let mut c = governed_with(&voter, &[(vpk(1), 10), (vpk(2), 10), (vpk(3), 10)]);
    // The one-change form (`validator_set`) keeps its JSON: add v9 with 7 of 37 (< 1/3).
    let add = serde_json::json!({"validator_set": {
        "pub_key_ed25519_hex": hex::encode(vpk(9)), "power": 7, "operator": new_op.to_bech32()}});
    let submit = c.tx(
        &voter,
        vec![gm::submit(&voter.address(), "add v9", &add, 1_000)],
    );
    c.block(vec![submit], 5);
    let vote = c.tx(&voter, vec![gm::vote(&voter.address(), 1, "yes")]);
    c.block(vec![vote], 5);
    let mut seen = Vec::new();
    for _ in 0..12 {
        seen.extend(updates(&c.block(vec![], 5)));
    }
    assert_eq!(
        seen,
        vec![(vpk(9), 7)],
        "the passed proposal is reported once"
    );
    assert_eq!(c.set().get(&b64(&vpk(9))), Some(&7));
    assert_eq!(c.q("/magnet.gov.v1/proposal", "1")["status"], "passed");

    // Two proposals, each valid when submitted (10 of 37 removed): remove v1, then remove v2.
    // Once v1 is gone, removing v2 takes 10 of 27, more than 1/3: checked again at
    // execution, it fails with the reason and changes nothing.
    let rm1 = serde_json::json!({"validator_set": {"pub_key_ed25519_hex": hex::encode(vpk(1)), "power": 0}});
    let rm2 = serde_json::json!({"validator_set": {"pub_key_ed25519_hex": hex::encode(vpk(2)), "power": 0}});
    let s1 = c.tx(
        &voter,
        vec![gm::submit(&voter.address(), "rm v1", &rm1, 1_000)],
    );
    c.block(vec![s1], 5);
    let s2 = c.tx(
        &voter,
        vec![gm::submit(&voter.address(), "rm v2", &rm2, 1_000)],
    );
    c.block(vec![s2], 1);
    let v = c.tx(
        &voter,
        vec![
            gm::vote(&voter.address(), 2, "yes"),
            gm::vote(&voter.address(), 3, "yes"),
        ],
    );
    c.block(vec![v], 1);
    let mut seen = Vec::new();
    for _ in 0..12 {
        seen.extend(updates(&c.block(vec![], 5)));
    }
    assert_eq!(seen, vec![(vpk(1), 0)]);
    assert_eq!(c.q("/magnet.gov.v1/proposal", "2")["status"], "passed");
    let failed = c.q("/magnet.gov.v1/proposal", "3");
    assert!(
        failed["status"]
            .to_string()
            .contains("remove power 10 of the current total 27, 1/3 or more"),
        "{failed}"
    );
    let set = c.set();
    assert_eq!(set.len(), 3);
    assert_eq!(set.get(&b64(&vpk(2))), Some(&10));
    assert_eq!(set.get(&b64(&vpk(9))), Some(&7));
    // The exported genesis carries the new validator's operator.
    let exported = c.h.app.export().unwrap();
    assert_eq!(
        exported.app_state["validator_operators"],
        serde_json::json!([{"pub_key": b64(&vpk(9)), "operator": new_op.to_bech32()}])
    );
}

fn four_validators(voter: &Signer) -> Chain {
    governed_with(voter, &(1..=4).map(|i| (vpk(i), 10)).collect::<Vec<_>>())
}

#[test]
fn one_validator_set_changes_proposal_adds_a_fifth_validator_and_removes_one_in_the_same_block() {
    let voter = Signer::from_seed(1);
    let op5 = Signer::from_seed(6).address();
    let mut c = four_validators(&voter);
    let content = serde_json::json!({"validator_set_changes": {"changes": [
        {"pub_key_ed25519_hex": hex::encode(vpk(5)), "power": 10, "operator": op5.to_bech32()},
        {"pub_key_ed25519_hex": hex::encode(vpk(4)), "power": 0},
    ]}});
    let submit = c.tx(
        &voter,
        vec![gm::submit(
            &voter.address(),
            "replace v4 by v5",
            &content,
            1_000,
        )],
    );
    c.block(vec![submit], 5);
    let vote = c.tx(&voter, vec![gm::vote(&voter.address(), 1, "yes")]);
    c.block(vec![vote], 5);
    let mut blocks_with_updates = Vec::new();
    for _ in 0..12 {
        let u = updates(&c.block(vec![], 5));
        if !u.is_empty() {
            blocks_with_updates.push(u);
        }
    }
    assert_eq!(
        blocks_with_updates,
        vec![vec![(vpk(4), 0), (vpk(5), 10)]],
        "both changes reach CometBFT together, in one block"
    );
    assert_eq!(c.q("/magnet.gov.v1/proposal", "1")["status"], "passed");
    let set = c.set();
    let want: std::collections::BTreeMap<String, u64> =
        [1, 2, 3, 5].iter().map(|i| (b64(&vpk(*i)), 10)).collect();
    assert_eq!(set, want);
    let exported = c.h.app.export().unwrap();
    assert_eq!(
        exported.app_state["validator_operators"],
        serde_json::json!([{"pub_key": b64(&vpk(5)), "operator": op5.to_bech32()}])
    );
}

#[test]
fn validator_set_changes_that_break_a_rule_are_refused_at_submission_with_the_reason() {
    use serde_json::json;
    let voter = Signer::from_seed(1);
    let mut c = four_validators(&voter);
    let key = |i: u8| hex::encode(vpk(i));
    let ch = |changes: serde_json::Value| json!({"validator_set_changes": {"changes": changes}});
    let max = magnet_core::services::MAX_TOTAL_VOTING_POWER;
    let many: Vec<_> = (0..101u8)
        .map(|i| json!({"pub_key_ed25519_hex": hex::encode([i; 32]), "power": 1}))
        .collect();
    let cases: Vec<(&str, serde_json::Value, String)> = vec![
        (
            "no change",
            ch(json!([])),
            "must list at least one change".into(),
        ),
        (
            "101 changes",
            ch(json!(many)),
            "lists 101 changes; at most 100".into(),
        ),
        (
            "a key that is not hex",
            ch(json!([{"pub_key_ed25519_hex": "zz", "power": 1}])),
            "changes[0].pub_key_ed25519_hex must be 32 bytes of hex".into(),
        ),
        (
            "a 31-byte key",
            ch(json!([{"pub_key_ed25519_hex": hex::encode([5u8; 31]), "power": 1}])),
            "must be 32 bytes of hex".into(),
        ),
        (
            "one key twice (lower and upper case)",
            ch(json!([
                {"pub_key_ed25519_hex": key(5), "power": 1},
                {"pub_key_ed25519_hex": key(5).to_uppercase(), "power": 2}])),
            "changes[1] names validator".into(),
        ),
        (
            "a power above CometBFT's maximum total",
            ch(json!([{"pub_key_ed25519_hex": key(5), "power": max + 1}])),
            "exceeds CometBFT's maximum total voting power".into(),
        ),
        (
            "an operator on a removal",
            ch(json!([{"pub_key_ed25519_hex": key(4), "power": 0,
                        "operator": voter.address().to_bech32()}])),
            "also sets an operator".into(),
        ),
        (
            "a bad operator",
            ch(json!([{"pub_key_ed25519_hex": key(5), "power": 1, "operator": "magnet1nope"}])),
            "invalid validator_set_changes.changes[0].operator".into(),
        ),
        (
            "an unknown field",
            ch(json!([{"pub_key_ed25519_hex": key(5), "power": 1, "weight": 3}])),
            "unknown field `weight`".into(),
        ),
        (
            "removing a key that is not in the set",
            ch(json!([{"pub_key_ed25519_hex": key(9), "power": 0}])),
            format!("validator {} is not in the validator set", key(9)),
        ),
        (
            "the one-change form removing a key that is not in the set",
            json!({"validator_set": {"pub_key_ed25519_hex": key(9), "power": 0}}),
            "nothing to remove".into(),
        ),
        (
            "setting the power a validator has",
            ch(json!([{"pub_key_ed25519_hex": key(1), "power": 10}])),
            "already has power 10; the change changes nothing".into(),
        ),
        (
            "removing every validator",
            ch(json!((1..=4u8)
                .map(|i| json!({"pub_key_ed25519_hex": key(i), "power": 0}))
                .collect::<Vec<_>>())),
            "would leave no validator".into(),
        ),
        (
            "a total above CometBFT's maximum",
            ch(json!([{"pub_key_ed25519_hex": key(5), "power": max}])),
            format!("the new set's total power {} exceeds", u128::from(max) + 40),
        ),
        (
            "adding 1/3 of the new total",
            ch(json!([{"pub_key_ed25519_hex": key(5), "power": 20}])),
            "add power 20 of the new total 60, 1/3 or more".into(),
        ),
        (
            "adding 1/3 with the one-change form",
            json!({"validator_set": {"pub_key_ed25519_hex": key(5), "power": 20}}),
            "add power 20 of the new total 60".into(),
        ),
        (
            "raising powers by 1/3 of the new total",
            ch(json!([
                {"pub_key_ed25519_hex": key(1), "power": 20},
                {"pub_key_ed25519_hex": key(2), "power": 20}])),
            "add power 20 of the new total 60".into(),
        ),
        (
            "removing 1/3 of the current total",
            ch(json!([
                {"pub_key_ed25519_hex": key(1), "power": 0},
                {"pub_key_ed25519_hex": key(2), "power": 4}])),
            "remove power 16 of the current total 40, 1/3 or more".into(),
        ),
    ];
    let n = cases.len();
    for (i, (name, content, want)) in cases.into_iter().enumerate() {
        let tx = c.tx(
            &voter,
            vec![gm::submit(&voter.address(), name, &content, 1_000)],
        );
        let req = c.request(vec![tx], 1);
        let r = c.h.app.finalize_block(req);
        c.h.app.commit();
        c.h.height += 1;
        let res = &r.tx_results[0];
        assert_ne!(res.code, 0, "case {i} ({name}) was accepted");
        assert!(
            res.log.contains(&want),
            "case {i} ({name}): expected {want:?} in {:?}",
            res.log
        );
    }
    // No refused case made a proposal; the limits' edges are accepted.
    assert_eq!(
        c.q("/magnet.gov.v1/proposals", "").as_array().map(Vec::len),
        Some(0)
    );
    let edges = [
        ch(json!([{"pub_key_ed25519_hex": key(5), "power": 19}])),
        ch(json!([
            {"pub_key_ed25519_hex": key(1), "power": 0},
            {"pub_key_ed25519_hex": key(2), "power": 7}])),
        ch(json!([{"pub_key_ed25519_hex": key(1), "power": 10,
                    "operator": voter.address().to_bech32()}])),
    ];
    for content in &edges {
        let tx = c.tx(
            &voter,
            vec![gm::submit(&voter.address(), "edge", content, 1_000)],
        );
        c.block(vec![tx], 1);
    }
    let all = c.q("/magnet.gov.v1/proposals", "");
    assert_eq!(all.as_array().map(Vec::len), Some(edges.len()), "{all}");
    eprintln!("{n} refusals checked");
}

#[test]
fn double_sign_evidence_slashes_the_operators_bond_at_its_rate_and_removes_the_validator() {
    let op = Signer::from_seed(1);
    let node = Signer::from_seed(100);
    let mut c = Chain::new(
        &[(op.address(), FUNDS), (node.address(), 1_000)],
        &[(vpk(1), 10), (vpk(2), 10)],
        &[(vpk(1), op.address())],
        serde_json::json!({}),
    );
    let bond = 400_000_000u128;
    let reg = c.tx(
        &op,
        vec![rm::register_node(
            &op.address(),
            &node.pub_key(),
            "cpu_only",
            "https://n",
            "eu",
            "{}",
            bond,
        )],
    );
    c.block(vec![reg], 5);
    let supply = |c: &Chain| -> u128 {
        let r = c.h.query(
            "/cosmos.bank.v1beta1.Query/SupplyOf",
            {
                use prost::Message;
                cosmrs::proto::cosmos::bank::v1beta1::QuerySupplyOfRequest {
                    denom: "umag".into(),
                }
                .encode_to_vec()
            },
            0,
        );
        use prost::Message;
        cosmrs::proto::cosmos::bank::v1beta1::QuerySupplyOfResponse::decode(r.value.as_ref())
            .unwrap()
            .amount
            .unwrap()
            .amount
            .parse()
            .unwrap()
    };
    let pool = magnet_core::community_pool();
    let (pool0, supply0) = (c.h.balance(&pool), supply(&c));
    let evidence = pb::Misbehavior {
        r#type: 1,
        validator: Some(pb::Validator {
            address: cons_addr(&vpk(1)).into(),
            power: 10,
        }),
        height: c.h.height,
        time: None,
        total_voting_power: 20,
    };
    c.misbehavior = vec![evidence.clone()];
    let r = c.block(vec![], 5);
    assert_eq!(
        updates(&r),
        vec![(vpk(1), 0)],
        "the double-signer leaves the set"
    );
    let rate = c.q("/magnet.slashing.v1/params", "")["rates"]["double_sign"]
        .as_u64()
        .unwrap() as u128;
    let burn_ppm = c.q("/magnet.slashing.v1/params", "")["burn_ppm"]
        .as_u64()
        .unwrap() as u128;
    let slashed = bond * rate / 1_000_000;
    let burned = slashed * burn_ppm / 1_000_000;
    let node_rec = c.q("/magnet.registry.v1/node", &op.address().to_bech32());
    assert_eq!(
        node_rec["bond"].as_str().unwrap().parse::<u128>().unwrap(),
        bond - slashed
    );
    assert_eq!(node_rec["jailed"], true);
    let records = c.q("/magnet.slashing.v1/records", "");
    let recs = records.as_array().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["offence"], "double_sign");
    assert_eq!(recs[0]["amount"], slashed.to_string());
    // The fee of the registration tx is split in this block too; count only the slash.
    let fee_to_pool = {
        let p = c.q("/magnet.emission.v1/params", "");
        let ppm = |k: &str| p[k].as_u64().unwrap() as u128;
        let b = FEE * ppm("fee_burn_ppm") / 1_000_000;
        let v = FEE * ppm("fee_validators_ppm") / 1_000_000;
        // Both validators signed with power 10 each; only v1 has an operator.
        let paid = v * 10 / 20;
        (FEE - b - paid, b)
    };
    assert_eq!(c.h.balance(&pool) - pool0, slashed - burned + fee_to_pool.0);
    assert_eq!(supply0 - supply(&c), burned + fee_to_pool.1);

    // The same evidence again is ignored; evidence against the last validator slashes
    // nothing (no operator) and keeps it in the set.
    c.votes = vec![(cons_addr(&vpk(2)), 10, true)];
    c.misbehavior = vec![
        evidence,
        pb::Misbehavior {
            r#type: 2,
            validator: Some(pb::Validator {
                address: cons_addr(&vpk(2)).into(),
                power: 10,
            }),
            height: c.h.height,
            time: None,
            total_voting_power: 10,
        },
    ];
    let r = c.block(vec![], 5);
    assert!(updates(&r).is_empty());
    assert_eq!(
        c.q("/magnet.slashing.v1/records", "")
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let ev: Vec<_> = r
        .events
        .iter()
        .filter(|e| e.r#type == "magnet.slashing.double_sign")
        .collect();
    assert_eq!(ev.len(), 1);
    assert!(ev[0]
        .attributes
        .iter()
        .any(|a| a.key == "set" && a.value.contains("last validator")));
    assert_eq!(c.set().len(), 1);
}
