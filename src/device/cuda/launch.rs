//! Turning a backend-neutral launch (`LaunchConfig`, `KernelArg`s) into a driver launch: the
//! configuration is checked against CUDA's limits first, so a bad one is an error that names the
//! kernel instead of an opaque `CUDA_ERROR_INVALID_VALUE`, and each argument becomes the value
//! the kernel parameter holds (a device address for buffers).

use crate::device::backend::{KernelArg, LaunchConfig};
use crate::device::cuda::cuda_error;
use crate::error::Result;
use cudarc::driver::{CudaFunction, CudaStream, LaunchArgs, PushKernelArg};

/// The value of one kernel parameter, owned so the launch can point at it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamValue {
    DevicePtr(u64),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F32(f32),
}

/// The parameter values of `args`, in order. Buffers must come from this backend.
pub fn param_values(kernel: &str, args: &[KernelArg<'_>]) -> Result<Vec<ParamValue>> {
    args.iter()
        .enumerate()
        .map(|(i, arg)| {
            let buffer = match arg {
                KernelArg::In(b) => &**b,
                KernelArg::Out(b) => &**b,
                KernelArg::I32(v) => return Ok(ParamValue::I32(*v)),
                KernelArg::U32(v) => return Ok(ParamValue::U32(*v)),
                KernelArg::I64(v) => return Ok(ParamValue::I64(*v)),
                KernelArg::U64(v) => return Ok(ParamValue::U64(*v)),
                KernelArg::F32(v) => return Ok(ParamValue::F32(*v)),
            };
            super::device_address(buffer)
                .map(ParamValue::DevicePtr)
                .ok_or_else(|| {
                    cuda_error(format!(
                        "{kernel}: argument {i} is a buffer of another backend, not CUDA memory"
                    ))
                })
        })
        .collect()
}

/// Errors unless `cfg` is within CUDA's limits for every device since sm_70.
pub fn check_config(kernel: &str, cfg: &LaunchConfig) -> Result<()> {
    let (bx, by, bz) = cfg.block;
    let (gx, gy, gz) = cfg.grid;
    let threads = bx as u64 * by as u64 * bz as u64;
    let problem = if threads == 0 || gx == 0 || gy == 0 || gz == 0 {
        Some("a grid or block dimension is zero".to_string())
    } else if threads > 1024 || bz > 64 {
        Some(format!(
            "{threads} threads per block (at most 1024, z at most 64)"
        ))
    } else if gx > i32::MAX as u32 || gy > 65535 || gz > 65535 {
        Some("grid too large (x < 2^31, y and z ≤ 65535)".to_string())
    } else if cfg.shared_mem_bytes > 227 * 1024 {
        Some(format!(
            "{} bytes of dynamic shared memory (at most 227 KiB per block)",
            cfg.shared_mem_bytes
        ))
    } else {
        None
    };
    match problem {
        Some(p) => Err(cuda_error(format!(
            "{kernel}: bad launch configuration {cfg:?}: {p}"
        ))),
        None => Ok(()),
    }
}

/// Enqueues `function` on `stream`. Asynchronous: nothing here waits for the device.
pub fn enqueue(
    stream: &CudaStream,
    kernel: &str,
    function: &CudaFunction,
    cfg: &LaunchConfig,
    params: &[ParamValue],
) -> Result<()> {
    let mut builder: LaunchArgs<'_> = stream.launch_builder(function);
    for param in params {
        match param {
            ParamValue::DevicePtr(v) | ParamValue::U64(v) => builder.arg(v),
            ParamValue::I32(v) => builder.arg(v),
            ParamValue::U32(v) => builder.arg(v),
            ParamValue::I64(v) => builder.arg(v),
            ParamValue::F32(v) => builder.arg(v),
        };
    }
    let driver_cfg = cudarc::driver::LaunchConfig {
        grid_dim: cfg.grid,
        block_dim: cfg.block,
        shared_mem_bytes: cfg.shared_mem_bytes,
    };
    // Safety: the parameter count and types are the caller's contract with the kernel (as in
    // CUDA C); every pointer comes from this context's allocator and the values outlive the call.
    unsafe { builder.launch(driver_cfg) }
        .map(|_| ())
        .map_err(|e| cuda_error(format!("launching {kernel} with {cfg:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_pass_through_in_order() {
        let args = [KernelArg::I32(-3), KernelArg::F32(0.5), KernelArg::U64(7)];
        assert_eq!(
            param_values("k", &args).unwrap(),
            vec![
                ParamValue::I32(-3),
                ParamValue::F32(0.5),
                ParamValue::U64(7)
            ]
        );
    }

    #[test]
    fn a_buffer_of_another_backend_is_an_error() {
        let foreign = crate::device::DeviceBuffer::new(4, Box::new(vec![0u8; 4]));
        let err = param_values("k", &[KernelArg::In(&foreign)]).unwrap_err();
        assert!(err.to_string().contains("another backend"), "{err}");
    }

    #[test]
    fn configurations_outside_cuda_limits_are_errors() {
        assert!(check_config("k", &LaunchConfig::linear(10, 256)).is_ok());
        assert!(check_config("k", &LaunchConfig::linear(0, 256)).is_err());
        assert!(check_config("k", &LaunchConfig::linear(1, 2048)).is_err());
        assert!(check_config("k", &LaunchConfig::linear(1, 32).with_shared_mem(300_000)).is_err());
    }
}
