//! Two things happen to the CUDA sources in `kernels/`:
//!
//! 1. Every `.cu` / `.cuh` is embedded into the binary (`recur::kernels::SOURCES`), so NVRTC
//!    compiles exactly the files in the tree, with no paths to find at run time.
//! 2. Every `.cu` is compiled for the CPU emulator (`recur::device::emu`): its headers inlined,
//!    its one-line `extern __shared__` declarations rewritten, wrapped in its own namespace and
//!    followed by a registration of each `extern "C" __global__` kernel, all in ONE C++
//!    translation unit (a static-library member holding only registrations would be dropped by
//!    the linker) that includes the shim `src/device/emu/cushim.hpp`. Fiber mode by default,
//!    thread mode with the `emu-threads` feature.
//!
//! A `.cu` file that does not compile for the CPU (someone's work in progress) must not break the
//! build for everyone: it is left out with a cargo warning, and `OUT_DIR/emu_build.rs` records
//! why, so launching one of its kernels on Emu says so.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let kernels = manifest.join("kernels");
    println!("cargo:rerun-if-changed={}", kernels.display());

    let names = files_in(&kernels, &[".cu", ".cuh"]);
    for n in &names {
        println!("cargo:rerun-if-changed={}", kernels.join(n).display());
    }
    write_sources_table(&kernels, &names, &out.join("kernel_sources.rs"));

    let shim = manifest.join("src/device/emu");
    println!(
        "cargo:rerun-if-changed={}",
        shim.join("cushim.hpp").display()
    );
    println!("cargo:rerun-if-changed={}", shim.join("shim").display());
    for h in files_in(&shim.join("shim"), &[".hpp"]) {
        println!(
            "cargo:rerun-if-changed={}",
            shim.join("shim").join(h).display()
        );
    }
    build_emulator(&kernels, &names, &shim, &out);
}

/// Sorted names of the files in `dir` ending in one of `suffixes` (none if `dir` is missing).
fn files_in(dir: &Path, suffixes: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| suffixes.iter().any(|s| n.ends_with(s)))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn write_sources_table(dir: &Path, names: &[String], out: &Path) {
    let mut table = String::from("/// (file name, source) of every kernel file, sorted by name.\n");
    table.push_str("pub static SOURCES: &[(&str, &str)] = &[\n");
    for n in names {
        let path = dir.join(n).display().to_string();
        writeln!(table, "    ({n:?}, include_str!({path:?})),").unwrap();
    }
    table.push_str("];\n");
    fs::write(out, table).expect("write kernel_sources.rs");
}

/// One `.cu` file made ready for the CPU translation unit.
struct CpuUnit {
    file: String,
    /// Headers inlined, dynamic shared memory rewritten, `#line` directives kept.
    text: String,
    kernels: Vec<String>,
}

fn build_emulator(kernels_dir: &Path, names: &[String], shim: &Path, out: &Path) {
    let mut units = Vec::new();
    let mut excluded: Vec<(String, String)> = Vec::new();
    for file in names.iter().filter(|n| n.ends_with(".cu")) {
        match prepare_unit(kernels_dir, file, out) {
            Ok(unit) => units.push(unit),
            Err(why) => excluded.push((file.clone(), why)),
        }
    }

    let tu = out.join("emu_kernels.cpp");
    fs::write(&tu, translation_unit(&units)).expect("write emu_kernels.cpp");
    if compile(&tu, shim, "recur_emu", false).is_err() {
        // Find the files that break it and build without them.
        let mut good = Vec::new();
        for unit in units {
            let alone = out.join(format!("emu_check_{}.cpp", namespace_of(&unit.file)));
            fs::write(&alone, translation_unit(std::slice::from_ref(&unit)))
                .expect("write check unit");
            match syntax_errors(&alone, shim) {
                None => good.push(unit),
                Some(errors) => excluded.push((unit.file, errors)),
            }
        }
        fs::write(&tu, translation_unit(&good)).expect("write emu_kernels.cpp");
        compile(&tu, shim, "recur_emu", true)
            .expect("the CPU emulator shim itself fails to compile");
    }
    for (file, why) in &excluded {
        let first = why.lines().find(|l| l.contains("error")).unwrap_or(why);
        println!("cargo:warning=Emu: kernels/{file} left out of the CPU build: {first}");
    }
    let mut report = String::from(
        "/// `.cu` files that failed to compile for the CPU emulator, with the compiler's errors.\n",
    );
    report.push_str("pub static EMU_EXCLUDED: &[(&str, &str)] = &[\n");
    for (file, why) in &excluded {
        writeln!(report, "    ({file:?}, {why:?}),").unwrap();
    }
    report.push_str("];\n");
    fs::write(out.join("emu_build.rs"), report).expect("write emu_build.rs");
}

