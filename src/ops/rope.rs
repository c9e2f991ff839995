//! `rope` with a precomputed table, and the two conventions by name: `rope_1d` (HRM, TRM) and
//! `rope_2d` (Sotaku, LDT maze).
//!
//! On a kernel backend both layouts run on `kernels/rope.cu`; the table's cos and sin are uploaded
//! once per compute (`Kernels::constant`), not per call.

use crate::device::cpu::rope as cpu;
use crate::error::{Error, Result};
use crate::kernels::rope as kernels;
use crate::kernels::rope::DeviceRopeTable;
use crate::ops::dispatch::{on_device, Compute, Kernels};
use crate::tape::{Tape, Var};
use crate::tensor::Tensor;

pub use crate::device::cpu::rope::{PairLayout, RopeTable};

/// Which way to rotate: the forward, or its transpose (the backward).
#[derive(Clone, Copy)]
enum Direction {
    Forward,
    Backward,
}

fn rotate(
    compute: &Compute,
    x: &Tensor,
    table: &RopeTable,
    direction: Direction,
) -> Result<Tensor> {
    match (compute.kernels(), direction) {
        (None, Direction::Forward) => cpu::rope_fwd(x, table),
        (None, Direction::Backward) => cpu::rope_bwd(x, table),
        (Some(dev), _) => {
            let [cos, sin] = resident_table(dev, table)?;
            on_device(dev, (x, &cos, &sin), |dev, (x, cos, sin)| {
                let table = DeviceRopeTable {
                    cos,
                    sin,
                    layout: table.layout(),
                    head_dim: table.head_dim(),
                    positions: table.positions(),
                };
                match direction {
                    Direction::Forward => kernels::rope_fwd(dev, &x, &table),
                    Direction::Backward => kernels::rope_bwd(dev, &x, &table),
                }
            })
        }
    }
}

/// The table's f32 cos and sin on the device, uploaded once per compute and table contents
/// (a model builds its table once, so a step uploads nothing for it).
fn resident_table(dev: &Kernels, table: &RopeTable) -> Result<[Tensor; 2]> {
    let key = format!("rope {:016x}", table.fingerprint());
    let cos = dev.constant(&format!("{key} cos"), || {
        Ok(kernels::rope_table_tensors(table)?.0)
    })?;
    let sin = dev.constant(&format!("{key} sin"), || {
        Ok(kernels::rope_table_tensors(table)?.1)
    })?;
    Ok([cos, sin])
}

impl Tape {
    /// Rotates `x` `[B, S, H, hd]` by `table` (built once per model with `RopeTable::one_d` or
    /// `RopeTable::two_d`); position `s` uses the table's position `s`.
    pub fn rope(&self, x: &Var, table: &RopeTable) -> Result<Var> {
        let compute = self.compute().clone();
        let y = rotate(&compute, x.value(), table, Direction::Forward)?;
        let table = table.clone();
        self.record("rope", y, &[x], move |g| {
            Ok(vec![Some(rotate(
                &compute,
                g,
                &table,
                Direction::Backward,
            )?)])
        })
    }

    /// HRM/TRM 1D rotate-half RoPE; `table` is a `RopeTable::one_d` covering at least S positions
    /// (prefix + sequence).
    pub fn rope_1d(&self, x: &Var, table: &RopeTable) -> Result<Var> {
        if table.layout() != PairLayout::RotateHalf {
            return Err(Error::arg("rope_1d", "expected a RopeTable::one_d table"));
        }
        self.rope(x, table)
    }

    /// Sotaku/LDT 2D interleaved RoPE: token `s` sits at grid cell `(rows[s], cols[s])`, and
    /// `rows`, `cols` have length S. Builds the table on each call; models that call it every
    /// iteration should build `RopeTable::two_d` once and call `rope`.
    pub fn rope_2d(&self, x: &Var, rows: &[usize], cols: &[usize], theta: f64) -> Result<Var> {
        let op = "rope_2d";
        x.shape().expect_rank(op, 4)?;
        let (seq, head_dim) = (x.dims()[1], x.dims()[3]);
        if seq != rows.len() {
            return Err(Error::shape(
                op,
                format!("sequence length {seq} vs {} grid positions", rows.len()),
            ));
        }
        let table = RopeTable::two_d(rows, cols, head_dim, theta)?;
        self.rope(x, &table)
    }
}
