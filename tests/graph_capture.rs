//! CUDA graph capture and replay, and pinned staging (`KernelBackend::begin_capture`,
//! `end_capture`, `replay`, `alloc_staging`, `upload_staged`, `record_event`, `wait_event`):
//! replays equal eager runs bit for bit, arguments are frozen at capture, nothing runs while
//! capturing, a captured step may not read, wait or allocate, and the counting backend counts a
//! replay as the work it replays. Each test runs on Emu (`<name>::emu`) and on a GPU
//! (`<name>::cuda`, skipped with a printed reason without one, a failure under
//! `RECUR_REQUIRE_CUDA=1`).

use recur::device::counting::{Counting, Counts};
use recur::device::cuda::Cuda;
use recur::device::emu::Emu;
use recur::device::{DeviceTensor, Event, KernelBackend, Staging};
use recur::kernels::elementwise::{add_fwd_into, mul_fwd_into, scale_fwd_into};
use recur::{DType, Tensor};
use std::sync::Arc;

/// Defines `<name>::emu` and `<name>::cuda`, each running `body(backend)`.
macro_rules! graph_test {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;

            #[test]
            fn emu() {
                $body(Arc::new(Emu::new().unwrap()));
            }

            #[test]
            fn cuda() {
                match Cuda::new(0) {
                    Ok(gpu) => $body(Arc::new(gpu)),
                    Err(e) => recur::testing::skip_cuda(module_path!(), e),
                }
            }
        }
    };
}

/// Ragged: not a multiple of the 256-thread blocks.
const N: usize = 300;

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    bytemuck::cast_slice(values).to_vec()
}

/// Step `k`'s input, different for every `k`.
fn input(k: usize) -> Vec<f32> {
    (0..N)
        .map(|i| ((i * 37 + k * 101) % 97) as f32 / 13.0 - 3.0)
        .collect()
}

fn tensor(dev: &dyn KernelBackend, values: Vec<f32>) -> DeviceTensor {
    DeviceTensor::upload(dev, &Tensor::from_vec(values, vec![N]).unwrap()).unwrap()
}

fn uninit(dev: &dyn KernelBackend) -> DeviceTensor {
    DeviceTensor::uninit(dev, vec![N], DType::F32).unwrap()
}

/// Every buffer of a small step, allocated before any capture (a capture may not allocate).
struct Step {
    /// The step's input, copied from staging by the step's first node.
    x: DeviceTensor,
    /// A constant, uploaded once.
    w: DeviceTensor,
    /// Zeroed by the step's memset.
    zeros: DeviceTensor,
    sum: DeviceTensor,
    half: DeviceTensor,
    shifted: DeviceTensor,
    copied: DeviceTensor,
    out: DeviceTensor,
}

impl Step {
    fn new(dev: &dyn KernelBackend) -> Step {
        Step {
            x: uninit(dev),
            w: tensor(dev, (0..N).map(|i| (i % 11) as f32 * 0.25 - 1.0).collect()),
            zeros: uninit(dev),
            sum: uninit(dev),
            half: uninit(dev),
            shifted: uninit(dev),
            copied: uninit(dev),
            out: uninit(dev),
        }
    }

    /// Every buffer the step writes, as NaN (0xff bytes), so a node that did not run shows.
    fn poison(&mut self, dev: &dyn KernelBackend) {
        for t in [
            &mut self.x,
            &mut self.zeros,
            &mut self.sum,
            &mut self.half,
            &mut self.shifted,
            &mut self.copied,
            &mut self.out,
        ] {
            dev.memset(&mut t.buf, 0xff).unwrap();
        }
    }

