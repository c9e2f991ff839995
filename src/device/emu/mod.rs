//! `Emu`: the project's CUDA kernels run on the CPU, so every kernel is tested on machines without
//! a GPU. `build.rs` compiles each `kernels/*.cu` against the C++ shim `cushim.hpp` (CUDA's
//! built-in variables, shared memory, barriers, warp operations, atomics and math on the host)
//! into a static library; `Emu` launches its kernels by name through the shim's C ABI.
//!
//! Device memory is host memory, so device pointers are host pointers and a launch returns when
//! the grid has finished. A barrier that not every thread of a block reaches ends the launch with
//! an error naming the block, never a hang. Modes, limits and the ThreadSanitizer check:
//! `docs/emu.md`.

mod args;
mod ffi;
mod memory;

use crate::device::backend::{
    expect_same_length, DeviceBuffer, KernelArg, KernelBackend, LaunchConfig,
};
use crate::error::{Error, Result};
use memory::HostMemory;

include!(concat!(env!("OUT_DIR"), "/emu_build.rs"));

/// The CPU emulator backend. Stateless: every launch is self-contained, so it is cheap to create
/// and can be shared between threads.
#[derive(Debug, Default, Clone, Copy)]
pub struct Emu;

impl Emu {
    /// Always succeeds: the kernels are linked into the binary.
    pub fn new() -> Result<Emu> {
        Ok(Emu)
    }

    /// `"fibers"` (the default) or `"threads"` (the `emu-threads` feature).
    pub fn mode() -> &'static str {
        ffi::mode()
    }

    /// Caps the worker threads every later launch uses, for the whole process (0, the default:
    /// one per core). With one worker the blocks run in order, so kernels with float atomics (the
    /// embedding gradient) add in a fixed order and a run repeats bit for bit: what tests that
    /// compare two runs exactly (resumed against straight, replayed against eager) need. Other
    /// tests in the process only run slower meanwhile.
    pub fn set_max_workers(workers: u32) {
        ffi::set_max_workers(workers)
    }

    /// The `extern "C"` names of every kernel compiled for the CPU.
    pub fn kernel_names() -> Vec<&'static str> {
        ffi::kernel_names()
    }

    /// Kernel files left out of the CPU build because they failed to compile, with the
    /// compiler's errors.
    pub fn excluded_files() -> &'static [(&'static str, &'static str)] {
        EMU_EXCLUDED
    }

    fn memory(buf: &DeviceBuffer) -> Result<&HostMemory> {
        buf.handle::<HostMemory>()
            .ok_or_else(|| Error::arg("emu", "buffer belongs to another backend"))
    }
}

impl KernelBackend for Emu {
    fn name(&self) -> String {
        format!("emu ({})", Emu::mode())
    }

    fn alloc(&self, bytes: usize) -> Result<DeviceBuffer> {
        Ok(DeviceBuffer::new(
            bytes,
            Box::new(HostMemory::poisoned(bytes)),
        ))
    }

    fn upload(&self, bytes: &[u8]) -> Result<DeviceBuffer> {
        Ok(DeviceBuffer::new(
            bytes.len(),
            Box::new(HostMemory::from_bytes(bytes)),
        ))
    }

    fn download(&self, buf: &DeviceBuffer) -> Result<Vec<u8>> {
        Ok(Emu::memory(buf)?.read(buf.offset_bytes(), buf.len_bytes()))
    }

    fn launch(&self, name: &str, cfg: LaunchConfig, args: &mut [KernelArg<'_>]) -> Result<()> {
        let mut marshalled = args::Marshalled::new(args)?;
        ffi::launch(name, cfg, &mut marshalled).map_err(|msg| {
            let mut msg = format!("{name}: {msg}");
            if msg.contains("no kernel named") && !EMU_EXCLUDED.is_empty() {
                let files: Vec<&str> = EMU_EXCLUDED.iter().map(|(f, _)| *f).collect();
                msg.push_str(&format!(
                    " (these kernel files failed to compile for the CPU and are left out: {}; \
                     Emu::excluded_files() has the compiler errors)",
                    files.join(", ")
                ));
            }
            Error::device("emu", msg)
        })
    }

    fn synchronize(&self) -> Result<()> {
        Ok(()) // launches run to completion before they return
    }

    fn memset(&self, buf: &mut DeviceBuffer, byte: u8) -> Result<()> {
        let mem = Emu::memory(buf)?;
        // SAFETY: launches run to completion before they return, so none is running now.
        unsafe { mem.fill(buf.offset_bytes(), buf.len_bytes(), byte) };
        Ok(())
    }

    fn copy(&self, dst: &mut DeviceBuffer, src: &DeviceBuffer) -> Result<()> {
        expect_same_length("emu copy", dst, src)?;
        let bytes = Emu::memory(src)?.read(src.offset_bytes(), src.len_bytes());
        // SAFETY: as in `memset`.
        unsafe { Emu::memory(dst)?.write(dst.offset_bytes(), &bytes) };
        Ok(())
    }
}
