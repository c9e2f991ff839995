//! CUDA graphs in the device layer: a `Graph` is a recorded sequence of stream work (launches,
//! memsets, device copies, staged uploads) that a backend replays without the host issuing each
//! operation again. `KernelBackend::begin_capture` starts recording, `end_capture` returns the
//! `Graph`, `replay` runs it. Design and contract: `docs/graphs.md`.
//!
//! What is frozen at capture is what a CUDA graph freezes: every buffer's device address and every
//! scalar argument's value. What changes between replays is only what the graph reads from memory
//! at replay time: device buffers, and the pinned staging memory a staged upload copies from.
//!
//! `CaptureSession` is the state both real backends keep while capturing: whether a capture is in
//! progress, what it recorded, and the first refused operation, so `end_capture` can report it.

use crate::error::{Error, Result};
use std::any::Any;
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A captured sequence of stream work, ready to replay. Opaque: the backend that captured it
/// keeps its own handle inside (Emu: the recorded nodes; Cuda: an instantiated `CUgraphExec`),
/// together with everything the graph refers to (the buffers and staging memory whose addresses
/// it froze), so those addresses stay valid for as long as the graph lives. Dropping the graph
/// frees the backend's handle and releases those references.
pub struct Graph {
    handle: Box<dyn Any + Send + Sync>,
}

impl Graph {
    /// Wraps a backend's own handle to a captured graph.
    pub fn new(handle: Box<dyn Any + Send + Sync>) -> Graph {
        Graph { handle }
    }
    /// The backend's handle, if it is of type `T` (a backend checks that a graph is its own).
    pub fn handle<T: 'static>(&self) -> Option<&T> {
        self.handle.downcast_ref()
    }
}

impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Graph")
    }
}

/// The error a backend without graph support returns from the capture, staging and event calls
/// (the `KernelBackend` defaults), naming the backend and the call.
pub fn unsupported(backend: String, call: &str) -> Error {
    Error::device(
        "graph",
        format!("{backend} cannot capture or replay CUDA graphs ({call} is not supported)"),
    )
}

/// Where a backend stands with capture.
enum State<N> {
    Idle,
    /// Capturing; `N` is what the backend keeps per recorded operation.
    Recording(Vec<N>),
    /// Capturing, but an operation was refused (or failed) and the capture is invalid; the
    /// message says which. Later operations are not recorded; `end_capture` reports the message.
    Failed(String),
}

/// A backend's capture state (one per backend: captures do not nest).
pub(crate) struct CaptureSession<N> {
    backend: &'static str,
    state: Mutex<State<N>>,
}