    /// A staged upload feeding a chain of real kernels, a memset and a device copy:
    /// `out = (((x + w) · 0.5 + 0) copied) ⊙ x`.
    fn run(&mut self, dev: &dyn KernelBackend, staging: &Staging) {
        dev.upload_staged(&mut self.x.buf, staging).unwrap();
        dev.memset(&mut self.zeros.buf, 0).unwrap();
        add_fwd_into(dev, &self.x, &self.w, &mut self.sum).unwrap();
        scale_fwd_into(dev, &self.sum, 0.5, &mut self.half).unwrap();
        add_fwd_into(dev, &self.half, &self.zeros, &mut self.shifted).unwrap();
        dev.copy(&mut self.copied.buf, &self.shifted.buf).unwrap();
        mul_fwd_into(dev, &self.copied, &self.x, &mut self.out).unwrap();
    }

    /// The bytes of everything the step wrote.
    fn outputs(&self, dev: &dyn KernelBackend) -> Vec<Vec<u8>> {
        [
            &self.x,
            &self.zeros,
            &self.sum,
            &self.half,
            &self.shifted,
            &self.copied,
            &self.out,
        ]
        .iter()
        .map(|t| dev.download(&t.buf).unwrap())
        .collect()
    }
}

fn staging_with(dev: &dyn KernelBackend, values: &[f32]) -> Staging {
    let staging = dev.alloc_staging(N * 4).unwrap();
    staging.write(0, &f32_bytes(values)).unwrap();
    staging
}

/// Captured once per staging slot (two slots, double-buffered as a trainer would), replayed four
/// times with new staging contents each time: every output equals the eager run's, bit for bit.
fn replays_equal_eager_runs(dev: Arc<dyn KernelBackend>) {
    let dev = dev.as_ref();
    let mut eager = Step::new(dev);
    let mut graphed = Step::new(dev);
    // What the slots hold at capture time must not matter: a replay reads them as they are then.
    let slots = [staging_with(dev, &[7.0; N]), staging_with(dev, &[-7.0; N])];
    let graphs: Vec<_> = slots
        .iter()
        .map(|slot| {
            dev.begin_capture().unwrap();
            graphed.run(dev, slot);
            dev.end_capture().unwrap()
        })
        .collect();
    let mut events = [None, None];
    for k in 0..4 {
        let eager_staging = staging_with(dev, &input(k));
        eager.poison(dev);
        eager.run(dev, &eager_staging);
        let want = eager.outputs(dev);

        graphed.poison(dev);
        let slot = k % 2;
        if let Some(event) = events[slot].take() {
            dev.wait_event(&event).unwrap(); // the replay that read this slot is done
        }
        slots[slot].write(0, &f32_bytes(&input(k))).unwrap();
        dev.replay(&graphs[slot]).unwrap();
        events[slot] = Some(dev.record_event().unwrap());
        let got = graphed.outputs(dev);
        for (i, (got, want)) in got.iter().zip(&want).enumerate() {
            assert_eq!(got, want, "replay {k}, output {i}");
        }
        let out: &[f32] = bytemuck::cast_slice(&got[6]);
        assert!(out.iter().all(|v| v.is_finite()), "replay {k} left NaN");
    }
    // The arithmetic itself, once: out = ((x + w) · 0.5) · x for the last input.
    let (x, w) = (
        input(3),
        eager.w.download(dev).unwrap().to_vec_f32().unwrap(),
    );
    let out = eager.out.download(dev).unwrap().to_vec_f32().unwrap();
    for i in 0..N {
        assert_eq!(out[i], ((x[i] + w[i]) * 0.5) * x[i], "element {i}");
    }
}
graph_test!(replay_equals_eager, replays_equal_eager_runs);

