// A block reduction of 64-thread blocks: each block sums its slice of `x` into out[blockIdx.x].
// Built twice by tests/emu_shim.rs: as written, and with OMIT_BARRIER_AFTER_STORE, which deletes
// the barrier between each thread's store to `partial` and the first reads of other threads'
// entries: the classic missing __syncthreads. The sums may still come out right (the race is
// timing-dependent); ThreadSanitizer reports it regardless.
__global__ void block_sum(const float* x, float* out, int n) {
    __shared__ float partial[64];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    partial[threadIdx.x] = i < n ? x[i] : 0.0f;
#ifndef OMIT_BARRIER_AFTER_STORE
    __syncthreads();
#endif
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}
