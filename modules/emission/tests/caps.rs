//! Emission caps under adversarial block times, and the fee split.

use magnet_core::context::VoteInfo;
use magnet_core::Address;
use magnet_testkit::fixtures::*;
use magnet_testkit::Chain;
use proptest::prelude::*;

const DAY: u64 = 86_400;
const YEAR: u64 = 365 * DAY;
const X: u128 = 1_000_000; // scheduled per day
const BPD: u64 = 10; // blocks_per_day for the height caps

/// One-day epochs, schedule X per day, daily cap X, annual cap 365·X.
fn genesis(epoch_secs: u64) -> serde_json::Value {
    let mut g = app_state();
    g["epochs"]["params"]["duration_secs"] = epoch_secs.into();
    g["emission"]["params"]["initial_annual_emission"] = (365 * X).to_string().into();
    g["emission"]["params"]["daily_cap"] = X.to_string().into();
    g["emission"]["params"]["annual_cap"] = (365 * X).to_string().into();
    g["emission"]["params"]["blocks_per_day"] = BPD.into();
    g
}

fn mints(c: &Chain) -> Vec<(u64, u64, u128)> {
    c.query("/magnet.emission.v1/pools", b"")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["time_secs"].as_u64().unwrap(),
                p["height"].as_u64().unwrap(),
                p["minted"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

/// Largest sum over any window `[x, x+len)` of positions picked by `pos`.
fn max_window(ms: &[(u64, u64, u128)], len: u64, pos: impl Fn(&(u64, u64, u128)) -> u64) -> u128 {
    ms.iter()
        .map(|a| {
            let start = pos(a);
            ms.iter()
                .filter(|b| pos(b) >= start && pos(b) < start.saturating_add(len))
                .map(|b| b.2)
                .sum()
        })
        .max()
        .unwrap_or(0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever block times the proposers pick — stalls, bursts, jumps of weeks — no 24 h of
    /// block time and no `blocks_per_day` heights see more than the daily cap, no year more
    /// than the annual cap, and supply = genesis + minted − burned.
    #[test]
    fn minted_per_day_and_year_stay_under_the_caps_under_adversarial_block_times(
        epoch_secs in prop_oneof![Just(3_600u64), Just(DAY), Just(7 * DAY)],
        dts in proptest::collection::vec(
            prop_oneof![0u64..10, 0u64..DAY, DAY..20 * DAY, Just(400 * DAY)], 1..80),
    ) {
        let mut c = Chain::genesis(T0, genesis(epoch_secs), &[]);
        for dt in dts {
            c.empty_block(dt).unwrap();
        }
        let ms = mints(&c);
        prop_assert!(max_window(&ms, DAY, |m| m.0) <= X);
        prop_assert!(max_window(&ms, BPD, |m| m.1) <= X);
        prop_assert!(max_window(&ms, YEAR, |m| m.0) <= 365 * X);
        prop_assert!(max_window(&ms, 365 * BPD, |m| m.1) <= 365 * X);
        let minted: u128 = ms.iter().map(|m| m.2).sum();
        prop_assert_eq!(c.supply(), c.genesis_supply + minted - c.burned());
    }
}

#[test]
fn honest_one_day_epochs_mint_close_to_the_schedule() {
    let mut c = Chain::genesis(T0, genesis(DAY), &[]);
    // 60 days, one block per 2.4 h (BPD blocks a day).
    for _ in 0..(60 * BPD) {
        c.empty_block(DAY / BPD).unwrap();
    }
    let minted: u128 = mints(&c).iter().map(|m| m.2).sum();
    // 60 epochs of X: the cap equals the schedule and is met exactly.
    assert_eq!(minted, 60 * X);
}

#[test]
fn fees_split_among_burn_validators_by_power_and_the_community_pool() {
    let payer = Address([9; 20]);
    let mut c = Chain::genesis(T0, app_state(), &[(payer, 1_000_001)]);
    let collector = Address::module(magnet_core::services::FEE_COLLECTOR);
    // The ante handler collected fees into the fee collector in the previous block.
    c.begin(1).unwrap();
    c.with_ctx(|ctx| {
        use magnet_core::Bank;
        magnet_testkit::BANK.send(
            ctx,
            &payer,
            &collector,
            &magnet_core::Coins::umag(1_000_001),
        )
    })
    .unwrap();
    c.end().unwrap();
    let (v1, v2) = ([1u8; 20], [2u8; 20]);
    let votes = vec![
        VoteInfo {
            validator: v1.to_vec(),
            power: 3,
            signed: true,
        },
        VoteInfo {
            validator: v2.to_vec(),
            power: 1,
            signed: true,
        },
        VoteInfo {
            validator: vec![3; 20],
            power: 100,
            signed: false,
        },
    ];
    let supply = c.supply();
    c.begin_with(1, votes).unwrap();
    c.end().unwrap();
    // Defaults: 30 % burn, 50 % validators, 20 % community (+ dust).
    let burn = 1_000_001 * 300_000 / 1_000_000;
    let val = 1_000_001 * 500_000 / 1_000_000;
    assert_eq!(c.supply(), supply - burn);
    assert_eq!(c.balance(&Address(v1)), val * 3 / 4);
    assert_eq!(c.balance(&Address(v2)), val / 4);
    assert_eq!(
        c.balance(&Address([3; 20])),
        0,
        "absent validators are not paid"
    );
    assert_eq!(
        c.balance(&magnet_core::community_pool()),
        1_000_001 - burn - val * 3 / 4 - val / 4
    );
    assert_eq!(c.balance(&collector), 0);
}
