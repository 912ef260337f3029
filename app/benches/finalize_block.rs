//! Signed MsgSend throughput through FinalizeBlock (decode, signature checks on all cores,
//! ante, bank transfer, merkle root), in blocks of 10,000 txs, against single-thread k256
//! ECDSA verification — the ceiling a one-core verifier would impose.
//!
//! Run: `cargo bench -p magnet-app --bench finalize_block`. Read `thrpt` as tx/s (or
//! verifications/s for the k256 line). `MAGNET_BENCH_TXS` changes the block size. At the end
//! a summary line gives each FinalizeBlock figure as a ratio to the single-thread k256
//! verifications/s measured in the same run (the number to compare across machines).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use magnet_app::abci as pb;
use magnet_app::testkit::{genesis_app_state, Signer, TxBuilder};
use magnet_app::{AppConfig, Application, MagnetApp, StoreConfig};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// (bench name, txs, total time) of every timed FinalizeBlock, for the summary.
static RUNS: Mutex<Vec<(String, u64, Duration)>> = Mutex::new(Vec::new());

fn record(name: &str, txs: u64, took: Duration) {
    RUNS.lock().unwrap().push((name.to_string(), txs, took));
}

const CHAIN_ID: &str = "magnet-bench";

fn block_size() -> usize {
    std::env::var("MAGNET_BENCH_TXS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn request(height: i64, txs: Vec<Vec<u8>>) -> pb::RequestFinalizeBlock {
    pb::RequestFinalizeBlock {
        txs: txs.into_iter().map(Into::into).collect(),
        height,
        time: Some(tendermint_proto::google::protobuf::Timestamp {
            seconds: 1_700_000_000 + height * 5,
            nanos: 0,
        }),
        hash: vec![height as u8; 32].into(),
        ..Default::default()
    }
}

struct Chain {
    app: MagnetApp,
    signers: Vec<Signer>,
    height: i64,
    _dir: tempfile::TempDir,
}

impl Chain {
    fn new(n: usize, fsync: bool) -> Chain {
        let dir = tempfile::tempdir().unwrap();
        let cfg = AppConfig {
            store: StoreConfig {
                keep_recent: 100,
                fsync,
            },
            min_gas_price: "0".into(),
            snapshot: Default::default(),
        };
        let app = MagnetApp::open(dir.path(), cfg).unwrap();
        let signers: Vec<Signer> = (0..n as u64)
            .map(|i| Signer::from_seed(10_000 + i))
            .collect();
        let funded: Vec<_> = signers
            .iter()
            .map(|s| (s.address(), 1_000_000_000u128))
            .collect();
        app.init_chain(pb::RequestInitChain {
            chain_id: CHAIN_ID.into(),
            app_state_bytes: serde_json::to_vec(&genesis_app_state(&funded))
                .unwrap()
                .into(),
            initial_height: 1,
            time: Some(tendermint_proto::google::protobuf::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            ..Default::default()
        });
        app.finalize_block(request(1, vec![]));
        app.commit();
        Chain {
            app,
            signers,
            height: 1,
            _dir: dir,
        }
    }

    /// A block where every signer sends 1 umag to the next one (sequence = block number).
    fn next_block(&self) -> Vec<Vec<u8>> {
        let seq = (self.height - 1) as u64;
        let n = self.signers.len();
        self.signers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                TxBuilder::new(CHAIN_ID, i as u64, seq)
                    .fee(2_000, 200_000)
                    .send(s, &self.signers[(i + 1) % n].address(), 1, "umag")
                    .sign(s)
            })
            .collect()
    }

    fn run(&mut self, txs: Vec<Vec<u8>>, commit_in_timing: bool) -> Duration {
        self.height += 1;
        let req = request(self.height, txs);
        let start = Instant::now();
        let r = self.app.finalize_block(req);
        let mut took = start.elapsed();
        let failed = r.tx_results.iter().filter(|t| t.code != 0).count();
        assert_eq!(
            failed,
            0,
            "first failure: {:?}",
            r.tx_results.iter().find(|t| t.code != 0)
        );
        let c = Instant::now();
        self.app.commit();
        if commit_in_timing {
            took += c.elapsed();
        }
        took
    }
}

