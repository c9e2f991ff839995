//! What a training step brings from the host: the batch and the per-step scalars (the
//! optimizers' coefficients, the exploration draw). Checked here, where the batch is born (the
//! device kernels cannot report a bad id without a synchronisation), then packed into one buffer
//! and, on a kernel backend, copied over in ONE upload, so the step itself never waits on the host.
//!
//! On a backend with pinned staging (`InputSlots`) the upload is a stream-ordered copy from one of
//! two pinned slots into one device buffer allocated once, so the step's inputs always sit at the
//! same device addresses: what a captured CUDA graph reads. The copy runs outside the graph, just
//! before each replay; the host writes slot `k % 2` only after the copy of step `k − 2` from that
//! slot has run (an event), so it fills the next step's inputs while the current one runs. A
//! backend without staging (the trace backend) gets a fresh upload per step instead.

use crate::device::compute::{Compute, Kernels, PackedLayout};
use crate::device::staging::{Event, Staging};
use crate::device::DeviceBuffer;
use crate::dtype::DType;
use crate::error::Result;
use crate::models::{Batch, Reasoner};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// The host tensors of one step, in the order they are packed.
pub struct HostInputs {
    pub batch: Batch,
    /// AdamATan2's kernel scalars, when its step is one launch over the arenas.
    pub adam_scalars: Option<[f32; 6]>,
    pub sign_sgd_scalars: [f32; 2],
    /// The halting exploration's draw words (`Exploration::draw`), i32 `[4]`.
    pub exploration_draw: Option<Tensor>,
}

/// The same tensors where the step reads them (on the device for the kernels).
pub struct StepInputs {
    pub batch: Batch,
    pub adam_scalars: Option<Tensor>,
    pub sign_sgd_scalars: Option<Tensor>,
    pub exploration_draw: Option<Tensor>,
}

impl HostInputs {
    /// The tensors in packing order.
    pub fn tensors(&self) -> Result<Vec<Tensor>> {
        let mut out = vec![
            self.batch.inputs.clone(),
            self.batch.labels.clone(),
            self.batch.puzzle_ids.clone(),
            Tensor::from_vec(self.sign_sgd_scalars.to_vec(), [2])?,
        ];
        if let Some(a) = self.adam_scalars {
            out.push(Tensor::from_vec(a.to_vec(), [a.len()])?);
        }
        out.extend(self.exploration_draw.clone());
        Ok(out)
    }

    /// The tensors back in their roles, from `placed` (in `tensors`' order).
    fn placed(&self, placed: Vec<Tensor>) -> Result<StepInputs> {
        let mut next = placed.into_iter();
        let mut take = || next.next().expect("one placed tensor per packed one");
        let batch = Batch::new(take(), take(), take())?;
        let sign_sgd_scalars = Some(take());
        let adam_scalars = self.adam_scalars.map(|_| take());
        let exploration_draw = self.exploration_draw.as_ref().map(|_| take());
        Ok(StepInputs {
            batch,
            adam_scalars,
            sign_sgd_scalars,
            exploration_draw,
        })
    }
}

/// Checks `inputs.batch` against `model`, then places everything on `compute`: host tensors as
/// they are on the CPU; one upload through `slots` (or a fresh packed upload without them) on the
/// kernels.
pub fn stage(
    compute: &Compute,
    model: &Reasoner,
    inputs: HostInputs,
    slots: Option<&mut InputSlots>,
) -> Result<StepInputs> {
    let b = &inputs.batch;
    model.check_batch(&b.inputs, &b.labels, &b.puzzle_ids)?;
    let Some(kernels) = compute.kernels() else {
        return Ok(StepInputs {
            adam_scalars: None,
            sign_sgd_scalars: None,
            exploration_draw: inputs.exploration_draw.clone(),
            batch: inputs.batch,
        });
    };
    let tensors = inputs.tensors()?;
    let refs: Vec<&Tensor> = tensors.iter().collect();
    let placed = match slots {
        Some(slots) => slots.upload(kernels, &refs)?,
        None => kernels.upload_packed(&refs)?,
    };
    inputs.placed(placed)
}

/// Two pinned staging slots and the device buffer they are copied into (see the module doc).
pub struct InputSlots {
    slots: [Staging; 2],
    /// The copy out of each slot, recorded after it was enqueued.
    copied: [Option<Event>; 2],
    device: DeviceBuffer,
    /// Steps uploaded so far (which slot is next).
    uploads: u64,
    /// The packed layout, fixed by the first step.
    shapes: Vec<(Shape, DType)>,
}

impl InputSlots {
    /// Slots for steps whose packed inputs look like `example`'s, or `None` when the backend has
    /// no pinned staging (it then uploads each step afresh).
    pub fn new(kernels: &Kernels, example: &[&Tensor]) -> Result<Option<InputSlots>> {
        let bytes = PackedLayout::of(example).bytes;
        let first = match kernels.alloc_staging(bytes.max(1)) {
            Ok(slot) => slot,
            Err(_) => return Ok(None),
        };
        Ok(Some(InputSlots {
            slots: [first, kernels.alloc_staging(bytes.max(1))?],
            copied: [None, None],
            device: kernels.alloc(bytes.max(1))?,
            uploads: 0,
            shapes: example
                .iter()
                .map(|t| (t.shape().clone(), t.dtype()))
                .collect(),
        }))
    }

    /// Writes `tensors` into the next slot (after the copy that last read it has run), copies the
    /// slot into the device buffer (one staged upload, stream-ordered), and returns the tensors
    /// as views of the device buffer: the same addresses every step.
    pub fn upload(&mut self, kernels: &Kernels, tensors: &[&Tensor]) -> Result<Vec<Tensor>> {
        let shapes: Vec<(Shape, DType)> = tensors
            .iter()
            .map(|t| (t.shape().clone(), t.dtype()))
            .collect();
        if shapes != self.shapes {
            return Err(crate::error::Error::shape(
                "step inputs",
                "a step's inputs changed shape or dtype from the first step's; the staging \
                 slots and a captured step are laid out for those",
            ));
        }
        let layout = PackedLayout::of(tensors);
        let k = (self.uploads % 2) as usize;
        if let Some(event) = self.copied[k].take() {
            kernels.wait_event(&event)?;
        }
        let slot = &self.slots[k];
        for (t, &offset) in tensors.iter().zip(&layout.offsets) {
            slot.write(offset, t.as_bytes()?)?;
        }
        let mut device = self.device.clone();
        kernels.upload_staged(&mut device, slot)?;
        self.copied[k] = Some(kernels.record_event()?);
        self.uploads += 1;
        layout.views(kernels, &self.device, tensors)
    }
}
