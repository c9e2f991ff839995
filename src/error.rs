//! The crate's one error type. Everything a user can get wrong (shapes, dtypes, arguments, files)
//! comes back as an `Error`; panics are reserved for broken internal invariants.

use crate::dtype::DType;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An op was given tensors whose shapes do not fit together.
    #[error("{op}: shape mismatch: {msg}")]
    Shape { op: &'static str, msg: String },

    /// An op was given a tensor of a dtype it does not accept.
    #[error("{op}: expected dtype {expected}, got {got}")]
    DType {
        op: &'static str,
        expected: &'static str,
        got: DType,
    },

    /// An argument outside its valid range (a probability above 1, an index out of bounds, ...).
    #[error("{op}: invalid argument: {msg}")]
    Arg { op: &'static str, msg: String },

    /// Misuse of the autograd tape (a non-scalar loss, a variable from another tape, ...).
    #[error("tape: {0}")]
    Tape(String),

    /// A device backend failed or is missing (no GPU, no NVRTC, a kernel that did not compile,
    /// a launch the emulator could not run).
    #[error("{backend}: {msg}")]
    Device { backend: &'static str, msg: String },

    /// Host data was asked of a tensor that lives on a device. Moves are explicit (`to_host`).
    #[error("{op}: the tensor lives on {location}; copy it with to_host() first")]
    NotOnHost { op: &'static str, location: String },

    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Shape {
            op,
            msg: msg.into(),
        }
    }
    pub fn arg(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Arg {
            op,
            msg: msg.into(),
        }
    }
    pub fn device(backend: &'static str, msg: impl Into<String>) -> Self {
        Error::Device {
            backend,
            msg: msg.into(),
        }
    }
}
