//! The app's validator set as a service, through the whole app with real signed txs:
//! fee payouts to validator operators pro rata to power, validator-set governance proposals
//! that reach CometBFT as `validator_updates`, double-sign evidence that slashes and removes.

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
fn validator_set_proposals_pass_reach_comet_bft_as_updates_and_cannot_empty_the_set() {
    let voter = Signer::from_seed(1);
    let new_op = Signer::from_seed(5).address();
    let mut c = governed(&voter);
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

    // Two proposals in one block: remove v1 (allowed, v9 remains), then remove v9 (refused:
    // it would leave no validator).
    let rm1 = serde_json::json!({"validator_set": {"pub_key_ed25519_hex": hex::encode(vpk(1)), "power": 0}});
    let rm9 = serde_json::json!({"validator_set": {"pub_key_ed25519_hex": hex::encode(vpk(9)), "power": 0}});
    let s1 = c.tx(
        &voter,
        vec![gm::submit(&voter.address(), "rm v1", &rm1, 1_000)],
    );
    c.block(vec![s1], 5);
    let s2 = c.tx(
        &voter,
        vec![gm::submit(&voter.address(), "rm v9", &rm9, 1_000)],
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
        failed["status"].to_string().contains("last validator"),
        "{failed}"
    );
    let set = c.set();
    assert_eq!(set.len(), 1);
    assert_eq!(set.get(&b64(&vpk(9))), Some(&7));
    // The exported genesis carries the new validator's operator.
    let exported = c.h.app.export().unwrap();
    assert_eq!(
        exported.app_state["validator_operators"],
        serde_json::json!([{"pub_key": b64(&vpk(9)), "operator": new_op.to_bech32()}])
    );
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
