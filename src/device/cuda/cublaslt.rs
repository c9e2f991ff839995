//! cuBLASLt as the alternative to our tensor-core GEMM (`kernels/gemm.cu`) for plain and bias
//! products: `y [M, N] = x [M, K] · W [N, K]ᵀ (+ bias [N])` with bf16 operands, f32 accumulation
//! and a bf16 or f32 output, under the layout contract of `kernels::gemm::gemm_bf16_into`
//! (row-major `x`, any leading dimensions folded into M; `W` stored `[out, in]` like PyTorch).
//! `kernels::gemm_choice` decides which of the two runs a product.
//!
//! - The library is loaded at run time, and cudarc panics when it is absent, so `library()`
//!   checks presence first and turns absence into an error naming the library and how to point
//!   at it. As for NVRTC (`libraries`), `RECUR_CUBLASLT_DIR` names a folder whose
//!   `libcublasLt.so.13` is opened by absolute path first; cudarc's later open by SONAME then
//!   gets that copy.
//! - cuBLASLt is column-major. The row-major `y [M, N]` is the column-major `yᵀ [N, M] = W · xᵀ`,
//!   so A is `W` (column-major `[K, N]`, ld K, transposed), B is `x` (column-major `[K, M]`,
//!   ld K, as is) and D is column-major `[N, M]`, ld N. The bias epilogue adds a vector along D's
//!   rows, i.e. one value per output feature, as `linear` does.
//! - One handle and one workspace, allocated once (NVIDIA's recommended size) from the backend's
//!   allocator, and every call on the backend's one stream, so cuBLASLt is ordered with our
//!   kernels and timed by the same events.
//! - Per (M, N, K, output dtype, bias) a plan (descriptors and the heuristic's algorithm) is built
//!   on first use and reused, so a call costs one enqueue, as our kernel's launch does.
//! - What cuBLASLt cannot do here is refused with an error, never attempted: SwiGLU (no such
//!   epilogue), a bf16 bias with an f32 output (cuBLASLt's bias has the output's type), K = 0.
//!   A residual could be cuBLASLt's `β·C` term but is not wired: the selection rule keeps every
//!   fused epilogue on our kernel (docs/kernels.md).

