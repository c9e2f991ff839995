//! Checkpoints: safetensors round trips, the file format checked by an independent parser,
//! atomic replacement, malformed files, official-name handling, loading into `Params`, and the
//! golden fixture written by the official TRM code (tests/fixtures/trm_att_h64, see ORIGIN.md).

use half::{bf16, f16};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use recur::checkpoint::{
    load_into_params, load_tensors, params_to_tensors, save_tensors, strip_official_prefix,
    write_atomically,
};
use recur::{DType, Error, Params, Tensor};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// A fresh empty directory for one test, under the target dir's tmp space.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("checkpoint-{test}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A seed that differs per run (so runs explore fresh inputs) and is printed for reproduction.
fn fresh_rng(test: &str) -> StdRng {
    let seed: u64 = rand::random();
    println!("{test}: seed {seed}");
    StdRng::seed_from_u64(seed)
}

/// Random raw bits of every kind (NaN payloads, infinities, -0, subnormals included), so a
/// round trip that converted through floats anywhere would show.
fn random_tensor(rng: &mut StdRng, dtype: DType, dims: &[usize]) -> Tensor {
    let n: usize = dims.iter().product();
    let t = match dtype {
        DType::F32 => Tensor::from_vec(
            (0..n)
                .map(|_| f32::from_bits(rng.random()))
                .collect::<Vec<_>>(),
            dims.to_vec(),
        ),
        DType::BF16 => Tensor::from_vec(
            (0..n)
                .map(|_| bf16::from_bits(rng.random()))
                .collect::<Vec<_>>(),
            dims.to_vec(),
        ),
        DType::F64 => Tensor::from_vec(
            (0..n)
                .map(|_| f64::from_bits(rng.random()))
                .collect::<Vec<_>>(),
            dims.to_vec(),
        ),
        DType::I32 => Tensor::from_vec(
            (0..n).map(|_| rng.random::<i32>()).collect::<Vec<_>>(),
            dims.to_vec(),
        ),
    };
    t.unwrap()
}

fn random_dims(rng: &mut StdRng) -> Vec<usize> {
    let rank = rng.random_range(0..4usize);
    (0..rank).map(|_| rng.random_range(0..9usize)).collect()
}

fn assert_same_tensors(got: &BTreeMap<String, Tensor>, want: &BTreeMap<String, Tensor>) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (name, w) in want {
        let g = &got[name];
        assert_eq!(g.dtype(), w.dtype(), "{name}");
        assert_eq!(g.dims(), w.dims(), "{name}");
        assert_eq!(
            g.to_bytes().unwrap(),
            w.to_bytes().unwrap(),
            "{name}: bits differ"
        );
    }
}

/// An independent reading of a safetensors file: (header JSON, data section).
fn parse_by_hand(path: &Path) -> (serde_json::Value, Vec<u8>) {
    let bytes = fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, bytes[8 + n..].to_vec())
}

/// A safetensors file assembled by hand from (name, dtype string, shape, raw bytes).
fn write_by_hand(path: &Path, entries: &[(&str, &str, Vec<usize>, Vec<u8>)]) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in entries {
        let start = data.len();
        data.extend_from_slice(bytes);
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut json = serde_json::Value::Object(header).to_string().into_bytes();
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut file = (json.len() as u64).to_le_bytes().to_vec();
    file.extend(json);
    file.extend(data);
    fs::write(path, file).unwrap();
}

#[test]
fn every_dtype_round_trips_bit_exactly() {
    let mut rng = fresh_rng("every_dtype_round_trips_bit_exactly");
    let dir = scratch_dir("round-trip");
    for round in 0..4 {
        let mut tensors = BTreeMap::new();
        for (i, dtype) in [DType::F32, DType::BF16, DType::F64, DType::I32]
            .into_iter()
            .cycle()
            .take(rng.random_range(4..12))
            .enumerate()
        {
            let dims = random_dims(&mut rng);
            tensors.insert(
                format!("t{i}.{dtype}"),
                random_tensor(&mut rng, dtype, &dims),
            );
        }
        // Edge shapes every round: a scalar and an empty tensor.
        tensors.insert("scalar".into(), random_tensor(&mut rng, DType::F64, &[]));
        tensors.insert(
            "empty".into(),
            random_tensor(&mut rng, DType::BF16, &[0, 3]),
        );
        let path = dir.join(format!("r{round}.safetensors"));
        save_tensors(&path, &tensors, &BTreeMap::new()).unwrap();
        let (back, metadata) = load_tensors(&path).unwrap();
        assert_same_tensors(&back, &tensors);
        assert!(metadata.is_empty());
    }
}

