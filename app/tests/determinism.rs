//! Two app instances fed the same random blocks — valid and invalid txs — agree on every
//! app hash and every tx result.

mod common;

use common::*;
use magnet_app::testkit::{Signer, TxBuilder};
use rand::{Rng, SeedableRng};

fn blocks() -> i64 {
    std::env::var("MAGNET_DETERMINISM_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

#[test]
fn two_apps_fed_the_same_random_blocks_agree_on_every_app_hash() {
    let signers: Vec<Signer> = (1..=8).map(Signer::from_seed).collect();
    let funded: Vec<_> = signers
        .iter()
        .map(|s| (s.address(), 1_000_000_000u128))
        .collect();
    let mut a = Harness::new(&funded, fast_config());
    let mut b = Harness::new(&funded, fast_config());
    a.block(vec![]);
    b.block(vec![]);
    assert_eq!(a.app.last_commit(), b.app.last_commit());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x4d41474e4554);
    let n = blocks();
    let (mut ok, mut failed) = (0u64, 0u64);
    for _ in 0..n {
        let mut txs = Vec::new();
        let mut pending = std::collections::BTreeMap::<usize, u64>::new();
        for _ in 0..rng.gen_range(0..=2) {
            let i = rng.gen_range(0..signers.len());
            let from = &signers[i];
            let (num, seq) = a.account(&from.address()).unwrap_or((0, 0));
            let seq = seq + pending.get(&i).copied().unwrap_or(0);
            let to = if rng.gen_bool(0.1) {
                Signer::from_seed(1_000 + rng.gen_range(0..200)).address()
            } else {
                signers[rng.gen_range(0..signers.len())].address()
            };
            let amount = rng.gen_range(1..5_000u128);
            let kind = rng.gen_range(0..10);
            let tx = match kind {
                0 => (0..rng.gen_range(0..40)).map(|_| rng.gen()).collect(),
                1 => TxBuilder::new(CHAIN_ID, num, seq + rng.gen_range(1..3))
                    .fee(100, 200_000)
                    .send(from, &to, amount, "umag")
                    .sign(from),
                2 => TxBuilder::new("other-chain", num, seq)
                    .fee(100, 200_000)
                    .send(from, &to, amount, "umag")
                    .sign(from),
                3 => TxBuilder::new(CHAIN_ID, num, seq)
                    .fee(100, 200_000)
                    .send(from, &to, 10_000_000_000, "umag")
                    .sign(from),
                4 => TxBuilder::new(CHAIN_ID, num, seq)
                    .fee(100, rng.gen_range(2_000..30_000))
                    .send(from, &to, amount, "umag")
                    .sign(from),
                _ => TxBuilder::new(CHAIN_ID, num, seq)
                    .fee(rng.gen_range(0..1_000), 200_000)
                    .send(from, &to, amount, "umag")
                    .sign(from),
            };
            if kind >= 3 {
                *pending.entry(i).or_default() += 1;
            }
            txs.push(tx);
        }
        // The twins run on two threads (same inputs, independent state).
        let (ra, rb) = std::thread::scope(|sc| {
            let other = txs.clone();
            let hb = sc.spawn(|| b.block(other));
            let ra = a.block(txs);
            (ra, hb.join().unwrap())
        });
        assert_eq!(ra, rb, "apps diverged at height {}", a.height);
        for t in &ra.tx_results {
            if t.code == 0 {
                ok += 1
            } else {
                failed += 1
            }
        }
    }
    assert_eq!(a.app.last_commit(), b.app.last_commit());
    assert_eq!(a.app.last_commit().0, n as u64 + 1);
    // The random mix really exercised both paths.
    assert!(
        n < 100 || (ok > n as u64 / 4 && failed > n as u64 / 4),
        "ok {ok}, failed {failed}"
    );
}
