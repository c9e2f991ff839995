//! Reading and writing safetensors files of named tensors.
//!
//! The format: an 8-byte little-endian header length `n`, `n` bytes of JSON mapping each tensor
//! name to `{dtype, shape, data_offsets}` (plus an optional `__metadata__` string map), then the
//! raw little-endian tensor bytes. The `safetensors` crate parses and validates the header; the
//! data is streamed here one tensor at a time, so neither direction holds a second copy of the
//! whole file in memory (the ARC puzzle table alone is 1.8–2.4 GB).

use crate::checkpoint::atomic::write_atomically;
use crate::checkpoint::file_error::{invalid_data, io_error};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use safetensors::tensor::Metadata;
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// The header-size limit of the `safetensors` crate: a larger length field means the file is not
/// a safetensors file at all, and must not make us allocate gigabytes for a "header".
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The key of the string-to-string metadata map inside the header.
const METADATA_KEY: &str = "__metadata__";

/// Saves `tensors` (any of recur's dtypes: F32, BF16, F64, I32) and a string `metadata` map as a
/// safetensors file, atomically (see `write_atomically`): a crash never leaves a truncated file
/// at `path`. Tensors are laid out by decreasing element size, then by name, as the reference
/// implementation does, so every tensor's data is aligned to its element size; the header's
/// keys are sorted, so the same tensors always give the same bytes.
pub fn save_tensors(
    path: impl AsRef<Path>,
    tensors: &BTreeMap<String, Tensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    if tensors.contains_key(METADATA_KEY) {
        return Err(Error::arg(
            "save_tensors",
            format!(
                "{}: {METADATA_KEY:?} is reserved for the metadata map and cannot name a tensor",
                path.display()
            ),
        ));
    }
    let mut order: Vec<(&String, &Tensor)> = tensors.iter().collect();
    order.sort_by(|(a_name, a), (b_name, b)| {
        (b.dtype().size_in_bytes(), a_name).cmp(&(a.dtype().size_in_bytes(), b_name))
    });
    let header = header_bytes(&order, metadata);
    write_atomically(path, |w| {
        let mut put = |bytes: &[u8]| w.write_all(bytes).map_err(|e| io_error(path, e));
        put(&(header.len() as u64).to_le_bytes())?;
        put(&header)?;
        for (_, tensor) in &order {
            put(tensor.to_host()?.as_bytes()?)?;
        }
        Ok(())
    })
}

/// The JSON header for tensors in data order, padded with spaces to a multiple of 8 bytes so the
/// data that follows starts 8-aligned.
fn header_bytes(order: &[(&String, &Tensor)], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert(METADATA_KEY.to_string(), serde_json::json!(metadata));
    }
    let mut offset = 0usize;
    for (name, tensor) in order {
        let end = offset + tensor.numel() * tensor.dtype().size_in_bytes();
        header.insert(
            (*name).clone(),
            serde_json::json!({
                "dtype": safetensors_dtype(tensor.dtype()).to_string(),
                "shape": tensor.dims(),
                "data_offsets": [offset, end],
            }),
        );
        offset = end;
    }
    let mut bytes = serde_json::Value::Object(header).to_string().into_bytes();
    bytes.resize(bytes.len().next_multiple_of(8), b' ');
    bytes
}

fn safetensors_dtype(dtype: DType) -> Dtype {
    match dtype {
        DType::F32 => Dtype::F32,
        DType::BF16 => Dtype::BF16,
        DType::F64 => Dtype::F64,
        DType::I32 => Dtype::I32,
    }
}

/// How a stored dtype becomes a recur tensor: as is, or (F16) widened to F32, since recur has no
/// f16 storage and every f16 value is exactly representable in f32.
fn recur_dtype(dtype: Dtype) -> Option<DType> {
    match dtype {
        Dtype::F32 | Dtype::F16 => Some(DType::F32),
        Dtype::BF16 => Some(DType::BF16),
        Dtype::F64 => Some(DType::F64),
        Dtype::I32 => Some(DType::I32),
        _ => None,
    }
}