#[test]
fn metadata_round_trips() {
    let dir = scratch_dir("metadata");
    let path = dir.join("m.safetensors");
    let metadata: BTreeMap<String, String> = [
        ("arch", "trm_att"),
        ("step", "12345"),
        ("note", "ünïcode, \"quotes\", new\nline"),
        ("", "empty key"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let tensors = BTreeMap::from([(
        "w".to_string(),
        Tensor::from_vec(vec![1.5f32, -2.0], [2]).unwrap(),
    )]);
    save_tensors(&path, &tensors, &metadata).unwrap();
    let (back_tensors, back_meta) = load_tensors(&path).unwrap();
    assert_eq!(back_meta, metadata);
    assert_same_tensors(&back_tensors, &tensors);
}

#[test]
fn saved_file_follows_the_safetensors_format() {
    // Read our output with a parser written here, not with the library's loader.
    let mut rng = fresh_rng("saved_file_follows_the_safetensors_format");
    let dir = scratch_dir("format");
    let path = dir.join("f.safetensors");
    let tensors = BTreeMap::from([
        ("a".to_string(), random_tensor(&mut rng, DType::BF16, &[3])),
        (
            "b".to_string(),
            random_tensor(&mut rng, DType::F64, &[2, 2]),
        ),
        ("c".to_string(), random_tensor(&mut rng, DType::I32, &[5])),
        (
            "d".to_string(),
            random_tensor(&mut rng, DType::F32, &[1, 3]),
        ),
    ]);
    let metadata = BTreeMap::from([("k".to_string(), "v".to_string())]);
    save_tensors(&path, &tensors, &metadata).unwrap();
    let bytes = fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(header_len % 8, 0, "data must start 8-aligned");
    let (header, data) = parse_by_hand(&path);
    assert_eq!(header["__metadata__"], serde_json::json!({"k": "v"}));
    let expected_dtype = |d: DType| match d {
        DType::F32 => "F32",
        DType::BF16 => "BF16",
        DType::F64 => "F64",
        DType::I32 => "I32",
    };
    let mut covered = 0;
    for (name, t) in &tensors {
        let entry = &header[name.as_str()];
        assert_eq!(entry["dtype"], expected_dtype(t.dtype()), "{name}");
        assert_eq!(entry["shape"], serde_json::json!(t.dims()), "{name}");
        let start = entry["data_offsets"][0].as_u64().unwrap() as usize;
        let end = entry["data_offsets"][1].as_u64().unwrap() as usize;
        assert_eq!(start % t.dtype().size_in_bytes(), 0, "{name} misaligned");
        assert_eq!(
            &data[start..end],
            t.to_bytes().unwrap().as_slice(),
            "{name}"
        );
        covered += end - start;
    }
    assert_eq!(covered, data.len(), "data section has bytes no tensor owns");
}

#[test]
fn files_written_by_others_load_and_f16_widens_exactly() {
    let dir = scratch_dir("foreign");
    let path = dir.join("foreign.safetensors");
    let halves = [
        0.0f32,
        -1.5,
        65504.0,
        6.1035156e-5,
        5.9604645e-8,
        f32::INFINITY,
    ];
    let f16_bytes: Vec<u8> = halves
        .iter()
        .flat_map(|&x| f16::from_f32(x).to_le_bytes())
        .collect();
    let ints = [7i32, -3, i32::MAX];
    let int_bytes: Vec<u8> = ints.iter().flat_map(|x| x.to_le_bytes()).collect();
    // Data order unlike ours (smaller dtype first), header keys unsorted: still valid.
    write_by_hand(
        &path,
        &[
            ("half", "F16", vec![2, 3], f16_bytes),
            ("ids", "I32", vec![3], int_bytes),
        ],
    );
    let (tensors, metadata) = load_tensors(&path).unwrap();
    assert!(metadata.is_empty());
    let half = &tensors["half"];
    assert_eq!(half.dtype(), DType::F32);
    assert_eq!(half.dims(), &[2, 3]);
    assert_eq!(half.to_vec_f32().unwrap(), halves.to_vec());
    assert_eq!(tensors["ids"].to_vec_i32().unwrap(), ints.to_vec());
}

#[test]
fn unsupported_dtypes_are_named() {
    let dir = scratch_dir("unsupported");
    let path = dir.join("bytes.safetensors");
    write_by_hand(
        &path,
        &[
            ("ok", "F32", vec![1], 1.0f32.to_le_bytes().to_vec()),
            ("mask", "U8", vec![4], vec![1, 0, 1, 1]),
            ("steps", "I64", vec![1], 9i64.to_le_bytes().to_vec()),
        ],
    );
    let msg = load_tensors(&path).unwrap_err().to_string();
    for needle in [
        "bytes.safetensors",
        "\"mask\" has dtype U8",
        "\"steps\" has dtype I64",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in: {msg}");
    }
}

#[test]
fn truncated_and_garbage_files_error_with_the_file_name() {
    let mut rng = fresh_rng("truncated_and_garbage_files_error_with_the_file_name");
    let dir = scratch_dir("truncated");
    let good = dir.join("good.safetensors");
    let tensors = BTreeMap::from([
        (
            "x".to_string(),
            random_tensor(&mut rng, DType::F32, &[7, 5]),
        ),
        ("y".to_string(), random_tensor(&mut rng, DType::I32, &[3])),
    ]);
    save_tensors(&good, &tensors, &BTreeMap::new()).unwrap();
    let bytes = fs::read(&good).unwrap();
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;

    let bad = dir.join("broken-file.safetensors");
    let mut cuts = vec![
        0,
        3,
        8,
        9,
        header_end - 1,
        header_end,
        header_end + 5,
        bytes.len() - 1,
    ];
    cuts.extend((0..8).map(|_| rng.random_range(0..bytes.len())));
    for cut in cuts {
        fs::write(&bad, &bytes[..cut]).unwrap();
        let msg = load_tensors(&bad).unwrap_err().to_string();
        println!("cut {cut}: {msg}");
        assert!(msg.contains("broken-file.safetensors"), "cut {cut}: {msg}");
    }
    // Data past what the header describes is also corruption.
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 4]);
    fs::write(&bad, &longer).unwrap();
    let msg = load_tensors(&bad).unwrap_err().to_string();
    assert!(msg.contains("unexpected bytes"), "{msg}");

    let mut garbage = vec![0u8; rng.random_range(16..4096)];
    rng.fill(garbage.as_mut_slice());
    let text = br#"{"not": "a safetensors file"}"#.to_vec();
    // Three f32 elements declared over 8 bytes of data: the offsets do not fit the shape.
    write_by_hand(&bad, &[("z", "F32", vec![3], vec![0; 8])]);
    let bad_offsets = fs::read(&bad).unwrap();
    for (what, content) in [
        ("garbage", garbage),
        ("json", text),
        ("offsets", bad_offsets),
    ] {
        fs::write(&bad, &content).unwrap();
        let msg = load_tensors(&bad).unwrap_err().to_string();
        println!("{what}: {msg}");
        assert!(msg.contains("broken-file.safetensors"), "{what}: {msg}");
        if what == "offsets" {
            assert!(msg.contains("tensor \"z\""), "{msg}");
        }
    }
    let missing = load_tensors(dir.join("absent.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("absent.safetensors"), "{missing}");
}

#[test]
fn atomic_write_keeps_the_old_file_when_the_writer_fails() {
    let dir = scratch_dir("atomic");
    let path = dir.join("state.bin");
    fs::write(&path, b"old contents").unwrap();
    let result = write_atomically(&path, |w| {
        w.write_all(b"half of the new cont").unwrap();
        Err(Error::arg("test", "writer gave up midway"))
    });
    assert!(result.unwrap_err().to_string().contains("midway"));
    assert_eq!(fs::read(&path).unwrap(), b"old contents");
    let panicked = std::panic::catch_unwind(|| {
        write_atomically(&path, |w| {
            w.write_all(b"partial").unwrap();
            panic!("writer crashed");
        })
    });
    assert!(panicked.is_err());
    assert_eq!(fs::read(&path).unwrap(), b"old contents");
    let absent = dir.join("never.bin");
    assert!(write_atomically(&absent, |_| Err(Error::arg("test", "no"))).is_err());
    assert!(
        !absent.exists(),
        "a failed first write must not create the file"
    );
    let names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["state.bin".to_string()],
        "temp files left behind"
    );

    // A successful write replaces the contents entirely (no stale tail from the longer file).
    write_atomically(&path, |w| {
        w.write_all(b"new")
            .map_err(|e| recur::checkpoint::io_error(&path, e))
    })
    .unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"new");
}