use super::graph::{keep_buffers_alive, KeptAlive};
use super::{libraries, Cuda};
use crate::device::graph::CaptureSession;
use crate::device::{DeviceBuffer, DeviceTensor, KernelBackend};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::gemm::{check_operands, Epilogue};
use crate::kernels::gemm_choice::EpilogueClass;
use cudarc::cublaslt::result::{self as lt, CublasError};
use cudarc::cublaslt::sys;
use cudarc::driver::CudaStream;
use std::collections::HashMap;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Folder holding `libcublasLt.so.13` (a wheel's `site-packages/nvidia/cu13/lib`, or a CUDA 13
/// toolkit's `lib64`).
pub const CUBLASLT_DIR_VAR: &str = "RECUR_CUBLASLT_DIR";

/// The SONAME of CUDA 13's cuBLASLt, one of the names cudarc tries.
pub const CUBLASLT_SONAME: &str = "libcublasLt.so.13";

/// What to do when cuBLASLt is missing; part of every "not found" message.
pub const HOW_TO_GET_CUBLASLT: &str = "install a CUDA 13 cuBLAS wheel into a venv \
(`pip install --no-deps 'nvidia-cublas==13.*'`; PyTorch's CUDA 13 wheels ship it too) and set \
RECUR_CUBLASLT_DIR to its site-packages/nvidia/cu13/lib folder, or put a CUDA 13 toolkit's lib64 \
on LD_LIBRARY_PATH; without it the GEMMs run on our own kernel (RECUR_GEMM=ours)";

/// The error backend name of everything here.
const BACKEND: &str = "cublaslt";
/// The op name in shape and dtype errors.
const OP: &str = "cublaslt_gemm_bf16";

/// The cuBLASLt this process loaded.
#[derive(Clone, Debug)]
pub struct CublasLtLibrary {
    /// `cublasLtGetVersion()`: major·10000 + minor·100 + patch.
    pub version: usize,
    /// The file the dynamic loader mapped, when it can be told.
    pub path: Option<PathBuf>,
}

/// Loads cuBLASLt once per process (honouring `RECUR_CUBLASLT_DIR`), or says why it cannot and
/// how to get it. Needs no GPU.
pub fn library() -> Result<&'static CublasLtLibrary, String> {
    static LIBRARY: OnceLock<Result<CublasLtLibrary, String>> = OnceLock::new();
    LIBRARY
        .get_or_init(|| {
            let dir = std::env::var_os(CUBLASLT_DIR_VAR).filter(|d| !d.is_empty());
            load_library(dir.map(PathBuf::from).as_deref())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Loads cuBLASLt from `dir` (by absolute path) or, without one, from the loader's search path,
/// and checks it is a CUDA 13 build (the bindings' enums are CUDA 13's). Not cached: `library()`
/// is the once-per-process entry point.
pub fn load_library(dir: Option<&Path>) -> Result<CublasLtLibrary, String> {
    if let Some(dir) = dir {
        libraries::preload(&dir.join(CUBLASLT_SONAME)).map_err(|e| {
            format!(
                "cuBLASLt not found: {CUBLASLT_DIR_VAR}={} but {e}; {HOW_TO_GET_CUBLASLT}",
                dir.display()
            )
        })?;
    }
    // Safety: only probes with dlopen; never calls into the library.
    if !unsafe { sys::is_culib_present() } {
        return Err(format!(
            "cuBLASLt not found: {CUBLASLT_SONAME} is not on the loader's path; \
             {HOW_TO_GET_CUBLASLT}"
        ));
    }
    // Safety: the library is present (checked above), so cudarc's lazy loader cannot panic;
    // cublasLtGetVersion takes no arguments and needs no GPU.
    let version = unsafe { sys::cublasLtGetVersion() };
    if version / 10_000 != 13 {
        return Err(format!(
            "cuBLASLt {version} was loaded, but this build's bindings are CUDA 13's (a \
             libcublasLt.so.13 is needed); {HOW_TO_GET_CUBLASLT}"
        ));
    }
    Ok(CublasLtLibrary {
        version,
        path: libraries::mapped_library_path("libcublasLt.so"),
    })
}

/// Why cuBLASLt cannot compute a product our kernel can (an `epilogue` on `x [.., k]` into an
/// `out`-typed output), or `None` when it can. Pure, so the selection rule asks it without a GPU.
pub fn unsupported(epilogue: EpilogueClass, out: DType, k: usize) -> Option<&'static str> {
    match epilogue {
        EpilogueClass::SwiGlu | EpilogueClass::SwiGluBias => {
            Some("cuBLASLt has no SwiGLU epilogue (our kernel fuses it)")
        }
        EpilogueClass::Residual => Some("the residual epilogue is fused only by our kernel"),
        EpilogueClass::Bias if out != DType::BF16 => Some(
            "cuBLASLt's bias has the output's type, and the bias here is bf16 with an f32 output",
        ),
        _ if k == 0 => Some("K = 0 (an empty reduction) is not a cuBLASLt product"),
        EpilogueClass::None | EpilogueClass::Bias => None,
    }
}

/// The sizes of a checked product `y [M, N] = x [M, K] · W [N, K]ᵀ`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GemmDims {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// Checks a cuBLASLt product's operands: exactly what `gemm_bf16_into` accepts with
/// `Epilogue::None` or `Epilogue::Bias`, less what `unsupported` names. Pure host-side checks,
/// so they run (and are tested) on any backend's tensors.
pub fn check_gemm(
    x: &DeviceTensor,
    w: &DeviceTensor,
    bias: Option<&DeviceTensor>,
    y: &DeviceTensor,
) -> Result<GemmDims> {
    let epilogue = bias.map_or(Epilogue::None, Epilogue::Bias);
    let operands = check_operands(OP, x, w, epilogue, y)?;
    if let Some(why) = unsupported(EpilogueClass::of(&epilogue), y.dtype(), operands.k) {
        return Err(Error::arg(
            OP,
            format!("{why}; use kernels::gemm::gemm_bf16"),
        ));
    }
    Ok(GemmDims {
        m: operands.rows,
        n: operands.cols,
        k: operands.k,
    })
}

/// A cuBLASLt handle with its workspace, bound to one `Cuda` backend's stream.
pub struct CublasLt {
    handle: sys::cublasLtHandle_t,
    stream: Arc<CudaStream>,
    /// Held for the handle's life; returns to the backend's allocator when dropped.
    workspace: DeviceBuffer,
    workspace_ptr: u64,
    library: &'static CublasLtLibrary,
    /// The backend's capture state: a captured matmul keeps its buffers alive in the graph.
    capture: Arc<CaptureSession<KeptAlive>>,
    /// Every use of `handle` and of a plan happens under this lock, which is what makes sharing
    /// a `CublasLt` between threads sound.
    plans: Mutex<HashMap<PlanKey, Plan>>,
}

// Safety: the raw handle and descriptors are only used with `plans` locked (see the field), and
// cuBLASLt handles may be used from any thread.
unsafe impl Send for CublasLt {}
unsafe impl Sync for CublasLt {}

/// NVIDIA's recommended cuBLASLt workspace: 32 MiB on Hopper and later, 4 MiB before.
pub fn workspace_bytes(compute_capability: (i32, i32)) -> usize {
    if compute_capability.0 >= 9 {
        32 << 20
    } else {
        4 << 20
    }
}

impl CublasLt {
    /// Loads cuBLASLt and makes a handle and workspace for `cuda`'s stream, or says why it cannot
    /// (no libcublasLt, a library of another CUDA major, no memory).
    pub fn new(cuda: &Cuda) -> Result<CublasLt> {
        let library = library().map_err(|e| Error::device(BACKEND, e))?;
        let workspace = cuda.alloc(workspace_bytes(cuda.facts.compute_capability))?;
        let workspace_ptr = pooled(&workspace, "the workspace")?;
        cuda.ctx
            .bind_to_thread()
            .map_err(|e| Error::device(BACKEND, format!("cannot bind the CUDA context: {e}")))?;
        let handle = lt::create_handle().map_err(|e| status("cublasLtCreate", e))?;
        Ok(CublasLt {
            handle,
            stream: cuda.stream.clone(),
            workspace,
            workspace_ptr,
            library,
            capture: cuda.capture.clone(),
            plans: Mutex::new(HashMap::new()),
        })
    }

    /// The library this handle runs.
    pub fn library(&self) -> &CublasLtLibrary {
        self.library
    }

    /// `y = x·Wᵀ (+ bias)` into `y` on the backend's stream: `x [..., K]` and `w [N, K]` bf16,
    /// `bias [N]` bf16 (only with a bf16 `y`), `y` bf16 or f32 shaped `[..., N]`. Asynchronous,
    /// like a kernel launch. Every tensor must live on the `Cuda` this handle was made for.
    pub fn gemm_bf16_into(
        &self,
        x: &DeviceTensor,
        w: &DeviceTensor,
        bias: Option<&DeviceTensor>,
        y: &mut DeviceTensor,
    ) -> Result<()> {
        let dims = check_gemm(x, w, bias, y)?;
        if dims.m == 0 || dims.n == 0 {
            return Ok(());
        }
        let x_ptr = pooled(&x.buf, "x")?;
        let w_ptr = pooled(&w.buf, "w")?;
        let y_ptr = pooled(&y.buf, "y")?;
        let bias_ptr = bias.map(|b| pooled(&b.buf, "bias")).transpose()?;
        let key = PlanKey {
            dims,
            out: y.dtype(),
            bias: bias.is_some(),
        };
        let mut plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
        let plan = match plans.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Plan::new(
                self.handle,
                key,
                bias_ptr,
                self.workspace.len_bytes(),
            )?),
        };
        if let Some(ptr) = bias_ptr {
            plan.desc.set_bias_pointer(ptr)?;
        }
        self.stream
            .context()
            .bind_to_thread()
            .map_err(|e| Error::device(BACKEND, format!("cannot bind the CUDA context: {e}")))?;
        let (alpha, beta) = (1.0f32, 0.0f32);
        // Safety: every descriptor is live (owned by `plan`, under the lock); the pointers are
        // this backend's allocations of the sizes `check_gemm` verified; the workspace is ours
        // for the handle's life; C = D with β = 0, so C is never read.
        unsafe {
            lt::matmul(
                self.handle,
                plan.desc.0,
                &alpha as *const f32 as *const c_void,
                &beta as *const f32 as *const c_void,
                w_ptr as *const c_void,
                plan.a.0,
                x_ptr as *const c_void,
                plan.b.0,
                y_ptr as *const c_void,
                plan.d.0,
                y_ptr as *mut c_void,
                plan.d.0,
                &plan.algo,
                self.workspace_ptr as *mut c_void,
                self.workspace.len_bytes(),
                self.stream.cu_stream() as sys::cudaStream_t,
            )
        }
        .map_err(|e| {
            let err = status(
                &format!(
                    "cublasLtMatmul (bf16 [{}, {}] x [{}, {}]ᵀ -> {})",
                    dims.m,
                    dims.k,
                    dims.n,
                    dims.k,
                    key.out.name()
                ),
                e,
            );
            self.capture.invalidate(err)
        })?;
        // A graph capturing this matmul froze these addresses: it keeps the buffers alive.
        let mut used = vec![&x.buf, &w.buf, &y.buf];
        used.extend(bias.map(|b| &b.buf));
        keep_buffers_alive(&self.capture, &used);
        Ok(())
    }
}

