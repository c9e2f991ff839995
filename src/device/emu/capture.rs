//! Emu's stream work as nodes, which is what makes its graph capture real: every launch, memset,
//! device copy and staged upload is first built as a `Node` (its arguments marshalled, its
//! buffers resolved), then either run at once (eager) or recorded (capturing). A replay runs the
//! recorded nodes in order, with exactly the values frozen at capture: buffer addresses and
//! scalar arguments. What a node reads from memory (device buffers, a staging buffer's current
//! contents) is read when it runs. So on Emu, as on a GPU, a scalar passed by value keeps its
//! captured value on every replay, a value read from device memory does not, and nothing
//! executes while capturing.
//!
//! Each node holds clones of the buffers (and the staging) it refers to, so the addresses it
//! froze stay valid as long as the graph lives, even if the caller drops its own handles.

use super::args::Marshalled;
use super::memory::HostMemory;
use super::Emu;
use crate::device::backend::{expect_same_length, DeviceBuffer, KernelArg, LaunchConfig};
use crate::device::staging::Staging;
use crate::error::{Error, Result};

/// One operation of Emu's (synchronous) stream.
pub(super) enum Node {
    Launch {
        name: String,
        cfg: LaunchConfig,
        args: FrozenArgs,
    },
    Memset {
        buf: DeviceBuffer,
        byte: u8,
    },
    Copy {
        dst: DeviceBuffer,
        src: DeviceBuffer,
    },
    StagedUpload {
        dst: DeviceBuffer,
        src: Staging,
    },
}

/// A launch's marshalled argument values (device addresses, scalars) and clones of the buffers
/// those addresses point into, which keep them valid.
pub(super) struct FrozenArgs {
    values: Marshalled,
    _buffers: Vec<DeviceBuffer>,
}

// SAFETY: the raw pointers in `values` point into the allocations that `_buffers` keeps alive
// (Emu's `HostMemory`, itself Sync); a node is run by one thread at a time, on a clone of the
// values (`Node::run`), so the pointers are never written concurrently.
unsafe impl Send for FrozenArgs {}
unsafe impl Sync for FrozenArgs {}

impl Node {
    pub(super) fn launch(
        name: &str,
        cfg: LaunchConfig,
        args: &mut [KernelArg<'_>],
    ) -> Result<Node> {
        let values = Marshalled::new(args)?;
        let buffers = args
            .iter()
            .filter_map(|arg| match arg {
                KernelArg::In(buf) => Some((*buf).clone()),
                KernelArg::Out(buf) => Some((**buf).clone()),
                _ => None,
            })
            .collect();
        Ok(Node::Launch {
            name: name.to_string(),
            cfg,
            args: FrozenArgs {
                values,
                _buffers: buffers,
            },
        })
    }

    pub(super) fn memset(buf: &DeviceBuffer, byte: u8) -> Result<Node> {
        Emu::memory(buf)?;
        Ok(Node::Memset {
            buf: buf.clone(),
            byte,
        })
    }

    pub(super) fn copy(dst: &DeviceBuffer, src: &DeviceBuffer) -> Result<Node> {
        expect_same_length("emu copy", dst, src)?;
        Emu::memory(dst)?;
        Emu::memory(src)?;
        Ok(Node::Copy {
            dst: dst.clone(),
            src: src.clone(),
        })
    }

    pub(super) fn staged_upload(dst: &DeviceBuffer, src: &Staging) -> Result<Node> {
        Emu::memory(dst)?;
        if src.handle::<HostMemory>().is_none() {
            return Err(Error::arg(
                "emu upload_staged",
                "staging buffer of another backend",
            ));
        }
        src.expect_copy_into("emu upload_staged", dst)?;
        Ok(Node::StagedUpload {
            dst: dst.clone(),
            src: src.clone(),
        })
    }

    /// Runs the node to completion, reading memory as it is now.
    pub(super) fn run(&self) -> Result<()> {
        match self {
            Node::Launch { name, cfg, args } => {
                // The shim takes `void**` into the values; each run points into its own copy.
                let mut values = args.values.clone();
                super::launch_now(name, *cfg, &mut values)
            }
            Node::Memset { buf, byte } => {
                // SAFETY: Emu runs one node at a time, to completion, so no kernel is running.
                unsafe { Emu::memory(buf)?.fill(buf.offset_bytes(), buf.len_bytes(), *byte) };
                Ok(())
            }
            Node::Copy { dst, src } => {
                let bytes = Emu::memory(src)?.read(src.offset_bytes(), src.len_bytes());
                // SAFETY: as for `Memset`.
                unsafe { Emu::memory(dst)?.write(dst.offset_bytes(), &bytes) };
                Ok(())
            }
            Node::StagedUpload { dst, src } => {
                let mem = Emu::memory(dst)?;
                // SAFETY: as for `Memset`.
                src.with_contents(|bytes| unsafe { mem.write(dst.offset_bytes(), bytes) });
                Ok(())
            }
        }
    }
}

/// What `Emu::end_capture` puts inside a `Graph`: the recorded nodes, in stream order.
pub(super) struct EmuGraph {
    pub(super) nodes: Vec<Node>,
}

impl EmuGraph {
    /// Runs every node in order, synchronously; the first failure stops the replay.
    pub(super) fn replay(&self) -> Result<()> {
        self.nodes.iter().try_for_each(Node::run)
    }
}