#[test]
fn save_tensors_replaces_an_existing_checkpoint() {
    let mut rng = fresh_rng("save_tensors_replaces_an_existing_checkpoint");
    let dir = scratch_dir("replace");
    let path = dir.join("ckpt.safetensors");
    let big = BTreeMap::from([(
        "w".to_string(),
        random_tensor(&mut rng, DType::F32, &[64, 9]),
    )]);
    let small = BTreeMap::from([("v".to_string(), random_tensor(&mut rng, DType::BF16, &[2]))]);
    save_tensors(&path, &big, &BTreeMap::new()).unwrap();
    save_tensors(&path, &small, &BTreeMap::new()).unwrap();
    let (back, _) = load_tensors(&path).unwrap();
    assert_same_tensors(&back, &small);
}

#[test]
fn official_prefixes_are_stripped_in_order() {
    for name in [
        "_orig_mod.model.inner.q_head.bias",
        "model.inner.q_head.bias",
        "inner.q_head.bias",
        "q_head.bias",
    ] {
        assert_eq!(strip_official_prefix(name), "q_head.bias", "{name}");
    }
    // Each prefix at most once and only in the order the wrappers nest.
    assert_eq!(strip_official_prefix("inner.model.x"), "model.x");
    assert_eq!(strip_official_prefix("model.model.x"), "model.x");
    assert_eq!(strip_official_prefix("_orig_mod.inner.x"), "x");
    assert_eq!(strip_official_prefix("modelx.inner"), "modelx.inner");
}

