//! The CUDA backend: the project's kernels on a real GPU through cudarc.
//!
//! - `Cuda::new` never panics: without the driver library, a GPU or NVRTC it returns an error
//!   that names what is missing and how to get it (cudarc itself panics on a missing library).
//! - One compute stream made with `new_stream`, with cudarc's per-buffer event tracking off:
//!   the legacy default stream cannot be captured into a CUDA graph, and tracking events would
//!   leak into captures. All work is ordered on that one stream.
//! - Memory comes from a caching allocator (`allocator`); kernels are compiled by NVRTC from
//!   `kernels::expand_includes(file)` on first use of a file and cached in memory and on disk
//!   (`image_cache`), then looked up by name (`modules`).
//! - Nothing in `alloc` (once warm) or `launch` reads back from the device, so a whole training
//!   step can be captured as a CUDA graph (`graph`; pinned staging and events: `staging`). While
//!   capturing, `alloc` is refused before the caching allocator is reached, so the pool never
//!   calls `cuMemAlloc` inside a capture.
//!
//! NVRTC is found through `RECUR_NVRTC_DIR` or the loader's default search (`libraries`).

pub mod allocator;
pub mod cublaslt;
pub(crate) mod graph;
pub mod image_cache;
pub mod kernel_report;
pub mod launch;
pub mod libraries;
pub mod modules;
pub mod nvrtc;
pub mod resources;
mod staging;

use crate::device::backend::{DeviceBuffer, KernelArg, KernelBackend, LaunchConfig};
use crate::device::graph::{CaptureSession, Graph};
use crate::device::staging::{Event, Staging};
use crate::error::{Error, Result};
use allocator::{CachingAllocator, PooledBlock};
use cudarc::driver::{result as driver, sys, CudaContext, CudaStream};
use graph::KeptAlive;
use modules::KernelRegistry;
use std::sync::Arc;

/// The crate error for a CUDA-side failure (missing library, driver error, compile error).
pub(crate) fn cuda_error(msg: impl Into<String>) -> Error {
    Error::device("cuda", msg)
}

/// The device address of a view's first byte, if the buffer is CUDA memory.
pub(crate) fn device_address(buf: &DeviceBuffer) -> Option<u64> {
    buf.handle::<PooledBlock>()
        .map(|block| block.device_ptr() + buf.offset_bytes() as u64)
}

/// What `recur info` says about a GPU.
#[derive(Clone, Debug)]
pub struct DeviceFacts {
    pub ordinal: usize,
    pub name: String,
    pub compute_capability: (i32, i32),
    pub multiprocessors: i32,
    pub memory_bytes: usize,
    /// The CUDA version the driver supports, e.g. (13, 0).
    pub driver_version: (i32, i32),
}

