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
mod capture;
mod ffi;
mod memory;

use crate::device::backend::{wall_clock_ms, DeviceBuffer, KernelArg, KernelBackend, LaunchConfig};
use crate::device::graph::{CaptureSession, Graph};
use crate::device::staging::{Event, Staging};
use crate::error::{Error, Result};
use capture::{EmuGraph, Node};
use memory::HostMemory;
use std::fmt;

include!(concat!(env!("OUT_DIR"), "/emu_build.rs"));

/// The CPU emulator backend. Its only state is its graph capture: every launch is otherwise
/// self-contained, so it is cheap to create and can be shared between threads.
pub struct Emu {
    capture: CaptureSession<Node>,
}

/// Caps Emu's worker threads for the whole process (see `Emu::set_max_workers`): set it to 1 in
/// a run that must repeat bit for bit (`recur train --device emu` twice, `--graph on` against
/// `--graph off`).
pub const EMU_WORKERS_VAR: &str = "RECUR_EMU_WORKERS";

impl Default for Emu {
    fn default() -> Emu {
        static FROM_ENV: std::sync::Once = std::sync::Once::new();
        FROM_ENV.call_once(|| {
            if let Some(n) = std::env::var(EMU_WORKERS_VAR)
                .ok()
                .and_then(|v| v.trim().parse().ok())
            {
                Emu::set_max_workers(n);
            }
        });
        Emu {
            capture: CaptureSession::new("emu"),
        }
    }
}

impl fmt::Debug for Emu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Emu({})", Emu::mode())
    }
}

impl Emu {
    /// Always succeeds: the kernels are linked into the binary.
    pub fn new() -> Result<Emu> {
        Ok(Emu::default())
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

    /// Runs `node` now, or records it while capturing. A node that cannot be built (a foreign
    /// buffer, mismatched lengths) invalidates a capture in progress, as it would fail a GPU's.
    fn submit(&self, node: Result<Node>) -> Result<()> {
        let node = node.map_err(|e| self.capture.invalidate(e))?;
        match self.capture.record(node) {
            Some(node) => node.run(),
            None => Ok(()),
        }
    }
}

/// Runs kernel `name` to completion on the shim; an unknown name's error lists the kernel files
/// that failed to compile for the CPU, the likely reason.
fn launch_now(name: &str, cfg: LaunchConfig, args: &mut args::Marshalled) -> Result<()> {
    ffi::launch(name, cfg, args).map_err(|msg| {
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

/// Emu's `Event`: its stream work is synchronous, so an event has always passed.
struct PassedEvent;

impl KernelBackend for Emu {
    fn name(&self) -> String {
        format!("emu ({})", Emu::mode())
    }

    fn alloc(&self, bytes: usize) -> Result<DeviceBuffer> {
        // Allowed while capturing, as a GPU allows what its caching pool serves: the nodes that
        // use the buffer keep it alive, so replays write the same memory.
        Ok(DeviceBuffer::new(
            bytes,
            Box::new(HostMemory::poisoned(bytes)),
        ))
    }

    fn upload(&self, bytes: &[u8]) -> Result<DeviceBuffer> {
        self.capture.refuse_upload(bytes.len())?;
        Ok(DeviceBuffer::new(
            bytes.len(),
            Box::new(HostMemory::from_bytes(bytes)),
        ))
    }

    fn download(&self, buf: &DeviceBuffer) -> Result<Vec<u8>> {
        self.capture.refuse_download(buf.len_bytes())?;
        Ok(Emu::memory(buf)?.read(buf.offset_bytes(), buf.len_bytes()))
    }

    fn launch(&self, name: &str, cfg: LaunchConfig, args: &mut [KernelArg<'_>]) -> Result<()> {
        self.submit(Node::launch(name, cfg, args))
    }

    fn synchronize(&self) -> Result<()> {
        // Launches run to completion before they return, so there is nothing to wait for; but a
        // captured step must not synchronise on a GPU, so it must not here either.
        self.capture.refuse_wait("synchronize")
    }

    fn memset(&self, buf: &mut DeviceBuffer, byte: u8) -> Result<()> {
        self.submit(Node::memset(buf, byte))
    }

    fn copy(&self, dst: &mut DeviceBuffer, src: &DeviceBuffer) -> Result<()> {
        self.submit(Node::copy(dst, src))
    }

    fn time_ms(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        self.capture.refuse_wait("time_ms")?;
        wall_clock_ms(self, work)
    }

    fn begin_capture(&self) -> Result<()> {
        self.capture.begin()
    }

    fn end_capture(&self) -> Result<Graph> {
        let nodes = self.capture.end()?;
        Ok(Graph::new(Box::new(EmuGraph { nodes })))
    }

    fn replay(&self, graph: &Graph) -> Result<()> {
        self.capture.refuse_in_graph("replay")?;
        graph
            .handle::<EmuGraph>()
            .ok_or_else(|| Error::arg("emu replay", "graph captured by another backend"))?
            .replay()
    }

    fn alloc_staging(&self, bytes: usize) -> Result<Staging> {
        // Staging is host memory, not device memory, so it may be allocated at any time; but a
        // captured step allocating anything is a bug on a GPU (cuMemHostAlloc is not capturable).
        self.capture.refuse_alloc(bytes)?;
        let memory = HostMemory::poisoned(bytes);
        let ptr = memory.device_ptr(0);
        // SAFETY: `ptr` is the start of `memory`'s `bytes` bytes, a boxed slice whose address does
        // not change when the `HostMemory` moves into the box; only the staging touches it.
        Ok(unsafe { Staging::new(ptr, bytes, Box::new(memory)) })
    }

    fn upload_staged(&self, dst: &mut DeviceBuffer, src: &Staging) -> Result<()> {
        self.submit(Node::staged_upload(dst, src))
    }

    fn record_event(&self) -> Result<Event> {
        self.capture.refuse_in_graph("record_event")?;
        Ok(Event::new(Box::new(PassedEvent)))
    }

    fn wait_event(&self, event: &Event) -> Result<()> {
        self.capture.refuse_wait("wait_event")?;
        event
            .handle::<PassedEvent>()
            .map(|_| ())
            .ok_or_else(|| Error::arg("emu wait_event", "event of another backend"))
    }
}