/// Params with official names and random values of the given shapes.
fn random_params(rng: &mut StdRng, spec: &[(&str, &[usize])], dtype: DType) -> Params {
    let mut params = Params::new();
    for (name, dims) in spec {
        let n: usize = dims.iter().product();
        let v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let t = Tensor::from_vec(v, dims.to_vec())
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        params.add(*name, t).unwrap();
    }
    params
}

const SMALL_MODEL: [(&str, &[usize]); 4] = [
    ("embed_tokens.embedding_weight", &[11, 8]),
    ("q_head.weight", &[2, 8]),
    ("q_head.bias", &[2]),
    ("L_level.layers.0.mlp.down_proj.weight", &[8, 24]),
];

#[test]
fn load_into_params_reports_every_problem_at_once() {
    let mut rng = fresh_rng("load_into_params_reports_every_problem_at_once");
    let spec: [(&str, &[usize]); 6] = [
        ("a.weight", &[3, 4]),
        ("b.weight", &[5]),
        ("c.weight", &[2, 2]),
        ("d.weight", &[7, 1]),
        ("e.bias", &[3]),
        ("f.bias", &[1]),
    ];
    let mut params = random_params(&mut rng, &spec, DType::F32);
    let before = params_to_tensors(&params);
    let mut tensors = BTreeMap::new();
    // a: fine; b, f: missing; c, d: wrong shapes; e: an integer tensor; plus an unexpected name.
    tensors.insert(
        "_orig_mod.model.inner.a.weight".into(),
        random_tensor(&mut rng, DType::F32, &[3, 4]),
    );
    tensors.insert(
        "model.inner.c.weight".into(),
        random_tensor(&mut rng, DType::F32, &[4]),
    );
    tensors.insert(
        "inner.d.weight".into(),
        random_tensor(&mut rng, DType::F32, &[1, 7]),
    );
    tensors.insert("e.bias".into(), random_tensor(&mut rng, DType::I32, &[3]));
    tensors.insert(
        "model.inner.stray.weight".into(),
        random_tensor(&mut rng, DType::F32, &[2]),
    );

    for strict in [false, true] {
        let msg = load_into_params(&mut params, &tensors, strict)
            .unwrap_err()
            .to_string();
        for needle in [
            "missing parameters (2)",
            "b.weight",
            "f.bias",
            "shape mismatches (2)",
            "c.weight: expected [2, 2], found [4]",
            "d.weight: expected [7, 1], found [1, 7]",
            "e.bias: a i32 tensor",
        ] {
            assert!(
                msg.contains(needle),
                "strict={strict}: {needle:?} not in: {msg}"
            );
        }
        assert_eq!(msg.contains("stray.weight"), strict, "{msg}");
        assert!(!msg.contains("a.weight"), "a.weight loaded fine: {msg}");
        // All or nothing: a failed load leaves every parameter as it was.
        assert_same_tensors(&params_to_tensors(&params), &before);
    }

    let mut ambiguous = tensors.clone();
    ambiguous.insert(
        "a.weight".into(),
        random_tensor(&mut rng, DType::F32, &[3, 4]),
    );
    let msg = load_into_params(&mut params, &ambiguous, false)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("\"_orig_mod.model.inner.a.weight\" and \"a.weight\" both mean \"a.weight\""),
        "{msg}"
    );
}

