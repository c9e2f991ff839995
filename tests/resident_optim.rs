//! Parameters, gradients and optimizer state resident in device arenas (`Params::make_resident`),
//! against the same optimizers on host parameters: several steps on fresh random gradients at
//! ragged shapes, a parameter bound twice (so gradients accumulate), and a step where one
//! parameter has no gradient (it must not move, and its step count must not advance).
//!
//! On Emu the kernels repeat the reference's f32 arithmetic exactly, so everything is compared
//! bit for bit; a GPU's `atan2f` differs by an ulp or two, so the `::cuda` twins allow the f32
//! tolerance. Each steady step is also counted: one memset, one add per gradient, one Adam launch
//! and one EMA launch over the arenas, and nothing uploaded, downloaded or synchronised.

use recur::device::counting::Counting;
use recur::device::cuda::Cuda;
use recur::device::emu::Emu;
use recur::device::Compute;
use recur::optim::{AdamAtan2, AdamAtan2Config, AdamW, AdamWConfig, Ema, SignSgd};
use recur::testing::rel_l2;
use recur::{DType, Params, Tensor};
use std::sync::Arc;

const SHAPES: [&[usize]; 3] = [&[7, 5], &[13], &[3, 2, 4]];
const STEPS: u64 = 5;
/// The step at which parameter 1 gets no gradient.
const SKIPPED_STEP: u64 = 3;

macro_rules! on_every_backend {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;

            #[test]
            fn emu() {
                $body(&Counting::new(Arc::new(Emu::default())), true);
            }

            #[test]
            fn cuda() {
                match Cuda::new(0) {
                    Ok(gpu) => $body(&Counting::new(Arc::new(gpu)), false),
                    Err(e) => recur::testing::skip_cuda(module_path!(), e),
                }
            }
        }
    };
}

fn fresh_seed() -> u64 {
    let seed = std::env::var("RECUR_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.subsec_nanos() as u64)
        });
    eprintln!("seed {seed} (RECUR_TEST_SEED={seed} repeats it)");
    seed
}

/// Bit-exact on Emu, the f32 tolerance on a GPU.
fn expect_same(what: &str, got: &Tensor, want: &Tensor, exact: bool) {
    let (g, w) = (
        got.to_host().unwrap().to_vec_f32().unwrap(),
        want.to_host().unwrap().to_vec_f32().unwrap(),
    );
    assert_eq!(g.len(), w.len(), "{what}: length");
    if exact {
        for (i, (a, b)) in g.iter().zip(&w).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{what}[{i}]: {a} vs {b}");
        }
    } else {
        let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let err = rel_l2(&f(&g), &f(&w));
        assert!(err < 1e-5, "{what}: rel L2 {err:.3e}");
    }
}

fn params(seed: u64) -> Params {
    let mut p = Params::new();
    for (i, shape) in SHAPES.iter().enumerate() {
        let t = Tensor::randn(shape.to_vec(), 1.0, seed + i as u64, DType::F32).unwrap();
        p.add(format!("w{i}"), t).unwrap();
    }
    p
}

/// The optimizers under test behind one interface.
enum Adam {
    Atan2(AdamAtan2),
    W(AdamW),
}

impl Adam {
    fn new(atan2: bool) -> Adam {
        if atan2 {
            Adam::Atan2(
                AdamAtan2::new(AdamAtan2Config {
                    lr: 1e-2,
                    beta1: 0.9,
                    beta2: 0.95,
                    weight_decay: 0.1,
                })
                .unwrap(),
            )
        } else {
            Adam::W(
                AdamW::new(AdamWConfig {
                    lr: 1e-2,
                    ..AdamWConfig::sotaku()
                })
                .unwrap(),
            )
        }
    }
    fn next_kernel_scalars(&self, p: &Params) -> Option<[f32; 6]> {
        match self {
            Adam::Atan2(o) => o.next_kernel_scalars(p),
            Adam::W(o) => o.next_kernel_scalars(p),
        }
    }
    fn make_resident(&mut self, p: &Params) {
        match self {
            Adam::Atan2(o) => o.make_resident(p).unwrap(),
            Adam::W(o) => o.make_resident(p).unwrap(),
        }
    }
    fn step(&mut self, p: &mut Params, scalars: Option<&Tensor>) {
        match self {
            Adam::Atan2(o) => o.step_staged(p, scalars).unwrap(),
            Adam::W(o) => o.step_staged(p, scalars).unwrap(),
        }
    }
    fn moments(&self, p: &Params, i: usize) -> (Tensor, Tensor) {
        let id = p.ids().nth(i).unwrap();
        let (m, v) = match self {
            Adam::Atan2(o) => o.moments(id),
            Adam::W(o) => o.moments(id),
        }
        .unwrap();
        (m.clone(), v.clone())
    }
    fn kernel(&self) -> &'static str {
        match self {
            Adam::Atan2(_) => "adam_atan2_step_f32",
            Adam::W(_) => "adamw_step_f32",
        }
    }
}

