//! Checkpoints: safetensors files of named tensors, written atomically, and the mapping between
//! official PyTorch state-dict names and a model's `Params` (specs/checkpoint-keys.md).

pub mod atomic;
pub mod file_error;
pub mod names;
pub mod params_io;
pub mod safetensors_file;

pub use atomic::write_atomically;
pub use file_error::{invalid_data, io_error};
pub use names::{strip_official_prefix, OFFICIAL_PREFIXES, PERSISTENT_BUFFERS};
pub use params_io::{load_into_params, params_to_tensors, LoadSummary};
pub use safetensors_file::{load_tensors, save_tensors};
