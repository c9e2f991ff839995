//! Criterion baselines for the CPU reference `linear` and `attention`, at TRM's Sudoku shapes
//! (97 tokens incl. the 16-slot puzzle prefix, hidden 512, 8 heads of 64) and Sotaku's (81 tokens,
//! 4 heads of 32). These are the numbers the CUDA kernels will be compared with.
//!
//! Run: `cargo bench --bench cpu_ops` (add `-- linear` or `-- attention` to filter).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use recur::ops::attention::AttentionOpts;
use recur::{DType, Tape, Tensor, Var};
use std::hint::black_box;

fn randn(dims: &[usize], seed: u64) -> Var {
    Var::constant(Tensor::randn(dims.to_vec(), 1.0, seed, DType::F32).unwrap())
}

fn linear(c: &mut Criterion) {
    let mut g = c.benchmark_group("linear_fwd_f32");
    // (name, rows = batch·seq, in, out): TRM qkv_proj and gate_up_proj at batch 8.
    for (name, rows, k, n) in [
        ("trm_qkv_b8", 8 * 97, 512, 1536),
        ("trm_gate_up_b8", 8 * 97, 512, 3072),
        ("sotaku_ffn_b64", 64 * 81, 128, 512),
    ] {
        let (x, w) = (randn(&[rows, k], 1), randn(&[n, k], 2));
        g.throughput(Throughput::Elements((2 * rows * k * n) as u64)); // FLOPs
        g.bench_with_input(BenchmarkId::from_parameter(name), &(), |b, _| {
            let tape = Tape::new();
            b.iter(|| black_box(tape.linear(&x, &w, None).unwrap()))
        });
    }
    g.finish();
}

fn attention(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention_fwd_f32");
    // (name, batch, seq, heads, head_dim)
    for (name, b, s, h, d) in [("trm_b8", 8, 97, 8, 64), ("sotaku_b64", 64, 81, 4, 32)] {
        let (q, k, v) = (
            randn(&[b, s, h, d], 1),
            randn(&[b, s, h, d], 2),
            randn(&[b, s, h, d], 3),
        );
        g.throughput(Throughput::Elements((4 * b * h * s * s * d) as u64)); // FLOPs of QKᵀ and PV
        g.bench_with_input(BenchmarkId::from_parameter(name), &(), |bch, _| {
            let tape = Tape::new();
            bch.iter(|| {
                black_box(
                    tape.attention(&q, &k, &v, &AttentionOpts::default())
                        .unwrap(),
                )
            })
        });
    }
    g.finish();
}

fn attention_fwd_bwd(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention_fwd_bwd_f32");
    let (b, s, h, d) = (8, 97, 8, 64);
    let vals = [
        randn(&[b, s, h, d], 1),
        randn(&[b, s, h, d], 2),
        randn(&[b, s, h, d], 3),
    ];
    g.throughput(Throughput::Elements((12 * b * h * s * s * d) as u64));
    g.bench_function("trm_b8", |bch| {
        bch.iter(|| {
            let tape = Tape::new();
            let [q, k, v] = vals.clone().map(|x| tape.leaf(x.into_value()));
            let o = tape
                .attention(&q, &k, &v, &AttentionOpts::default())
                .unwrap();
            let loss = tape.sum_all(&o).unwrap();
            black_box(tape.backward(&loss).unwrap())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(std::time::Duration::from_millis(500));
    targets = linear, attention, attention_fwd_bwd
}
criterion_main!(benches);
