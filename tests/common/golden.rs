//! Reads the official code's golden tensors (tests/fixtures/trm_att_h64, see its ORIGIN.md).
//! The fixture holds PyTorch dtypes the engine never stores (i64 predictions, bool flags), so
//! this reader widens everything to f64 for comparison instead of going through the checkpoint
//! loader.

#![allow(dead_code)]

use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub struct GoldenFile {
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f64>)>,
}

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/trm_att_h64")
        .join(rel)
}

impl GoldenFile {
    pub fn open(rel: &str) -> GoldenFile {
        let path = fixture(rel);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let st = SafeTensors::deserialize(&bytes).expect("a safetensors file");
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let data = view.data();
            let values: Vec<f64> = match view.dtype() {
                Dtype::F32 => data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                Dtype::F64 => data
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                Dtype::I32 => data
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                Dtype::I64 => data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                Dtype::BOOL => data.iter().map(|&b| b as f64).collect(),
                other => panic!("{name}: unexpected dtype {other:?}"),
            };
            tensors.insert(name.to_string(), (view.shape().to_vec(), values));
        }
        GoldenFile { tensors }
    }

    pub fn get(&self, name: &str) -> &(Vec<usize>, Vec<f64>) {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("golden tensor {name} is missing"))
    }

    pub fn f32_tensor(&self, name: &str) -> recur::Tensor {
        let (shape, v) = self.get(name);
        recur::Tensor::from_vec(v.iter().map(|&x| x as f32).collect(), shape.clone()).unwrap()
    }

    pub fn i32_tensor(&self, name: &str) -> recur::Tensor {
        let (shape, v) = self.get(name);
        recur::Tensor::from_vec(v.iter().map(|&x| x as i32).collect(), shape.clone()).unwrap()
    }
}
