//! Property: through the whole app (fees, failed txs, new accounts), the total supply reported
//! by `/cosmos.bank.v1beta1.Query/TotalSupply` equals the sum of every account's balance.

mod common;

use common::*;
use cosmrs::proto::cosmos::bank::v1beta1 as bankpb;
use magnet_app::testkit::{Signer, TxBuilder};
use magnet_core::Address;
use proptest::prelude::*;
use prost::Message;

fn supply(h: &Harness) -> u128 {
    let r = h.query(
        "/cosmos.bank.v1beta1.Query/TotalSupply",
        bankpb::QueryTotalSupplyRequest { pagination: None }.encode_to_vec(),
        0,
    );
    assert_eq!(r.code, 0, "{}", r.log);
    bankpb::QueryTotalSupplyResponse::decode(r.value.as_ref())
        .unwrap()
        .supply
        .iter()
        .filter(|c| c.denom == "umag")
        .map(|c| c.amount.parse::<u128>().unwrap())
        .sum()
}

#[derive(Debug, Clone)]
struct Send {
    from: usize,
    to: usize,
    amount: u128,
    fee: u128,
    gas: u64,
}

fn send() -> impl Strategy<Value = Send> {
    (
        0usize..4,
        0usize..6,
        0u128..2_000_000,
        0u128..5_000,
        prop_oneof![Just(200_000u64), 2_000u64..40_000],
    )
        .prop_map(|(from, to, amount, fee, gas)| Send {
            from,
            to,
            amount,
            fee,
            gas,
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12),
        ..ProptestConfig::default()
    })]
    #[test]
    fn total_supply_equals_the_sum_of_balances_through_the_app(
        blocks in proptest::collection::vec(proptest::collection::vec(send(), 0..4), 1..6)
    ) {
        let signers: Vec<Signer> = (1..=6).map(Signer::from_seed).collect();
        let funded: Vec<(Address, u128)> =
            signers.iter().take(4).map(|s| (s.address(), 1_000_000u128)).collect();
        let mut h = Harness::new(&funded, fast_config());
        h.block(vec![]);
        let mut everyone: Vec<Address> = signers.iter().map(|s| s.address()).collect();
        everyone.push(magnet_app::fee_collector());
        // With the incentive modules registered, emission splits each block's fees among burn,
        // validators (the community pool until the app provides the validator service) and the
        // community pool. No epoch ends in these few seconds of block time, so nothing is minted.
        everyone.push(magnet_core::services::community_pool());
        for block in blocks {
            let mut pending = [0u64; 4];
            let txs: Vec<Vec<u8>> = block.iter().map(|s| {
                let from = &signers[s.from];
                let (num, seq) = h.account(&from.address()).unwrap_or((0, 0));
                let seq = seq + pending[s.from];
                pending[s.from] += 1;
                TxBuilder::new(CHAIN_ID, num, seq)
                    .fee(s.fee, s.gas)
                    .send(from, &signers[s.to].address(), s.amount.max(1), "umag")
                    .sign(from)
            }).collect();
            h.block(txs);
            let sum: u128 = everyone.iter().map(|a| h.balance(a)).sum();
            prop_assert_eq!(supply(&h), sum);
            // Burned fees leave supply and balances together; nothing else creates or destroys.
            prop_assert!(sum <= 4_000_000);
        }
    }
}
