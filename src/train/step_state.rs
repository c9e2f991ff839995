//! What a kernel training step leaves at fixed device addresses: the ACT carry it continues from
//! and the small report buffer the host reads (the ACT metrics and loss sums, and the scaled
//! loss). Each step ends by copying its results there (device to device, in stream order), so
//! every step, eager or replayed from a captured graph, reads and writes the same memory, and the
//! host reads the report with one download at the step boundary, never inside the step.

use crate::device::compute::{Kernels, PACK_ALIGN};
use crate::device::{DeviceBuffer, DeviceTensor};
use crate::error::Result;
use crate::models::{Batch, Carry};
use crate::tensor::Tensor;

pub(crate) struct StepState {
    /// The carry the next step starts from (views of buffers allocated once).
    pub carry: Carry,
    /// The ACT metrics buffer (f64 `[ACT_METRICS]`) and the scaled loss, back to back.
    report: DeviceBuffer,
    metrics: Tensor,
    loss: Tensor,
}

impl StepState {
    /// Fixed buffers shaped like this step's results, holding copies of them.
    pub fn new(
        kernels: &Kernels,
        carry: &Carry,
        metrics: &Tensor,
        loss: &Tensor,
    ) -> Result<StepState> {
        let fixed = |t: &Tensor| -> Result<Tensor> {
            let buf = kernels.alloc(bytes_of(t))?;
            Tensor::from_device(buf, t.shape().clone(), t.dtype(), kernels.backend().clone())
        };
        let loss_at = bytes_of(metrics).next_multiple_of(PACK_ALIGN);
        let report = kernels.alloc(loss_at + bytes_of(loss))?;
        let view = |t: &Tensor, offset: usize| -> Result<Tensor> {
            Tensor::from_device(
                report.view(offset, bytes_of(t))?,
                t.shape().clone(),
                t.dtype(),
                kernels.backend().clone(),
            )
        };
        let state = StepState {
            carry: Carry {
                z_h: fixed(&carry.z_h)?,
                z_l: fixed(&carry.z_l)?,
                steps: fixed(&carry.steps)?,
                halted: fixed(&carry.halted)?,
                data: Batch::new(
                    fixed(&carry.data.inputs)?,
                    fixed(&carry.data.labels)?,
                    fixed(&carry.data.puzzle_ids)?,
                )?,
            },
            metrics: view(metrics, 0)?,
            loss: view(loss, loss_at)?,
            report,
        };
        state.store(kernels, carry, metrics, loss)?;
        Ok(state)
    }

    /// Copies a step's results into the fixed buffers (seven carry tensors and two report
    /// values: device copies, no launch).
    pub fn store(
        &self,
        kernels: &Kernels,
        carry: &Carry,
        metrics: &Tensor,
        loss: &Tensor,
    ) -> Result<()> {
        let fixed = &self.carry;
        for (dst, src) in [
            (&fixed.z_h, &carry.z_h),
            (&fixed.z_l, &carry.z_l),
            (&fixed.steps, &carry.steps),
            (&fixed.halted, &carry.halted),
            (&fixed.data.inputs, &carry.data.inputs),
            (&fixed.data.labels, &carry.data.labels),
            (&fixed.data.puzzle_ids, &carry.data.puzzle_ids),
            (&self.metrics, metrics),
            (&self.loss, loss),
        ] {
            let mut to = DeviceTensor::borrow(dst).expect("fixed buffers are on the device");
            let from = kernels.resident(src)?;
            dst.shape().expect_eq("step state", src.shape())?;
            kernels.copy(&mut to.buf, &from.buf)?;
        }
        Ok(())
    }

    /// The last step's metrics buffer and scaled loss, on the host: one download.
    pub fn read_report(&self, kernels: &Kernels) -> Result<(Tensor, Tensor)> {
        let bytes = kernels.download(&self.report)?;
        let host = |t: &Tensor| -> Result<Tensor> {
            let (buf, _) = t.device_buffer().expect("report views are on the device");
            let start = buf.offset_bytes() - self.report.offset_bytes();
            Tensor::from_bytes(
                &bytes[start..start + bytes_of(t)],
                t.shape().clone(),
                t.dtype(),
            )
        };
        Ok((host(&self.metrics)?, host(&self.loss)?))
    }
}

fn bytes_of(t: &Tensor) -> usize {
    t.numel() * t.dtype().size_in_bytes()
}
