//! The KV gas schedule (ADR 0096): every read, write, delete and iterated key a tx makes
//! through its `Ctx` — the metered methods or the store view — charges the Cosmos SDK
//! `KVGasConfig` costs, so the gas a tx uses grows with the keys it touches.

use magnet_core::store::{KvStore, MemStore};
use magnet_core::{BlockInfo, Ctx, GasCosts, GasMeter};

/// A store with `n` keys `p/<i:4 BE>` → 10 bytes, plus one key outside the prefix.
fn store(n: u32) -> MemStore {
    let mut s = MemStore::new();
    for i in 0..n {
        s.set(&[b"p/".as_slice(), &i.to_be_bytes()].concat(), vec![7; 10]);
    }
    s.set(b"q/other", vec![1; 100]);
    s
}

/// One row of the schedule table: what it does, keys in the store, the op, the gas it must use.
type Row = (&'static str, u32, fn(&mut Ctx), u64);

/// Gas one operation uses on a fresh meter over `store(n)`.
fn gas_of(n: u32, op: fn(&mut Ctx)) -> u64 {
    let block = BlockInfo::default();
    let mut s = store(n);
    let mut ctx = Ctx::new(
        &block,
        &mut s,
        GasMeter::new(u64::MAX),
        magnet_testkit::services(),
    );
    op(&mut ctx);
    ctx.gas().used()
}

#[test]
fn reads_writes_deletes_and_iterated_keys_charge_per_the_schedule() {
    let c = GasCosts::default();
    // The anchor: Cosmos SDK KVGasConfig, plus a seek priced as a read.
    assert_eq!(
        (c.read_flat, c.read_per_byte, c.write_flat, c.write_per_byte),
        (1_000, 3, 2_000, 30)
    );
    assert_eq!(
        (c.delete, c.iter_flat, c.iter_next_flat),
        (1_000, 1_000, 30)
    );
    let per_key = c.iter_next_flat + c.read_per_byte * (6 + 10);
    let rows: Vec<Row> = vec![
        (
            "metered read of a missing key",
            0,
            |x| {
                x.get(b"nope").unwrap();
            },
            c.read_flat + 3 * 4,
        ),
        (
            "metered read of a present key",
            1,
            |x| {
                x.get(&[b"p/".as_slice(), &0u32.to_be_bytes()].concat())
                    .unwrap();
            },
            c.read_flat + 3 * (6 + 10),
        ),
        (
            "a view read costs what a metered read costs",
            1,
            |x| {
                x.store()
                    .get(&[b"p/".as_slice(), &0u32.to_be_bytes()].concat());
            },
            c.read_flat + 3 * (6 + 10),
        ),
        (
            "metered write",
            0,
            |x| {
                x.set(b"k", vec![0; 9]).unwrap();
            },
            c.write_flat + 30 * 10,
        ),
        (
            "a view write costs what a metered write costs",
            0,
            |x| {
                x.store_mut().set(b"k", vec![0; 9]);
            },
            c.write_flat + 30 * 10,
        ),
        ("delete", 0, |x| x.delete(b"k").unwrap(), c.delete),
        (
            "scan of an empty prefix: the seek",
            5,
            |x| {
                x.scan_prefix(b"none/").unwrap();
            },
            c.iter_flat,
        ),
        (
            "scan of 1 key",
            1,
            |x| {
                x.scan_prefix(b"p/").unwrap();
            },
            c.iter_flat + per_key,
        ),
        (
            "scan of 10 keys",
            10,
            |x| {
                x.scan_prefix(b"p/").unwrap();
            },
            c.iter_flat + 10 * per_key,
        ),
        (
            "scan of 1,000 keys",
            1_000,
            |x| {
                x.scan_prefix(b"p/").unwrap();
            },
            c.iter_flat + 1_000 * per_key,
        ),
        (
            "a view scan of 1,000 keys costs the same",
            1_000,
            |x| {
                magnet_core::store::scan_prefix(x.store(), b"p/");
            },
            c.iter_flat + 1_000 * per_key,
        ),
    ];
    for (what, n, op, want) in rows {
        assert_eq!(gas_of(n, op), want, "{what}");
    }
}

#[test]
fn a_scan_past_the_limit_stops_with_out_of_gas_and_a_view_scan_marks_the_meter() {
    let block = BlockInfo::default();
    let limit = 50_000;
    // Metered: an error at once.
    let mut s = store(1_000);
    let mut ctx = Ctx::new(
        &block,
        &mut s,
        GasMeter::new(limit),
        magnet_testkit::services(),
    );
    let e = ctx.scan_prefix(b"p/").unwrap_err();
    assert_eq!(e.limit, limit);
    assert_eq!(ctx.gas().used(), limit);
    assert!(ctx.gas().exhausted().is_some());
    // Through the view: no error to return, but the meter is exhausted for the app to report.
    let mut s = store(1_000);
    let ctx = Ctx::new(
        &block,
        &mut s,
        GasMeter::new(limit),
        magnet_testkit::services(),
    );
    assert_eq!(
        magnet_core::store::scan_prefix(ctx.store(), b"p/").len(),
        1_000
    );
    assert_eq!(ctx.gas().used(), limit);
    assert!(ctx.gas().exhausted().is_some());
    // Under the limit nothing is marked.
    let mut s = store(10);
    let mut ctx = Ctx::new(
        &block,
        &mut s,
        GasMeter::new(limit),
        magnet_testkit::services(),
    );
    ctx.scan_prefix(b"p/").unwrap();
    assert_eq!(ctx.gas().exhausted(), None);
}