#[test]
fn load_into_params_converts_and_returns_buffers() {
    let mut rng = fresh_rng("load_into_params_converts_and_returns_buffers");
    let source = random_params(&mut rng, &SMALL_MODEL, DType::F64);
    let mut target = random_params(&mut rng, &SMALL_MODEL, DType::F32);
    target.get_mut(target.id("q_head.bias").unwrap()).grad = Some(Tensor::ones([2], DType::F32));

    // A bf16 checkpoint in the torch.compile naming, with buffers and non-persistent tables.
    let mut tensors: BTreeMap<String, Tensor> = params_to_tensors(&source)
        .into_iter()
        .map(|(k, v)| {
            (
                format!("_orig_mod.model.inner.{k}"),
                v.to_dtype(DType::BF16).unwrap(),
            )
        })
        .collect();
    let h_init = random_tensor(&mut rng, DType::BF16, &[8]);
    let puzzle = random_tensor(&mut rng, DType::F32, &[1, 8]);
    let extra = random_tensor(&mut rng, DType::F32, &[4]);
    tensors.insert("_orig_mod.model.inner.H_init".into(), h_init.clone());
    tensors.insert(
        "_orig_mod.model.inner.puzzle_emb.weights".into(),
        puzzle.clone(),
    );
    tensors.insert(
        "_orig_mod.model.inner.rotary_emb.cos_cached".into(),
        extra.clone(),
    );
    tensors.insert(
        "_orig_mod.model.inner.puzzle_emb.local_ids".into(),
        extra.clone(),
    );
    tensors.insert("_orig_mod.model.inner.ema_step".into(), extra.clone());

    let err = load_into_params(&mut target, &tensors, true).unwrap_err();
    assert!(err.to_string().contains("ema_step"), "{err}");
    let summary = load_into_params(&mut target, &tensors, false).unwrap();

    let loaded: Vec<&str> = summary.loaded.iter().map(String::as_str).collect();
    assert_eq!(loaded, SMALL_MODEL.map(|(n, _)| n).to_vec());
    assert_eq!(summary.unexpected, vec!["ema_step".to_string()]);
    assert_eq!(
        summary.ignored,
        vec![
            "puzzle_emb.local_ids".to_string(),
            "rotary_emb.cos_cached".to_string()
        ]
    );
    assert_eq!(
        summary.buffers.keys().collect::<Vec<_>>(),
        vec!["H_init", "ema_step", "puzzle_emb.weights"]
    );
    assert_eq!(
        summary.buffers["H_init"].to_bytes().unwrap(),
        h_init.to_bytes().unwrap()
    );
    assert_eq!(
        summary.buffers["H_init"].dtype(),
        DType::BF16,
        "buffers keep their dtype"
    );
    assert_eq!(
        summary.buffers["puzzle_emb.weights"].to_bytes().unwrap(),
        puzzle.to_bytes().unwrap()
    );

    for p in target.iter() {
        assert_eq!(p.value.dtype(), DType::F32, "{}", p.name);
        assert!(p.grad.is_none(), "{}: stale gradient kept", p.name);
        // Expected: f64 → bf16 (round to nearest even) → f32, computed here with `half`.
        let want: Vec<f32> = source
            .value(source.id(&p.name).unwrap())
            .to_vec_f64()
            .unwrap()
            .iter()
            .map(|&x| bf16::from_f64(x).to_f32())
            .collect();
        assert_eq!(p.value.to_vec_f32().unwrap(), want, "{}", p.name);
    }
}

#[test]
fn params_round_trip_through_a_file() {
    let mut rng = fresh_rng("params_round_trip_through_a_file");
    let dir = scratch_dir("params-file");
    let path = dir.join("params.safetensors");
    for dtype in [DType::F32, DType::BF16, DType::F64] {
        let saved = random_params(&mut rng, &SMALL_MODEL, dtype);
        save_tensors(&path, &params_to_tensors(&saved), &BTreeMap::new()).unwrap();
        let (tensors, _) = load_tensors(&path).unwrap();
        let mut restored = random_params(&mut rng, &SMALL_MODEL, dtype);
        let summary = load_into_params(&mut restored, &tensors, true).unwrap();
        assert!(summary.buffers.is_empty() && summary.ignored.is_empty());
        assert_same_tensors(&params_to_tensors(&restored), &params_to_tensors(&saved));
    }
}

// ---- the golden fixture from the official code ----------------------------------------------

fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/trm_att_h64")
        .join(path)
}

/// The small TRM-att configuration's parameters (hidden 64, 2 heads, expansion 4, vocab 11),
/// written from specs/checkpoint-keys.md, not from the file.
fn small_trm_att_params() -> Vec<(String, Vec<usize>)> {
    let mut spec = vec![
        ("embed_tokens.embedding_weight".to_string(), vec![11, 64]),
        ("lm_head.weight".to_string(), vec![11, 64]),
        ("q_head.weight".to_string(), vec![2, 64]),
        ("q_head.bias".to_string(), vec![2]),
    ];
    for layer in 0..2 {
        let p = format!("L_level.layers.{layer}");
        spec.push((format!("{p}.self_attn.qkv_proj.weight"), vec![192, 64]));
        spec.push((format!("{p}.self_attn.o_proj.weight"), vec![64, 64]));
        spec.push((format!("{p}.mlp.gate_up_proj.weight"), vec![512, 64]));
        spec.push((format!("{p}.mlp.down_proj.weight"), vec![64, 256]));
    }
    spec
}

