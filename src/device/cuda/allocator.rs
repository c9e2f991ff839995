//! A caching device allocator: freed blocks go to a free list per size class and are handed out
//! again, so a training step that allocates the same tensors every iteration stops calling the
//! driver after the first one (and a CUDA graph captured later sees no allocation nodes).
//!
//! Reuse is safe without events because the backend has exactly one stream: a block freed after
//! some launch is reused only by work enqueued after it, in stream order. A second stream would
//! need an event per block before this holds.
//!
//! `RECUR_CUDA_ALLOCATOR=exact` turns both the rounding and the reuse off: every buffer is its
//! own driver allocation of exactly the requested size, freed on drop. compute-sanitizer's
//! memcheck can then see an access one element past a buffer, or into a freed one, which a
//! rounded-up, recycled block would hide (tools/gpu-check.sh sets it under the sanitizer).

use crate::device::cuda::cuda_error;
use crate::error::Result;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Smallest block handed out: keeps every block 256-byte aligned in size and makes zero-byte
/// requests valid.
const MIN_BLOCK: usize = 256;

/// The size actually allocated for a request of `bytes`: at least 256, and otherwise the next of
/// the four steps between consecutive powers of two (1, 1.25, 1.5, 1.75 × 2^k), rounded up to
/// 256 bytes. At most a quarter is wasted, while sizes that differ a little share a class.
pub fn size_class(bytes: usize) -> usize {
    if bytes <= MIN_BLOCK {
        return MIN_BLOCK;
    }
    let power = usize::BITS - 1 - (bytes - 1).leading_zeros(); // 2^power < bytes ≤ 2^(power+1)
    let step = (1usize << power) / 4;
    let class = bytes.div_ceil(step) * step;
    class.div_ceil(MIN_BLOCK) * MIN_BLOCK
}

/// Device memory handed out by the allocator; goes back to its free list when dropped (or to
/// the driver, in exact mode). A block handed out during a graph capture belongs to that
/// capture's private pool instead (`CapturePool`).
pub struct PooledBlock {
    slice: Option<CudaSlice<u8>>,
    device_ptr: u64,
    pool: Option<Arc<CachingAllocator>>,
    capture: Option<Arc<CapturePool>>,
}

/// The memory of one graph capture, as PyTorch keeps it: blocks handed out while capturing come
/// from here (or, the first time, from the shared pool) and return here when freed, so a buffer
/// an op frees mid-step is reused by a later op of the same capture, in stream order, which a
/// graph replays in the same order. The graph owns the pool afterwards, so nothing outside it
/// is ever handed that memory; it goes back to the driver when the graph and every block are
/// gone. Without it a captured step would hold the sum of its allocations, not its peak.
#[derive(Default)]
pub struct CapturePool {
    free: Mutex<HashMap<usize, Vec<CudaSlice<u8>>>>,
}

impl PooledBlock {
    /// The raw device address, as a kernel parameter takes it.
    pub fn device_ptr(&self) -> u64 {
        self.device_ptr
    }
    /// The whole block (its size class, at least the requested size).
    pub fn slice(&self) -> &CudaSlice<u8> {
        self.slice.as_ref().expect("a live block holds its slice")
    }
    pub fn slice_mut(&mut self) -> &mut CudaSlice<u8> {
        self.slice.as_mut().expect("a live block holds its slice")
    }
}

impl PooledBlock {
    /// Whether the block belongs to a capture's private pool (its graph keeps the memory; the
    /// buffer itself need not be kept alive).
    pub fn in_capture_pool(&self) -> bool {
        self.capture.is_some()
    }
}

impl Drop for PooledBlock {
    fn drop(&mut self) {
        let Some(slice) = self.slice.take() else {
            return;
        };
        if let Some(capture) = &self.capture {
            let class = slice.len();
            capture
                .free
                .lock()
                .expect("capture pool lock")
                .entry(class)
                .or_default()
                .push(slice);
        } else if let Some(pool) = &self.pool {
            pool.give_back(slice);
        }
    }
}

#[derive(Default)]
struct FreeLists {
    by_class: HashMap<usize, Vec<CudaSlice<u8>>>,
    cached_bytes: usize,
}

pub struct CachingAllocator {
    stream: Arc<CudaStream>,
    free: Mutex<FreeLists>,
    /// `RECUR_CUDA_ALLOCATOR=exact`: no rounding, no reuse.
    exact: bool,
}

pub const ALLOCATOR_VAR: &str = "RECUR_CUDA_ALLOCATOR";

