//! SignSGD with decoupled weight decay for the puzzle-embedding table, the official
//! `CastedSparseEmbeddingSignSGD_Distributed`: the gradient rows of duplicate ids are summed
//! (`unique` + `scatter_add_`), then only the touched rows move,
//! `p ← p(1 − lr·wd) − lr·sign(Σg)`. Untouched rows, weight decay included, are left exactly as
//! they were. There is no optimizer state.

use super::check_non_negative;
use crate::device::cpu::sparse_embedding::{sum_rows_by_id, table_dims};
use crate::dtype::Real;
use crate::error::{Error, Result};
use crate::tensor::{RealDataMut, Tensor};

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

    /// Updates the rows `ids` (i32 `[n]`) of `table` (f32 or f64 `[num_ids, D]`) with their
    /// gradients `row_grads` (`[n, D]`, the gradient of `Tape::sparse_embedding`'s output).
    /// Errors, changing nothing, on an id outside the table or mismatched shapes.
    pub fn step(&self, table: &mut Tensor, ids: &Tensor, row_grads: &Tensor) -> Result<()> {
        const OP: &str = "SignSgd";
        let (num_ids, dim) = table_dims(OP, table)?;
        row_grads.shape().expect_rank(OP, 2)?;
        if row_grads.dims()[1] != dim {
            return Err(Error::shape(
                OP,
                format!(
                    "gradient rows {} for a table of width {dim}",
                    row_grads.shape()
                ),
            ));
        }
        let (rows, sums) = sum_rows_by_id(ids, row_grads, num_ids)?;
        // Signs are exact in any float type, so the sums can be read as f64.
        let sums = sums.to_vec_f64()?;
        match table.real_data_mut(OP)? {
            RealDataMut::F32(t) => self.update(t, dim, &rows, &sums),
            RealDataMut::F64(t) => self.update(t, dim, &rows, &sums),
        }
        Ok(())
    }

    fn update<T: Real>(&self, table: &mut [T], dim: usize, rows: &[usize], sums: &[f64]) {
        if dim == 0 {
            return;
        }
        let wd_alpha = T::of(1.0 - self.lr * self.weight_decay);
        let neg_lr = T::of(-self.lr);
        for (&row, sum) in rows.iter().zip(sums.chunks(dim)) {
            for (p, &s) in table[row * dim..(row + 1) * dim].iter_mut().zip(sum) {
                *p = *p * wd_alpha + neg_lr * T::of(sign(s));
            }
        }
    }
}

/// `torch.sign`: −1, 0 or 1, and NaN for NaN (unlike `f64::signum`, which gives ±1 for ±0).
fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x * 0.0
    }
}
