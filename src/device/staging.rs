//! Pinned staging: host memory a step's inputs and per-step scalars are written into before each
//! step or replay, and that a stream-ordered, capturable copy (`KernelBackend::upload_staged`)
//! moves into a fixed device buffer. On Cuda it is page-locked (`cuMemHostAlloc`), so the copy is
//! a true asynchronous DMA and a captured graph records it as a memcpy node that reads the host
//! memory when the graph runs, not when it was captured. On Emu it is a host allocation with a
//! stable address, and a captured staged upload reads its contents at replay time too.
//!
//! Double buffering: a trainer keeps two slots and fills slot `k % 2` for step `k` while step
//! `k - 1` may still be running from the other. The host must not rewrite a slot until the copy
//! that reads it has run: record an `Event` after launching step `k` and `wait_event` on it
//! before writing slot `k % 2` again (at step `k + 2`). Contract and timeline: `docs/graphs.md`.

use crate::error::{Error, Result};
use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// A host staging buffer owned by one backend. Cloning shares it (a captured graph keeps a clone,
/// so the memory outlives every graph that copies from it); it is freed with the last clone.
#[derive(Clone)]
pub struct Staging {
    memory: Arc<StagingMemory>,
}

struct StagingMemory {
    ptr: *mut u8,
    bytes: usize,
    /// Serialises host access: `write` on one thread and an Emu replay reading the contents on
    /// another never overlap. (A GPU's DMA engine cannot take this lock; there the double-
    /// buffering contract above is what keeps the host off a slot the device is reading.)
    host_access: Mutex<()>,
    /// The backend's allocation behind `ptr`, freed when dropped.
    owner: Box<dyn Any + Send + Sync>,
}

// SAFETY: `ptr` points into `owner`'s allocation, which lives as long as this struct; the host
// reads and writes it only under `host_access`.
unsafe impl Send for StagingMemory {}
unsafe impl Sync for StagingMemory {}

impl Staging {
    /// Wraps a backend's host allocation `owner` of `bytes` bytes starting at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `bytes` bytes for as long as `owner` lives,
    /// and nothing but this `Staging` (and the device copies it is passed to) may access it.
    pub unsafe fn new(ptr: *mut u8, bytes: usize, owner: Box<dyn Any + Send + Sync>) -> Staging {
        Staging {
            memory: Arc::new(StagingMemory {
                ptr,
                bytes,
                host_access: Mutex::new(()),
                owner,
            }),
        }
    }

    /// The length in bytes.
    pub fn len_bytes(&self) -> usize {
        self.memory.bytes
    }

    /// Errors unless a staged upload from this buffer into `dst` copies whole buffers (the same
    /// length), the check every backend's `upload_staged` makes.
    pub fn expect_copy_into(
        &self,
        op: &'static str,
        dst: &crate::device::DeviceBuffer,
    ) -> Result<()> {
        if dst.len_bytes() != self.len_bytes() {
            return Err(Error::shape(
                op,
                format!(
                    "{} destination bytes for a {}-byte staging buffer",
                    dst.len_bytes(),
                    self.len_bytes()
                ),
            ));
        }
        Ok(())
    }

    /// Writes `data` at byte `offset`, on the host. The caller keeps the double-buffering
    /// contract: no copy that reads this staging may still be pending on the device.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        let memory = &self.memory;
        if offset
            .checked_add(data.len())
            .map_or(true, |end| end > memory.bytes)
        {
            return Err(Error::shape(
                "Staging::write",
                format!(
                    "bytes {offset}..{} of a {}-byte staging buffer",
                    offset.saturating_add(data.len()),
                    memory.bytes
                ),
            ));
        }
        let _guard = memory
            .host_access
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // SAFETY: in bounds (checked above) of memory valid while `owner` lives (`new`'s
        // contract); host accesses are serialised by the guard.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), memory.ptr.add(offset), data.len()) };
        Ok(())
    }

    /// Runs `f` on the current contents (Emu's staged upload reads them this way at the time
    /// it runs, during a replay for a captured one).
    pub(crate) fn with_contents<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let memory = &self.memory;
        let _guard = memory
            .host_access
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if memory.bytes == 0 {
            return f(&[]);
        }
        // SAFETY: valid for `bytes` bytes (`new`'s contract); no host write overlaps (guard).
        f(unsafe { std::slice::from_raw_parts(memory.ptr, memory.bytes) })
    }

    /// The host address of the first byte, which a device copy reads from.
    pub(crate) fn host_ptr(&self) -> *const u8 {
        self.memory.ptr
    }

    /// The backend's allocation, if it is of type `T` (a backend checks the staging is its own).
    pub fn handle<T: 'static>(&self) -> Option<&T> {
        self.memory.owner.downcast_ref()
    }
}

impl fmt::Debug for Staging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Staging({} bytes)", self.memory.bytes)
    }
}

/// A point in a backend's stream that the host can wait for (`KernelBackend::record_event`,
/// `wait_event`): after it has passed, everything enqueued before it has run, including the
/// staged copies of a replay, so their staging slot may be rewritten. Opaque; the backend keeps
/// its own handle inside (Cuda: a `CUevent`; Emu: nothing, its stream work is synchronous).
pub struct Event {
    handle: Box<dyn Any + Send + Sync>,
}

impl Event {
    pub fn new(handle: Box<dyn Any + Send + Sync>) -> Event {
        Event { handle }
    }
    /// The backend's handle, if it is of type `T`.
    pub fn handle<T: 'static>(&self) -> Option<&T> {
        self.handle.downcast_ref()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Event")
    }
}