impl Drop for CublasLt {
    fn drop(&mut self) {
        // Plans hold no reference to the handle, so the order does not matter. A failure to
        // destroy cannot be reported from a drop and must not panic; the handle is then leaked.
        let plans = self.plans.get_mut().unwrap_or_else(PoisonError::into_inner);
        plans.clear();
        // Safety: created by cublasLtCreate and destroyed exactly once, here.
        let _ = unsafe { lt::destroy_handle(self.handle) };
    }
}

/// The device address of a buffer of the CUDA backend, or an error naming the operand.
fn pooled(buf: &DeviceBuffer, what: &str) -> Result<u64> {
    super::device_address(buf).ok_or_else(|| {
        Error::device(
            BACKEND,
            format!("{what} is a buffer of another backend, not CUDA memory"),
        )
    })
}

fn status(call: &str, e: CublasError) -> Error {
    Error::device(BACKEND, format!("{call} failed: {e}"))
}

/// What a plan depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct PlanKey {
    dims: GemmDims,
    out: DType,
    bias: bool,
}

/// The descriptors and algorithm of one product shape.
struct Plan {
    desc: MatmulDesc,
    a: Layout,
    b: Layout,
    d: Layout,
    algo: sys::cublasLtMatmulAlgo_t,
}

/// cuBLAS's `cublasOperation_t` values (cudarc's cublaslt bindings do not carry the enum).
const CUBLAS_OP_N: i32 = 0;
const CUBLAS_OP_T: i32 = 1;