fn prepare_unit(dir: &Path, file: &str, out: &Path) -> Result<CpuUnit, String> {
    let mut text = String::new();
    inline_headers(dir, file, &mut Vec::new(), &mut text)?;
    let text = rewrite_dynamic_shared(&text)?;
    let kernels = kernel_names(&preprocess(&text, file, out)?);
    Ok(CpuUnit {
        file: file.to_string(),
        text,
        kernels,
    })
}

/// Appends `file` to `out` with each `#include "x"` of a file in `dir` replaced by its text
/// (once per unit, as `#pragma once` would), and `#line` directives so that compiler errors
/// point into the real files.
fn inline_headers(
    dir: &Path,
    file: &str,
    seen: &mut Vec<String>,
    out: &mut String,
) -> Result<(), String> {
    let path = dir.join(file);
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(out, "#line 1 \"{}\"", path.display()).unwrap();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        let header = trimmed
            .strip_prefix("#include")
            .map(str::trim)
            .and_then(|r| r.strip_prefix('"'))
            .and_then(|r| r.split('"').next());
        match header {
            Some(h) if dir.join(h).is_file() => {
                if !seen.iter().any(|s| s == h) {
                    seen.push(h.to_string());
                    inline_headers(dir, h, seen, out)?;
                }
                writeln!(out, "#line {} \"{}\"", i + 2, path.display()).unwrap();
            }
            _ if trimmed == "#pragma once" => out.push('\n'),
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(())
}

/// `extern __shared__ [__align__(n)] T name[];` becomes
/// `T* name = reinterpret_cast<T*>(::cushim::dynamic_shared_memory());` on the same line: C++
/// has no spelling for an unsized per-block array, so the shim hands out the block's buffer.
fn rewrite_dynamic_shared(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        let Some(rest) = trimmed.strip_prefix("extern __shared__") else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let (decl, after) = rest.split_once(';').ok_or_else(|| {
            format!(
                "`{}`: declare dynamic shared memory on one line",
                line.trim()
            )
        })?;
        let mut words: Vec<&str> = decl.split_whitespace().collect();
        words.retain(|w| !w.starts_with("__align__") && !w.starts_with("alignas"));
        let name = words
            .pop()
            .and_then(|w| w.strip_suffix("[]"))
            .ok_or_else(|| format!("`{}`: expected `extern __shared__ T name[];`", line.trim()))?;
        let ty = words.join(" ");
        let indent = &line[..line.len() - trimmed.len()];
        writeln!(
            out,
            "{indent}{ty}* {name} = reinterpret_cast<{ty}*>(::cushim::dynamic_shared_memory());{after}"
        )
        .unwrap();
    }
    Ok(out)
}

