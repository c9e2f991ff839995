//! What each compiled kernel uses (from ptxas's `-v` report in NVRTC's log) and what its
//! `__launch_bounds__` allow (from the PTX directives they become), so the kernel gate can hold
//! every kernel to its budget.
//!
//! Launch bounds are read from the PTX (`.maxntid`, `.minnctapersm`, `.maxnreg`) rather than the
//! source: kernels stamped by macros (`STAMP_F32_BF16`) have names that never appear literally
//! in the source, and the PTX is what ptxas was actually told.

use std::collections::HashMap;

/// ptxas's report for one function.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FunctionResources {
    pub name: String,
    /// The target ptxas compiled for (`sm_90`); empty for functions that are not entries.
    pub arch: String,
    /// A `__global__` kernel, as opposed to a non-inlined device function.
    pub is_entry: bool,
    pub registers: u32,
    pub barriers: u32,
    pub stack_frame_bytes: u32,
    pub spill_store_bytes: u32,
    pub spill_load_bytes: u32,
    /// Static shared memory (dynamic shared memory is chosen at launch).
    pub shared_bytes: u32,
    /// The whole call tree's stack, for entries.
    pub cumulative_stack_bytes: u32,
}

impl FunctionResources {
    pub fn spills(&self) -> bool {
        self.spill_store_bytes > 0 || self.spill_load_bytes > 0
    }
}

/// Parses ptxas's verbose report, one entry per function in the order reported:
///
/// ```text
/// ptxas info    : Compiling entry function 'k' for 'sm_90'
/// ptxas info    : Function properties for k
/// ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
/// ptxas info    : Used 8 registers, used 1 barriers, 256 bytes smem, 360 bytes cmem[0]
/// ```
pub fn parse_ptxas_log(log: &str) -> Vec<FunctionResources> {
    let mut functions: Vec<FunctionResources> = Vec::new();
    let mut current: Option<usize> = None;
    let index_of = |functions: &mut Vec<FunctionResources>, name: &str| -> usize {
        match functions.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                functions.push(FunctionResources {
                    name: name.to_string(),
                    ..Default::default()
                });
                functions.len() - 1
            }
        }
    };
    for line in log.lines() {
        let message = report_message(line);
        if let Some(rest) = message.strip_prefix("Compiling entry function ") {
            let mut quoted = rest.split('\'').skip(1).step_by(2);
            let (Some(name), arch) = (quoted.next(), quoted.next()) else {
                continue;
            };
            let i = index_of(&mut functions, name);
            functions[i].is_entry = true;
            functions[i].arch = arch.unwrap_or_default().to_string();
            current = Some(i);
        } else if let Some(name) = message.strip_prefix("Function properties for ") {
            current = Some(index_of(&mut functions, name.trim()));
        } else if message.contains("bytes stack frame") {
            if let Some(f) = current.map(|i| &mut functions[i]) {
                for (value, what) in quantities(message) {
                    match what {
                        "bytes stack frame" => f.stack_frame_bytes = value,
                        "bytes spill stores" => f.spill_store_bytes = value,
                        "bytes spill loads" => f.spill_load_bytes = value,
                        _ => {}
                    }
                }
            }
        } else if message.starts_with("Used ") {
            if let Some(f) = current.map(|i| &mut functions[i]) {
                for (value, what) in quantities(message) {
                    match what {
                        "registers" => f.registers = value,
                        "barriers" => f.barriers = value,
                        "bytes smem" => f.shared_bytes = value,
                        "bytes cumulative stack size" => f.cumulative_stack_bytes = value,
                        _ => {}
                    }
                }
            }
        }
    }
    functions
}

/// A report line without its prefix: `ptxas info    : `, `ptxas         .     ` (NVRTC's
/// continuation lines) or plain indentation (standalone ptxas's).
fn report_message(line: &str) -> &str {
    let line = line.trim();
    let without_tag = match line.split_once(':') {
        Some((tag, rest)) if tag.starts_with("ptxas") => rest,
        _ => line.strip_prefix("ptxas").unwrap_or(line),
    };
    without_tag.trim_start_matches(|c: char| c == '.' || c.is_whitespace())
}

