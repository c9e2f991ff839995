//! What a kernel backend provides: memory and launches. Two implement it: `Cuda` (cudarc, a real
//! GPU) and `Emu` (the same CUDA C compiled for the CPU through the shim), so every kernel test is
//! written once and runs on both.
//!
//! Buffers are untyped bytes; `DeviceTensor` adds shape and dtype on top. Launch arguments follow
//! the driver API's shape (`void** kernelParams`): device pointers and scalars, in the kernel's
//! parameter order.

use crate::error::Result;
use std::any::Any;
use std::fmt;

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

/// Device memory owned by one backend. The backend keeps its own handle inside (a host
/// allocation for Emu, a `CudaSlice` for Cuda) and is the only one that can read it.
pub struct DeviceBuffer {
    bytes: usize,
    inner: Box<dyn Any + Send + Sync>,
}

impl DeviceBuffer {
    /// Wraps a backend's own handle to `bytes` bytes of device memory.
    pub fn new(bytes: usize, inner: Box<dyn Any + Send + Sync>) -> DeviceBuffer {
        DeviceBuffer { bytes, inner }
    }
    pub fn len_bytes(&self) -> usize {
        self.bytes
    }
    /// The backend's handle, if it is of type `T`.
    pub fn handle<T: 'static>(&self) -> Option<&T> {
        self.inner.downcast_ref()
    }
    pub fn handle_mut<T: 'static>(&mut self) -> Option<&mut T> {
        self.inner.downcast_mut()
    }
}

impl fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceBuffer({} bytes)", self.bytes)
    }
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

    /// Milliseconds that `work` takes on the device: wall clock between two synchronisations.
    /// Backends with device events override this with event timing.
    fn time_ms(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        self.synchronize()?;
        let start = std::time::Instant::now();
        work()?;
        self.synchronize()?;
        Ok(start.elapsed().as_secs_f64() * 1e3)
    }
}
