//! Pinned staging and events on Cuda.
//!
//! - `alloc_staging`: page-locked host memory from `cuMemHostAlloc` (flags 0: ordinary pinned
//!   memory the host can also read; write-combined memory would be a little faster for the
//!   device to read but very slow for the host to read back, and nothing here measured the
//!   difference yet). Freed with `cuMemFreeHost` when the last `Staging` clone goes.
//! - `upload_staged`: `cuMemcpyHtoDAsync` from the pinned pointer on the backend's stream. From
//!   pinned memory the copy is truly asynchronous (the call returns before the bytes move), and
//!   under capture it becomes a memcpy node that reads the pinned memory each time the graph
//!   runs. That is what makes the double-buffering contract necessary: the host must not
//!   rewrite a slot until an event recorded after the replay that reads it has passed.
//! - `record_event` / `wait_event`: a `CUevent` without timing, recorded on the stream;
//!   `wait_event` blocks the host until the stream has passed it (`cuEventSynchronize`).

use super::{cuda_error, Cuda};
use crate::device::backend::DeviceBuffer;
use crate::device::cuda::graph::KeptAlive;
use crate::device::staging::{Event, Staging};
use crate::error::{Error, Result};
use cudarc::driver::{sys, CudaContext, CudaEvent};
use std::ffi::c_void;
use std::sync::Arc;

/// A `cuMemHostAlloc` allocation, freed on drop.
pub(crate) struct PinnedHost {
    ptr: *mut c_void,
    ctx: Arc<CudaContext>,
}

// SAFETY: pinned host memory is plain host memory; `Staging` serialises the host's accesses and
// the pointer is freed only once, on drop.
unsafe impl Send for PinnedHost {}
unsafe impl Sync for PinnedHost {}

impl Drop for PinnedHost {
    fn drop(&mut self) {
        // Freeing needs the allocating context current on this thread.
        if self.ctx.bind_to_thread().is_ok() {
            // SAFETY: `ptr` came from cuMemHostAlloc and is freed only here; every copy reading
            // it held a clone of its `Staging` (a captured graph keeps one), so none is pending
            // in a graph that still exists. An eager copy still in flight is the caller's to wait
            // for, as documented on `upload_staged`.
            let freed = unsafe { sys::cuMemFreeHost(self.ptr) }.result();
            self.ctx.record_err(freed);
        }
    }
}

impl Cuda {
    pub(crate) fn alloc_pinned_staging(&self, bytes: usize) -> Result<Staging> {
        self.capture.refuse_alloc(bytes)?;
        self.driver_call("binding the context", self.ctx.bind_to_thread())?;
        let mut ptr: *mut c_void = std::ptr::null_mut();
        // SAFETY: a plain out-parameter call; at least one byte so a zero-length staging still
        // has a valid, freeable pointer.
        let allocated = unsafe { sys::cuMemHostAlloc(&mut ptr, bytes.max(1), 0) }.result();
        self.driver_call(&format!("pinning {bytes} bytes of host memory"), allocated)?;
        let owner = PinnedHost {
            ptr,
            ctx: self.ctx.clone(),
        };
        // SAFETY: `ptr` holds at least `bytes` bytes for as long as `owner` lives, and only the
        // staging (and device copies from it) touch it.
        Ok(unsafe { Staging::new(ptr.cast(), bytes, Box::new(owner)) })
    }

    pub(crate) fn copy_from_staging(&self, dst: &mut DeviceBuffer, src: &Staging) -> Result<()> {
        if src.handle::<PinnedHost>().is_none() {
            return Err(Error::arg(
                "cuda upload_staged",
                "staging buffer not allocated by this backend's alloc_staging (the copy needs \
                 pinned memory)",
            ));
        }
        src.expect_copy_into("cuda upload_staged", dst)?;
        if src.len_bytes() == 0 {
            return Ok(());
        }
        let to = self.address(dst)?;
        self.driver_call("binding the context", self.ctx.bind_to_thread())?;
        // SAFETY: `to` holds `len` bytes (same length, checked above); the source is pinned memory
        // of `len` bytes that lives while `src` does, and a capture keeps a clone of `src`.
        let copied = unsafe {
            sys::cuMemcpyHtoDAsync_v2(
                to,
                src.host_ptr().cast(),
                src.len_bytes(),
                self.stream.cu_stream(),
            )
        }
        .result();
        self.driver_call("copying from staging to the device", copied)?;
        self.keep_alive(KeptAlive::Buffer(dst.clone()));
        self.keep_alive(KeptAlive::Staging(src.clone()));
        Ok(())
    }

    pub(crate) fn record_stream_event(&self) -> Result<Event> {
        self.capture.refuse_in_graph("record_event")?;
        let event = self
            .ctx
            .new_event(Some(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING));
        let event = self.driver_call("creating an event", event)?;
        self.driver_call("recording an event", event.record(&self.stream))?;
        Ok(Event::new(Box::new(event)))
    }

    pub(crate) fn wait_stream_event(&self, event: &Event) -> Result<()> {
        self.capture.refuse_wait("wait_event")?;
        let event = event
            .handle::<CudaEvent>()
            .ok_or_else(|| cuda_error("wait_event: an event of another backend"))?;
        self.driver_call("waiting for an event", event.synchronize())
    }
}
