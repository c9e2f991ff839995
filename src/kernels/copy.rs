//! `copy_bytes`: the device-to-device copy that defines the bandwidth ceiling.

use crate::device::{DeviceBuffer, KernelArg, KernelBackend, LaunchConfig};
use crate::error::{Error, Result};

/// Copies all of `src` into `dst` (same length).
pub fn copy_bytes(
    dev: &dyn KernelBackend,
    dst: &mut DeviceBuffer,
    src: &DeviceBuffer,
) -> Result<()> {
    let n = src.len_bytes();
    if dst.len_bytes() != n {
        return Err(Error::shape(
            "copy_bytes",
            format!("{} destination bytes for {n} source bytes", dst.len_bytes()),
        ));
    }
    // One 16-byte vector per thread, capped at a grid that fills any current GPU several times.
    let cfg = LaunchConfig::for_elements(n.div_ceil(16), 256);
    let cfg = LaunchConfig::linear(cfg.grid.0.min(132 * 16), 256);
    dev.launch(
        "copy_bytes",
        cfg,
        &mut [
            KernelArg::Out(dst),
            KernelArg::In(src),
            KernelArg::I64(n as i64),
        ],
    )
}