/// The comma-separated `<number> <words>` pieces of a report line, with a leading `Used`/`used`
/// dropped: `Used 8 registers, used 1 barriers, 16+0 bytes smem` gives (8, "registers"),
/// (1, "barriers"), (16, "bytes smem").
fn quantities(text: &str) -> impl Iterator<Item = (u32, &str)> {
    text.split(',').filter_map(|piece| {
        let piece = piece.trim();
        let piece = piece
            .strip_prefix("Used ")
            .or_else(|| piece.strip_prefix("used "))
            .unwrap_or(piece);
        let (number, what) = piece.split_once(' ')?;
        let value = number
            .split('+')
            .map(|n| n.parse::<u32>().ok())
            .sum::<Option<u32>>()?;
        Some((value, what.trim()))
    })
}

/// A kernel's `__launch_bounds__(max_threads, min_blocks)` and `__maxnreg__`, as PTX states them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LaunchBounds {
    /// `.maxntid x, y, z` → x·y·z.
    pub max_threads: Option<u32>,
    /// `.minnctapersm n`.
    pub min_blocks: Option<u32>,
    /// `.maxnreg n`.
    pub max_registers: Option<u32>,
}

impl LaunchBounds {
    /// The most registers per thread the kernel may use: 65536 / (min_blocks · max_threads
    /// rounded up to a warp), at most 255, and at most `__maxnreg__`.
    pub fn register_budget(&self) -> u32 {
        const REGISTER_FILE: u32 = 65536;
        const MAX_PER_THREAD: u32 = 255;
        let by_occupancy = self.max_threads.map_or(MAX_PER_THREAD, |threads| {
            let threads = threads.max(1).div_ceil(32) * 32;
            REGISTER_FILE / (self.min_blocks.unwrap_or(1).max(1) * threads)
        });
        by_occupancy
            .min(MAX_PER_THREAD)
            .min(self.max_registers.unwrap_or(MAX_PER_THREAD))
    }

    pub fn is_declared(&self) -> bool {
        *self != LaunchBounds::default()
    }
}

