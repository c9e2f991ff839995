//! The shim's C ABI (`src/device/emu/shim/registry.hpp`), wrapped in safe functions.

use super::args::Marshalled;
use crate::device::backend::LaunchConfig;
use std::ffi::{c_char, c_int, CStr, CString};

extern "C" {
    fn cushim_launch(
        name: *const c_char,
        grid: *const u32,
        block: *const u32,
        dynamic_shared_bytes: usize,
        args: *mut *mut std::ffi::c_void,
        arg_sizes: *const usize,
        arg_count: usize,
        error: *mut c_char,
        error_capacity: usize,
    ) -> c_int;
    fn cushim_kernel_count() -> usize;
    fn cushim_kernel_name(i: usize) -> *const c_char;
    fn cushim_mode() -> *const c_char;
    fn cushim_set_max_workers(workers: u32);
}

/// Caps the worker threads of every later grid, process-wide (0: one per core).
pub(crate) fn set_max_workers(workers: u32) {
    // SAFETY: stores one integer; no pointers cross.
    unsafe { cushim_set_max_workers(workers) }
}

/// Runs kernel `name` to completion; the shim's message on failure.
pub(crate) fn launch(name: &str, cfg: LaunchConfig, args: &mut Marshalled) -> Result<(), String> {
    let c_name = CString::new(name).map_err(|_| "kernel name contains a NUL byte".to_string())?;
    let grid = [cfg.grid.0, cfg.grid.1, cfg.grid.2];
    let block = [cfg.block.0, cfg.block.1, cfg.block.2];
    let mut error = vec![0 as c_char; 1024];
    let argv = args.argv();
    let sizes = args.sizes();
    // SAFETY: every pointer is valid for the call: the name and arrays are live locals, `argv`
    // points at `sizes.len()` argument values owned by `args`, and the shim checks the argument
    // count and sizes against the kernel's parameters before it reads them. The buffers the
    // values point to are borrowed by the caller for the duration of the launch.
    let status = unsafe {
        cushim_launch(
            c_name.as_ptr(),
            grid.as_ptr(),
            block.as_ptr(),
            cfg.shared_mem_bytes as usize,
            argv,
            sizes.as_ptr(),
            sizes.len(),
            error.as_mut_ptr(),
            error.len(),
        )
    };
    if status == 0 {
        return Ok(());
    }
    // SAFETY: on failure the shim writes a NUL-terminated message within the buffer.
    Err(unsafe { CStr::from_ptr(error.as_ptr()) }
        .to_string_lossy()
        .into_owned())
}

pub(crate) fn mode() -> &'static str {
    // SAFETY: the shim returns a pointer to a static NUL-terminated string.
    unsafe { static_str(cushim_mode()) }
}

pub(crate) fn kernel_names() -> Vec<&'static str> {
    // SAFETY: the registry is filled during static initialisation and never changes after; its
    // names are string literals.
    unsafe {
        (0..cushim_kernel_count())
            .map(|i| static_str(cushim_kernel_name(i)))
            .collect()
    }
}

/// # Safety
/// `p` must point to a NUL-terminated string that lives for the whole program.
unsafe fn static_str(p: *const c_char) -> &'static str {
    CStr::from_ptr(p).to_str().unwrap_or("?")
}