impl<N> CaptureSession<N> {
    pub(crate) fn new(backend: &'static str) -> CaptureSession<N> {
        CaptureSession {
            backend,
            state: Mutex::new(State::Idle),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<N>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts recording; an error if a capture is already in progress.
    pub(crate) fn begin(&self) -> Result<()> {
        let mut state = self.lock();
        if !matches!(*state, State::Idle) {
            return Err(Error::device(
                self.backend,
                "begin_capture while a capture is in progress: captures do not nest",
            ));
        }
        *state = State::Recording(Vec::new());
        Ok(())
    }

    /// Whether a capture is in progress (recording, or failed and waiting for `end`).
    pub(crate) fn is_capturing(&self) -> bool {
        !matches!(*self.lock(), State::Idle)
    }

    /// Records `node` if a capture is in progress and gives it back otherwise (the caller then
    /// runs it now). A failed capture swallows it: nothing of it will ever run.
    pub(crate) fn record(&self, node: N) -> Option<N> {
        match &mut *self.lock() {
            State::Idle => Some(node),
            State::Recording(nodes) => {
                nodes.push(node);
                None
            }
            State::Failed(_) => None,
        }
    }

    /// Ends the capture: what it recorded, or the reason it failed. An error if none is in
    /// progress. The session is idle afterwards either way.
    pub(crate) fn end(&self) -> Result<Vec<N>> {
        match std::mem::replace(&mut *self.lock(), State::Idle) {
            State::Idle => Err(Error::device(
                self.backend,
                "end_capture without begin_capture",
            )),
            State::Recording(nodes) => Ok(nodes),
            State::Failed(why) => Err(Error::device(
                self.backend,
                format!("the graph capture failed: {why}"),
            )),
        }
    }

    /// `err` unchanged; if a capture is in progress it is invalidated with `err`'s message (the
    /// first failure wins), as a failed call invalidates a CUDA stream capture.
    pub(crate) fn invalidate(&self, err: Error) -> Error {
        self.fail(|| err.to_string());
        err
    }

    /// Marks a capture in progress as failed with `why()` unless it already failed.
    fn fail(&self, why: impl FnOnce() -> String) {
        let mut state = self.lock();
        if let State::Recording(_) = *state {
            *state = State::Failed(why());
        }
    }

    /// An error naming `op` if a capture is in progress, which it also invalidates; `why` says
    /// what rule `op` breaks. Ok outside a capture.
    pub(crate) fn refuse(&self, op: impl FnOnce() -> String, why: &str) -> Result<()> {
        if !self.is_capturing() {
            return Ok(());
        }
        let msg = format!("{} during graph capture: {why}", op());
        // Stored without the backend's prefix, which `end` adds once.
        self.fail(|| msg.clone());
        Err(Error::device(self.backend, msg))
    }

    /// Refuses an allocation of `bytes` bytes that the device's caching pool cannot serve while
    /// capturing (a driver allocation is not capturable).
    pub(crate) fn refuse_alloc(&self, bytes: usize) -> Result<()> {
        self.refuse(
            || format!("allocation of {bytes} bytes"),
            "no driver allocation inside a capture (staging, or a device block the memory pool \
             has no free block of that size for); allocate staging before capturing and run the \
             step once eagerly so the pool holds its buffers",
        )
    }

    /// Refuses a plain `upload` of `bytes` bytes while capturing.
    pub(crate) fn refuse_upload(&self, bytes: usize) -> Result<()> {
        self.refuse(
            || format!("upload of {bytes} bytes"),
            "an upload allocates a new buffer and copies from pageable memory; write the step's \
             inputs into a Staging and use upload_staged into a buffer allocated before capturing",
        )
    }

    /// Refuses a download of `bytes` bytes while capturing.
    pub(crate) fn refuse_download(&self, bytes: usize) -> Result<()> {
        self.refuse(
            || format!("download of {bytes} bytes"),
            "a captured step must not read the device",
        )
    }

    /// Refuses `op`, a call that waits for the device (synchronize, time_ms, wait_event...),
    /// while capturing.
    pub(crate) fn refuse_wait(&self, op: &str) -> Result<()> {
        self.refuse(
            || op.to_string(),
            "a captured step must not wait for the device",
        )
    }

    /// Refuses `op`, a call that has no meaning inside a graph (replay, record_event), while
    /// capturing.
    pub(crate) fn refuse_in_graph(&self, op: &str) -> Result<()> {
        self.refuse(
            || op.to_string(),
            "it cannot be part of a captured graph; call it between replays",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_while_capturing_and_ends_idle() {
        let session = CaptureSession::<u32>::new("test");
        assert_eq!(session.record(1), Some(1));
        session.begin().unwrap();
        assert!(session.begin().is_err(), "captures do not nest");
        assert_eq!(session.record(2), None);
        assert_eq!(session.record(3), None);
        assert_eq!(session.end().unwrap(), vec![2, 3]);
        assert!(!session.is_capturing());
        assert!(session.end().is_err(), "nothing to end");
    }

    #[test]
    fn the_first_refusal_is_what_end_reports() {
        let session = CaptureSession::<u32>::new("test");
        session.refuse_download(8).unwrap();
        session.begin().unwrap();
        let err = session.refuse_download(8).unwrap_err().to_string();
        assert!(
            err.contains("download of 8 bytes during graph capture"),
            "{err}"
        );
        assert!(session.refuse_alloc(4).is_err());
        assert_eq!(session.record(1), None, "a failed capture records nothing");
        let end = session.end().unwrap_err().to_string();
        assert_eq!(
            end,
            "test: the graph capture failed: download of 8 bytes during graph capture: a \
             captured step must not read the device"
        );
        assert!(!end.contains("allocation"), "{end}");
        session.begin().unwrap();
        assert!(
            session.end().unwrap().is_empty(),
            "a new capture starts clean"
        );
    }
}
