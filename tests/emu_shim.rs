//! The CPU emulator's shim, tested through the kernels of `kernels/emu_selftest.cu` against
//! independent Rust computations: random ragged sizes, outputs poisoned with NaN (Emu's `alloc`
//! fills memory with 0xff bytes), and the failures a launch must report instead of hanging.
//! `emu_tsan_*` run a thread-mode build of the shim under ThreadSanitizer.
//! The `mma.sync` / `ldmatrix` kernel's test is `tests/kernels_mma.rs`, a kernel test with a
//! `::cuda` twin that checks the same fragment layouts on the hardware.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use recur::device::emu::Emu;
use recur::device::{DeviceBuffer, KernelArg, KernelBackend, LaunchConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn upload<T: bytemuck::Pod>(dev: &Emu, data: &[T]) -> DeviceBuffer {
    dev.upload(bytemuck::cast_slice(data)).unwrap()
}

fn download<T: bytemuck::Pod>(dev: &Emu, buf: &DeviceBuffer) -> Vec<T> {
    bytemuck::pod_collect_to_vec(&dev.download(buf).unwrap())
}

/// `n` elements of uninitialised (0xff-poisoned) device memory.
fn poisoned<T>(dev: &Emu, n: usize) -> DeviceBuffer {
    dev.alloc(n * size_of::<T>()).unwrap()
}

fn rel_l2(got: &[f32], want: &[f64]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (g, w) in got.iter().zip(want) {
        num += (*g as f64 - w).powi(2);
        den += w * w;
    }
    (num / den.max(1e-300)).sqrt()
}

#[test]
fn emu_softmax_rows_matches_reference() {
    let dev = Emu::new().unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    for &threads in &[32u32, 64, 96, 256] {
        let rows = rng.random_range(1..24usize);
        let cols = rng.random_range(1..700usize);
        let x: Vec<f32> = (0..rows * cols)
            .map(|_| rng.random_range(-8.0..8.0))
            .collect();
        let xb = upload(&dev, &x);
        let mut y = poisoned::<f32>(&dev, rows * cols);
        let cfg = LaunchConfig::linear(rows as u32, threads).with_shared_mem(4 * cols as u32);
        let started = Instant::now();
        dev.launch(
            "emu_selftest_softmax_rows",
            cfg,
            &mut [
                KernelArg::In(&xb),
                KernelArg::Out(&mut y),
                KernelArg::I32(rows as i32),
                KernelArg::I32(cols as i32),
            ],
        )
        .unwrap();
        eprintln!(
            "softmax {rows}x{cols}, {threads} threads/block, {}: {:?}",
            dev.name(),
            started.elapsed()
        );
        let got: Vec<f32> = download(&dev, &y);
        let mut want = vec![0.0f64; rows * cols];
        for r in 0..rows {
            let row = &x[r * cols..(r + 1) * cols];
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
            for c in 0..cols {
                want[r * cols + c] = (row[c] as f64 - max).exp() / sum;
            }
        }
        assert!(got.iter().all(|v| v.is_finite()), "unwritten or NaN output");
        let e = rel_l2(&got, &want);
        assert!(
            e < 1e-5,
            "rows {rows} cols {cols} threads {threads}: rel L2 {e:e}"
        );
    }
}

#[test]
fn emu_atomics_match_reference() {
    let dev = Emu::new().unwrap();
    let mut rng = StdRng::seed_from_u64(2);
    let n = rng.random_range(3000..5000usize);
    let bins = 37usize;
    // Keys skip the last bin, so the CAS and exchange targets of an untouched bin stay -1.
    let keys: Vec<i32> = (0..n)
        .map(|_| rng.random_range(0..bins as i32 - 1))
        .collect();
    // Small integers as f32, so every order of the float additions gives the same exact sum.
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-50..50) as f32).collect();
    let ints: Vec<i32> = (0..n)
        .map(|_| rng.random_range(-1_000_000..1_000_000))
        .collect();
    let (kb, vb, ib) = (
        upload(&dev, &keys),
        upload(&dev, &values),
        upload(&dev, &ints),
    );
    let mut bin_sum = upload(&dev, &vec![0.0f32; bins]);
    let mut bin_count = upload(&dev, &vec![0i32; bins]);
    let mut total = upload(&dev, &[0u32]);
    let mut total_f64 = upload(&dev, &[0.0f64]);
    let mut extrema = upload(&dev, &[i32::MIN, i32::MAX]);
    let mut claimed = upload(&dev, &vec![-1i32; bins]);
    let mut last = upload(&dev, &vec![-1i32; bins]);
    dev.launch(
        "emu_selftest_atomics",
        LaunchConfig::linear(7, 96),
        &mut [
            KernelArg::In(&kb),
            KernelArg::In(&vb),
            KernelArg::In(&ib),
            KernelArg::I32(n as i32),
            KernelArg::Out(&mut bin_sum),
            KernelArg::Out(&mut bin_count),
            KernelArg::Out(&mut total),
            KernelArg::Out(&mut total_f64),
            KernelArg::Out(&mut extrema),
            KernelArg::Out(&mut claimed),
            KernelArg::Out(&mut last),
        ],
    )
    .unwrap();
    let mut want_sum = vec![0.0f32; bins];
    let mut want_count = vec![0i32; bins];
    for i in 0..n {
        want_sum[keys[i] as usize] += values[i];
        want_count[keys[i] as usize] += 1;
    }
    assert_eq!(download::<f32>(&dev, &bin_sum), want_sum);
    assert_eq!(download::<i32>(&dev, &bin_count), want_count);
    assert_eq!(download::<u32>(&dev, &total), vec![n as u32]);
    let f64_sum: f64 = values.iter().map(|&v| v as f64).sum();
    assert_eq!(download::<f64>(&dev, &total_f64), vec![f64_sum]);
    assert_eq!(
        download::<i32>(&dev, &extrema),
        vec![*ints.iter().max().unwrap(), *ints.iter().min().unwrap()]
    );
    for (name, buf) in [("claimed", &claimed), ("last", &last)] {
        for (k, &i) in download::<i32>(&dev, buf).iter().enumerate() {
            if want_count[k] == 0 {
                assert_eq!(i, -1, "{name}[{k}] of an empty bin");
            } else {
                assert!(
                    i >= 0 && keys[i as usize] == k as i32,
                    "{name}[{k}] = {i} is not an element of bin {k}"
                );
            }
        }
    }
}

