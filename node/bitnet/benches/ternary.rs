//! Ternary matrix-vector kernel micro-benchmarks, per kernel: `small` shapes (whose codes fit in
//! L2, so the kernel's arithmetic shows) and genkidama-618m shapes (which stream from L3 or DRAM).
#![allow(missing_docs)] // criterion's macros generate undocumented public items

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use magnet_bitnet::kernel::{matvec, quantize_acts, Kernel, TernaryMatrix};

fn bench(c: &mut Criterion) {
    let shapes = [
        (512usize, 512usize, "small attn_q 512x512"),
        (512, 1536, "small ffn_down 512x1536"),
        (1536, 1536, "attn_q 1536x1536"),
        (4096, 1536, "ffn_up 4096x1536"),
        (1536, 4096, "ffn_down 1536x4096"),
    ];
    let mut g = c.benchmark_group("ternary_matvec");
    for (rows, cols, name) in shapes {
        let codes: Vec<i8> = (0..rows * cols)
            .map(|i| (i.wrapping_mul(2_654_435_761usize) >> 7) as i8 % 2)
            .collect();
        let m = TernaryMatrix::from_codes(&codes, rows, cols, 0.02).expect("matrix");
        let x: Vec<f32> = (0..cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let a = quantize_acts(&x);
        let mut out = vec![0f32; rows];
        g.throughput(Throughput::Bytes(m.nbytes() as u64));
        for k in Kernel::available() {
            g.bench_function(format!("{name} {k:?}"), |b| {
                b.iter(|| matvec(k, &m, &a, &mut out, None).expect("matvec"))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