/// A plan's descriptors, before the algorithm is chosen.
struct Descriptors {
    desc: MatmulDesc,
    a: Layout,
    b: Layout,
    d: Layout,
}

impl Descriptors {
    /// The descriptors of `key`'s product, `bias_ptr` set when it has one. Host-side only:
    /// needs the library, not a GPU.
    fn new(key: PlanKey, bias_ptr: Option<u64>) -> Result<Descriptors> {
        use sys::cudaDataType_t::{CUDA_R_16BF, CUDA_R_32F};
        let GemmDims { m, n, k } = key.dims;
        let out_type = if key.out == DType::BF16 {
            CUDA_R_16BF
        } else {
            CUDA_R_32F
        };
        let (m, n, k) = (m as u64, n as u64, k as u64);
        // Column-major view (module doc): A = W as [K, N] ld K, transposed; B = x as [K, M]
        // ld K; D = yᵀ as [N, M] ld N.
        let a = Layout::new(CUDA_R_16BF, k, n, k as i64)?;
        let b = Layout::new(CUDA_R_16BF, k, m, k as i64)?;
        let d = Layout::new(out_type, n, m, n as i64)?;
        let desc = MatmulDesc::new()?;
        desc.set(
            sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSA,
            &CUBLAS_OP_T,
        )?;
        desc.set(
            sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSB,
            &CUBLAS_OP_N,
        )?;
        let epilogue = if key.bias {
            sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS
        } else {
            sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_DEFAULT
        };
        desc.set(
            sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_EPILOGUE,
            &epilogue,
        )?;
        if let Some(ptr) = bias_ptr {
            desc.set_bias_pointer(ptr)?;
        }
        Ok(Descriptors { desc, a, b, d })
    }
}

