//! The fragment layouts of `mma.sync.m16n8k16` (bf16 → f32) and `ldmatrix` (`.x4`, `.x4.trans`)
//! as `kernels/ptx_ops.cuh` wraps them, through `emu_selftest_mma` (kernels/emu_selftest.cu):
//! 16×16×16 tiles loaded to shared memory, A fragments by `ldmatrix_x4`, B by `ldmatrix_x4_trans`,
//! two m16n8k16 products per tile, D = A·B + C compared element by element with an f64 matmul.
//!
//! On Emu it checks the shim's emulation of the two instructions; its `::cuda` twin is a direct
//! hardware check of the same layouts, which the tensor-core GEMM and flash attention rely on, so
//! the GPU runner (tools/gpu_run.py) runs it first. A wrong register or lane mapping moves whole
//! rows or columns: the failure lists the misplaced positions.
//!
//! `skipped_twin_fails_under_require_cuda` checks that `RECUR_REQUIRE_CUDA=1` turns the `::cuda`
//! twin's skip (no GPU here) into a failure that names the reason, by rerunning this binary.

use half::bf16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use recur::device::{DeviceBuffer, KernelArg, KernelBackend, LaunchConfig};
use recur::testing::rel_l2;
use std::process::Command;

fn upload<T: bytemuck::Pod>(dev: &dyn KernelBackend, data: &[T]) -> DeviceBuffer {
    dev.upload(bytemuck::cast_slice(data)).unwrap()
}

/// D = A·B + C for `tiles` row-major 16×16 tiles, in f64 (bf16 products are exact there).
fn reference(a: &[bf16], b: &[bf16], c: &[f32], tiles: usize) -> Vec<f64> {
    let mut want = vec![0.0f64; tiles * 256];
    for t in 0..tiles {
        for i in 0..16 {
            for j in 0..16 {
                let mut acc = c[t * 256 + i * 16 + j] as f64;
                for k in 0..16 {
                    acc += a[t * 256 + i * 16 + k].to_f64() * b[t * 256 + k * 16 + j].to_f64();
                }
                want[t * 256 + i * 16 + j] = acc;
            }
        }
    }
    want
}

fn check_mma_fragments(dev: &dyn KernelBackend) {
    let mut rng = StdRng::seed_from_u64(4);
    let tiles = rng.random_range(2..6usize);
    let a: Vec<bf16> = (0..tiles * 256)
        .map(|_| bf16::from_f32(rng.random_range(-2.0..2.0)))
        .collect();
    let b: Vec<bf16> = (0..tiles * 256)
        .map(|_| bf16::from_f32(rng.random_range(-2.0..2.0)))
        .collect();
    let c: Vec<f32> = (0..tiles * 256)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let (ab, bb, cb) = (upload(dev, &a), upload(dev, &b), upload(dev, &c));
    // NaN-poisoned output on every backend, so an element no lane writes fails.
    let mut d = upload(dev, &vec![f32::NAN; tiles * 256]);
    dev.launch(
        "emu_selftest_mma",
        LaunchConfig::linear(tiles as u32, 32),
        &mut [
            KernelArg::In(&ab),
            KernelArg::In(&bb),
            KernelArg::In(&cb),
            KernelArg::Out(&mut d),
            KernelArg::I32(tiles as i32),
        ],
    )
    .unwrap();
    let got: Vec<f64> = bytemuck::pod_collect_to_vec::<u8, f32>(&dev.download(&d).unwrap())
        .into_iter()
        .map(f64::from)
        .collect();
    let want = reference(&a, &b, &c, tiles);
    // Positions (tile, row, col) that are unwritten or far off: a layout error, not rounding.
    let misplaced: Vec<String> = (0..tiles * 256)
        .filter(|&e| {
            let err = (got[e] - want[e]).abs();
            err.is_nan() || err > 1e-3 * (1.0 + want[e].abs())
        })
        .map(|e| {
            let (t, i, j) = (e / 256, e % 256 / 16, e % 16);
            format!("({t},{i},{j}): got {} want {:.6}", got[e], want[e])
        })
        .collect();
    assert!(
        misplaced.is_empty(),
        "{} of {} elements wrong on {}, first: {}",
        misplaced.len(),
        tiles * 256,
        dev.name(),
        misplaced[..misplaced.len().min(12)].join("; ")
    );
    // bf16 products are exact in f32: only the f32 sum of 16 products and C differs (DESIGN's
    // f32 bound).
    let e = rel_l2(&got, &want);
    assert!(e < 1e-5, "rel L2 {e:e} on {}", dev.name());
}

recur::kernel_test!(mma_ldmatrix_fragments, check_mma_fragments);

/// Reruns this binary on the `::cuda` twin alone, with and without `RECUR_REQUIRE_CUDA=1`: without
/// a GPU the twin passes after printing why it skipped, and fails with that reason when the
/// variable is set. On a machine with a usable GPU the twin runs for real, so there is no skip to
/// check.
#[test]
fn skipped_twin_fails_under_require_cuda() {
    if let Ok(dev) = recur::device::cuda::Cuda::new(0) {
        eprintln!("a GPU is usable here ({}): nothing skips", dev.name());
        return;
    }
    let twin = "mma_ldmatrix_fragments::cuda";
    let run = |require: Option<&str>| {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([twin, "--exact", "--nocapture", "--test-threads=1"]);
        match require {
            Some(v) => cmd.env("RECUR_REQUIRE_CUDA", v),
            None => cmd.env_remove("RECUR_REQUIRE_CUDA"),
        };
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (passed, text) = run(None);
    assert!(passed, "without RECUR_REQUIRE_CUDA the twin skips:\n{text}");
    assert!(
        text.contains(&format!("skipping kernels_mma::{twin}: ")),
        "{text}"
    );
    assert!(text.contains("1 passed"), "the twin ran: {text}");
    let (passed, text) = run(Some("0"));
    assert!(passed, "RECUR_REQUIRE_CUDA=0 still skips:\n{text}");
    let (passed, text) = run(Some("1"));
    assert!(
        !passed,
        "RECUR_REQUIRE_CUDA=1 must fail the skipped twin:\n{text}"
    );
    assert!(
        text.contains(&format!(
            "RECUR_REQUIRE_CUDA=1 but kernels_mma::{twin} cannot run: "
        )),
        "the failure names the reason:\n{text}"
    );
    assert!(text.contains("1 failed"), "{text}");
}
