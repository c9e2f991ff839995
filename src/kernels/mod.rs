//! The CUDA kernels: their sources, embedded at build time by `build.rs`, and one Rust launcher
//! module per kernel file that checks shapes and dtypes like the CPU reference and launches on any
//! `KernelBackend`.

pub mod act;
pub mod activation;
pub mod attention;
pub mod copy;
pub mod elementwise;
pub mod embedding;
pub mod fused_step;
pub mod gemm;
pub mod gemm_choice;
pub mod lattice;
pub mod layout;
pub mod loss;
pub mod matmul;
pub mod noise;
pub mod optim;
pub mod reduce;
pub mod rope;

use crate::error::{Error, Result};

include!(concat!(env!("OUT_DIR"), "/kernel_sources.rs"));

/// The source of one kernel file, by file name (`"attention.cu"`).
pub fn source(file: &str) -> Option<&'static str> {
    SOURCES.iter().find(|(n, _)| *n == file).map(|(_, s)| *s)
}

/// The `.cu` files: the units NVRTC compiles (headers are inlined into them).
pub fn compilation_units() -> impl Iterator<Item = &'static str> {
    SOURCES
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| n.ends_with(".cu"))
}

/// `file` with every `#include "x.cuh"` of a file in `kernels/` replaced by that file's text,
/// each header once (`#pragma once` semantics). NVRTC then needs no include paths and no files on
/// disk, so the binary carries everything it compiles.
pub fn expand_includes(file: &str) -> Result<String> {
    fn expand(file: &str, seen: &mut Vec<String>, out: &mut String) -> Result<()> {
        let text = source(file)
            .ok_or_else(|| Error::arg("kernels", format!("no kernel source named {file:?}")))?;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed == "#pragma once" {
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix("#include \"") {
                let header = rest.trim_end_matches('"');
                if !seen.iter().any(|h| h == header) {
                    seen.push(header.to_string());
                    expand(header, seen, out)?;
                }
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        Ok(())
    }
    let mut out = String::new();
    expand(file, &mut Vec::new(), &mut out)?;
    Ok(out)
}
