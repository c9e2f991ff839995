//! What a kernel backend provides: memory and launches. Two implement it: `Cuda` (cudarc, a real
//! GPU) and `Emu` (the same CUDA C compiled for the CPU through the shim), so every kernel test is
//! written once and runs on both.
//!
//! Buffers are untyped bytes; `DeviceTensor` adds shape and dtype on top. Launch arguments follow
//! the driver API's shape (`void** kernelParams`): device pointers and scalars, in the kernel's
//! parameter order.

use crate::device::graph::{unsupported, Graph};
use crate::device::staging::{Event, Staging};
use crate::error::{Error, Result};
use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// Grid, block and dynamic shared memory of one launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchConfig {
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub shared_mem_bytes: u32,
}

impl LaunchConfig {
    /// One-dimensional grid of `blocks` blocks of `threads` threads, no dynamic shared memory.
    pub fn linear(blocks: u32, threads: u32) -> LaunchConfig {
        LaunchConfig {
            grid: (blocks, 1, 1),
            block: (threads, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// Enough `threads`-wide blocks to cover `n` elements with one thread each.
    pub fn for_elements(n: usize, threads: u32) -> LaunchConfig {
        LaunchConfig::linear((n as u32).div_ceil(threads).max(1), threads)
    }

    pub fn with_shared_mem(self, bytes: u32) -> LaunchConfig {
        LaunchConfig {
            shared_mem_bytes: bytes,
            ..self
        }
    }
}

/// A window of device memory owned by one backend: the allocation, a byte offset into it and a
/// length. Cloning or narrowing shares the allocation (a view is free, like a pointer plus an
/// offset on a GPU); the memory is freed when the last view is dropped. The backend keeps its own
/// handle inside (a host allocation for Emu, a pooled block for Cuda) and is the only one that
/// can read it.
///
/// Views alias: two views of one allocation may overlap, exactly as two device pointers may.
/// Kernels that write are still passed their output as `KernelArg::Out`, which documents the
/// write; ordering is the stream's, as on a GPU.
#[derive(Clone)]
pub struct DeviceBuffer {
    alloc: Arc<dyn Any + Send + Sync>,
    offset: usize,
    bytes: usize,
}

impl DeviceBuffer {
    /// Wraps a backend's own handle to `bytes` bytes of device memory.
    pub fn new(bytes: usize, inner: Box<dyn Any + Send + Sync>) -> DeviceBuffer {
        DeviceBuffer {
            alloc: Arc::from(inner),
            offset: 0,
            bytes,
        }
    }
    /// The length of this view in bytes.
    pub fn len_bytes(&self) -> usize {
        self.bytes
    }
    /// Where this view starts inside its allocation, in bytes.
    pub fn offset_bytes(&self) -> usize {
        self.offset
    }
    /// The bytes `[offset, offset + bytes)` of this view, sharing the allocation.
    pub fn view(&self, offset: usize, bytes: usize) -> Result<DeviceBuffer> {
        if offset
            .checked_add(bytes)
            .map_or(true, |end| end > self.bytes)
        {
            return Err(Error::shape(
                "DeviceBuffer::view",
                format!(
                    "bytes {offset}..{} of a {}-byte buffer",
                    offset.saturating_add(bytes),
                    self.bytes
                ),
            ));
        }
        Ok(DeviceBuffer {
            alloc: self.alloc.clone(),
            offset: self.offset + offset,
            bytes,
        })
    }
    /// The backend's handle to the whole allocation, if it is of type `T`. Add `offset_bytes`
    /// to its address for this view's first byte.
    pub fn handle<T: 'static>(&self) -> Option<&T> {
        self.alloc.downcast_ref()
    }
}

impl fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceBuffer({} bytes at +{})", self.bytes, self.offset)
    }
}

/// Errors unless a copy's two buffers have the same length.
pub fn expect_same_length(op: &'static str, dst: &DeviceBuffer, src: &DeviceBuffer) -> Result<()> {
    if dst.len_bytes() != src.len_bytes() {
        return Err(Error::shape(
            op,
            format!(
                "{} destination bytes for {} source bytes",
                dst.len_bytes(),
                src.len_bytes()
            ),
        ));
    }
    Ok(())
}

