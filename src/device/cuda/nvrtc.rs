//! One NVRTC compilation: a kernel file's expanded source to PTX and, for a real architecture
//! (`sm_XX`), a CUBIN, with NVRTC's log (which carries ptxas's `-v` report when asked).
//!
//! The raw `nvrtc::sys` API is used instead of cudarc's `compile_ptx_with_opts` because that
//! drops the log on success and never returns a CUBIN.
//!
//! Options, shared by run-time compiles and the kernel gate so the gate measures what runs:
//! - `--std=c++17`, `-lineinfo` (source lines in profilers and compute-sanitizer reports, no
//!   code change);
//! - no `--use_fast_math`: it silently turns `expf`, `/` and `sqrtf` into approximations and
//!   flushes denormals, which the CPU emulator does not model, so Emu and the GPU would disagree
//!   by more than the f32 tolerance in places nobody asked for speed. Kernels that want the fast
//!   forms call `__expf`, `__fdividef`, `rsqrtf` explicitly, and both backends then agree on
//!   where approximations are. (NVRTC's default `--fmad=true` stays on.)

use crate::device::cuda::cuda_error;
use crate::device::cuda::libraries;
use crate::error::Result;
use cudarc::nvrtc::sys as nv;
use std::ffi::{c_char, CString};

/// Options every compile gets, besides `--gpu-architecture`.
pub const BASE_OPTIONS: &[&str] = &["--std=c++17", "-lineinfo"];
/// Added by the kernel gate and `recur info --kernels`: ptxas's resource report in the log.
pub const PTXAS_VERBOSE: &str = "--ptxas-options=-v";

/// What NVRTC produced for one file.
#[derive(Clone, Debug)]
pub struct CompiledUnit {
    pub ptx: String,
    /// Machine code, present when the target was a real architecture (`sm_XX`).
    pub cubin: Option<Vec<u8>>,
    /// NVRTC's log: warnings, and ptxas's report when `PTXAS_VERBOSE` was passed.
    pub log: String,
}

/// Compiles `source` (a complete translation unit, includes already expanded) for `arch`
/// (`sm_90`, `compute_90`, ...). `unit` names the file in diagnostics. A compile error comes
/// back as an `Err` holding NVRTC's whole log.
pub fn compile(
    unit: &str,
    source: &str,
    arch: &str,
    extra_options: &[&str],
) -> Result<CompiledUnit> {
    libraries::nvrtc().map_err(cuda_error)?;
    let c_source =
        CString::new(source).map_err(|_| cuda_error(format!("{unit}: NUL byte in source")))?;
    let c_unit =
        CString::new(unit).map_err(|_| cuda_error(format!("{unit:?}: NUL byte in name")))?;
    let options: Vec<CString> = std::iter::once(format!("--gpu-architecture={arch}"))
        .chain(BASE_OPTIONS.iter().map(|o| o.to_string()))
        .chain(extra_options.iter().map(|o| o.to_string()))
        .map(|o| CString::new(o).expect("options have no NUL bytes"))
        .collect();
    let option_ptrs: Vec<*const c_char> = options.iter().map(|o| o.as_ptr()).collect();

    let program = Program::create(&c_source, &c_unit)?;
    // Safety: the program is live; the option pointers outlive the call.
    let status = unsafe {
        nv::nvrtcCompileProgram(program.0, option_ptrs.len() as i32, option_ptrs.as_ptr())
    };
    let log = program.log()?;
    if status != nv::nvrtcResult::NVRTC_SUCCESS {
        return Err(cuda_error(format!(
            "NVRTC could not compile {unit} for {arch} ({status:?}):\n{log}"
        )));
    }
    let ptx = String::from_utf8_lossy(trim_nul(&program.ptx()?)).into_owned();
    let cubin = if arch.starts_with("sm_") {
        Some(program.cubin()?)
    } else {
        None
    };
    Ok(CompiledUnit { ptx, cubin, log })
}

/// Compiles to machine code for a real architecture with ptxas's report: (CUBIN, log).
pub fn compile_cubin(unit: &str, source: &str, arch: &str) -> Result<(Vec<u8>, String)> {
    if !arch.starts_with("sm_") {
        return Err(cuda_error(format!(
            "{arch} is not a real architecture (sm_XX)"
        )));
    }
    let compiled = compile(unit, source, arch, &[PTXAS_VERBOSE])?;
    let cubin = compiled
        .cubin
        .expect("a real architecture always yields a CUBIN");
    Ok((cubin, compiled.log))
}

