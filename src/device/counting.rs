//! `Counting`: a wrapper backend that writes down what crosses it (launches by name with the
//! bytes their buffers hold, uploads and downloads with bytes, synchronisations, allocations,
//! memsets, device copies, CPU fallbacks, graph captures and replays, staged uploads, event
//! waits) and passes everything on to the backend inside.
//!
//! It is how tests prove that an op on resident inputs moves nothing, and how `recur profile`
//! sees the cost of a training step.
//!
//! Graphs: what a step does is counted when it runs, not when it is recorded. While a capture is
//! in progress, the work passed on (which the backend records without running) is counted into
//! the graph's own `Counts` instead of the current ones; the capture itself counts only
//! `captures`. Each replay then adds the graph's counts (its launches, memsets, copies, staged
//! uploads) to the current ones and counts one `replays`. So an eagerly run step and a replayed
//! step of the same work show the same launch multiset and the same bytes moved, and a test can
//! compare them directly; `replays` and `captures` tell the two apart.

use crate::device::backend::{DeviceBuffer, KernelArg, KernelBackend, LaunchConfig};
use crate::device::graph::Graph;
use crate::device::staging::{Event, Staging};
use crate::error::{Error, Result};
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
    /// Staged uploads (`upload_staged`); each is also counted in `uploads` and `upload_bytes`.
    pub staged_uploads: usize,
    pub staged_upload_bytes: usize,
    /// Graphs captured (`end_capture` that returned a graph).
    pub captures: usize,
    /// Graph replays; each also adds the graph's recorded work to these counts.
    pub replays: usize,
    /// Host waits for an event (`wait_event`): partial synchronisations.
    pub event_waits: usize,
}

impl Counts {
    /// The launched kernels' names, in launch order.
    pub fn kernel_names(&self) -> Vec<String> {
        self.launches.iter().map(|l| l.name.clone()).collect()
    }

    /// Adds every count of `other` to these (a replay adds its graph's recorded work). The
    /// destructuring is exhaustive, so a new field cannot be forgotten here.
    pub fn add(&mut self, other: &Counts) {
        let Counts {
            launches,
            uploads,
            upload_bytes,
            downloads,
            download_bytes,
            syncs,
            allocs,
            alloc_bytes,
            memsets,
            memset_bytes,
            copies,
            copy_bytes,
            fallbacks,
            staged_uploads,
            staged_upload_bytes,
            captures,
            replays,
            event_waits,
        } = other;
        self.launches.extend(launches.iter().cloned());
        self.uploads += uploads;
        self.upload_bytes += upload_bytes;
        self.downloads += downloads;
        self.download_bytes += download_bytes;
        self.syncs += syncs;
        self.allocs += allocs;
        self.alloc_bytes += alloc_bytes;
        self.memsets += memsets;
        self.memset_bytes += memset_bytes;
        self.copies += copies;
        self.copy_bytes += copy_bytes;
        self.fallbacks.extend(fallbacks.iter().copied());
        self.staged_uploads += staged_uploads;
        self.staged_upload_bytes += staged_upload_bytes;
        self.captures += captures;
        self.replays += replays;
        self.event_waits += event_waits;
    }
}

pub struct Counting {
    inner: Arc<dyn KernelBackend>,
    tally: Mutex<Tally>,
}

#[derive(Default)]
struct Tally {
    /// What ran since the last `take`.
    counts: Counts,
    /// While capturing: what the capture recorded so far (counted at each replay instead).
    captured: Option<Counts>,
}

impl Tally {
    /// Where the work passed on now is counted: into the capture while one is in progress.
    fn work(&mut self) -> &mut Counts {
        self.captured.as_mut().unwrap_or(&mut self.counts)
    }
}

/// What `Counting::end_capture` returns inside a `Graph`: the inner backend's graph and what the
/// capture recorded, added to the counts at each replay.
struct CountedGraph {
    inner: Graph,
    recorded: Counts,
}

impl Counting {
    pub fn new(inner: Arc<dyn KernelBackend>) -> Arc<Counting> {
        Arc::new(Counting {
            inner,
            tally: Mutex::default(),
        })
    }

