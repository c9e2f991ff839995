//! The resource report of every kernel file for one architecture: NVRTC compiles each file to a
//! CUBIN with ptxas's `-v` report, and each kernel's registers, spills, stack and shared memory
//! are set against its launch bounds. The CI kernel gate (`tests/kernel_gate.rs`) fails on any
//! problem listed here; `recur info --kernels` prints the same table.

use crate::device::cuda::nvrtc;
use crate::device::cuda::resources::{
    launch_bounds_from_ptx, parse_ptxas_log, FunctionResources, LaunchBounds,
};
use crate::error::Result;
use crate::kernels;
use std::fmt::Write;

/// One kernel as compiled for one architecture.
#[derive(Clone, Debug)]
pub struct KernelRow {
    pub unit: String,
    pub resources: FunctionResources,
    pub bounds: LaunchBounds,
}

impl KernelRow {
    pub fn register_budget(&self) -> u32 {
        self.bounds.register_budget()
    }
}

/// Every kernel of every file for one architecture, and everything wrong with them.
#[derive(Clone, Debug, Default)]
pub struct KernelReport {
    pub arch: String,
    pub rows: Vec<KernelRow>,
    /// Compile errors (with NVRTC's log), spills (in kernels or the device functions they call),
    /// and registers above a kernel's launch bounds.
    pub problems: Vec<String>,
}

impl KernelReport {
    /// Compiles every kernel file for `arch` (a real architecture: `sm_90`, `sm_80`, ...).
    pub fn compile(arch: &str) -> KernelReport {
        KernelReport::compile_sources(
            arch,
            kernels::compilation_units()
                .map(|unit| (unit.to_string(), kernels::expand_includes(unit))),
        )
    }

    /// Compiles the given (file name, expanded source) pairs; a source that could not be read is
    /// reported as a problem of its file.
    pub fn compile_sources(
        arch: &str,
        units: impl IntoIterator<Item = (String, Result<String>)>,
    ) -> KernelReport {
        let mut report = KernelReport {
            arch: arch.to_string(),
            ..Default::default()
        };
        for (unit, source) in units {
            report.add_unit(unit, source);
        }
        report
    }

    fn add_unit(&mut self, unit: String, source: Result<String>) {
        let arch = self.arch.clone();
        let compiled = source
            .and_then(|source| nvrtc::compile(&unit, &source, &arch, &[nvrtc::PTXAS_VERBOSE]));
        let compiled = match compiled {
            Ok(compiled) => compiled,
            Err(e) => return self.problems.push(format!("{unit} ({arch}): {e}")),
        };
        let bounds = launch_bounds_from_ptx(&compiled.ptx);
        // ptxas reports in reverse definition order; the table reads better sorted.
        let mut functions = parse_ptxas_log(&compiled.log);
        functions.sort_by(|a, b| a.name.cmp(&b.name));
        for function in functions {
            if function.spills() {
                self.problems.push(format!(
                    "{unit} ({arch}): {} spills ({} bytes stored, {} loaded)",
                    function.name, function.spill_store_bytes, function.spill_load_bytes
                ));
            }
            if !function.is_entry {
                continue;
            }
            let row = KernelRow {
                unit: unit.clone(),
                bounds: bounds.get(&function.name).copied().unwrap_or_default(),
                resources: function,
            };
            if row.resources.registers > row.register_budget() {
                self.problems.push(format!(
                    "{unit} ({arch}): {} uses {} registers, but its launch bounds allow {}",
                    row.resources.name,
                    row.resources.registers,
                    row.register_budget()
                ));
            }
            self.rows.push(row);
        }
    }

    /// The table: kernel, file, arch, registers and budget, spills, stack, static shared
    /// memory, launch bounds.
    pub fn table(&self) -> String {
        let header = [
            "kernel",
            "file",
            "arch",
            "regs",
            "budget",
            "spill st/ld",
            "stack",
            "smem",
            "bounds",
        ];
        let cells: Vec<[String; 9]> = self
            .rows
            .iter()
            .map(|row| {
                let r = &row.resources;
                [
                    r.name.clone(),
                    row.unit.clone(),
                    r.arch.clone(),
                    r.registers.to_string(),
                    row.register_budget().to_string(),
                    format!("{}/{}", r.spill_store_bytes, r.spill_load_bytes),
                    r.cumulative_stack_bytes
                        .max(r.stack_frame_bytes)
                        .to_string(),
                    r.shared_bytes.to_string(),
                    describe_bounds(&row.bounds),
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|c| {
                cells
                    .iter()
                    .map(|row| row[c].len())
                    .chain([header[c].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let mut line = |values: &[&str]| {
            let fields: Vec<String> = values
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(c, (v, &w))| {
                    // Text columns left-aligned, numbers right-aligned.
                    if c < 3 || c == 8 {
                        format!("{v:<w$}")
                    } else {
                        format!("{v:>w$}")
                    }
                })
                .collect();
            let _ = writeln!(out, "{}", fields.join("  ").trim_end());
        };
        line(&header);
        for row in &cells {
            line(&row.iter().map(String::as_str).collect::<Vec<_>>());
        }
        if self.rows.is_empty() {
            let _ = writeln!(out, "(no kernels compiled for {})", self.arch);
        }
        out
    }
}

fn describe_bounds(bounds: &LaunchBounds) -> String {
    let mut parts = Vec::new();
    if let Some(threads) = bounds.max_threads {
        parts.push(format!("{threads} thr"));
    }
    if let Some(blocks) = bounds.min_blocks {
        parts.push(format!("{blocks} blk/SM"));
    }
    if let Some(regs) = bounds.max_registers {
        parts.push(format!("maxnreg {regs}"));
    }
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(", ")
    }
}
