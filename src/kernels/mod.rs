//! The CUDA C sources of `kernels/`, embedded at build time by `build.rs`.
//!
//! The device backends compile these by name: NVRTC on a GPU, the CPU shim under the emulator.

include!(concat!(env!("OUT_DIR"), "/kernel_sources.rs"));

/// The source of one kernel file, by file name (`"attention.cu"`).
pub fn source(file: &str) -> Option<&'static str> {
    SOURCES.iter().find(|(n, _)| *n == file).map(|(_, s)| *s)
}
