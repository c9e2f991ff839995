//! `Trace`: a kernel backend that runs nothing. It hands out fake device addresses (no memory
//! behind them), accepts every launch of a known kernel without running it, and returns zeros of
//! the right length on a download. Wrapped in `Counting`, it shows the launches, copies and
//! synchronisations of a paper-size training step in seconds on a machine without a GPU, which is
//! how `recur profile --device trace` sees the cost of a step (`docs/profile.md`).
//!
//! What it cannot show: anything that depends on the values a kernel would have computed. Host
//! code that reads a download (the halting decision, the metrics) sees zeros, so a data-dependent
//! branch may take another path than on a real device.

use crate::device::backend::{
    expect_same_length, DeviceBuffer, KernelArg, KernelBackend, LaunchConfig,
};
use crate::device::emu::Emu;
use crate::device::staging::{Event, Staging};
use crate::error::{Error, Result};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The handle of a traced buffer: the address it would have had. Addresses are distinct and
/// 256-byte aligned, as the CUDA allocator's are, so two live buffers never compare equal.
#[derive(Debug)]
pub struct FakeAddress(pub u64);

#[derive(Debug)]
pub struct Trace {
    next_address: AtomicU64,
}

impl Default for Trace {
    fn default() -> Trace {
        Trace::new()
    }
}

/// Where the first fake allocation starts: far from zero, so a fake address is never null.
const FIRST_ADDRESS: u64 = 0x7f00_0000_0000;
const ALIGNMENT: u64 = 256;

impl Trace {
    pub fn new() -> Trace {
        Trace {
            next_address: AtomicU64::new(FIRST_ADDRESS),
        }
    }

    /// The kernels a launch may name: exactly those compiled into the binary (the same set Emu
    /// runs), so a traced step fails on a misspelt kernel as a real one would.
    fn known_kernels() -> &'static HashSet<&'static str> {
        static KNOWN: OnceLock<HashSet<&'static str>> = OnceLock::new();
        KNOWN.get_or_init(|| Emu::kernel_names().into_iter().collect())
    }

    fn fake(&self, bytes: usize) -> DeviceBuffer {
        let span = (bytes as u64).div_ceil(ALIGNMENT).max(1) * ALIGNMENT;
        let address = self.next_address.fetch_add(span, Ordering::Relaxed);
        DeviceBuffer::new(bytes, Box::new(FakeAddress(address)))
    }

    fn expect_traced(op: &'static str, buf: &DeviceBuffer) -> Result<()> {
        match buf.handle::<FakeAddress>() {
            Some(_) => Ok(()),
            None => Err(Error::arg(
                op,
                format!("{buf:?} belongs to another backend, not the trace"),
            )),
        }
    }
}

impl KernelBackend for Trace {
    fn name(&self) -> String {
        "trace (launches recorded, not run)".to_string()
    }

    fn alloc(&self, bytes: usize) -> Result<DeviceBuffer> {
        Ok(self.fake(bytes))
    }

    fn upload(&self, bytes: &[u8]) -> Result<DeviceBuffer> {
        Ok(self.fake(bytes.len()))
    }

    fn download(&self, buf: &DeviceBuffer) -> Result<Vec<u8>> {
        Trace::expect_traced("trace download", buf)?;
        Ok(vec![0; buf.len_bytes()])
    }

    fn launch(&self, name: &str, _cfg: LaunchConfig, args: &mut [KernelArg<'_>]) -> Result<()> {
        if !Trace::known_kernels().contains(name) {
            return Err(Error::device(
                "trace",
                format!("no kernel named {name:?} is compiled into this binary"),
            ));
        }
        for arg in args.iter() {
            if let KernelArg::In(b) = arg {
                Trace::expect_traced("trace launch", b)?;
            }
            if let KernelArg::Out(b) = arg {
                Trace::expect_traced("trace launch", b)?;
            }
        }
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    fn memset(&self, buf: &mut DeviceBuffer, _byte: u8) -> Result<()> {
        Trace::expect_traced("trace memset", buf)
    }

    fn copy(&self, dst: &mut DeviceBuffer, src: &DeviceBuffer) -> Result<()> {
        expect_same_length("trace copy", dst, src)?;
        Trace::expect_traced("trace copy", dst)?;
        Trace::expect_traced("trace copy", src)
    }

    /// Staging is real host memory (the host writes it), so a traced step stages its inputs as
    /// a GPU step does; the copy out of it is recorded, not run.
    fn alloc_staging(&self, bytes: usize) -> Result<Staging> {
        let mut memory = vec![0u8; bytes].into_boxed_slice();
        let ptr = memory.as_mut_ptr();
        // SAFETY: `ptr` is the start of the boxed slice's `bytes` bytes; the slice does not move
        // when the box moves into the staging, and only the staging touches it.
        Ok(unsafe { Staging::new(ptr, bytes, Box::new(memory)) })
    }

    fn upload_staged(&self, dst: &mut DeviceBuffer, src: &Staging) -> Result<()> {
        Trace::expect_traced("trace upload_staged", dst)?;
        src.expect_copy_into("trace upload_staged", dst)?;
        Ok(())
    }

    fn record_event(&self) -> Result<Event> {
        Ok(Event::new(Box::new(TracedEvent)))
    }

    fn wait_event(&self, _event: &Event) -> Result<()> {
        Ok(())
    }
}

/// The trace's `Event`: nothing runs, so every event has passed.
struct TracedEvent;
