//! The GEMM crate evaluation behind the CPU path's choice (docs/cpu-speed.md): faer's `gemm`,
//! which `Real::gemm` uses, against `matrixmultiply`, which it replaced, on the products of a
//! TRM-Att Sudoku training step at batch 8 (hidden 512, SwiGLU width 1536, 8 × 97 tokens) and
//! one attention head, on 1 thread and on every rayon thread. Prints GFLOP/s, the best of
//! several timed repetitions, so that other load on a shared machine inflates nothing.
//!
//! Run: `cargo bench --bench gemm_crates`.

use std::hint::black_box;
use std::time::Instant;

/// Best seconds per call of `f` over `rounds` rounds of `calls` calls.
fn best_seconds(mut f: impl FnMut(), calls: usize, rounds: usize) -> f64 {
    f();
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            (0..calls).for_each(|_| f());
            t.elapsed().as_secs_f64() / calls as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// One product `c[m×n] = a[m×k]·b[k×n]`, with `b` read through strides `(rsb, csb)` (a weight
/// in PyTorch's `[out, in]` layout is `b` transposed) and `a` through `(rsa, 1)`.
struct Case {
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
    rsa: usize,
    rsb: usize,
    csb: usize,
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this once, briefly, to keep
    // it compiling and running.
    let (rounds, flops_per_round) = if std::env::args().any(|a| a == "--bench") {
        (5, 2e9)
    } else {
        (1, 1e7)
    };
    let threads = rayon::current_num_threads();
    let tokens = 8 * 97;
    let cases = [
        // Forward x·Wᵀ: qkv_proj, gate_up_proj, down_proj.
        Case {
            name: "qkv x·Wᵀ",
            m: tokens,
            k: 512,
            n: 1536,
            rsa: 512,
            rsb: 1,
            csb: 512,
        },
        Case {
            name: "gate_up x·Wᵀ",
            m: tokens,
            k: 512,
            n: 3072,
            rsa: 512,
            rsb: 1,
            csb: 512,
        },
        Case {
            name: "down x·Wᵀ",
            m: tokens,
            k: 1536,
            n: 512,
            rsa: 1536,
            rsb: 1,
            csb: 1536,
        },
        // Backward dy·W for the input of gate_up_proj.
        Case {
            name: "gate_up dy·W",
            m: tokens,
            k: 3072,
            n: 512,
            rsa: 3072,
            rsb: 512,
            csb: 1,
        },
        // One attention head's Q·Kᵀ in [B, S, H, hd] storage.
        Case {
            name: "head Q·Kᵀ",
            m: 97,
            k: 64,
            n: 97,
            rsa: 512,
            rsb: 1,
            csb: 512,
        },
    ];
    println!("GFLOP/s, best of {rounds} rounds; {threads} rayon threads here");
    println!("| product | m×k×n | matrixmultiply 1t | gemm 1t | gemm {threads}t |");
    println!("|---|---|---|---|---|");
    for c in &cases {
        let a: Vec<f32> = (0..c.m * c.rsa).map(|i| (i % 7) as f32 * 0.1).collect();
        let b_len = (c.k - 1) * c.rsb + (c.n - 1) * c.csb + 1;
        let b: Vec<f32> = (0..b_len).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut out = vec![0f32; c.m * c.n];
        let flops = 2.0 * (c.m * c.k * c.n) as f64;
        let calls = (flops_per_round / flops).ceil() as usize;
        let mut run_gemm = |parallelism: gemm::Parallelism| {
            best_seconds(
                || unsafe {
                    // SAFETY: the slices hold every element the strides address.
                    gemm::gemm(
                        c.m,
                        c.n,
                        c.k,
                        out.as_mut_ptr(),
                        1,
                        c.n as isize,
                        false,
                        a.as_ptr(),
                        1,
                        c.rsa as isize,
                        b.as_ptr(),
                        c.csb as isize,
                        c.rsb as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        parallelism,
                    );
                    black_box(&out);
                },
                calls,
                rounds,
            )
        };
        let gemm_one = run_gemm(gemm::Parallelism::None);
        let gemm_all = run_gemm(gemm::Parallelism::Rayon(threads));
        let mm_one = best_seconds(
            || unsafe {
                // SAFETY: as above.
                matrixmultiply::sgemm(
                    c.m,
                    c.k,
                    c.n,
                    1.0,
                    a.as_ptr(),
                    c.rsa as isize,
                    1,
                    b.as_ptr(),
                    c.rsb as isize,
                    c.csb as isize,
                    0.0,
                    out.as_mut_ptr(),
                    c.n as isize,
                    1,
                );
                black_box(&out);
            },
            calls,
            rounds,
        );
        let rate = |s: f64| flops / s / 1e9;
        println!(
            "| {} | {}×{}×{} | {:.1} | {:.1} | {:.1} |",
            c.name,
            c.m,
            c.k,
            c.n,
            rate(mm_one),
            rate(gemm_one),
            rate(gemm_all)
        );
    }
}
