//! Emu's device memory: a host allocation aligned for CUDA's widest vector loads.

use std::cell::UnsafeCell;

/// 16 bytes aligned to 16, so `float4` / `uint4` loads from a buffer are aligned as on a GPU
/// (cudaMalloc aligns to 256; kernels rely on 16 at most).
#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct Chunk([u8; 16]);

// SAFETY: 16 plain bytes, size 16, alignment 16: no padding, every bit pattern valid.
unsafe impl bytemuck::Zeroable for Chunk {}
unsafe impl bytemuck::Pod for Chunk {}

/// One allocation. Kernels write through raw pointers while views of it are shared (device
/// memory aliases, as on a GPU), so the chunks sit in an `UnsafeCell`: every access goes through
/// a raw pointer, and Emu runs one launch or copy at a time, to completion, per call.
pub(crate) struct HostMemory {
    chunks: UnsafeCell<Box<[Chunk]>>,
    bytes: usize,
}

// SAFETY: the memory is plain bytes; Emu's calls (launch, copy, download) run to completion before
// they return, so accesses from different threads never overlap unless the caller launches
// concurrently on aliasing views, which a GPU stream would not order either.
unsafe impl Sync for HostMemory {}

impl HostMemory {
    /// Every byte 0xff: NaN as f32 and bf16, -1 as integers. Memory a kernel reads before
    /// anything wrote it then shows up in a test instead of passing by luck as zeros.
    pub(crate) fn poisoned(bytes: usize) -> HostMemory {
        HostMemory {
            chunks: UnsafeCell::new(vec![Chunk([0xff; 16]); bytes.div_ceil(16)].into_boxed_slice()),
            bytes,
        }
    }

    pub(crate) fn from_bytes(data: &[u8]) -> HostMemory {
        let m = HostMemory::poisoned(data.len());
        // SAFETY: `m` is fresh, so nothing else points into it.
        unsafe { m.write(0, data) };
        m
    }

    /// The address of byte `offset`, which kernels read and write through.
    pub(crate) fn device_ptr(&self, offset: usize) -> *mut u8 {
        assert!(offset <= self.bytes, "offset past the allocation");
        // SAFETY: in bounds of the boxed slice (checked above); no reference is formed.
        unsafe { (*self.chunks.get()).as_mut_ptr().cast::<u8>().add(offset) }
    }

    /// A copy of bytes `[offset, offset + len)`.
    pub(crate) fn read(&self, offset: usize, len: usize) -> Vec<u8> {
        assert!(offset + len <= self.bytes, "read past the allocation");
        let mut out = vec![0u8; len];
        // SAFETY: in bounds; Emu runs nothing concurrently with this copy.
        unsafe { std::ptr::copy_nonoverlapping(self.device_ptr(offset), out.as_mut_ptr(), len) };
        out
    }

    /// Writes `data` at byte `offset`.
    ///
    /// # Safety
    /// No kernel may be running on this allocation.
    pub(crate) unsafe fn write(&self, offset: usize, data: &[u8]) {
        assert!(
            offset + data.len() <= self.bytes,
            "write past the allocation"
        );
        std::ptr::copy(data.as_ptr(), self.device_ptr(offset), data.len());
    }

    /// Sets bytes `[offset, offset + len)` to `byte`.
    ///
    /// # Safety
    /// No kernel may be running on this allocation.
    pub(crate) unsafe fn fill(&self, offset: usize, len: usize, byte: u8) {
        assert!(offset + len <= self.bytes, "fill past the allocation");
        std::ptr::write_bytes(self.device_ptr(offset), byte, len);
    }
}
