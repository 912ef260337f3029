//! A chain driven with `decided_last_commit` and `misbehavior`, and signed txs of any module.
#![allow(dead_code)]

use super::*;
use base64::Engine;
use magnet_app::abci as pb;
use magnet_app::testkit::{Signer, TxBuilder};
use magnet_app::Application;
use magnet_core::Address;
use std::collections::BTreeMap;

pub const FUNDS: u128 = 1_000_000_000_000;
pub const FEE: u128 = 2_000;

pub fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

pub fn cons_addr(pk: &[u8]) -> Vec<u8> {
    magnet_core::sha256(pk)[..20].to_vec()
}

pub fn vpk(i: u8) -> Vec<u8> {
    vec![i; 32]
}

pub fn any(a: prost_types::Any) -> cosmrs::Any {
    cosmrs::Any {
        type_url: a.type_url,
        value: a.value,
    }
}

/// A chain whose blocks all carry `decided_last_commit` with the given signers.
pub struct Chain {
    pub h: Harness,
    pub numbers: BTreeMap<Address, u64>,
    /// (consensus address, power, signed) reported as the last commit of every block.
    pub votes: Vec<(Vec<u8>, i64, bool)>,
    pub misbehavior: Vec<pb::Misbehavior>,
    pub time: i64,
    _tmp: tempfile::TempDir,
}

impl Chain {
    pub fn new(
        accounts: &[(Address, u128)],
        validators: &[(Vec<u8>, u64)],
        operators: &[(Vec<u8>, Address)],
        extra: serde_json::Value,
    ) -> Chain {
        let mut state = magnet_app::testkit::genesis_app_state(accounts);
        state["validators"] = validators
            .iter()
            .map(|(pk, p)| serde_json::json!({"pub_key": b64(pk), "power": p.to_string(), "name": ""}))
            .collect();
        state["validator_operators"] = operators
            .iter()
            .map(|(pk, op)| serde_json::json!({"pub_key": b64(pk), "operator": op.to_bech32()}))
            .collect();
        for (k, v) in extra.as_object().unwrap() {
            state[k] = v.clone();
        }
        let tmp = tempfile::tempdir().unwrap();
        let h = Harness::open(tmp.path(), fast_config());
        let init = h.app.init_chain(init_request(&state));
        assert_eq!(init.validators.len(), validators.len());
        Chain {
            h,
            _tmp: tmp,
            numbers: accounts
                .iter()
                .enumerate()
                .map(|(i, (a, _))| (*a, i as u64))
                .collect(),
            votes: validators
                .iter()
                .map(|(pk, p)| (cons_addr(pk), *p as i64, true))
                .collect(),
            misbehavior: Vec::new(),
            time: GENESIS_TIME,
        }
    }

    pub fn tx(&self, s: &Signer, msgs: Vec<prost_types::Any>) -> Vec<u8> {
        let (num, seq) = if self.h.height == 0 {
            (self.numbers[&s.address()], 0)
        } else {
            self.h.account(&s.address()).expect("account exists")
        };
        let mut b = TxBuilder::new(CHAIN_ID, num, seq).fee(FEE, 5_000_000);
        for m in msgs {
            b = b.msg(any(m));
        }
        b.sign(s)
    }

    pub fn request(&mut self, txs: Vec<Vec<u8>>, dt: i64) -> pb::RequestFinalizeBlock {
        self.time += dt;
        let mut req = finalize_request(self.h.height + 1, txs);
        req.time = Some(tendermint_proto::google::protobuf::Timestamp {
            seconds: self.time,
            nanos: 0,
        });
        req.decided_last_commit = Some(pb::CommitInfo {
            round: 0,
            votes: self
                .votes
                .iter()
                .map(|(a, p, signed)| pb::VoteInfo {
                    validator: Some(pb::Validator {
                        address: a.clone().into(),
                        power: *p,
                    }),
                    block_id_flag: if *signed { 2 } else { 1 },
                })
                .collect(),
        });
        req.misbehavior = std::mem::take(&mut self.misbehavior);
        req
    }

    /// FinalizeBlock + Commit, `dt` seconds after the last block; every tx must pass.
    pub fn block(&mut self, txs: Vec<Vec<u8>>, dt: i64) -> pb::ResponseFinalizeBlock {
        let req = self.request(txs, dt);
        let r = self.h.app.finalize_block(req);
        self.h.app.commit();
        self.h.height += 1;
        for x in &r.tx_results {
            assert_eq!(x.code, 0, "{}: {}", x.codespace, x.log);
        }
        r
    }

    pub fn q(&self, path: &str, data: &str) -> serde_json::Value {
        let r = self.h.query(path, data.as_bytes().to_vec(), 0);
        assert_eq!(r.code, 0, "{path}: {}", r.log);
        serde_json::from_slice(&r.value).unwrap()
    }

    pub fn set(&self) -> BTreeMap<String, u64> {
        self.h
            .app
            .export()
            .unwrap()
            .validators
            .into_iter()
            .map(|v| (v.pub_key, v.power))
            .collect()
    }
}

pub fn updates(r: &pb::ResponseFinalizeBlock) -> Vec<(Vec<u8>, i64)> {
    r.validator_updates
        .iter()
        .map(|u| {
            let Some(tendermint_proto::v0_38::crypto::public_key::Sum::Ed25519(pk)) =
                u.pub_key.as_ref().and_then(|k| k.sum.clone())
            else {
                panic!("not an ed25519 update")
            };
            (pk, u.power)
        })
        .collect()
}

/// A chain ready for proposals: governance decides within a minute (deposit period 100 s,
/// voting 50 s, min deposit 1000 umag), `voter` is funded with [`FUNDS`], one validator
/// `vpk(1)` has power 10, and `voter`'s governance bond of 1,000,000 umag is already in a
/// block.
pub fn governed(voter: &Signer) -> Chain {
    governed_with(voter, &[(vpk(1), 10)])
}

/// [`governed`] with the given genesis validators (no operators).
pub fn governed_with(voter: &Signer, validators: &[(Vec<u8>, u64)]) -> Chain {
    let gov = serde_json::json!({"gov": {"params": {
        "min_deposit": "1000", "deposit_period_secs": 100, "voting_period_secs": 50,
        "quorum_ppm": 334000, "threshold_ppm": 500000, "veto_ppm": 334000,
        "burn_on_veto": true, "burn_on_no_quorum": false
    }}});
    let mut c = Chain::new(&[(voter.address(), FUNDS)], validators, &[], gov);
    let bond = c.tx(
        voter,
        vec![magnet_testkit::magnet_registry::msgs::bond_gov(
            &voter.address(),
            1_000_000,
        )],
    );
    c.block(vec![bond], 5);
    c
}
