//! The autograd tape: accumulation, no_grad, detach, named parameters, memory release, misuse
//! errors, and TRM's "T−1 cycles without gradient, then one with" pattern.

use recur::testing::{rel_l2, GradCheck};
use recur::{DType, Params, Tape, Tensor, Var};

fn t64(v: &[f64]) -> Tensor {
    Tensor::from_vec(v.to_vec(), [v.len()]).unwrap()
}

#[test]
fn gradients_accumulate_across_uses() {
    // y = Σ (x⊙x + x)  ⇒  dy/dx = 2x + 1; x is used three times.
    let tape = Tape::new();
    let x = tape.leaf(t64(&[1.0, -2.0, 0.5]));
    let sq = tape.mul(&x, &x).unwrap();
    let y = tape.add(&sq, &x).unwrap();
    let loss = tape.sum_all(&y).unwrap();
    let g = tape.backward(&loss).unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec_f64().unwrap(), [3.0, -3.0, 2.0]);
}

#[test]
fn no_grad_records_nothing_and_nests() {
    let tape = Tape::new();
    let x = tape.leaf(t64(&[1.0, 2.0]));
    let y = tape.no_grad(|| {
        let inner = tape.no_grad(|| tape.mul(&x, &x).unwrap());
        assert!(
            !tape.is_recording(),
            "inner scope end must not resume recording"
        );
        tape.add(&inner, &x).unwrap()
    });
    assert!(tape.is_recording());
    assert!(tape.is_empty());
    assert!(!y.requires_grad());
    assert_eq!(y.value().to_vec_f64().unwrap(), [2.0, 6.0]);
    // Recording resumes even when the scope panics.
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tape.no_grad(|| panic!("boom"));
    }));
    assert!(caught.is_err());
    assert!(tape.is_recording());
    let z = tape.mul(&x, &x).unwrap();
    assert!(z.requires_grad());
    assert_eq!(tape.len(), 1);
}

#[test]
fn detach_stops_the_gradient() {
    // loss = Σ x ⊙ sg(x)  ⇒  dloss/dx = x (not 2x).
    let tape = Tape::new();
    let x = tape.leaf(t64(&[1.5, -4.0]));
    let y = tape.mul(&x, &x.detach()).unwrap();
    let g = tape.backward(&tape.sum_all(&y).unwrap()).unwrap();
    assert_eq!(g.get(&x).unwrap().to_vec_f64().unwrap(), [1.5, -4.0]);
}

#[test]
fn named_params_accumulate_across_bindings_and_passes_and_zero() {
    let mut params = Params::new();
    let w = params
        .add("L_level.layers.0.mlp.down_proj.weight", t64(&[2.0, 3.0]))
        .unwrap();
    assert!(params
        .add("L_level.layers.0.mlp.down_proj.weight", t64(&[0.0]))
        .is_err());
    assert_eq!(params.id("L_level.layers.0.mlp.down_proj.weight"), Some(w));
    assert_eq!(params.num_elements(), 2);
    for _ in 0..2 {
        let tape = Tape::new();
        // Two bindings of the same parameter: loss = Σ w⊙w' ⇒ grad = 2w per pass.
        let (a, b) = (tape.param(&params, w), tape.param(&params, w));
        let loss = tape.sum_all(&tape.mul(&a, &b).unwrap()).unwrap();
        let g = tape.backward(&loss).unwrap();
        params
            .accumulate(&recur::tape::Compute::Cpu, g.param_grads())
            .unwrap();
    }
    let grad = params.get(w).grad.as_ref().unwrap().to_vec_f64().unwrap();
    assert_eq!(grad, [8.0, 12.0]);
    params.zero_grad().unwrap();
    assert!(params.get(w).grad.is_none());
}

#[test]
fn dropping_the_tape_releases_saved_tensors() {
    let x_value = Tensor::randn([64, 64], 1.0, 3, DType::F32).unwrap();
    let tape = Tape::new();
    let x = tape.leaf(x_value.clone());
    let before = x_value.storage_refs();
    let y = tape.mul(&x, &x).unwrap();
    assert!(
        x_value.storage_refs() > before,
        "mul's backward keeps its inputs"
    );
    drop(y);
    drop(tape);
    assert_eq!(x_value.storage_refs(), before);
}