fn check_adam_arena(dev: &Arc<Counting>, exact: bool) {
    for atan2 in [true, false] {
        let seed = fresh_seed();
        let compute = Compute::on(dev.clone());
        let mut host = params(seed);
        let mut resident = params(seed);
        resident.make_resident(&compute).unwrap();
        let arena = resident.arena().expect("resident").values.clone();
        let (mut host_opt, mut dev_opt) = (Adam::new(atan2), Adam::new(atan2));
        // The moment arenas, as the trainer makes them when it is built.
        dev_opt.make_resident(&resident);
        let mut host_ema = Ema::new(&host, 0.6).unwrap();
        let mut dev_ema = Ema::new(&resident, 0.6).unwrap();
        for step in 1..=STEPS {
            // Two gradients per parameter, as for a parameter bound twice on the tape; parameter
            // 1 gets none at SKIPPED_STEP.
            let mut grads = Vec::new();
            for (i, id) in host.ids().enumerate() {
                if step == SKIPPED_STEP && i == 1 {
                    continue;
                }
                for k in 0..2 {
                    let shape = SHAPES[i].to_vec();
                    let scale = 0.1 * (step + k) as f64;
                    let g = Tensor::randn(
                        shape,
                        scale,
                        seed + 100 * step + 10 * k + i as u64,
                        DType::F32,
                    );
                    grads.push((id, g.unwrap()));
                }
            }
            host.zero_grad().unwrap();
            host.accumulate(&Compute::Cpu, grads.iter().map(|(id, g)| (*id, g)))
                .unwrap();
            host_opt.step(&mut host, None);
            host_ema.update(&host).unwrap();

            let placed: Vec<_> = grads
                .iter()
                .map(|(id, g)| (*id, compute.place(g).unwrap()))
                .collect();
            let staged = dev_opt.next_kernel_scalars(&resident).map(|s| {
                compute
                    .place(&Tensor::from_vec(s.to_vec(), [6]).unwrap())
                    .unwrap()
            });
            dev.take();
            resident.zero_grad().unwrap();
            resident
                .accumulate(&compute, placed.iter().map(|(id, g)| (*id, g)))
                .unwrap();
            dev_opt.step(&mut resident, staged.as_ref());
            dev_ema.update(&resident).unwrap();
            let counts = dev.take();
            assert_eq!(counts.memsets, 1, "step {step}: zero_grad is one memset");
            assert_eq!(
                counts.downloads + counts.syncs,
                0,
                "step {step}: {counts:?}"
            );
            let names = counts.kernel_names();
            let adds = names.iter().filter(|n| n.contains("add")).count();
            assert_eq!(
                adds,
                grads.len(),
                "step {step}: one in-place add per gradient"
            );
            let adam = names.iter().filter(|n| *n == dev_opt.kernel()).count();
            if step == SKIPPED_STEP {
                // Not every parameter moves: each steps alone with its own scalars.
                assert_eq!(adam, SHAPES.len() - 1, "step {step}: {names:?}");
            } else if step > SKIPPED_STEP {
                // From here the step counts differ, so they keep stepping one by one.
                assert!(staged.is_none(), "step {step}: no one-launch scalars");
                assert_eq!(adam, SHAPES.len(), "step {step}: {names:?}");
            } else {
                assert_eq!(adam, 1, "step {step}: one launch over the arena, {names:?}");
                assert_eq!(counts.uploads + counts.allocs, 0, "step {step}: {counts:?}");
            }
            assert_eq!(names.iter().filter(|n| *n == "ema_update_f32").count(), 1);
        }
        for (i, (h, r)) in host.iter().zip(resident.iter()).enumerate() {
            let what = format!("{} {}", dev_opt.kernel(), h.name);
            expect_same(&format!("{what} value"), &r.value, &h.value, exact);
            // The value is a view of the arena, which the launches updated in place.
            let offset = resident.arena().unwrap().offsets[i];
            let in_arena = arena.view(offset, r.value.shape().clone()).unwrap();
            expect_same(&format!("{what} arena"), &in_arena, &h.value, true);
            let (hm, hv) = host_opt.moments(&host, i);
            let (rm, rv) = dev_opt.moments(&resident, i);
            expect_same(&format!("{what} m"), &rm, &hm, exact);
            expect_same(&format!("{what} v"), &rv, &hv, exact);
            let hs = host_ema
                .shadow()
                .value(host_ema.shadow().ids().nth(i).unwrap());
            let rs = dev_ema
                .shadow()
                .value(dev_ema.shadow().ids().nth(i).unwrap());
            expect_same(&format!("{what} EMA"), rs, hs, exact);
        }
    }
}
on_every_backend!(adam_arena, super::check_adam_arena);