impl Plan {
    /// Descriptors for `key` and the heuristic's best algorithm within `workspace_bytes`.
    /// `bias_ptr` is set before the query, as NVIDIA's samples do, since an algorithm may depend
    /// on the bias's alignment.
    fn new(
        handle: sys::cublasLtHandle_t,
        key: PlanKey,
        bias_ptr: Option<u64>,
        workspace_bytes: usize,
    ) -> Result<Plan> {
        let Descriptors { desc, a, b, d } = Descriptors::new(key, bias_ptr)?;
        let pref = Preference::new(workspace_bytes)?;
        // Safety: every descriptor is live for the call; C and D share a layout.
        let heuristic =
            unsafe { lt::get_matmul_algo_heuristic(handle, desc.0, a.0, b.0, d.0, d.0, pref.0) }
                .map_err(|e| {
                    let GemmDims { m, n, k } = key.dims;
                    status(
                        &format!(
                            "cublasLtMatmulAlgoGetHeuristic (no algorithm for bf16 [{m}, {k}] x \
                             [{n}, {k}]ᵀ -> {}{})",
                            key.out.name(),
                            if key.bias { " + bias" } else { "" }
                        ),
                        e,
                    )
                })?;
        Ok(Plan {
            desc,
            a,
            b,
            d,
            algo: heuristic.algo,
        })
    }
}

/// A matrix layout descriptor, destroyed on drop.
struct Layout(sys::cublasLtMatrixLayout_t);

impl Layout {
    fn new(dtype: sys::cudaDataType, rows: u64, cols: u64, ld: i64) -> Result<Layout> {
        lt::create_matrix_layout(dtype, rows, cols, ld)
            .map(Layout)
            .map_err(|e| status("cublasLtMatrixLayoutCreate", e))
    }
}

impl Drop for Layout {
    fn drop(&mut self) {
        // Safety: created above and destroyed once; a failure cannot be reported from a drop.
        let _ = unsafe { lt::destroy_matrix_layout(self.0) };
    }
}

/// A matmul descriptor (f32 compute and scale), destroyed on drop.
struct MatmulDesc(sys::cublasLtMatmulDesc_t);

impl MatmulDesc {
    fn new() -> Result<MatmulDesc> {
        // f32 accumulation, as our kernel does; f32 α and β.
        lt::create_matmul_desc(
            sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            sys::cudaDataType_t::CUDA_R_32F,
        )
        .map(MatmulDesc)
        .map_err(|e| status("cublasLtMatmulDescCreate", e))
    }

    /// Sets one attribute to `value`, whose type must be the attribute's (i32 for the
    /// transposes, the epilogue enum, a device address for the bias pointer).
    fn set<T>(&self, attr: sys::cublasLtMatmulDescAttributes_t, value: &T) -> Result<()> {
        // Safety: the descriptor is live; `value` points at size_of::<T>() readable bytes.
        unsafe {
            lt::set_matmul_desc_attribute(
                self.0,
                attr,
                value as *const T as *const c_void,
                std::mem::size_of::<T>(),
            )
        }
        .map_err(|e| status(&format!("cublasLtMatmulDescSetAttribute({attr:?})"), e))
    }