#[test]
fn golden_weights_have_the_spec_names_and_shapes() {
    let (tensors, metadata) = load_tensors(fixture("eval/weights.safetensors")).unwrap();
    assert_eq!(metadata.get("arch").map(String::as_str), Some("trm_att"));
    let mut expected: BTreeMap<String, Vec<usize>> = small_trm_att_params().into_iter().collect();
    expected.insert("H_init".into(), vec![64]);
    expected.insert("L_init".into(), vec![64]);
    expected.insert("puzzle_emb.weights".into(), vec![1, 64]);
    let found: BTreeMap<String, Vec<usize>> = tensors
        .iter()
        .map(|(name, t)| {
            assert!(name.starts_with("model.inner."), "{name}");
            assert_eq!(t.dtype(), DType::F32, "{name}: the fixture is fp32");
            (strip_official_prefix(name).to_string(), t.dims().to_vec())
        })
        .collect();
    assert_eq!(found, expected);

    let trainable: usize = found
        .iter()
        .filter(|(name, _)| !["H_init", "L_init", "puzzle_emb.weights"].contains(&name.as_str()))
        .map(|(_, dims)| dims.iter().product::<usize>())
        .sum();
    assert_eq!(trainable, 132_610);

    // The official default init (the spec's first "trap"): zero Q head weight, bias −5, zero
    // puzzle table.
    let q_bias = tensors["model.inner.q_head.bias"].to_vec_f32().unwrap();
    assert_eq!(q_bias, vec![-5.0, -5.0]);
    let q_weight = tensors["model.inner.q_head.weight"].to_vec_f32().unwrap();
    assert!(q_weight.iter().all(|&x| x == 0.0));
    let puzzle = tensors["model.inner.puzzle_emb.weights"]
        .to_vec_f32()
        .unwrap();
    assert!(puzzle.iter().all(|&x| x == 0.0));
}

#[test]
fn golden_weights_load_strictly_into_the_small_model() {
    let mut rng = fresh_rng("golden_weights_load_strictly_into_the_small_model");
    let spec = small_trm_att_params();
    let spec_refs: Vec<(&str, &[usize])> = spec
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let mut params = random_params(&mut rng, &spec_refs, DType::F32);
    assert_eq!(params.num_elements(), 132_610);

    let (mut tensors, _) = load_tensors(fixture("eval/weights.safetensors")).unwrap();
    let (nonpersistent, _) =
        load_tensors(fixture("eval/buffers_nonpersistent.safetensors")).unwrap();
    tensors.extend(nonpersistent);
    let summary = load_into_params(&mut params, &tensors, true).unwrap();
    assert_eq!(summary.loaded.len(), 12);
    assert_eq!(
        summary.buffers.keys().collect::<Vec<_>>(),
        vec!["H_init", "L_init", "puzzle_emb.weights"]
    );
    assert_eq!(
        summary.ignored,
        vec![
            "puzzle_emb.local_ids".to_string(),
            "puzzle_emb.local_weights".to_string(),
            "rotary_emb.cos_cached".to_string(),
            "rotary_emb.sin_cached".to_string(),
        ]
    );
    for p in params.iter() {
        let stored = &tensors[&format!("model.inner.{}", p.name)];
        assert_eq!(
            p.value.to_bytes().unwrap(),
            stored.to_bytes().unwrap(),
            "{}",
            p.name
        );
    }

    // Saved by us and loaded again, the fixture's weights are bit-identical.
    let dir = scratch_dir("golden-resave");
    let path = dir.join("resaved.safetensors");
    let mut resave = params_to_tensors(&params);
    resave.extend(summary.buffers.clone());
    save_tensors(&path, &resave, &BTreeMap::new()).unwrap();
    let (back, _) = load_tensors(&path).unwrap();
    for (name, t) in &back {
        assert_eq!(
            t.to_bytes().unwrap(),
            tensors[&format!("model.inner.{name}")].to_bytes().unwrap(),
            "{name}"
        );
    }
    assert_eq!(back.len(), 15);
}

// ---- the converter script --------------------------------------------------------------------

fn converter_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/convert_torch_checkpoint.py")
}

