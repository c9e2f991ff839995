//! CUDA graph capture and replay on the backend's one stream (cudarc's `CudaStream::begin_capture`
//! / `end_capture` and `CudaGraph`, which call `cuStreamBeginCapture_v2`, `cuStreamEndCapture`,
//! `cuGraphInstantiateWithFlags`, `cuGraphLaunch` and destroy the graph and its executable on
//! drop).
//!
//! Capture mode: `CU_STREAM_CAPTURE_MODE_THREAD_LOCAL`. While this thread captures, the driver
//! refuses (and invalidates the capture on) this thread's unsafe calls, such as a
//! synchronisation or a `cuMemAlloc`, which is the guard we want against our own mistakes. GLOBAL
//! would also make every *other* thread's unsafe calls fail while we capture (tests run in
//! parallel threads of one process, each with its own `Cuda`; a data loader might pin memory),
//! and RELAXED would not guard this thread either. Our own `CaptureSession` refuses the unsafe
//! calls before the driver sees them, with a message naming the op.
//!
//! A graph freezes device addresses, so the buffers and staging memory a captured step uses must
//! not be freed (or handed to someone else by the caching allocator) while the graph lives. Two
//! kinds: a buffer allocated during the capture comes from the capture's private pool
//! (`allocator::CapturePool`), which the graph owns, so it may be freed and reused within the
//! capture (a step then holds its peak, not the sum of its allocations); every other buffer the
//! capture touched is kept alive by a clone inside the graph, as Emu keeps all of them.

use super::allocator::{CapturePool, PooledBlock};
use super::{cuda_error, Cuda};
use crate::device::backend::{DeviceBuffer, KernelArg};
use crate::device::graph::{CaptureSession, Graph};
use crate::device::staging::Staging;
use crate::error::{Error, Result};
use cudarc::driver::{sys, CudaGraph};
use std::sync::Mutex;

/// What a capture keeps alive for its graph: held, never read.
pub(crate) enum KeptAlive {
    Buffer(#[allow(dead_code)] DeviceBuffer),
    Staging(#[allow(dead_code)] Staging),
}

/// Keeps `buffers` alive for the graph `capture` is recording, if it is (cloning nothing
/// otherwise). Work enqueued on the stream outside `launch` (cuBLASLt) calls this too.
pub(crate) fn keep_buffers_alive(capture: &CaptureSession<KeptAlive>, buffers: &[&DeviceBuffer]) {
    if !capture.is_capturing() {
        return;
    }
    for buf in buffers {
        // The capture's own blocks are held by its pool, not by clones: cloning them would stop
        // the capture reusing them.
        if buf
            .handle::<PooledBlock>()
            .is_some_and(PooledBlock::in_capture_pool)
        {
            continue;
        }
        drop(capture.record(KeptAlive::Buffer((*buf).clone())));
    }
}

/// cudarc's graph is `!Send` (it holds raw driver handles). Driver graph handles are not tied to
/// a thread; they only must not be used by two threads at once, which the `Mutex` around it in
/// `CapturedGraph` ensures.
struct SendGraph(CudaGraph);

// SAFETY: see above; every use goes through `CapturedGraph::exec`'s lock.
unsafe impl Send for SendGraph {}

/// What `Cuda::end_capture` puts inside a `Graph`.
struct CapturedGraph {
    exec: Mutex<SendGraph>,
    _kept: Vec<KeptAlive>,
    /// The memory its capture allocated (dropped after `exec`, which is destroyed first).
    _pool: Option<std::sync::Arc<CapturePool>>,
}

impl Cuda {
    /// Runs `enqueue`, work on the stream; its failure invalidates a capture in progress (the
    /// first failure is what `end_capture` reports), as on Emu.
    pub(crate) fn stream_op(&self, enqueue: impl FnOnce() -> Result<()>) -> Result<()> {
        enqueue().map_err(|e| self.capture.invalidate(e))
    }

    /// Keeps the buffers of a launch alive for the graph being captured, if one is.
    pub(crate) fn keep_args_alive(&self, args: &[KernelArg<'_>]) {
        let buffers: Vec<&DeviceBuffer> = args
            .iter()
            .filter_map(|arg| match arg {
                KernelArg::In(buf) => Some(*buf),
                KernelArg::Out(buf) => Some(&**buf),
                _ => None,
            })
            .collect();
        keep_buffers_alive(&self.capture, &buffers);
    }

    /// Keeps `what` alive for the graph being captured, if one is (otherwise drops it).
    pub(crate) fn keep_alive(&self, what: KeptAlive) {
        drop(self.capture.record(what));
    }

    pub(crate) fn begin_stream_capture(&self) -> Result<()> {
        self.capture.begin()?;
        let begun = self
            .stream
            .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
        if begun.is_err() {
            drop(self.capture.end()); // back to idle: there is no capture
        } else {
            *self.lock_capture_pool() = Some(Default::default());
        }
        self.driver_call("beginning a stream capture", begun)
    }

    /// The private pool of the capture in progress (`None` outside a capture).
    pub(super) fn lock_capture_pool(
        &self,
    ) -> std::sync::MutexGuard<'_, Option<std::sync::Arc<CapturePool>>> {
        self.capture_pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn end_stream_capture(&self) -> Result<Graph> {
        if !self.capture.is_capturing() {
            return Err(cuda_error("end_capture without begin_capture"));
        }
        // The stream leaves capture mode whatever happened during the capture, and allocations
        // go back to the shared cache. A failed capture's pool is dropped with its last block.
        let ended = self.stream.end_capture(sys::CUgraphInstantiate_flags(0));
        let pool = self.lock_capture_pool().take();
        // A refusal of ours names the op, which the driver's "capture invalidated" does not.
        let kept = self.capture.end()?;
        let graph = self
            .driver_call("ending the stream capture", ended)?
            .ok_or_else(|| cuda_error("the stream capture returned no graph"))?;
        Ok(Graph::new(Box::new(CapturedGraph {
            exec: Mutex::new(SendGraph(graph)),
            _kept: kept,
            _pool: pool,
        })))
    }

    pub(crate) fn launch_graph(&self, graph: &Graph) -> Result<()> {
        self.capture.refuse_in_graph("replay")?;
        let captured = graph
            .handle::<CapturedGraph>()
            .ok_or_else(|| Error::arg("cuda replay", "graph captured by another backend"))?;
        let exec = captured
            .exec
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.driver_call("launching a graph", exec.0.launch())
    }
}