/// The launch bounds of every `.entry` in a PTX module, by kernel name (kernels without bounds
/// map to the default).
pub fn launch_bounds_from_ptx(ptx: &str) -> HashMap<String, LaunchBounds> {
    let mut bounds = HashMap::new();
    let mut current: Option<String> = None;
    for line in ptx.lines().map(str::trim) {
        if let Some(rest) = line.split_once(".entry ").map(|(_, rest)| rest) {
            let name = rest
                .split(['(', ' '])
                .next()
                .unwrap_or_default()
                .to_string();
            bounds.insert(name.clone(), LaunchBounds::default());
            current = Some(name);
            continue;
        }
        let Some(name) = &current else { continue };
        if line.starts_with('{') {
            current = None;
            continue;
        }
        let entry = bounds.get_mut(name).expect("inserted above");
        let numbers = |directive: &str| -> Option<Vec<u32>> {
            let rest = line.strip_prefix(directive)?;
            rest.split(',').map(|n| n.trim().parse().ok()).collect()
        };
        if let Some(dims) = numbers(".maxntid ") {
            entry.max_threads = Some(dims.iter().product());
        } else if let Some(n) = numbers(".minnctapersm ") {
            entry.min_blocks = n.first().copied();
        } else if let Some(n) = numbers(".maxnreg ") {
            entry.max_registers = n.first().copied();
        }
    }
    bounds
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NVRTC 13.0's log for three kernels on sm_90 (copied from a real run).
    const SM90_LOG: &str = "\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'c' for 'sm_90'
ptxas info    : Function properties for c
ptxas         .     800 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 32 registers, used 1 barriers, 800 bytes cumulative stack size, 256 bytes smem
ptxas info    : Compile time = 32.781 ms
ptxas info    : Compiling entry function 'b_f32' for 'sm_90'
ptxas info    : Function properties for b_f32
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 8 registers, used 0 barriers
ptxas info    : Compile time = 0.856 ms
";

    /// The same kernels on sm_80 (ptxas adds the constant bank) and a spilling kernel.
    const SM80_SPILL_LOG: &str = "\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'k' for 'sm_80'
ptxas info    : Function properties for k
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 8 registers, used 0 barriers, 360 bytes cmem[0]
ptxas info    : Compile time = 0.618 ms
ptxas info    : Compiling entry function 'spill' for 'sm_80'
ptxas info    : Function properties for spill
ptxas         .     2056 bytes stack frame, 2048 bytes spill stores, 4044 bytes spill loads
ptxas info    : Used 32 registers, used 0 barriers, 2056 bytes cumulative stack size, 360 bytes cmem[0]
";

    /// A non-inlined device function (its properties have no entry line), older `a+b` smem.
    const DEVICE_FUNCTION_LOG: &str = "\
ptxas info    : Function properties for _Z6helperPf
    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
ptxas info    : Compiling entry function 'outer' for 'sm_90'
ptxas info    : Function properties for outer
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 40 registers, 128+16 bytes smem, 400 bytes cmem[0]
";

    #[test]
    fn reads_registers_barriers_stack_and_shared_memory_of_each_entry() {
        let f = parse_ptxas_log(SM90_LOG);
        assert_eq!(f.len(), 2);
        assert_eq!(
            f[0],
            FunctionResources {
                name: "c".into(),
                arch: "sm_90".into(),
                is_entry: true,
                registers: 32,
                barriers: 1,
                stack_frame_bytes: 800,
                spill_store_bytes: 0,
                spill_load_bytes: 0,
                shared_bytes: 256,
                cumulative_stack_bytes: 800,
            }
        );
        assert_eq!(
            (f[1].name.as_str(), f[1].registers, f[1].shared_bytes),
            ("b_f32", 8, 0)
        );
        assert!(f.iter().all(|f| !f.spills()));
    }

    #[test]
    fn reads_spills_and_ignores_the_constant_bank() {
        let f = parse_ptxas_log(SM80_SPILL_LOG);
        assert_eq!(f.len(), 2);
        assert!(!f[0].spills());
        assert_eq!(f[0].arch, "sm_80");
        assert_eq!(
            (f[1].spill_store_bytes, f[1].spill_load_bytes),
            (2048, 4044)
        );
        assert_eq!(f[1].registers, 32);
        assert!(f[1].spills());
    }

    #[test]
    fn keeps_device_functions_apart_from_entries_and_sums_split_shared_memory() {
        let f = parse_ptxas_log(DEVICE_FUNCTION_LOG);
        assert_eq!(f.len(), 2);
        assert!(!f[0].is_entry && f[0].spills());
        assert_eq!(f[0].name, "_Z6helperPf");
        assert!(f[1].is_entry && !f[1].spills());
        assert_eq!((f[1].registers, f[1].shared_bytes), (40, 144));
    }

    #[test]
    fn a_compile_error_log_has_no_functions() {
        let log = "t.cu(12): error: identifier \"undefined_thing\" is undefined\n\n1 error detected in the compilation of \"t.cu\".\n";
        assert!(parse_ptxas_log(log).is_empty());
    }

    const PTX: &str = "\
.version 9.0
.target sm_90
.visible .entry k(
\t.param .u64 .ptr .align 1 k_param_0
)
.maxntid 256, 1, 1
.minnctapersm 2
{
\t.reg .b32 \t%r<3>;
}
.visible .entry b_f32(
\t.param .u64 .ptr .align 1 b_f32_param_0
)
{
}
.visible .entry c(
\t.param .u64 .ptr .align 1 c_param_0
)
.maxntid 16, 8, 1
.maxnreg 64
{
}
";

    #[test]
    fn launch_bounds_come_from_the_ptx_directives() {
        let b = launch_bounds_from_ptx(PTX);
        assert_eq!(b.len(), 3);
        assert_eq!(
            b["k"],
            LaunchBounds {
                max_threads: Some(256),
                min_blocks: Some(2),
                max_registers: None
            }
        );
        assert!(!b["b_f32"].is_declared());
        assert_eq!(b["c"].max_threads, Some(128));
        assert_eq!(b["c"].max_registers, Some(64));
    }

    #[test]
    fn register_budget_follows_the_launch_bounds() {
        let bounds = |t, b| LaunchBounds {
            max_threads: t,
            min_blocks: b,
            max_registers: None,
        };
        assert_eq!(bounds(None, None).register_budget(), 255);
        assert_eq!(bounds(Some(256), None).register_budget(), 255);
        assert_eq!(bounds(Some(256), Some(2)).register_budget(), 128);
        assert_eq!(bounds(Some(1024), Some(2)).register_budget(), 32);
        assert_eq!(bounds(Some(100), Some(4)).register_budget(), 128); // 100 → 128 threads
        let capped = LaunchBounds {
            max_registers: Some(64),
            ..bounds(Some(128), None)
        };
        assert_eq!(capped.register_budget(), 64);
    }
}
