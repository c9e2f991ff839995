//! `recur train --graph on|off|auto`: whether a kernel training step is captured as a CUDA graph
//! and replayed. The first step always runs eagerly (NVRTC compiles, the GEMM chooser measures,
//! the memory pool fills); the second is captured and replayed; every later step replays it. A
//! capture that fails (a backend that cannot capture, a step that reads the device) falls back
//! to eager steps, with the reason printed.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GraphMode {
    /// Every step eager.
    Off,
    /// Capture from the second step; say why when that fails.
    On,
    /// Capture from the second step on a kernel backend that can capture; quietly eager
    /// elsewhere (the CPU reference, the trace backend).
    #[default]
    Auto,
}

impl FromStr for GraphMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<GraphMode> {
        match s {
            "off" => Ok(GraphMode::Off),
            "on" => Ok(GraphMode::On),
            "auto" => Ok(GraphMode::Auto),
            other => Err(Error::arg(
                "--graph",
                format!("{other:?} is not a graph mode; use on, off or auto"),
            )),
        }
    }
}

impl fmt::Display for GraphMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GraphMode::Off => "off",
            GraphMode::On => "on",
            GraphMode::Auto => "auto",
        })
    }
}
