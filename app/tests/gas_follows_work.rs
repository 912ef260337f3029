//! Gas follows work through the whole app (ADRs 0096, 0097): with the default minimum gas
//! price a zero-fee tx is refused, and cancelling a job many epochs old with a modest gas limit
//! fails out-of-gas (code 11) — its fee and sequence charged, nothing else changed — instead of
//! scanning every epoch for free.

mod common;

use common::*;
use magnet_app::abci as pb;
use magnet_app::testkit::{fee_for, genesis_app_state_with_fees, Signer, TxBuilder};
use magnet_app::Application;
use magnet_testkit::fixtures::{app_state as incentive_state, EPOCH};
use magnet_testkit::magnet_jobs::msgs as jm;

const FUNDS: u128 = 100_000_000_000;

fn any(a: prost_types::Any) -> cosmrs::Any {
    cosmrs::Any {
        type_url: a.type_url,
        value: a.value,
    }
}

struct Net {
    h: Harness,
    t: i64,
    _tmp: tempfile::TempDir,
}

impl Net {
    fn new(accounts: &[(magnet_core::Address, u128)]) -> Net {
        let mut state = genesis_app_state_with_fees(accounts);
        for (k, v) in incentive_state().as_object().unwrap() {
            state[k] = v.clone();
        }
        let tmp = tempfile::tempdir().unwrap();
        let h = Harness::open(tmp.path(), fast_config());
        h.app.init_chain(init_request(&state));
        Net {
            h,
            t: GENESIS_TIME,
            _tmp: tmp,
        }
    }

    /// A tx paying `ceil(gas × 0.025)` (the default minimum) unless `fee` is given.
    fn tx(&self, s: &Signer, m: prost_types::Any, gas: u64, fee: Option<u128>) -> Vec<u8> {
        let (num, seq) = if self.h.height == 0 {
            (0, 0)
        } else {
            self.h.account(&s.address()).expect("account exists")
        };
        let fee = fee.unwrap_or_else(|| fee_for(gas, "0.025").unwrap());
        TxBuilder::new(CHAIN_ID, num, seq)
            .fee(fee, gas)
            .msg(any(m))
            .sign(s)
    }

    fn block_at(&mut self, t: i64, txs: Vec<Vec<u8>>) -> pb::ResponseFinalizeBlock {
        self.t = t;
        self.h.block_at(t, txs)
    }

    fn job_status(&self, id: u64) -> String {
        let r = self
            .h
            .query("/magnet.jobs.v1/job", id.to_string().into_bytes(), 0);
        assert_eq!(r.code, 0, "{}", r.log);
        let v: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
        v["status"].to_string()
    }
}

#[test]
fn a_zero_fee_tx_is_refused_under_the_default_minimum_gas_price() {
    let alice = Signer::from_seed(1);
    let mut net = Net::new(&[(alice.address(), FUNDS)]);
    net.block_at(GENESIS_TIME + 1, Vec::new());
    let free = TxBuilder::new(CHAIN_ID, 0, 0)
        .fee(0, 200_000)
        .send(&alice, &Signer::from_seed(2).address(), 1, "umag")
        .sign(&alice);
    let r = net.h.check(&free);
    assert_eq!(r.code, 13, "{}", r.log);
    let paid = TxBuilder::new(CHAIN_ID, 0, 0)
        .fee(fee_for(200_000, "0.025").unwrap(), 200_000)
        .send(&alice, &Signer::from_seed(2).address(), 1, "umag")
        .sign(&alice);
    let r = net.h.check(&paid);
    assert_eq!(r.code, 0, "{}", r.log);
}

#[test]
fn cancelling_a_job_many_epochs_old_runs_out_of_gas_and_charges_only_the_fee() {
    let creator = Signer::from_seed(7);
    let mut net = Net::new(&[(creator.address(), FUNDS)]);
    let deadline = GENESIS_TIME as u64 + 10_000 * EPOCH;
    let create = jm::create_job(
        &creator.address(),
        "tabular",
        [1; 32],
        [0xB0; 32],
        10_000_000,
        deadline,
    );
    let tx = net.tx(&creator, create, 5_000_000, None);
    let r = net.block_at(GENESIS_TIME + 1, vec![tx]);
    assert_eq!(r.tx_results[0].code, 0, "{}", r.tx_results[0].log);
    let job = 1;
    // 300 epochs pass (16 end per block, the fixture's max_ends_per_block).
    let mut t = net.t;
    for _ in 0..(300 / 16 + 1) {
        t += (16 * EPOCH) as i64;
        net.block_at(t, Vec::new());
    }

    let gas = 150_000;
    let fee = fee_for(gas, "0.025").unwrap();
    let before = net.h.balance(&creator.address());
    let (_, seq) = net.h.account(&creator.address()).unwrap();
    let tx = net.tx(&creator, jm::cancel_job(&creator.address(), job), gas, None);
    let r = net.block_at(net.t + 1, vec![tx]);
    let x = &r.tx_results[0];
    assert_eq!((x.codespace.as_str(), x.code), ("sdk", 11), "{}", x.log);
    assert_eq!(x.gas_used, gas as i64);
    assert_eq!(
        net.h.balance(&creator.address()),
        before - fee,
        "only the fee is charged"
    );
    assert_eq!(net.h.account(&creator.address()).unwrap().1, seq + 1);
    assert_eq!(net.job_status(job), "\"open\"", "the job is not cancelled");

    // With enough gas the same cancel succeeds and refunds the budget.
    let tx = net.tx(
        &creator,
        jm::cancel_job(&creator.address(), job),
        5_000_000,
        None,
    );
    let r = net.block_at(net.t + 1, vec![tx]);
    let x = &r.tx_results[0];
    assert_eq!(x.code, 0, "{}", x.log);
    assert!(
        x.gas_used > 300 * 1_000,
        "gas used {} for ~300 epochs",
        x.gas_used
    );
    eprintln!("cancel after ~300 epochs used {} gas", x.gas_used);
}