/// `python3` for running the converter, or `None` (the test then skips, saying so).
fn python3() -> Option<std::process::Command> {
    match std::process::Command::new("python3")
        .arg("--version")
        .output()
    {
        Ok(out) if out.status.success() => {
            let mut cmd = std::process::Command::new("python3");
            // Keep the source tree free of __pycache__.
            cmd.env("PYTHONDONTWRITEBYTECODE", "1");
            Some(cmd)
        }
        _ => {
            println!("skipped: python3 is not available");
            None
        }
    }
}

#[test]
fn converter_script_compiles_and_names_match_the_rust_loader() {
    let Some(mut compile) = python3() else { return };
    let dir = scratch_dir("py-compile");
    let out = compile
        .arg("-c")
        .arg("import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)")
        .arg(converter_script())
        .arg(dir.join("convert.pyc"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The script's name logic runs without torch: feed it names, compare with the Rust side.
    let names = [
        "_orig_mod.model.inner.q_head.bias",
        "model.inner.H_init",
        "inner.L_level.layers.0.mlp.down_proj.weight",
        "inner.model.x",
        "_orig_mod.model.inner.rotary_emb.cos_cached",
        "model.inner.puzzle_emb.local_weights",
    ];
    let probe = r#"
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("convert", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
names = json.loads(sys.argv[2])
kept, dropped = m.select_tensors({n: None for n in names}, strip=True)
print(json.dumps({"kept": sorted(kept), "dropped": sorted(dropped),
                  "strip": [m.strip_official_prefix(n) for n in names]}))
"#;
    let out = python3()
        .unwrap()
        .arg("-c")
        .arg(probe)
        .arg(converter_script())
        .arg(serde_json::to_string(&names).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rust_strip: Vec<&str> = names.iter().map(|n| strip_official_prefix(n)).collect();
    assert_eq!(report["strip"], serde_json::json!(rust_strip));
    assert_eq!(
        report["kept"],
        serde_json::json!([
            "H_init",
            "L_level.layers.0.mlp.down_proj.weight",
            "model.x",
            "q_head.bias"
        ])
    );
    assert_eq!(
        report["dropped"],
        serde_json::json!([
            "_orig_mod.model.inner.rotary_emb.cos_cached",
            "model.inner.puzzle_emb.local_weights"
        ])
    );
}

/// A stand-in for the parts of `torch` the converter touches. Its `load` reads a JSON
/// description of a checkpoint: {"wrap": key or null, "extra": {...}, "tensors": {name:
/// [dtype, shape, hex bytes, name of a tensor whose storage it shares or null]}}.
const STUB_TORCH: &str = r#"
import json
class _Storage:
    def __init__(self, owner): self._owner = owner
    def data_ptr(self): return id(self._owner)
class _DType:
    def __init__(self, name): self.name = name
    def __str__(self): return "torch." + self.name
float32, bfloat16, int32 = _DType("float32"), _DType("bfloat16"), _DType("int32")
class Tensor:
    def __init__(self, dtype, shape, data, base=None):
        self.dtype, self.shape, self.data = dtype, tuple(shape), data
        self._base = self if base is None else base
    def detach(self): return self
    def cpu(self): return self
    def contiguous(self): return self
    def clone(self): return Tensor(self.dtype, self.shape, self.data)
    def numel(self):
        n = 1
        for d in self.shape: n *= d
        return n
    def dim(self): return len(self.shape)
    def untyped_storage(self): return _Storage(self._base)
def is_tensor(x): return isinstance(x, Tensor)
def load(path, map_location=None, weights_only=None):
    assert map_location == "cpu" and weights_only is True, (map_location, weights_only)
    spec = json.load(open(path))
    out = {}
    for name, (dtype, shape, hexdata, shares) in spec["tensors"].items():
        base = out[shares]._base if shares else None
        out[name] = Tensor(globals()[dtype], shape, bytes.fromhex(hexdata), base)
    if spec["wrap"]:
        return dict(spec["extra"], **{spec["wrap"]: out})
    return dict(out, **spec["extra"])
"#;

/// A stand-in for `safetensors.torch.save_file` that writes a real safetensors file and, like
/// the real one, refuses tensors sharing storage.
const STUB_SAFETENSORS_TORCH: &str = r#"
import json, struct
NAMES = {"float32": "F32", "bfloat16": "BF16", "int32": "I32"}
def save_file(tensors, filename, metadata=None):
    storages = [t.untyped_storage().data_ptr() for t in tensors.values()]
    if len(set(storages)) != len(storages):
        raise RuntimeError("Some tensors share memory")
    header, data = {}, b""
    if metadata: header["__metadata__"] = metadata
    for name, t in sorted(tensors.items()):
        header[name] = {"dtype": NAMES[t.dtype.name], "shape": list(t.shape),
                        "data_offsets": [len(data), len(data) + len(t.data)]}
        data += t.data
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(filename, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)
"#;

#[test]
fn converter_script_end_to_end_with_stub_torch() {
    let Some(_) = python3() else { return };
    let mut rng = fresh_rng("converter_script_end_to_end_with_stub_torch");
    let dir = scratch_dir("py-convert");
    fs::create_dir_all(dir.join("stubs/torch")).unwrap();
    fs::create_dir_all(dir.join("stubs/safetensors")).unwrap();
    fs::write(dir.join("stubs/torch/__init__.py"), STUB_TORCH).unwrap();
    fs::write(dir.join("stubs/safetensors/__init__.py"), "").unwrap();
    fs::write(
        dir.join("stubs/safetensors/torch.py"),
        STUB_SAFETENSORS_TORCH,
    )
    .unwrap();

    let p = "_orig_mod.model.inner.";
    let h_init = random_tensor(&mut rng, DType::BF16, &[8]);
    let q_weight = random_tensor(&mut rng, DType::F32, &[2, 8]);
    let embed = random_tensor(&mut rng, DType::F32, &[11, 8]);
    let rotary = random_tensor(&mut rng, DType::F32, &[5, 4]);
    let ids = random_tensor(&mut rng, DType::I32, &[4]);
    let entry = |dtype: &str, t: &Tensor, shares: Option<String>| {
        let hex: String = t
            .to_bytes()
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        serde_json::json!([dtype, t.dims(), hex, shares])
    };
    let tensors = serde_json::json!({
        format!("{p}H_init"): entry("bfloat16", &h_init, None),
        format!("{p}q_head.weight"): entry("float32", &q_weight, None),
        format!("{p}embed_tokens.embedding_weight"): entry("float32", &embed, None),
        // Tied to the embedding: the converter must give it its own copy.
        format!("{p}lm_head.weight"): entry("float32", &embed, Some(format!("{p}embed_tokens.embedding_weight"))),
        format!("{p}rotary_emb.cos_cached"): entry("float32", &rotary, None),
        format!("{p}puzzle_emb.local_ids"): entry("int32", &ids, None),
    });
    let run = |args: &[&str], wrap: Option<&str>| {
        // A wrapped state dict sits beside other training state, as in real checkpoints.
        let extra = match wrap {
            Some(_) => serde_json::json!({"step": 7}),
            None => serde_json::json!({}),
        };
        let spec = serde_json::json!({"wrap": wrap, "extra": extra, "tensors": tensors});
        fs::write(dir.join("ckpt.pt"), spec.to_string()).unwrap();
        python3()
            .unwrap()
            .env("PYTHONPATH", dir.join("stubs"))
            .arg(converter_script())
            .args(args)
            .output()
            .unwrap()
    };
    let input = dir.join("ckpt.pt");
    let input = input.to_str().unwrap();
    let kept = dir.join("kept.safetensors");
    let stripped = dir.join("stripped.safetensors");

    let out = run(&[input, "-o", kept.to_str().unwrap()], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Parameters exclude the H_init buffer: 2·8 + 11·8 + 11·8.
    assert!(stdout.contains("192 parameters"), "{stdout}");
    assert!(stdout
        .contains("dropped non-persistent buffer _orig_mod.model.inner.rotary_emb.cos_cached"));

    let out = run(
        &[input, "-o", stripped.to_str().unwrap(), "--strip-prefix"],
        Some("model"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("under key 'model'"));

    for (path, prefix) in [(&kept, p), (&stripped, "")] {
        let (back, metadata) = load_tensors(path).unwrap();
        assert_eq!(metadata["source"], "ckpt.pt");
        let want = BTreeMap::from([
            (format!("{prefix}H_init"), h_init.clone()),
            (format!("{prefix}q_head.weight"), q_weight.clone()),
            (
                format!("{prefix}embed_tokens.embedding_weight"),
                embed.clone(),
            ),
            (format!("{prefix}lm_head.weight"), embed.clone()),
        ]);
        assert_same_tensors(&back, &want);
    }

    // Failures exit non-zero with a message, and leave no output behind.
    let absent = dir.join("absent.pt");
    let refused = [
        (vec![absent.to_str().unwrap()], "no such file"),
        (
            vec![input, "-o", kept.to_str().unwrap()],
            "exists; pass --force",
        ),
    ];
    for (args, needle) in refused {
        let out = run(&args, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(needle),
            "{args:?}: {stderr}"
        );
    }
    let out = run(
        &[input, "-o", dir.join("x.safetensors").to_str().unwrap()],
        Some("not_a_known_key"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no state dict found"),
        "{stderr}"
    );
    assert!(!dir.join("x.safetensors").exists());
}
