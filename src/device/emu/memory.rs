//! Emu's device memory: a host allocation aligned for CUDA's widest vector loads.

/// 16 bytes aligned to 16, so `float4` / `uint4` loads from a buffer are aligned as on a GPU
/// (cudaMalloc aligns to 256; kernels rely on 16 at most).
#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct Chunk([u8; 16]);

// SAFETY: 16 plain bytes, size 16, alignment 16: no padding, every bit pattern valid.
unsafe impl bytemuck::Zeroable for Chunk {}
unsafe impl bytemuck::Pod for Chunk {}

pub(crate) struct HostMemory {
    chunks: Vec<Chunk>,
    bytes: usize,
}

impl HostMemory {
    /// Every byte 0xff: NaN as f32 and bf16, -1 as integers. Memory a kernel reads before
    /// anything wrote it then shows up in a test instead of passing by luck as zeros.
    pub(crate) fn poisoned(bytes: usize) -> HostMemory {
        HostMemory {
            chunks: vec![Chunk([0xff; 16]); bytes.div_ceil(16)],
            bytes,
        }
    }

    pub(crate) fn from_bytes(data: &[u8]) -> HostMemory {
        let mut m = HostMemory::poisoned(data.len());
        bytemuck::cast_slice_mut::<Chunk, u8>(&mut m.chunks)[..data.len()].copy_from_slice(data);
        m
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<Chunk, u8>(&self.chunks)[..self.bytes]
    }

    /// The address a kernel reads through.
    pub(crate) fn device_ptr(&self) -> *const u8 {
        self.chunks.as_ptr().cast()
    }

    /// The address a kernel writes through.
    pub(crate) fn device_ptr_mut(&mut self) -> *mut u8 {
        self.chunks.as_mut_ptr().cast()
    }
}