impl DeviceFacts {
    /// Asks the driver about GPU `ordinal`; needs libcuda but not NVRTC.
    pub fn query(ordinal: usize) -> Result<DeviceFacts> {
        libraries::driver().map_err(cuda_error)?;
        let err = |what: &str| {
            let what = what.to_string();
            move |e: driver::DriverError| cuda_error(format!("no GPU: {what}: {e}"))
        };
        driver::init().map_err(err("cuInit"))?;
        let count = driver::device::get_count().map_err(err("cuDeviceGetCount"))?;
        if ordinal >= count.max(0) as usize {
            return Err(cuda_error(format!(
                "no GPU {ordinal}: the driver sees {count} device(s)"
            )));
        }
        let device = driver::device::get(ordinal as i32).map_err(err("cuDeviceGet"))?;
        // Safety: `device` is a valid handle from cuDeviceGet.
        let attribute = |a: sys::CUdevice_attribute| unsafe {
            driver::device::get_attribute(device, a).map_err(err("cuDeviceGetAttribute"))
        };
        use sys::CUdevice_attribute as A;
        let mut version = 0;
        // Safety: plain out-parameter call into the loaded driver.
        unsafe { sys::cuDriverGetVersion(&mut version) }
            .result()
            .map_err(err("cuDriverGetVersion"))?;
        Ok(DeviceFacts {
            ordinal,
            name: driver::device::get_name(device).map_err(err("cuDeviceGetName"))?,
            compute_capability: (
                attribute(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
                attribute(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
            ),
            multiprocessors: attribute(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
            // Safety: as above.
            memory_bytes: unsafe { driver::device::total_mem(device) }
                .map_err(err("cuDeviceTotalMem"))?,
            driver_version: (version / 1000, version % 1000 / 10),
        })
    }
}

/// A GPU running the project's kernels.
pub struct Cuda {
    facts: DeviceFacts,
    /// The NVRTC target its kernels are compiled for (`sm_90`, or `compute_XX` PTX for a device
    /// newer than NVRTC).
    arch: String,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    allocator: Arc<CachingAllocator>,
    kernels: KernelRegistry,
    /// The graph capture in progress on `stream`, if any, and what it keeps alive (shared with
    /// `CublasLt`, whose matmuls on this stream are captured too).
    capture: Arc<CaptureSession<KeptAlive>>,
    /// The private memory pool of the capture in progress (`allocator::CapturePool`).
    capture_pool: std::sync::Mutex<Option<Arc<allocator::CapturePool>>>,
}

impl Cuda {
    /// Opens GPU `ordinal`, or says why it cannot (no driver, no such GPU, no NVRTC).
    pub fn new(ordinal: usize) -> Result<Cuda> {
        let facts = DeviceFacts::query(ordinal)?;
        let nvrtc = libraries::nvrtc().map_err(cuda_error)?;
        let arch = nvrtc::target_for_device(facts.compute_capability, &nvrtc.supported_archs)?;
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| cuda_error(format!("cannot create a context on GPU {ordinal}: {e}")))?;
        // Safety: called before any allocation or stream exists on this context.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx
            .new_stream()
            .map_err(|e| cuda_error(format!("cannot create a stream: {e}")))?;
        Ok(Cuda {
            kernels: KernelRegistry::new(ctx.clone(), arch.clone()),
            allocator: CachingAllocator::new(stream.clone()),
            facts,
            arch,
            ctx,
            stream,
            capture: Arc::new(CaptureSession::new("cuda")),
            capture_pool: std::sync::Mutex::default(),
        })
    }

    pub fn facts(&self) -> &DeviceFacts {
        &self.facts
    }

    /// The NVRTC target kernels are compiled for.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// Device memory in use on this GPU, by every process and context (`cuMemGetInfo`: total
    /// minus free). The allocator does not track a peak; `recur bench step` reports the growth of
    /// this across a benchmark, which the caching allocator (it keeps what it freed) makes at
    /// least the peak its blocks reached.
    pub fn memory_used_bytes(&self) -> Result<usize> {
        let (free, total) = self.driver_call("cuMemGetInfo", self.ctx.mem_get_info())?;
        Ok(total.saturating_sub(free))
    }

    /// Device memory held by the allocator's free lists.
    pub fn cached_bytes(&self) -> usize {
        self.allocator.cached_bytes()
    }

    fn address(&self, buf: &DeviceBuffer) -> Result<u64> {
        device_address(buf)
            .ok_or_else(|| cuda_error("a buffer of another backend was given to CUDA"))
    }

    fn driver_call<T>(&self, what: &str, result: Result<T, driver::DriverError>) -> Result<T> {
        result.map_err(|e| cuda_error(format!("{what} on {}: {e}", self.name())))
    }
}

impl KernelBackend for Cuda {
    fn name(&self) -> String {
        format!("cuda:{} {}", self.facts.ordinal, self.facts.name)
    }

    fn alloc(&self, bytes: usize) -> Result<DeviceBuffer> {
        // While capturing, only the capture's private pool or the shared cache may serve (the
        // driver's allocation is not capturable); the eager step before a capture leaves the
        // step's blocks in the cache, and the graph then owns what its capture took.
        if self.capture.is_capturing() {
            let pool = self.lock_capture_pool().clone();
            let block = pool.and_then(|pool| self.allocator.allocate_in_capture(bytes, &pool));
            return match block {
                Some(block) => Ok(DeviceBuffer::new(bytes, Box::new(block))),
                None => self
                    .capture
                    .refuse_alloc(bytes)
                    .map(|()| unreachable!("refused")),
            };
        }
        let block = self.allocator.allocate(bytes)?;
        Ok(DeviceBuffer::new(bytes, Box::new(block)))
    }

    fn upload(&self, bytes: &[u8]) -> Result<DeviceBuffer> {
        self.capture.refuse_upload(bytes.len())?;
        let buf = self.alloc(bytes.len())?;
        if !bytes.is_empty() {
            let dst = self.address(&buf)?;
            // Safety: `dst` holds `bytes.len()` bytes (just allocated). `bytes` is pageable, so the
            // driver returns only once it has staged the source: the caller may drop it at once.
            let copied = unsafe { driver::memcpy_htod_async(dst, bytes, self.stream.cu_stream()) };
            self.driver_call("copying to the device", copied)?;
        }
        Ok(buf)
    }

    fn download(&self, buf: &DeviceBuffer) -> Result<Vec<u8>> {
        self.capture.refuse_download(buf.len_bytes())?;
        let mut host = vec![0u8; buf.len_bytes()];
        if !host.is_empty() {
            let src = self.address(buf)?;
            // Safety: `src` holds `host.len()` bytes (the view's length); we synchronise before
            // `host` is read or dropped.
            let copied =
                unsafe { driver::memcpy_dtoh_async(&mut host, src, self.stream.cu_stream()) };
            self.driver_call("copying from the device", copied)?;
        }
        self.synchronize()?;
        Ok(host)
    }

    fn memset(&self, buf: &mut DeviceBuffer, byte: u8) -> Result<()> {
        self.stream_op(|| {
            if buf.len_bytes() == 0 {
                return Ok(());
            }
            let dst = self.address(buf)?;
            // Safety: the view's bytes lie inside its live allocation.
            let set = unsafe {
                driver::memset_d8_async(dst, byte, buf.len_bytes(), self.stream.cu_stream())
            };
            self.driver_call("setting device memory", set)?;
            self.keep_alive(KeptAlive::Buffer(buf.clone()));
            Ok(())
        })
    }

    fn copy(&self, dst: &mut DeviceBuffer, src: &DeviceBuffer) -> Result<()> {
        self.stream_op(|| {
            crate::device::backend::expect_same_length("cuda copy", dst, src)?;
            if src.len_bytes() == 0 {
                return Ok(());
            }
            let (to, from) = (self.address(dst)?, self.address(src)?);
            // Safety: both views lie inside live allocations of `len_bytes` bytes.
            let copied = unsafe {
                driver::memcpy_dtod_async(to, from, src.len_bytes(), self.stream.cu_stream())
            };
            self.driver_call("copying on the device", copied)?;
            self.keep_alive(KeptAlive::Buffer(dst.clone()));
            self.keep_alive(KeptAlive::Buffer(src.clone()));
            Ok(())
        })
    }

    fn launch(&self, name: &str, cfg: LaunchConfig, args: &mut [KernelArg<'_>]) -> Result<()> {
        self.stream_op(|| {
            launch::check_config(name, &cfg)?;
            let params = launch::param_values(name, args)?;
            let function = self.kernels.kernel(name, cfg.shared_mem_bytes)?;
            launch::enqueue(&self.stream, name, &function, &cfg, &params)?;
            self.keep_args_alive(args);
            Ok(())
        })
    }

    fn synchronize(&self) -> Result<()> {
        self.capture.refuse_wait("synchronize")?;
        let done = self.stream.synchronize();
        self.driver_call("waiting for the stream", done)
    }

    /// Device time between two events around `work`, which is what kernels cost without the
    /// host's launch overhead and timer noise.
    fn time_ms(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        self.capture.refuse_wait("time_ms")?;
        let timed_event = || {
            let event = self
                .ctx
                .new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT));
            self.driver_call("creating an event", event)
        };
        let (start, stop) = (timed_event()?, timed_event()?);
        self.driver_call("recording an event", start.record(&self.stream))?;
        work()?;
        self.driver_call("recording an event", stop.record(&self.stream))?;
        self.driver_call("waiting for an event", stop.synchronize())?;
        let elapsed = start.elapsed_ms(&stop);
        Ok(self.driver_call("reading an event", elapsed)? as f64)
    }

    fn begin_capture(&self) -> Result<()> {
        self.begin_stream_capture()
    }
    fn end_capture(&self) -> Result<Graph> {
        self.end_stream_capture()
    }
    fn replay(&self, graph: &Graph) -> Result<()> {
        self.launch_graph(graph)
    }
    fn alloc_staging(&self, bytes: usize) -> Result<Staging> {
        self.alloc_pinned_staging(bytes)
    }
    fn upload_staged(&self, dst: &mut DeviceBuffer, src: &Staging) -> Result<()> {
        self.stream_op(|| self.copy_from_staging(dst, src))
    }
    fn record_event(&self) -> Result<Event> {
        self.record_stream_event()
    }
    fn wait_event(&self, event: &Event) -> Result<()> {
        self.wait_stream_event(event)
    }
}
