//! What a training step brings from the host: the batch and the per-step scalars of the
//! optimizers. Checked here, where the batch is born (the device kernels cannot report a bad id
//! without a synchronisation), then, on a kernel backend, copied over in ONE upload
//! (`Kernels::upload_packed`) so the step itself never waits on the host.

use crate::device::compute::Compute;
use crate::error::Result;
use crate::models::{Batch, Reasoner};
use crate::tensor::Tensor;

pub struct StepInputs {
    /// On the step's device (host tensors on the CPU).
    pub batch: Batch,
    /// AdamATan2's kernel scalars on the device, when the step is one launch over the arenas.
    pub adam_scalars: Option<Tensor>,
    /// SignSGD's kernel scalars on the device (None on the CPU).
    pub sign_sgd_scalars: Option<Tensor>,
}

impl StepInputs {
    /// Checks `batch` against `model` and places it, with the scalars, on `compute`.
    pub fn stage(
        compute: &Compute,
        model: &Reasoner,
        batch: Batch,
        adam_scalars: Option<[f32; 6]>,
        sign_sgd_scalars: [f32; 2],
    ) -> Result<StepInputs> {
        model.check_batch(&batch.inputs, &batch.labels, &batch.puzzle_ids)?;
        let Some(kernels) = compute.kernels() else {
            return Ok(StepInputs {
                batch,
                adam_scalars: None,
                sign_sgd_scalars: None,
            });
        };
        let sign = Tensor::from_vec(sign_sgd_scalars.to_vec(), [sign_sgd_scalars.len()])?;
        let mut host = vec![&batch.inputs, &batch.labels, &batch.puzzle_ids, &sign];
        let adam = adam_scalars
            .map(|a| Tensor::from_vec(a.to_vec(), [a.len()]))
            .transpose()?;
        host.extend(adam.as_ref());
        let mut placed = kernels.upload_packed(&host)?.into_iter();
        let mut next = || placed.next().expect("one view per packed tensor");
        let batch = Batch::new(next(), next(), next())?;
        let sign_sgd_scalars = Some(next());
        let adam_scalars = adam.map(|_| next());
        Ok(StepInputs {
            batch,
            adam_scalars,
            sign_sgd_scalars,
        })
    }
}
