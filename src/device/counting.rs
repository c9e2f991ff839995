//! `Counting`: a wrapper backend that writes down what crosses it (launches by name with the
//! bytes their buffers hold, uploads and downloads with bytes, synchronisations, allocations,
//! memsets, device copies and CPU fallbacks) and passes everything on to the backend inside.
//!
//! It is how tests prove that an op on resident inputs moves nothing, and how `recur profile`
//! sees the cost of a training step.

use crate::device::backend::{DeviceBuffer, KernelArg, KernelBackend, LaunchConfig};
use crate::error::Result;
use std::sync::{Arc, Mutex, PoisonError};

/// One kernel launch as the counter saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    pub name: String,
    pub config: LaunchConfig,
    /// Bytes of the buffers passed as inputs (`KernelArg::In`).
    pub bytes_in: usize,
    /// Bytes of the buffers passed as outputs (`KernelArg::Out`).
    pub bytes_out: usize,
    /// Every argument in parameter order, as far as a cost model needs it: buffer sizes and
    /// scalar values (a launch alone does not say its shapes; its scalars and buffers do).
    pub args: Vec<ArgRecord>,
}

/// One launch argument as the counter saw it: a buffer's length in bytes, or a scalar's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ArgRecord {
    In(usize),
    Out(usize),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F32(f32),
}

impl ArgRecord {
    fn of(arg: &KernelArg<'_>) -> ArgRecord {
        match arg {
            KernelArg::In(b) => ArgRecord::In(b.len_bytes()),
            KernelArg::Out(b) => ArgRecord::Out(b.len_bytes()),
            KernelArg::I32(v) => ArgRecord::I32(*v),
            KernelArg::U32(v) => ArgRecord::U32(*v),
            KernelArg::I64(v) => ArgRecord::I64(*v),
            KernelArg::U64(v) => ArgRecord::U64(*v),
            KernelArg::F32(v) => ArgRecord::F32(*v),
        }
    }

    /// An integer scalar's value (any width), or `None` for a buffer or a float.
    pub fn int(&self) -> Option<i64> {
        match *self {
            ArgRecord::I32(v) => Some(v.into()),
            ArgRecord::U32(v) => Some(v.into()),
            ArgRecord::I64(v) => Some(v),
            ArgRecord::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A buffer's length in bytes, or `None` for a scalar.
    pub fn buffer_bytes(&self) -> Option<usize> {
        match *self {
            ArgRecord::In(b) | ArgRecord::Out(b) => Some(b),
            _ => None,
        }
    }
}

/// What crossed the backend since the counts were last taken.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    pub launches: Vec<Launch>,
    pub uploads: usize,
    pub upload_bytes: usize,
    pub downloads: usize,
    pub download_bytes: usize,
    pub syncs: usize,
    pub allocs: usize,
    pub alloc_bytes: usize,
    pub memsets: usize,
    /// Bytes set by the memsets.
    pub memset_bytes: usize,
    pub copies: usize,
    /// Bytes copied device to device (each is read once and written once).
    pub copy_bytes: usize,
    /// Ops that ran the CPU reference on a kernel compute, in order.
    pub fallbacks: Vec<&'static str>,
}

impl Counts {
    /// The launched kernels' names, in launch order.
    pub fn kernel_names(&self) -> Vec<String> {
        self.launches.iter().map(|l| l.name.clone()).collect()
    }
}

pub struct Counting {
    inner: Arc<dyn KernelBackend>,
    counts: Mutex<Counts>,
}

impl Counting {
    pub fn new(inner: Arc<dyn KernelBackend>) -> Arc<Counting> {
        Arc::new(Counting {
            inner,
            counts: Mutex::default(),
        })
    }

    /// The counts since the last `take`, which starts a new count.
    pub fn take(&self) -> Counts {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl KernelBackend for Counting {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn alloc(&self, bytes: usize) -> Result<DeviceBuffer> {
        let mut c = self.lock();
        c.allocs += 1;
        c.alloc_bytes += bytes;
        drop(c);
        self.inner.alloc(bytes)
    }
    fn upload(&self, bytes: &[u8]) -> Result<DeviceBuffer> {
        let mut c = self.lock();
        c.uploads += 1;
        c.upload_bytes += bytes.len();
        drop(c);
        self.inner.upload(bytes)
    }
    fn download(&self, buf: &DeviceBuffer) -> Result<Vec<u8>> {
        let mut c = self.lock();
        c.downloads += 1;
        c.download_bytes += buf.len_bytes();
        drop(c);
        self.inner.download(buf)
    }
    fn launch(&self, name: &str, cfg: LaunchConfig, args: &mut [KernelArg<'_>]) -> Result<()> {
        let args_seen: Vec<ArgRecord> = args.iter().map(ArgRecord::of).collect();
        let (mut bytes_in, mut bytes_out) = (0, 0);
        for arg in &args_seen {
            match arg {
                ArgRecord::In(b) => bytes_in += b,
                ArgRecord::Out(b) => bytes_out += b,
                _ => {}
            }
        }
        self.lock().launches.push(Launch {
            name: name.to_string(),
            config: cfg,
            bytes_in,
            bytes_out,
            args: args_seen,
        });
        self.inner.launch(name, cfg, args)
    }
    fn synchronize(&self) -> Result<()> {
        self.lock().syncs += 1;
        self.inner.synchronize()
    }
    fn memset(&self, buf: &mut DeviceBuffer, byte: u8) -> Result<()> {
        let mut c = self.lock();
        c.memsets += 1;
        c.memset_bytes += buf.len_bytes();
        drop(c);
        self.inner.memset(buf, byte)
    }
    fn copy(&self, dst: &mut DeviceBuffer, src: &DeviceBuffer) -> Result<()> {
        let mut c = self.lock();
        c.copies += 1;
        c.copy_bytes += src.len_bytes();
        drop(c);
        self.inner.copy(dst, src)
    }
    fn note_fallback(&self, op: &'static str) {
        self.lock().fallbacks.push(op);
        self.inner.note_fallback(op);
    }
    fn time_ms(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        self.inner.time_ms(work)
    }
}