/// `text` run through the C preprocessor with `SHIM_CPU` defined, so that kernels stamped by
/// macros appear and kernels behind `#ifndef SHIM_CPU` do not.
fn preprocess(text: &str, file: &str, out: &Path) -> Result<String, String> {
    let src = out.join(format!("emu_scan_{}.cpp", namespace_of(file)));
    fs::write(&src, text).map_err(|e| e.to_string())?;
    let mut cmd = cxx_command();
    cmd.args(["-E", "-P", "-x", "c++", "-std=c++20", "-DSHIM_CPU=1"])
        .arg(&src);
    let output = cmd
        .output()
        .map_err(|e| format!("running the C++ preprocessor: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Names of the `extern "C" ... __global__ ... name(` functions in preprocessed text, in order,
/// each once (a declaration and its definition name the same kernel).
fn kernel_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (at, _) in text.match_indices("extern \"C\"") {
        let rest = &text[at + "extern \"C\"".len()..];
        let head = &rest[..rest.find(['{', ';']).unwrap_or(rest.len())];
        if !head.contains("__global__") {
            continue;
        }
        let head = strip_launch_bounds(head);
        let Some(paren) = head.find('(') else {
            continue;
        };
        let before = head[..paren].trim_end();
        let start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let name = &before[start..];
        if !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

fn strip_launch_bounds(head: &str) -> String {
    let mut out = String::new();
    let mut rest = head;
    while let Some(at) = rest.find("__launch_bounds__") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "__launch_bounds__".len()..];
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// A C++ namespace for a kernel file: `rope-2d.cu` -> `recur_kernels_rope_2d`.
fn namespace_of(file: &str) -> String {
    let stem = file.strip_suffix(".cu").unwrap_or(file);
    let safe: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("recur_kernels_{safe}")
}

/// The macros a unit defines, so they can be undefined after it: one kernel file's `#define N`
/// must not leak into the next file of the same translation unit.
fn defined_macros(text: &str) -> Vec<&str> {
    let mut macros = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix('#') else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix("define") else {
            continue;
        };
        let name_end = rest
            .trim_start()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.trim_start().len());
        let name = &rest.trim_start()[..name_end];
        if !name.is_empty() && !macros.contains(&name) {
            macros.push(name);
        }
    }
    macros
}

fn translation_unit(units: &[CpuUnit]) -> String {
    let mut tu = String::from(
        "// Generated by build.rs: every kernels/*.cu for the CPU emulator.\n\
         #define CUSHIM_DEFINE_C_ABI 1\n#include \"cushim.hpp\"\n",
    );
    for unit in units {
        let ns = namespace_of(&unit.file);
        writeln!(tu, "namespace {ns} {{").unwrap();
        tu.push_str(&unit.text);
        writeln!(tu, "#line 1 \"<registrations of {}>\"", unit.file).unwrap();
        for k in &unit.kernels {
            writeln!(tu, "CUSHIM_REGISTER_KERNEL({k})").unwrap();
        }
        writeln!(tu, "}}  // namespace {ns}").unwrap();
        for m in defined_macros(&unit.text) {
            writeln!(tu, "#undef {m}").unwrap();
        }
    }
    tu
}

fn cxx_build(shim: &Path) -> cc::Build {
    let mut b = cc::Build::new();
    b.cpp(true)
        .std("c++20")
        .opt_level(2)
        .debug(false)
        .warnings(false)
        .include(shim)
        .flag("-pthread")
        // Kernels reinterpret memory freely (two bf16 as one u32, float4 loads), as CUDA allows.
        .flag("-fno-strict-aliasing");
    if std::env::var_os("CARGO_FEATURE_EMU_THREADS").is_some() {
        b.define("CUSHIM_THREADS", "1");
    }
    b
}

fn cxx_command() -> Command {
    cc::Build::new().cpp(true).get_compiler().to_command()
}

fn compile(tu: &Path, shim: &Path, lib: &str, loud: bool) -> Result<(), cc::Error> {
    let mut b = cxx_build(shim);
    b.file(tu).cargo_warnings(loud);
    b.try_compile(lib)
}

/// The compiler's errors for a one-file translation unit, or `None` if it compiles.
fn syntax_errors(tu: &Path, shim: &Path) -> Option<String> {
    let mut cmd = cxx_build(shim).get_compiler().to_command();
    cmd.arg("-fsyntax-only").arg(tu);
    match cmd.output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(String::from_utf8_lossy(&o.stderr).into_owned()),
        Err(e) => Some(format!("running the C++ compiler: {e}")),
    }
}