/// A scalar passed by value is frozen at capture (×2 stays ×2), a value read from device memory
/// is read at replay, and nothing runs while capturing.
fn captured_arguments_are_frozen(dev: Arc<dyn KernelBackend>) {
    let dev = dev.as_ref();
    let mut a = tensor(dev, input(0));
    let mut out = uninit(dev);
    dev.memset(&mut out.buf, 0xff).unwrap();
    let mut factor = 2.0;
    dev.begin_capture().unwrap();
    scale_fwd_into(dev, &a, factor, &mut out).unwrap();
    let graph = dev.end_capture().unwrap();
    let poisoned = out.download(dev).unwrap().to_vec_f32().unwrap();
    assert!(
        poisoned.iter().all(|v| v.is_nan()),
        "the capture ran the kernel instead of recording it"
    );

    // The host now passes 3.0, and `a` changes on the device.
    factor = 3.0;
    let mut thrice = uninit(dev);
    scale_fwd_into(dev, &a, factor, &mut thrice).unwrap();
    let new_a = tensor(dev, input(1));
    dev.copy(&mut a.buf, &new_a.buf).unwrap();
    for _ in 0..2 {
        dev.memset(&mut out.buf, 0xff).unwrap();
        dev.replay(&graph).unwrap();
        let got = out.download(dev).unwrap().to_vec_f32().unwrap();
        let want: Vec<f32> = input(1).iter().map(|v| v * 2.0).collect();
        assert_eq!(got, want, "×2 of the current contents of `a`");
    }
}
graph_test!(arguments_frozen_at_capture, captured_arguments_are_frozen);

/// The graph keeps its buffers alive: dropping the caller's handles and allocating new buffers
/// (which a caching allocator would otherwise hand the same memory) does not change a replay.
fn graphs_keep_their_buffers(dev: Arc<dyn KernelBackend>) {
    let dev = dev.as_ref();
    let a = tensor(dev, input(2));
    let mut out = uninit(dev);
    dev.begin_capture().unwrap();
    scale_fwd_into(dev, &a, 2.0, &mut out).unwrap();
    let graph = dev.end_capture().unwrap();
    let out_view = out.buf.clone();
    drop((a, out));
    let decoys: Vec<_> = (0..4).map(|k| tensor(dev, vec![k as f32; N])).collect();
    dev.replay(&graph).unwrap();
    let got: Vec<f32> = bytemuck::cast_slice(&dev.download(&out_view).unwrap()).to_vec();
    let want: Vec<f32> = input(2).iter().map(|v| v * 2.0).collect();
    assert_eq!(got, want);
    for (k, decoy) in decoys.iter().enumerate() {
        let values = decoy.download(dev).unwrap().to_vec_f32().unwrap();
        assert!(
            values.iter().all(|&v| v == k as f32),
            "decoy {k} was overwritten"
        );
    }
}
graph_test!(graph_keeps_buffers_alive, graphs_keep_their_buffers);