#[test]
fn emu_warp_ops_match_reference() {
    let dev = Emu::new().unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..3 {
        let n = rng.random_range(1..1500usize);
        let warps_per_block = rng.random_range(1..5u32);
        let warps = n.div_ceil(32);
        let blocks = (warps as u32).div_ceil(warps_per_block);
        let x: Vec<f32> = (0..n).map(|_| rng.random_range(-100..100) as f32).collect();
        // Mostly-true flags, some warps all true, so `all` is exercised both ways.
        let all_true_warp = rng.random_range(0..warps);
        let flags: Vec<i32> = (0..n)
            .map(|i| (i / 32 == all_true_warp || rng.random_bool(0.97)) as i32)
            .collect();
        let (xb, fb) = (upload(&dev, &x), upload(&dev, &flags));
        let mut outs: Vec<DeviceBuffer> = (0..4).map(|_| poisoned::<f32>(&dev, n)).collect();
        let mut ballot = poisoned::<u32>(&dev, warps);
        let mut any_all = poisoned::<i32>(&dev, 2 * warps);
        let [up, down, bcast, seg] = &mut outs[..] else {
            unreachable!()
        };
        let cfg = LaunchConfig {
            grid: (blocks, 1, 1),
            block: (32, warps_per_block, 1),
            shared_mem_bytes: 0,
        };
        dev.launch(
            "emu_selftest_warp_ops",
            cfg,
            &mut [
                KernelArg::In(&xb),
                KernelArg::In(&fb),
                KernelArg::I32(n as i32),
                KernelArg::Out(up),
                KernelArg::Out(down),
                KernelArg::Out(bcast),
                KernelArg::Out(seg),
                KernelArg::Out(&mut ballot),
                KernelArg::Out(&mut any_all),
            ],
        )
        .unwrap();
        let at = |i: usize| if i < n { x[i] } else { 0.0 };
        let (mut w_up, mut w_down, mut w_bcast, mut w_seg) = (vec![], vec![], vec![], vec![]);
        for i in 0..n {
            let (lane, base) = (i % 32, i - i % 32);
            w_up.push(if lane >= 1 { at(i - 1) } else { at(i) });
            w_down.push(if lane + 3 < 32 { at(i + 3) } else { at(i) });
            w_bcast.push(at(base + 5));
            let seg_base = i - i % 8;
            w_seg.push((seg_base..seg_base + 8).map(at).sum::<f32>());
        }
        assert_eq!(download::<f32>(&dev, up), w_up, "shfl_up");
        assert_eq!(download::<f32>(&dev, down), w_down, "shfl_down");
        assert_eq!(download::<f32>(&dev, bcast), w_bcast, "shfl");
        assert_eq!(download::<f32>(&dev, seg), w_seg, "shfl_xor width 8");
        let got_ballot: Vec<u32> = download(&dev, &ballot);
        let got_any_all: Vec<i32> = download(&dev, &any_all);
        for w in 0..warps {
            let lanes = 32 * w..32 * (w + 1);
            let bits = lanes
                .clone()
                .filter(|&i| i < n && flags[i] != 0)
                .fold(0u32, |b, i| b | 1 << (i % 32));
            assert_eq!(got_ballot[w], bits, "ballot of warp {w}");
            assert_eq!(got_any_all[2 * w], (bits != 0) as i32, "any of warp {w}");
            assert_eq!(
                got_any_all[2 * w + 1],
                (bits == u32::MAX) as i32,
                "all of warp {w}"
            );
        }
    }
}

