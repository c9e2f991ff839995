//! SignSGD with decoupled weight decay for the puzzle-embedding table, the official
//! `CastedSparseEmbeddingSignSGD_Distributed`: the gradient rows of duplicate ids are summed
//! (`unique` + `scatter_add_`), then only the touched rows move,
//! `p ← p(1 − lr·wd) − lr·sign(Σg)`. Untouched rows, weight decay included, are left exactly as
//! they were. There is no optimizer state.

use super::check_non_negative;
use crate::device::cpu::optim::sign_sgd_scalars;
use crate::error::Result;
use crate::ops::optim::sign_sgd_step;
use crate::tensor::Tensor;

/// The sign-SGD optimizer of a sparse embedding table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SignSgd {
    lr: f64,
    weight_decay: f64,
}

impl SignSgd {
    /// Errors unless lr and weight decay are finite and >= 0. HRM and TRM run lr 1e-2 with wd
    /// 0.1 on ARC, lr 1e-4 with wd 1.0 on Sudoku and Maze.
    pub fn new(lr: f64, weight_decay: f64) -> Result<SignSgd> {
        check_non_negative("SignSgd", "lr", lr)?;
        check_non_negative("SignSgd", "weight_decay", weight_decay)?;
        Ok(SignSgd { lr, weight_decay })
    }

    /// The learning rate the next step uses.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Sets the learning rate for the next steps (a schedule calls this every step).
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        check_non_negative("SignSgd::set_lr", "lr", lr)?;
        self.lr = lr;
        Ok(())
    }

    pub fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    /// Updates the rows `ids` (i32 `[n]`) of `table` (f32 or f64 `[num_ids, D]`; f32 on a
    /// device) with their gradients `row_grads` (`[n, D]`, the gradient of
    /// `Tape::sparse_embedding`'s output), where the table lives. Errors, changing nothing, on
    /// an id outside the table (host) or mismatched shapes.
    pub fn step(&self, table: &mut Tensor, ids: &Tensor, row_grads: &Tensor) -> Result<()> {
        self.step_staged(table, ids, row_grads, None)
    }

    /// `step`, with `kernel_scalars()` already on the device for a resident table.
    pub fn step_staged(
        &self,
        table: &mut Tensor,
        ids: &Tensor,
        row_grads: &Tensor,
        scalars: Option<&Tensor>,
    ) -> Result<()> {
        sign_sgd_step(table, ids, row_grads, self.lr, self.weight_decay, scalars)
    }

    /// What the kernel reads from device memory this step: `(1 − lr·wd, −lr)` in f32.
    pub fn kernel_scalars(&self) -> [f32; 2] {
        sign_sgd_scalars(self.lr, self.weight_decay)
    }
}