/// Each call that reads, waits or allocates is refused inside a capture with a message naming
/// it, and `end_capture` reports that failure; the next capture starts clean.
fn reads_waits_and_allocations_fail_a_capture(dev: Arc<dyn KernelBackend>) {
    let dev = dev.as_ref();
    let a = tensor(dev, input(0));
    let mut out = uninit(dev);
    // An event recorded outside the capture, to wait on inside it.
    let before = dev.record_event().unwrap();
    type Forbidden = fn(&dyn KernelBackend, &DeviceTensor, &Event) -> recur::Result<()>;
    let forbidden: [(&str, Forbidden); 6] = [
        ("download of 1200 bytes", |dev, t, _| {
            dev.download(&t.buf).map(drop)
        }),
        ("synchronize", |dev, _, _| dev.synchronize()),
        ("allocation of 64 bytes", |dev, _, _| {
            dev.alloc_staging(64).map(drop)
        }),
        ("upload of 8 bytes", |dev, _, _| {
            dev.upload(&[0; 8]).map(drop)
        }),
        ("time_ms", |dev, _, _| dev.time_ms(&mut || Ok(())).map(drop)),
        ("wait_event", |dev, _, event| dev.wait_event(event)),
    ];
    for (op, call) in forbidden {
        dev.begin_capture().unwrap();
        scale_fwd_into(dev, &a, 2.0, &mut out).unwrap();
        let err = call(dev, &a, &before).unwrap_err().to_string();
        assert!(
            err.contains(op) && err.contains("during graph capture"),
            "{op}: {err}"
        );
        if op.starts_with("allocation") {
            assert!(
                err.contains("no driver allocation inside a capture"),
                "{err}"
            );
        }
        if op.starts_with("download") {
            assert!(err.contains("must not read the device"), "{err}");
        }
        // Later work is not recorded, and the failure is what ending the capture reports.
        scale_fwd_into(dev, &a, 3.0, &mut out).unwrap();
        let end = dev.end_capture().unwrap_err().to_string();
        assert!(
            end.contains("capture failed") && end.contains(op),
            "{op}: {end}"
        );
    }
    dev.begin_capture().unwrap();
    scale_fwd_into(dev, &a, 2.0, &mut out).unwrap();
    let graph = dev.end_capture().unwrap();
    dev.replay(&graph).unwrap();
    let got = out.download(dev).unwrap().to_vec_f32().unwrap();
    assert_eq!(got, input(0).iter().map(|v| v * 2.0).collect::<Vec<_>>());
    // A device allocation during a capture is served by the caching pool (a block freed before
    // the capture, as the eager step leaves them), never by the driver: on a GPU a size the pool
    // does not hold is refused; Emu's memory is the host's, so it always serves.
    let class = 1 << 20;
    drop(dev.alloc(class).unwrap());
    dev.begin_capture().unwrap();
    let pooled = dev.alloc(class);
    let unpooled = dev.alloc(7 << 24);
    if dev.name().starts_with("emu") {
        assert!(pooled.is_ok() && unpooled.is_ok());
        drop((pooled, unpooled));
        dev.end_capture().unwrap();
    } else {
        assert!(pooled.is_ok(), "a pooled block: {:?}", pooled.err());
        let err = unpooled.unwrap_err().to_string();
        assert!(err.contains("memory pool has no free block"), "{err}");
        drop(pooled);
        assert!(dev.end_capture().is_err());
    }
    // Misuse outside a capture is an error too, not a panic.
    assert!(dev.end_capture().is_err());
    dev.begin_capture().unwrap();
    assert!(dev.begin_capture().is_err(), "captures do not nest");
    scale_fwd_into(dev, &a, 2.0, &mut out).unwrap();
    dev.end_capture().unwrap(); // the refused nested begin left the first capture intact
}
graph_test!(
    capture_refuses_reads_waits_allocations,
    reads_waits_and_allocations_fail_a_capture
);

/// A replay counts the work it replays (so an eager step and a replayed one have the same
/// launches and bytes) plus one `replays`; the capture counts only `captures`; a staged upload
/// counts as an upload with its bytes and as a staged upload.
fn counting_counts_replays_as_their_work(dev: Arc<dyn KernelBackend>) {
    let dev = Counting::new(dev);
    let mut step = Step::new(dev.as_ref());
    let staging = staging_with(dev.as_ref(), &input(0));
    step.poison(dev.as_ref());
    dev.take();

    step.run(dev.as_ref(), &staging);
    let eager = dev.take();
    assert_eq!(
        eager.kernel_names(),
        [
            "inject_add_fwd_f32",
            "scale_fwd_f32",
            "inject_add_fwd_f32",
            "mul_fwd_f32"
        ]
    );
    assert_eq!(
        (
            eager.uploads,
            eager.upload_bytes,
            eager.staged_uploads,
            eager.staged_upload_bytes
        ),
        (1, N * 4, 1, N * 4)
    );
    assert_eq!((eager.memsets, eager.copies, eager.replays), (1, 1, 0));

    dev.begin_capture().unwrap();
    step.run(dev.as_ref(), &staging);
    let graph = dev.end_capture().unwrap();
    let captured = dev.take();
    assert_eq!(
        captured,
        Counts {
            captures: 1,
            ..Counts::default()
        },
        "a capture runs nothing, so it counts nothing but itself"
    );

    for _ in 0..2 {
        dev.replay(&graph).unwrap();
        let replayed = dev.take();
        assert_eq!(
            replayed,
            Counts {
                replays: 1,
                ..eager.clone()
            }
        );
    }
    let event = dev.record_event().unwrap();
    dev.wait_event(&event).unwrap();
    assert_eq!(dev.take().event_waits, 1);
}
graph_test!(
    counting_counts_replays,
    counting_counts_replays_as_their_work
);