    fn set_bias_pointer(&self, ptr: u64) -> Result<()> {
        self.set(
            sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_BIAS_POINTER,
            &ptr,
        )
    }
}

impl Drop for MatmulDesc {
    fn drop(&mut self) {
        // Safety: created above and destroyed once; a failure cannot be reported from a drop.
        let _ = unsafe { lt::destroy_matmul_desc(self.0) };
    }
}

/// Heuristic preferences: the workspace it may use. Only needed for the query.
struct Preference(sys::cublasLtMatmulPreference_t);

impl Preference {
    fn new(workspace_bytes: usize) -> Result<Preference> {
        let pref = lt::create_matmul_pref()
            .map(Preference)
            .map_err(|e| status("cublasLtMatmulPreferenceCreate", e))?;
        // Safety: the preference is live; the value is a usize, as the attribute's type is.
        unsafe {
            lt::set_matmul_pref_attribute(
                pref.0,
                sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                &workspace_bytes as *const usize as *const c_void,
                std::mem::size_of::<usize>(),
            )
        }
        .map_err(|e| status("cublasLtMatmulPreferenceSetAttribute", e))?;
        Ok(pref)
    }
}

impl Drop for Preference {
    fn drop(&mut self) {
        // Safety: created above and destroyed once; a failure cannot be reported from a drop.
        let _ = unsafe { lt::destroy_matmul_pref(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads one attribute back, to see the value and size we set were taken as meant.
    fn get<T: Default>(desc: &MatmulDesc, attr: sys::cublasLtMatmulDescAttributes_t) -> T {
        let mut value = T::default();
        let mut written = 0usize;
        // Safety: the descriptor is live; `value` has size_of::<T>() writable bytes.
        unsafe {
            sys::cublasLtMatmulDescGetAttribute(
                desc.0,
                attr,
                &mut value as *mut T as *mut c_void,
                std::mem::size_of::<T>(),
                &mut written,
            )
        }
        .result()
        .unwrap();
        assert_eq!(written, std::mem::size_of::<T>(), "{attr:?}");
        value
    }

    /// The descriptors (not the algorithm query, which needs a GPU) with the real library:
    /// every attribute accepted with the size we pass and read back as set. Skips with a printed
    /// reason where libcublasLt is absent (`RECUR_CUBLASLT_DIR` points at one).
    #[test]
    fn descriptors_take_their_attributes() {
        if let Err(why) = library() {
            eprintln!("skipping descriptors_take_their_attributes: {why}");
            return;
        }
        use sys::cublasLtMatmulDescAttributes_t as A;
        for (out, bias) in [
            (DType::BF16, true),
            (DType::BF16, false),
            (DType::F32, false),
        ] {
            let key = PlanKey {
                dims: GemmDims {
                    m: 97,
                    n: 1536,
                    k: 512,
                },
                out,
                bias,
            };
            let ptr = 0x7f00_0000_0100u64;
            let d = Descriptors::new(key, bias.then_some(ptr)).unwrap();
            assert_eq!(
                get::<i32>(&d.desc, A::CUBLASLT_MATMUL_DESC_TRANSA),
                CUBLAS_OP_T
            );
            assert_eq!(
                get::<i32>(&d.desc, A::CUBLASLT_MATMUL_DESC_TRANSB),
                CUBLAS_OP_N
            );
            let epilogue = get::<u32>(&d.desc, A::CUBLASLT_MATMUL_DESC_EPILOGUE);
            let want = if bias {
                sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS
            } else {
                sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_DEFAULT
            };
            assert_eq!(epilogue, want as u32);
            if bias {
                assert_eq!(
                    get::<u64>(&d.desc, A::CUBLASLT_MATMUL_DESC_BIAS_POINTER),
                    ptr
                );
            }
        }
        Preference::new(workspace_bytes((9, 0))).unwrap();
    }
}