impl CachingAllocator {
    pub fn new(stream: Arc<CudaStream>) -> Arc<CachingAllocator> {
        Arc::new(CachingAllocator {
            stream,
            free: Mutex::new(FreeLists::default()),
            exact: std::env::var(ALLOCATOR_VAR).is_ok_and(|v| v == "exact"),
        })
    }

    /// A block of at least `bytes` bytes, uninitialised.
    pub fn allocate(self: &Arc<Self>, bytes: usize) -> Result<PooledBlock> {
        if self.exact {
            let slice = self.fresh(bytes.max(1))?;
            return Ok(self.block(slice, false));
        }
        let class = size_class(bytes);
        let reused = {
            let mut free = self.free.lock().expect("allocator lock");
            let slice = free.by_class.get_mut(&class).and_then(Vec::pop);
            if slice.is_some() {
                free.cached_bytes -= class;
            }
            slice
        };
        let slice = match reused {
            Some(slice) => slice,
            None => self.fresh(class)?,
        };
        Ok(self.block(slice, true))
    }

    /// A block of at least `bytes` bytes for the capture that owns `capture`: one the capture
    /// freed earlier, else one from the shared cache (which then belongs to the capture), or
    /// `None` when neither has that size class (or in exact mode). Never calls the driver:
    /// `cuMemAlloc` cannot be captured.
    pub fn allocate_in_capture(
        self: &Arc<Self>,
        bytes: usize,
        capture: &Arc<CapturePool>,
    ) -> Option<PooledBlock> {
        if self.exact {
            return None;
        }
        let class = size_class(bytes);
        let reused = capture
            .free
            .lock()
            .expect("capture pool lock")
            .get_mut(&class)
            .and_then(Vec::pop);
        let slice = match reused {
            Some(slice) => slice,
            None => {
                let mut free = self.free.lock().expect("allocator lock");
                let slice = free.by_class.get_mut(&class).and_then(Vec::pop)?;
                free.cached_bytes -= class;
                slice
            }
        };
        let mut block = self.block(slice, false);
        block.capture = Some(capture.clone());
        Some(block)
    }

    fn block(self: &Arc<Self>, slice: CudaSlice<u8>, recycle: bool) -> PooledBlock {
        // With event tracking off, the returned guard records nothing.
        let device_ptr = slice.device_ptr(&self.stream).0;
        PooledBlock {
            slice: Some(slice),
            device_ptr,
            pool: recycle.then(|| self.clone()),
            capture: None,
        }
    }

    /// Bytes held in free lists, not in use.
    pub fn cached_bytes(&self) -> usize {
        self.free.lock().expect("allocator lock").cached_bytes
    }

    /// Returns every cached block to the driver.
    pub fn release_cached(&self) {
        let mut free = self.free.lock().expect("allocator lock");
        free.by_class.clear();
        free.cached_bytes = 0;
    }

    /// A new block from the driver; when it is out of memory, frees the cache and tries once more.
    fn fresh(&self, class: usize) -> Result<CudaSlice<u8>> {
        // Safety: the memory is handed out uninitialised, as `KernelBackend::alloc` promises.
        let first = unsafe { self.stream.alloc::<u8>(class) };
        first
            .or_else(|_| {
                self.release_cached();
                unsafe { self.stream.alloc::<u8>(class) }
            })
            .map_err(|e| cuda_error(format!("cannot allocate {class} bytes on the device: {e}")))
    }

    fn give_back(&self, slice: CudaSlice<u8>) {
        let class = slice.len();
        let mut free = self.free.lock().expect("allocator lock");
        free.cached_bytes += class;
        free.by_class.entry(class).or_default().push(slice);
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn small_requests_share_the_smallest_class() {
        assert_eq!(size_class(0), 256);
        assert_eq!(size_class(1), 256);
        assert_eq!(size_class(256), 256);
    }

    #[test]
    fn classes_step_by_quarters_of_a_power_of_two() {
        assert_eq!(size_class(1 << 20), 1 << 20);
        assert_eq!(size_class((1 << 20) + 1), (1 << 20) + (1 << 18));
        assert_eq!(size_class(3 << 19), 3 << 19);
        assert_eq!(size_class((7 << 18) + 5), 1 << 21);
    }

    #[test]
    fn every_class_fits_its_request_and_wastes_at_most_a_quarter() {
        for bytes in (257..200_000).step_by(97) {
            let class = size_class(bytes);
            assert!(class >= bytes && class % 256 == 0, "{bytes} -> {class}");
            assert!((class - bytes) * 4 <= bytes + 1024, "{bytes} -> {class}");
            assert_eq!(size_class(class), class, "classes are fixed points");
        }
    }
}