/// SignSGD on a resident table, with repeated ids (rows summed in order of appearance) and the
/// step's scalars staged on the device.
fn check_sign_sgd_resident(dev: &Arc<Counting>, exact: bool) {
    let seed = fresh_seed();
    let compute = Compute::on(dev.clone());
    let (num_ids, n, dim) = (9, 14, 33);
    let mut host = Tensor::randn([num_ids, dim], 1.0, seed, DType::F32).unwrap();
    let mut table = compute.place(&host).unwrap();
    let mut opt = SignSgd::new(1e-2, 0.1).unwrap();
    for step in 1..=STEPS {
        opt.set_lr(1e-2 / step as f64).unwrap();
        let ids: Vec<i32> = (0..n)
            .map(|i| ((i as u64 * 7 + step * 13 + seed) % num_ids as u64) as i32)
            .collect();
        let ids = Tensor::from_vec(ids, [n]).unwrap();
        let rows = Tensor::randn([n, dim], 1.0, seed + step, DType::F32).unwrap();
        opt.step(&mut host, &ids, &rows).unwrap();
        let (ids, rows) = (compute.place(&ids).unwrap(), compute.place(&rows).unwrap());
        let s = opt.kernel_scalars();
        let s = compute
            .place(&Tensor::from_vec(s.to_vec(), [2]).unwrap())
            .unwrap();
        dev.take();
        opt.step_staged(&mut table, &ids, &rows, Some(&s)).unwrap();
        let counts = dev.take();
        assert_eq!(
            counts.kernel_names(),
            ["sparse_embedding_bwd_f32", "sign_sgd_step_f32"]
        );
        assert_eq!(
            counts.uploads + counts.downloads + counts.syncs,
            0,
            "{counts:?}"
        );
    }
    expect_same("sign-SGD table", &table, &host, exact);
}
on_every_backend!(sign_sgd_resident, super::check_sign_sgd_resident);

/// Resident parameters refuse what would break the arena: new parameters, non-f32 values, and
/// gradients for a copy that takes none.
fn check_arena_errors(dev: &Arc<Counting>, _exact: bool) {
    let compute = Compute::on(dev.clone());
    let mut p = params(1);
    p.make_resident(&compute).unwrap();
    let err = p.add("late", Tensor::zeros([2], DType::F32)).unwrap_err();
    assert!(err.to_string().contains("already resident"), "{err}");
    let shadow = p.resident_copy().unwrap();
    let mut shadow2 = shadow.clone();
    let id = shadow.ids().next().unwrap();
    let g = compute
        .place(&Tensor::zeros(SHAPES[0].to_vec(), DType::F32))
        .unwrap();
    let err = shadow2.accumulate(&compute, [(id, &g)]).unwrap_err();
    assert!(err.to_string().contains("takes no gradients"), "{err}");
    let mut f64s = Params::new();
    f64s.add("d", Tensor::zeros([3], DType::F64)).unwrap();
    let err = f64s.make_resident(&compute).unwrap_err();
    assert!(err.to_string().contains("f32"), "{err}");
    // The CPU has no arenas: nothing changes.
    let mut cpu = params(2);
    cpu.make_resident(&Compute::Cpu).unwrap();
    assert!(cpu.arena().is_none());
}
on_every_backend!(arena_errors, super::check_arena_errors);