#[test]
fn emu_divergent_barrier_is_an_error_naming_the_block() {
    let dev = Emu::new().unwrap();
    let mut out = poisoned::<f32>(&dev, 3 * 64);
    let started = Instant::now();
    let err = dev
        .launch(
            "emu_selftest_divergent_barrier",
            LaunchConfig::linear(3, 64),
            &mut [KernelArg::Out(&mut out)],
        )
        .expect_err("a barrier only one warp reaches must fail the launch");
    let msg = err.to_string();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert!(msg.contains("deadlock in block ("), "{msg}");
    assert!(
        msg.contains("32 of 64 threads wait at __syncthreads"),
        "{msg}"
    );
    assert!(msg.contains("emu_selftest_divergent_barrier"), "{msg}");
}

#[test]
fn emu_unknown_kernel_is_an_error() {
    let dev = Emu::new().unwrap();
    let err = dev
        .launch("no_such_kernel_f32", LaunchConfig::linear(1, 32), &mut [])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no kernel named no_such_kernel_f32"),
        "{err}"
    );
}

#[test]
fn emu_wrong_arguments_and_shapes_are_errors() {
    let dev = Emu::new().unwrap();
    let mut out = poisoned::<f32>(&dev, 64);
    let kernel = "emu_selftest_divergent_barrier";
    let err = dev
        .launch(kernel, LaunchConfig::linear(1, 32), &mut [])
        .unwrap_err();
    assert!(
        err.to_string().contains("takes 1 parameters, got 0"),
        "{err}"
    );
    let err = dev
        .launch(
            kernel,
            LaunchConfig::linear(1, 32),
            &mut [KernelArg::I32(0)],
        )
        .unwrap_err();
    assert!(err.to_string().contains("parameter 0 is 8 bytes"), "{err}");
    for cfg in [
        LaunchConfig::linear(0, 32),
        LaunchConfig::linear(1, 2048),
        LaunchConfig::linear(1, 32).with_shared_mem(1 << 20),
    ] {
        let err = dev
            .launch(kernel, cfg, &mut [KernelArg::Out(&mut out)])
            .unwrap_err();
        assert!(
            err.to_string().contains("invalid") || err.to_string().contains("exceeds"),
            "{err}"
        );
    }
}

#[test]
fn emu_every_kernel_file_compiles_for_the_cpu() {
    let broken: Vec<String> = Emu::excluded_files()
        .iter()
        .map(|(file, errors)| format!("kernels/{file}:\n{errors}"))
        .collect();
    assert!(broken.is_empty(), "{}", broken.join("\n"));
    for kernel in recur::kernels::compilation_units()
        .filter(|f| *f == "emu_selftest.cu")
        .flat_map(|_| ["emu_selftest_softmax_rows", "emu_selftest_mma"])
    {
        assert!(
            Emu::kernel_names().contains(&kernel),
            "{kernel} not registered"
        );
    }
}

/// Compiles `tests/emu_tsan/driver.cpp` with ThreadSanitizer and the shim in thread mode (racy
/// or not), runs it, and returns its exit status and output; `None` (with a printed reason) if
/// there is no g++.
fn run_tsan_driver(racy: bool) -> Option<(bool, String)> {
    if Command::new("g++").arg("--version").output().is_err() {
        eprintln!("skipping: no g++ to build the ThreadSanitizer driver");
        return None;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(if racy {
        "emu_tsan_racy"
    } else {
        "emu_tsan_clean"
    });
    let mut build = Command::new("g++");
    build
        .args(["-std=c++20", "-fsanitize=thread", "-pthread", "-O1", "-g"])
        .arg("-I")
        .arg(root.join("src/device/emu"))
        .arg(root.join("tests/emu_tsan/driver.cpp"))
        .arg("-o")
        .arg(&exe);
    if racy {
        build.arg("-DOMIT_BARRIER_AFTER_STORE");
    }
    let built = build.output().expect("run g++");
    assert!(
        built.status.success(),
        "g++ failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let run = |cmd: &mut Command| {
        let o = cmd
            .env("TSAN_OPTIONS", "halt_on_error=0 exitcode=66")
            .output()
            .expect("run the driver");
        let text =
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        (o.status.success(), text)
    };
    let mut result = run(&mut Command::new(&exe));
    // Kernels with high mmap randomisation break TSan's memory layout; rerun without ASLR.
    if result.1.contains("unexpected memory mapping") {
        let arch =
            String::from_utf8_lossy(&Command::new("uname").arg("-m").output().unwrap().stdout)
                .trim()
                .to_string();
        result = run(Command::new("setarch").arg(arch).arg("-R").arg(&exe));
    }
    Some(result)
}

#[test]
fn emu_tsan_reports_missing_barrier() {
    let Some((ok, out)) = run_tsan_driver(true) else {
        return;
    };
    assert!(
        out.contains("WARNING: ThreadSanitizer: data race"),
        "no race reported:\n{out}"
    );
    assert!(!ok, "the driver should exit with TSan's error code:\n{out}");
}

#[test]
fn emu_tsan_quiet_on_correct_kernel() {
    let Some((ok, out)) = run_tsan_driver(false) else {
        return;
    };
    assert!(
        !out.contains("ThreadSanitizer"),
        "unexpected report:\n{out}"
    );
    assert!(ok && out.contains("block sums correct"), "{out}");
}
