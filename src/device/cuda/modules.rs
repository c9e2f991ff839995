//! Kernel name → loaded function. Each kernel file is compiled (or fetched from the image cache)
//! and loaded as one module the first time one of its kernels is asked for; the functions found
//! are remembered, so later launches take one map lookup.
//!
//! A name is looked for first in the files whose source mentions it (or its stem, for kernels
//! stamped by macros: `rmsnorm_fwd_f32` is searched for as `rmsnorm_fwd`), then in every other
//! file, so a kernel is found wherever it lives without a hand-kept table.

use crate::device::cuda::{cuda_error, image_cache, image_cache::ModuleImage};
use crate::error::Result;
use crate::kernels;
use cudarc::driver::{sys, CudaContext, CudaFunction, CudaModule, DriverError};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A loaded kernel and the dynamic shared memory it has been allowed so far.
#[derive(Clone)]
pub struct Kernel {
    pub function: CudaFunction,
    dynamic_shared_allowed: u32,
}

/// Above this much dynamic shared memory a kernel must opt in through a function attribute.
const DEFAULT_DYNAMIC_SHARED_LIMIT: u32 = 48 * 1024;

pub struct KernelRegistry {
    ctx: Arc<CudaContext>,
    arch: String,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    kernels: Mutex<HashMap<String, Kernel>>,
}

impl KernelRegistry {
    pub fn new(ctx: Arc<CudaContext>, arch: String) -> KernelRegistry {
        KernelRegistry {
            ctx,
            arch,
            modules: Mutex::new(HashMap::new()),
            kernels: Mutex::new(HashMap::new()),
        }
    }

    /// The kernel `name`, loaded, allowed `dynamic_shared_bytes` of dynamic shared memory.
    pub fn kernel(&self, name: &str, dynamic_shared_bytes: u32) -> Result<CudaFunction> {
        let mut kernels = self.kernels.lock().expect("kernel registry lock");
        if !kernels.contains_key(name) {
            let function = self.find(name)?;
            kernels.insert(
                name.to_string(),
                Kernel {
                    function,
                    dynamic_shared_allowed: DEFAULT_DYNAMIC_SHARED_LIMIT,
                },
            );
        }
        let kernel = kernels.get_mut(name).expect("inserted above");
        if dynamic_shared_bytes > kernel.dynamic_shared_allowed {
            kernel
                .function
                .set_attribute(
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    dynamic_shared_bytes as i32,
                )
                .map_err(|e| {
                    cuda_error(format!(
                        "{name}: cannot allow {dynamic_shared_bytes} bytes of dynamic shared memory: {e}"
                    ))
                })?;
            kernel.dynamic_shared_allowed = dynamic_shared_bytes;
        }
        Ok(kernel.function.clone())
    }

    fn find(&self, name: &str) -> Result<CudaFunction> {
        let units = search_order(name);
        for &unit in &units {
            let module = self.module(unit)?;
            match module.load_function(name) {
                Ok(function) => return Ok(function),
                Err(DriverError(sys::CUresult::CUDA_ERROR_NOT_FOUND)) => continue,
                Err(e) => return Err(cuda_error(format!("{unit}: loading {name}: {e}"))),
            }
        }
        Err(cuda_error(format!(
            "no kernel named {name:?} in kernels/ (searched {})",
            units.join(", ")
        )))
    }

    /// The loaded module of kernel file `unit`, compiling it on first use. A cached image that
    /// the driver rejects (a truncated file, say) is compiled afresh once.
    fn module(&self, unit: &'static str) -> Result<Arc<CudaModule>> {
        if let Some(module) = self.modules.lock().expect("module lock").get(unit) {
            return Ok(module.clone());
        }
        let source = kernels::expand_includes(unit)?;
        let image = image_cache::module_image(unit, &source, &self.arch)?;
        let module = match self.load(&image) {
            Ok(module) => module,
            Err(_) => {
                let image = image_cache::recompile(unit, &source, &self.arch)?;
                self.load(&image).map_err(|e| {
                    cuda_error(format!(
                        "the driver rejected {unit} built for {}: {e}",
                        self.arch
                    ))
                })?
            }
        };
        self.modules
            .lock()
            .expect("module lock")
            .insert(unit, module.clone());
        Ok(module)
    }

    fn load(&self, image: &ModuleImage) -> Result<Arc<CudaModule>, DriverError> {
        let ptx = match image {
            ModuleImage::Cubin(bytes) => Ptx::from_binary(bytes.clone()),
            ModuleImage::Ptx(text) => Ptx::from_src(text.clone()),
        };
        self.ctx.load_module(ptx)
    }
}

/// Every kernel file, the likeliest homes of `name` first.
fn search_order(name: &str) -> Vec<&'static str> {
    let stem = name
        .strip_suffix("_f32")
        .or_else(|| name.strip_suffix("_bf16"))
        .unwrap_or(name);
    let mentions = |unit: &str| {
        kernels::expand_includes(unit)
            .map(|source| source.contains(stem))
            .unwrap_or(false)
    };
    let (likely, rest): (Vec<&'static str>, Vec<&'static str>) =
        kernels::compilation_units().partition(|unit| mentions(unit));
    likely.into_iter().chain(rest).collect()
}