    /// The counts since the last `take`, which starts a new count.
    pub fn take(&self) -> Counts {
        std::mem::take(&mut self.lock().counts)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts the work passed on now (`f` on the current counts, or the capture's).
    fn count(&self, f: impl FnOnce(&mut Counts)) {
        f(self.lock().work());
    }
}

impl KernelBackend for Counting {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn alloc(&self, bytes: usize) -> Result<DeviceBuffer> {
        // Counted when it happens, never into a capture: a graph's buffers are allocated (from
        // the pool) while it is captured, and its replays allocate nothing.
        let mut tally = self.lock();
        tally.counts.allocs += 1;
        tally.counts.alloc_bytes += bytes;
        drop(tally);
        self.inner.alloc(bytes)
    }
    fn upload(&self, bytes: &[u8]) -> Result<DeviceBuffer> {
        self.count(|c| {
            c.uploads += 1;
            c.upload_bytes += bytes.len();
        });
        self.inner.upload(bytes)
    }
    fn download(&self, buf: &DeviceBuffer) -> Result<Vec<u8>> {
        self.count(|c| {
            c.downloads += 1;
            c.download_bytes += buf.len_bytes();
        });
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
        self.count(|c| {
            c.launches.push(Launch {
                name: name.to_string(),
                config: cfg,
                bytes_in,
                bytes_out,
                args: args_seen,
            })
        });
        self.inner.launch(name, cfg, args)
    }
    fn synchronize(&self) -> Result<()> {
        self.count(|c| c.syncs += 1);
        self.inner.synchronize()
    }
    fn memset(&self, buf: &mut DeviceBuffer, byte: u8) -> Result<()> {
        let bytes = buf.len_bytes();
        self.count(|c| {
            c.memsets += 1;
            c.memset_bytes += bytes;
        });
        self.inner.memset(buf, byte)
    }
    fn copy(&self, dst: &mut DeviceBuffer, src: &DeviceBuffer) -> Result<()> {
        let bytes = src.len_bytes();
        self.count(|c| {
            c.copies += 1;
            c.copy_bytes += bytes;
        });
        self.inner.copy(dst, src)
    }
    fn note_fallback(&self, op: &'static str) {
        self.count(|c| c.fallbacks.push(op));
        self.inner.note_fallback(op);
    }
    fn time_ms(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
        self.inner.time_ms(work)
    }

    fn begin_capture(&self) -> Result<()> {
        self.inner.begin_capture()?;
        self.lock().captured = Some(Counts::default());
        Ok(())
    }
    fn end_capture(&self) -> Result<Graph> {
        let recorded = self.lock().captured.take();
        let inner = self.inner.end_capture()?;
        self.lock().counts.captures += 1;
        Ok(Graph::new(Box::new(CountedGraph {
            inner,
            recorded: recorded.unwrap_or_default(),
        })))
    }
    fn replay(&self, graph: &Graph) -> Result<()> {
        let counted = graph.handle::<CountedGraph>().ok_or_else(|| {
            Error::arg(
                "counting replay",
                "graph not captured through this counting backend, so its work is unknown",
            )
        })?;
        self.inner.replay(&counted.inner)?;
        let mut tally = self.lock();
        tally.counts.replays += 1;
        tally.counts.add(&counted.recorded);
        Ok(())
    }
    fn alloc_staging(&self, bytes: usize) -> Result<Staging> {
        // Host memory, not device memory: not an `alloc`, and not moved data.
        self.inner.alloc_staging(bytes)
    }
    fn upload_staged(&self, dst: &mut DeviceBuffer, src: &Staging) -> Result<()> {
        let bytes = src.len_bytes();
        self.count(|c| {
            c.uploads += 1;
            c.upload_bytes += bytes;
            c.staged_uploads += 1;
            c.staged_upload_bytes += bytes;
        });
        self.inner.upload_staged(dst, src)
    }
    fn record_event(&self) -> Result<Event> {
        self.inner.record_event()
    }
    fn wait_event(&self, event: &Event) -> Result<()> {
        self.count(|c| c.event_waits += 1);
        self.inner.wait_event(event)
    }
}