#[test]
fn misuse_is_an_error_not_a_panic() {
    let tape = Tape::new();
    let x = tape.leaf(t64(&[1.0, 2.0]));
    let y = tape.mul(&x, &x).unwrap();
    assert!(tape.backward(&y).is_err(), "non-scalar loss");
    let c = Var::constant(t64(&[1.0]));
    assert!(tape.backward(&c).is_err(), "loss without gradient");
    let other = Tape::new();
    assert!(other.mul(&x, &x).is_err(), "variable of another tape");
    assert!(other.backward(&tape.sum_all(&y).unwrap()).is_err());
}

/// One recurrence cycle, nonlinear in z, x and w: z' = w ⊙ (z + x) ⊙ (z + x) − 0.5·z.
fn cycle(tape: &Tape, z: &Var, x: &Var, w: &Var) -> recur::Result<Var> {
    let s = tape.inject_add(&[z, x])?;
    let sq = tape.mul(&s, &s)?;
    let a = tape.mul(w, &sq)?;
    let half = tape.scale(z, -0.5)?;
    tape.add(&a, &half)
}

#[test]
fn trm_pattern_gradient_is_the_last_cycle_alone() {
    const T: usize = 4;
    let x = Tensor::randn([6], 0.5, 1, DType::F64).unwrap();
    let w = Tensor::randn([6], 0.5, 2, DType::F64).unwrap();
    let z0 = Tensor::randn([6], 0.5, 3, DType::F64).unwrap();

    // What the model does: T−1 cycles under no_grad, then one recorded cycle.
    let tape = Tape::new();
    let (xv, wv) = (tape.leaf(x.clone()), tape.leaf(w.clone()));
    let mut z = Var::constant(z0.clone());
    tape.no_grad(|| {
        for _ in 0..T - 1 {
            z = cycle(&tape, &z, &xv, &wv).unwrap();
        }
    });
    let z_before_last = z.value().clone();
    let out = cycle(&tape, &z, &xv, &wv).unwrap();
    let loss = tape.sum_all(&out).unwrap();
    let g = tape.backward(&loss).unwrap();
    let (gx, gw) = (
        g.get(&xv).unwrap().to_vec_f64().unwrap(),
        g.get(&wv).unwrap().to_vec_f64().unwrap(),
    );

    // Independent reference: finite differences of the last cycle alone, with its input state
    // held fixed. GradCheck weights outputs randomly, so compare with Σ-loss by hand instead.
    let last_only = |xs: &[f64], ws: &[f64]| -> f64 {
        let t = Tape::new();
        let y = cycle(
            &t,
            &Var::constant(z_before_last.clone()),
            &Var::constant(t64(xs)),
            &Var::constant(t64(ws)),
        )
        .unwrap();
        y.value().to_vec_f64().unwrap().iter().sum()
    };
    let full_unroll = |xs: &[f64], ws: &[f64]| -> f64 {
        let t = Tape::new();
        let (xc, wc) = (Var::constant(t64(xs)), Var::constant(t64(ws)));
        let mut z = Var::constant(z0.clone());
        for _ in 0..T {
            z = cycle(&t, &z, &xc, &wc).unwrap();
        }
        z.value().to_vec_f64().unwrap().iter().sum()
    };
    let fd = |f: &dyn Fn(&[f64], &[f64]) -> f64, wrt_x: bool| -> Vec<f64> {
        let (xs, ws) = (x.to_vec_f64().unwrap(), w.to_vec_f64().unwrap());
        (0..6)
            .map(|j| {
                let e = 1e-6;
                let (mut xp, mut xm, mut wp, mut wm) =
                    (xs.clone(), xs.clone(), ws.clone(), ws.clone());
                if wrt_x {
                    xp[j] += e;
                    xm[j] -= e
                } else {
                    wp[j] += e;
                    wm[j] -= e
                }
                (f(&xp, &wp) - f(&xm, &wm)) / (2.0 * e)
            })
            .collect()
    };
    assert!(rel_l2(&gx, &fd(&last_only, true)) < 1e-7);
    assert!(rel_l2(&gw, &fd(&last_only, false)) < 1e-7);
    // And the test can tell: backprop through the whole unroll would be a different gradient.
    assert!(rel_l2(&gx, &fd(&full_unroll, true)) > 1e-2);

    // The same through GradCheck, with the fixed state as a constant.
    GradCheck::new()
        .run(&[x, w], |t, v| {
            cycle(t, &Var::constant(z_before_last.clone()), &v[0], &v[1])
        })
        .unwrap();
}