fn bench(c: &mut Criterion) {
    let n = block_size();
    let mut g = c.benchmark_group("signed_msgsend");
    // Each iteration is a whole 10,000-tx block: 10 flat samples of one block each.
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.measurement_time(Duration::from_secs(1));
    g.warm_up_time(Duration::from_millis(1));
    g.throughput(Throughput::Elements(n as u64));
    eprintln!("rayon threads: {}", rayon::current_num_threads());
    let mut chain = Chain::new(n, true);
    g.bench_function(format!("finalize_block_{n}_txs"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let txs = chain.next_block();
                let took = chain.run(txs, false);
                record("finalize_block", n as u64, took);
                total += took;
            }
            total
        })
    });
    g.bench_function(format!("finalize_block_and_commit_{n}_txs"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let txs = chain.next_block();
                let took = chain.run(txs, true);
                record("finalize_block_and_commit", n as u64, took);
                total += took;
            }
            total
        })
    });
    // As on a live validator: every tx passed CheckTx first, whose verified signatures
    // FinalizeBlock reuses (CheckTx time not counted here; it is spread over the block time).
    g.bench_function(format!("finalize_block_{n}_txs_after_check_tx"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let txs = chain.next_block();
                for t in &txs {
                    let r = chain.app.check_tx(pb::RequestCheckTx {
                        tx: t.clone().into(),
                        r#type: 0,
                    });
                    assert_eq!(r.code, 0, "{}", r.log);
                }
                let took = chain.run(txs, false);
                record("finalize_block_after_check_tx", n as u64, took);
                total += took;
            }
            total
        })
    });
    g.finish();

    let mut g = c.benchmark_group("k256");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    let s = Signer::from_seed(1);
    let doc = b"a SignDoc-sized message: body bytes, auth info bytes, chain id, account number";
    let sig_bytes = s.sign_bytes(doc);
    let sig = k256::ecdsa::Signature::from_slice(&sig_bytes).unwrap();
    let vk = *s.key().verifying_key();
    g.bench_function("verify_single_thread", |b| {
        use k256::ecdsa::signature::hazmat::PrehashVerifier;
        b.iter(|| {
            let digest = magnet_core::sha256(std::hint::black_box(doc));
            vk.verify_prehash(&digest, &sig).unwrap()
        })
    });
    g.finish();

    // The anchor, timed plainly in the same run: single-thread verifications per second.
    let k = 2_000u32;
    let start = Instant::now();
    for _ in 0..k {
        use k256::ecdsa::signature::hazmat::PrehashVerifier;
        let digest = magnet_core::sha256(std::hint::black_box(doc));
        vk.verify_prehash(&digest, &sig).unwrap();
    }
    let verify_per_s = f64::from(k) / start.elapsed().as_secs_f64();
    let runs = RUNS.lock().unwrap();
    eprintln!(
        "summary: k256 single-thread verify {verify_per_s:.0}/s; rayon threads {}",
        rayon::current_num_threads()
    );
    for name in [
        "finalize_block",
        "finalize_block_and_commit",
        "finalize_block_after_check_tx",
    ] {
        let (txs, took) = runs
            .iter()
            .filter(|r| r.0 == name)
            .fold((0u64, Duration::ZERO), |(t, d), r| (t + r.1, d + r.2));
        if took > Duration::ZERO {
            let tps = txs as f64 / took.as_secs_f64();
            eprintln!(
                "summary: {name}: {tps:.0} tx/s over {txs} txs = {:.2} × single-thread k256 verify",
                tps / verify_per_s
            );
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