/// Loads every tensor of a safetensors file, with its `__metadata__` map (empty when absent).
///
/// F32, BF16, F64 and I32 tensors load bit-exactly; F16 tensors are widened to F32 (exactly).
/// Other dtypes (U8, I64, F8, ...) are refused with an error naming every such tensor and its
/// dtype. A file that is not safetensors, has a malformed header, or is truncated gives an
/// `Error::Io` of kind `InvalidData` naming the file and what is wrong, never a panic.
pub fn load_tensors(
    path: impl AsRef<Path>,
) -> Result<(BTreeMap<String, Tensor>, BTreeMap<String, String>)> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let file_len = file.metadata().map_err(|e| io_error(path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let header = read_header(path, &mut reader, file_len)?;
    refuse_unsupported_dtypes(path, &header)?;

    let mut tensors = BTreeMap::new();
    let mut bytes = Vec::new();
    // The header validated that the tensors tile the data section in this order, so one
    // sequential pass reads them all.
    for name in header.offset_keys() {
        let info = header
            .info(&name)
            .expect("offset_keys lists only names the header has");
        let (start, end) = info.data_offsets;
        bytes.resize(end - start, 0);
        reader
            .read_exact(&mut bytes)
            .map_err(|e| invalid_data(path, format!("reading the data of tensor {name:?}: {e}")))?;
        let tensor = match info.dtype {
            Dtype::F16 => {
                let widened: Vec<f32> = bytes
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect();
                Tensor::from_vec(widened, info.shape.clone())?
            }
            stored => {
                let dtype = recur_dtype(stored).expect("unsupported dtypes were refused above");
                Tensor::from_bytes(&bytes, info.shape.clone(), dtype)?
            }
        };
        tensors.insert(name, tensor);
    }
    let metadata = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok((tensors, metadata))
}

/// Reads and validates the header, leaving `reader` at the start of the tensor data. Checks the
/// file's length against the header before any tensor is read, so a truncated file is reported
/// as truncated rather than as a failed read somewhere in the middle.
fn read_header(path: &Path, reader: &mut impl Read, file_len: u64) -> Result<Metadata> {
    if file_len < 8 {
        return Err(invalid_data(
            path,
            format!(
                "only {file_len} bytes, too short for the 8-byte header length: \
                 not a safetensors file, or truncated"
            ),
        ));
    }
    let mut len_bytes = [0u8; 8];
    reader
        .read_exact(&mut len_bytes)
        .map_err(|e| io_error(path, e))?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER_BYTES {
        return Err(invalid_data(
            path,
            format!(
                "header length field says {header_len} bytes (limit {MAX_HEADER_BYTES}): \
                 not a safetensors file"
            ),
        ));
    }
    if 8 + header_len > file_len {
        return Err(invalid_data(
            path,
            format!(
                "header length field says {header_len} bytes but only {} follow it: \
                 truncated, or not a safetensors file",
                file_len - 8
            ),
        ));
    }
    let mut header_bytes = vec![0u8; header_len as usize];
    reader
        .read_exact(&mut header_bytes)
        .map_err(|e| io_error(path, e))?;
    let text = std::str::from_utf8(&header_bytes)
        .map_err(|e| invalid_data(path, format!("header is not UTF-8: {e}")))?;
    // Deserialising `Metadata` also validates it: offsets must tile the data section with no
    // gaps, and each tensor's byte length must match its dtype and shape.
    let header: Metadata = serde_json::from_str(text).map_err(|e| {
        let detail = misfit_tensor(text).unwrap_or_else(|| e.to_string());
        invalid_data(path, format!("invalid safetensors header: {detail}"))
    })?;
    let data_len = header.data_len() as u64;
    let available = file_len - 8 - header_len;
    if available < data_len {
        return Err(invalid_data(
            path,
            format!(
                "truncated: the header describes {data_len} bytes of tensor data \
                 but only {available} follow it"
            ),
        ));
    }
    if available > data_len {
        return Err(invalid_data(
            path,
            format!(
                "{} unexpected bytes after the {data_len} bytes of tensor data the header describes",
                available - data_len
            ),
        ));
    }
    Ok(header)
}

/// Names the first tensor whose byte range does not fit its dtype and shape, for a header the
/// `safetensors` crate rejected (its own message does not say which tensor).
fn misfit_tensor(header_text: &str) -> Option<String> {
    let header: BTreeMap<String, serde_json::Value> = serde_json::from_str(header_text).ok()?;
    header
        .iter()
        .filter(|(name, _)| name.as_str() != METADATA_KEY)
        .find_map(|(name, entry)| {
            let info: safetensors::tensor::TensorInfo =
                serde_json::from_value(entry.clone()).ok()?;
            let numel = info
                .shape
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))?;
            let needed = numel.checked_mul(info.dtype.bitsize())? / 8;
            let (start, end) = info.data_offsets;
            (end.checked_sub(start) != Some(needed)).then(|| {
                format!(
                    "tensor {name:?}: {} shape {:?} needs {needed} bytes \
                     but its data_offsets [{start}, {end}] do not span that",
                    info.dtype, info.shape
                )
            })
        })
}

/// Errors listing every tensor whose dtype recur cannot hold, before any data is read.
fn refuse_unsupported_dtypes(path: &Path, header: &Metadata) -> Result<()> {
    let mut unsupported: Vec<String> = header
        .tensors()
        .into_iter()
        .filter(|(_, info)| recur_dtype(info.dtype).is_none())
        .map(|(name, info)| format!("{name:?} has dtype {}", info.dtype))
        .collect();
    if unsupported.is_empty() {
        return Ok(());
    }
    unsupported.sort();
    Err(invalid_data(
        path,
        format!(
            "unsupported tensor dtype: {}; recur loads F32, BF16, F64 and I32 \
             (and widens F16 to F32)",
            unsupported.join(", ")
        ),
    ))
}