/// One kernel argument. Buffers a kernel writes are passed as `Out`, so the borrow checker sees
/// the write.
pub enum KernelArg<'a> {
    In(&'a DeviceBuffer),
    Out(&'a mut DeviceBuffer),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F32(f32),
}

/// A device that runs the project's CUDA kernels.
pub trait KernelBackend: Send + Sync {
    /// A human-readable name: "emu (fibers)", "cuda:0 NVIDIA H100 80GB HBM3", ...
    fn name(&self) -> String;
    /// `bytes` bytes of uninitialised device memory.
    fn alloc(&self, bytes: usize) -> Result<DeviceBuffer>;
    /// A new buffer holding a copy of `bytes`.
    fn upload(&self, bytes: &[u8]) -> Result<DeviceBuffer>;
    /// Copies a buffer back to the host (waits for pending work on it).
    fn download(&self, buf: &DeviceBuffer) -> Result<Vec<u8>>;
    /// Launches kernel `name` (its `extern "C"` name) with `args` in parameter order.
    fn launch(&self, name: &str, cfg: LaunchConfig, args: &mut [KernelArg<'_>]) -> Result<()>;
    /// Waits for all launched work.
    fn synchronize(&self) -> Result<()>;
    /// Sets every byte of `buf` to `byte`, in stream order (a capturable memset node on Cuda).
    fn memset(&self, buf: &mut DeviceBuffer, byte: u8) -> Result<()>;
    /// Copies `src` into `dst` (same length), device to device, in stream order.
    fn copy(&self, dst: &mut DeviceBuffer, src: &DeviceBuffer) -> Result<()>;
    /// Told when an op on a kernel tape ran the CPU reference instead (`op` names it). Real
    /// backends ignore it; the counting wrapper (`device::counting`) counts it, so a training
    /// step can be shown to have none.
    fn note_fallback(&self, _op: &'static str) {}

    /// Milliseconds that `work` takes on the device: wall clock between two synchronisations
    /// (`wall_clock_ms`). Backends with device events override this with event timing.
    fn time_ms(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        wall_clock_ms(self, work)
    }

    // ---- CUDA graphs (`device::graph`, `device::staging`, docs/graphs.md) ----------------------
    //
    // The defaults say the backend cannot capture, so a backend without graphs still compiles
    // and a caller learns why instead of silently running eagerly.

    /// Starts capturing: from now until `end_capture`, `launch`, `memset`, `copy` and
    /// `upload_staged` are recorded into a graph and NOT executed. `alloc`, `upload`, `download`,
    /// `synchronize`, `time_ms`, `wait_event`, `record_event` and `replay` are errors naming the
    /// call, and they invalidate the capture so `end_capture` reports the first of them.
    fn begin_capture(&self) -> Result<()> {
        Err(unsupported(self.name(), "begin_capture"))
    }
    /// Ends the capture: the recorded graph, or why the capture failed.
    fn end_capture(&self) -> Result<Graph> {
        Err(unsupported(self.name(), "end_capture"))
    }
    /// Runs a graph this backend captured, in stream order, with the addresses and scalar
    /// arguments frozen at capture and the memory contents (device buffers, staging) of now.
    fn replay(&self, _graph: &Graph) -> Result<()> {
        Err(unsupported(self.name(), "replay"))
    }
    /// A host staging buffer of `bytes` bytes (pinned on Cuda) for `upload_staged`; its contents
    /// start undefined (poisoned on Emu).
    fn alloc_staging(&self, _bytes: usize) -> Result<Staging> {
        Err(unsupported(self.name(), "alloc_staging"))
    }
    /// Copies all of `src` into `dst` (same length), host to device, in stream order. Captured,
    /// it becomes a copy node that reads `src` when the graph runs.
    fn upload_staged(&self, _dst: &mut DeviceBuffer, _src: &Staging) -> Result<()> {
        Err(unsupported(self.name(), "upload_staged"))
    }
    /// Marks the current end of the stream, for `wait_event`.
    fn record_event(&self) -> Result<Event> {
        Err(unsupported(self.name(), "record_event"))
    }
    /// Blocks the host until the stream has passed `event` (only that far: later work may still
    /// be running), e.g. before rewriting a staging slot that an earlier replay copies from.
    fn wait_event(&self, _event: &Event) -> Result<()> {
        Err(unsupported(self.name(), "wait_event"))
    }
}

/// Milliseconds `work` takes between two synchronisations of `dev`, by the host's clock.
pub fn wall_clock_ms<B: KernelBackend + ?Sized>(
    dev: &B,
    work: &mut dyn FnMut() -> Result<()>,
) -> Result<f64> {
    dev.synchronize()?;
    let start = std::time::Instant::now();
    work()?;
    dev.synchronize()?;
    Ok(start.elapsed().as_secs_f64() * 1e3)
}