/// The target to compile for on a device of compute capability `cc`: its own `sm_XX` when NVRTC
/// knows it, otherwise PTX for the newest architecture NVRTC knows below it (the driver JITs that
/// forward).
pub fn target_for_device(cc: (i32, i32), nvrtc_archs: &[i32]) -> Result<String> {
    let wanted = cc.0 * 10 + cc.1;
    if nvrtc_archs.contains(&wanted) {
        return Ok(format!("sm_{wanted}"));
    }
    nvrtc_archs
        .iter()
        .copied()
        .filter(|&a| a <= wanted)
        .max()
        .map(|a| format!("compute_{a}"))
        .ok_or_else(|| {
            cuda_error(format!(
                "NVRTC supports none of the architectures up to sm_{wanted} (it knows {nvrtc_archs:?})"
            ))
        })
}

/// An NVRTC program, destroyed on drop.
struct Program(nv::nvrtcProgram);

impl Program {
    fn create(source: &CString, name: &CString) -> Result<Program> {
        let mut program: nv::nvrtcProgram = std::ptr::null_mut();
        // Safety: valid C strings; no headers are passed (includes are expanded beforehand).
        let status = unsafe {
            nv::nvrtcCreateProgram(
                &mut program,
                source.as_ptr(),
                name.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        check(status, "nvrtcCreateProgram")?;
        Ok(Program(program))
    }

    fn log(&self) -> Result<String> {
        let mut size = 0;
        // Safety: the program is live; the buffer has the size NVRTC reported.
        let bytes = unsafe {
            check(
                nv::nvrtcGetProgramLogSize(self.0, &mut size),
                "nvrtcGetProgramLogSize",
            )?;
            let mut buf = vec![0u8; size.max(1)];
            check(
                nv::nvrtcGetProgramLog(self.0, buf.as_mut_ptr().cast()),
                "nvrtcGetProgramLog",
            )?;
            buf
        };
        Ok(String::from_utf8_lossy(trim_nul(&bytes)).into_owned())
    }

    fn ptx(&self) -> Result<Vec<u8>> {
        let mut size = 0;
        // Safety: as in `log`.
        unsafe {
            check(nv::nvrtcGetPTXSize(self.0, &mut size), "nvrtcGetPTXSize")?;
            let mut buf = vec![0u8; size];
            check(
                nv::nvrtcGetPTX(self.0, buf.as_mut_ptr().cast()),
                "nvrtcGetPTX",
            )?;
            Ok(buf)
        }
    }

    fn cubin(&self) -> Result<Vec<u8>> {
        let mut size = 0;
        // Safety: as in `log`.
        unsafe {
            check(
                nv::nvrtcGetCUBINSize(self.0, &mut size),
                "nvrtcGetCUBINSize",
            )?;
            let mut buf = vec![0u8; size];
            check(
                nv::nvrtcGetCUBIN(self.0, buf.as_mut_ptr().cast()),
                "nvrtcGetCUBIN",
            )?;
            Ok(buf)
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        // Safety: created by nvrtcCreateProgram and destroyed once. A failure here leaks a
        // program, which is harmless.
        unsafe {
            nv::nvrtcDestroyProgram(&mut self.0);
        }
    }
}

fn check(status: nv::nvrtcResult, call: &str) -> Result<()> {
    if status == nv::nvrtcResult::NVRTC_SUCCESS {
        Ok(())
    } else {
        Err(cuda_error(format!("{call} failed: {status:?}")))
    }
}

fn trim_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_nvrtc_knows_gets_its_own_machine_code() {
        assert_eq!(
            target_for_device((9, 0), &[75, 80, 90, 100]).unwrap(),
            "sm_90"
        );
    }

    #[test]
    fn a_device_newer_than_nvrtc_gets_ptx_of_the_newest_older_architecture() {
        assert_eq!(
            target_for_device((12, 1), &[75, 80, 90, 100]).unwrap(),
            "compute_100"
        );
    }

    #[test]
    fn a_device_older_than_every_nvrtc_architecture_is_an_error() {
        assert!(target_for_device((6, 1), &[75, 80, 90]).is_err());
    }
}
