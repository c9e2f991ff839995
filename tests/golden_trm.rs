//! Numerics against the official TRM code (fp32, CPU), as `specs/checkpoint-keys.md` asks:
//! step 1 call by call, every later step teacher-forced from the reference carry, and the
//! gradients of one training step.

mod common;

use common::golden::GoldenFile;
use recur::models::{Buffers, ModelConfig, Probe, Reasoner};
use recur::testing::rel_l2;
use recur::{Params, Tape, Tensor};

const TOL: f64 = 1e-5;

/// The fixture's configuration (meta.json `model_cfg`).
fn golden_config() -> ModelConfig {
    ModelConfig {
        hidden_size: 64,
        num_heads: 2,
        puzzle_emb_ndim: 64,
        ..ModelConfig::trm_att_sudoku()
    }
}

/// Builds the model and overwrites every parameter and buffer with the fixture's weights.
fn golden_model(dir: &str) -> (Reasoner, Params) {
    let mut params = Params::new();
    let mut model = Reasoner::new(&mut params, golden_config(), 1).unwrap();
    let weights = GoldenFile::open(&format!("{dir}/weights.safetensors"));
    let strip = |n: &str| n.strip_prefix("model.inner.").unwrap().to_string();
    let mut buffers = Vec::new();
    for name in weights.tensors.keys() {
        let short = strip(name);
        match params.id(&short) {
            Some(id) => {
                let t = weights.f32_tensor(name);
                assert_eq!(t.dims(), params.value(id).dims(), "{short}");
                params.get_mut(id).value = t;
            }
            None => buffers.push(short),
        }
    }
    buffers.sort();
    assert_eq!(buffers, ["H_init", "L_init", "puzzle_emb.weights"]);
    model
        .set_buffers(Buffers {
            h_init: weights.f32_tensor("model.inner.H_init"),
            l_init: weights.f32_tensor("model.inner.L_init"),
            puzzle_emb: Some(weights.f32_tensor("model.inner.puzzle_emb.weights")),
        })
        .unwrap();
    assert_eq!(params.num_elements(), 132_610);
    (model, params)
}

fn assert_close(what: &str, ours: &Tensor, golden: &GoldenFile, name: &str) {
    let (shape, want) = golden.get(name);
    assert_eq!(ours.dims(), &shape[..], "{what}: shape");
    let got = ours.to_vec_f64().unwrap();
    let err = rel_l2(&got, want);
    assert!(err < TOL, "{what} ({name}): relative L2 error {err:.3e}");
}

#[test]
fn step_one_matches_call_by_call_and_later_steps_teacher_forced() {
    let (model, params) = golden_model("eval");
    let inputs = GoldenFile::open("eval/inputs.safetensors");
    let out = GoldenFile::open("eval/outputs.safetensors");
    let (x, ids) = (
        inputs.i32_tensor("inputs"),
        inputs.i32_tensor("puzzle_identifiers"),
    );
    let b = x.dims()[0];
    let mut z_h = model.initial_state(&model.buffers.h_init, b).unwrap();
    let mut z_l = model.initial_state(&model.buffers.l_init, b).unwrap();
    for step in 1..=16 {
        let key = |k: &str| format!("step{step:02}.{k}");
        let tape = Tape::new();
        let probe = Probe::recording();
        let seg = tape
            .no_grad(|| model.segment(&tape, &params, &z_h, &z_l, &x, &ids, &probe))
            .unwrap();
        if step == 1 {
            let trace = probe.take();
            // 18 L updates + 3 H updates, plus the two blocks of the first call and the
            // embeddings.
            assert_eq!(trace.len(), 1 + 2 + 21);
            for (name, t) in &trace {
                let golden = if name == "input_embeddings" {
                    name.clone()
                } else {
                    key(name)
                };
                assert_close(name, t, &out, &golden);
            }
        }
        assert_close("logits", seg.logits.value(), &out, &key("logits"));
        assert_close("q_halt", seg.q_halt.value(), &out, &key("q_halt_logits"));
        assert_close(
            "q_continue",
            seg.q_continue.value(),
            &out,
            &key("q_continue_logits"),
        );
        assert_close("z_H", &seg.z_h, &out, &key("z_H"));
        assert_close("z_L", &seg.z_l, &out, &key("z_L"));
        // Teacher forcing: the chaotic recursion amplifies float rounding ~2.5× per step, so the
        // next step starts from the reference carry, not ours.
        z_h = out.f32_tensor(&key("z_H"));
        z_l = out.f32_tensor(&key("z_L"));
    }
}

#[test]
fn one_training_step_gradients_match() {
    use recur::models::{act_loss, act_step, Batch, Carry, Exploration, Halting};
    let (model, mut params) = golden_model("grad");
    let inputs = GoldenFile::open("grad/inputs.safetensors");
    let out = GoldenFile::open("grad/outputs.safetensors");
    let grads = GoldenFile::open("grad/grads.safetensors");
    let batch = Batch::new(
        inputs.i32_tensor("inputs"),
        inputs.i32_tensor("labels"),
        inputs.i32_tensor("puzzle_identifiers"),
    )
    .unwrap();
    let tape = Tape::new();
    let carry = Carry::initial(&model, &batch).unwrap();
    let mut explore = Exploration {
        seed: 0,
        segment: 0,
    };
    let step = act_step(
        &model,
        &tape,
        &params,
        carry,
        &batch,
        Halting::Train(&mut explore),
        &Probe::off(),
    )
    .unwrap();
    let loss = act_loss(&tape, &step).unwrap();
    let close = |what: &str, got: f64, name: &str| {
        let want = out.get(name).1[0];
        assert!(
            (got - want).abs() <= TOL * want.abs(),
            "{what}: {got} vs golden {want}"
        );
    };
    close("total loss", loss.total.value().item().unwrap(), "loss");
    let sums = recur::models::ActLossSums::from_buffer(&loss.metrics).unwrap();
    close("lm loss", sums.lm, "metric.lm_loss");
    close("q-halt loss", sums.q_halt, "metric.q_halt_loss");
    assert_close("logits", step.output.logits.value(), &out, "logits");
    assert_close("z_H", &step.carry.z_h, &out, "z_H");

    let b = batch.len() as f64;
    let scaled = tape.scale(&loss.total, 1.0 / b).unwrap();
    close("scaled loss", scaled.value().item().unwrap(), "loss_scaled");
    let g = tape.backward(&scaled).unwrap();
    params
        .accumulate(&recur::tape::Compute::Cpu, g.param_grads())
        .unwrap();
    let mut checked = 0;
    for name in grads.tensors.keys() {
        let short = name.strip_prefix("grad.model.inner.").unwrap();
        let ours = match params.id(short) {
            Some(id) => params.get(id).grad.clone().expect("a gradient"),
            None => {
                assert_eq!(short, "puzzle_emb.local_weights");
                let rows = step.output.puzzle_rows.as_ref().unwrap();
                g.get(rows).expect("puzzle rows gradient").clone()
            }
        };
        assert_close(short, &ours, &grads, name);
        checked += 1;
    }
    assert_eq!(checked, params.len() + 1);
}
