//! Shapes: contiguous row-major dimensions.

use crate::error::{Error, Result};
use std::fmt;

#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<usize>);

impl Shape {
    pub fn new(dims: impl Into<Vec<usize>>) -> Self {
        Shape(dims.into())
    }
    pub fn scalar() -> Self {
        Shape(Vec::new())
    }
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
    /// Size of dimension `axis`; negative axes count from the end.
    pub fn dim(&self, op: &'static str, axis: isize) -> Result<usize> {
        Ok(self.0[self.axis(op, axis)?])
    }
    /// Resolves a possibly negative axis to an index, or errors when it is out of range.
    pub fn axis(&self, op: &'static str, axis: isize) -> Result<usize> {
        let rank = self.rank() as isize;
        let resolved = if axis < 0 { axis + rank } else { axis };
        if resolved < 0 || resolved >= rank {
            return Err(Error::arg(
                op,
                format!("axis {axis} out of range for shape {self}"),
            ));
        }
        Ok(resolved as usize)
    }
    /// Splits the shape around `axis` into (outer, axis size, inner) element counts, the form every
    /// reduction and concat uses.
    pub fn around(&self, op: &'static str, axis: isize) -> Result<(usize, usize, usize)> {
        let a = self.axis(op, axis)?;
        let outer = self.0[..a].iter().product();
        let inner = self.0[a + 1..].iter().product();
        Ok((outer, self.0[a], inner))
    }
    /// The last dimension and the product of all others: the (rows, cols) view that row-wise ops use.
    pub fn rows_cols(&self, op: &'static str) -> Result<(usize, usize)> {
        let cols = *self
            .0
            .last()
            .ok_or_else(|| Error::shape(op, "expected at least one dimension, got a scalar"))?;
        Ok((self.numel() / cols.max(1), cols))
    }
    /// Errors unless `self == other`.
    pub fn expect_eq(&self, op: &'static str, other: &Shape) -> Result<()> {
        if self != other {
            return Err(Error::shape(op, format!("{self} vs {other}")));
        }
        Ok(())
    }
    /// Errors unless the rank is `rank`.
    pub fn expect_rank(&self, op: &'static str, rank: usize) -> Result<()> {
        if self.rank() != rank {
            return Err(Error::shape(
                op,
                format!("expected rank {rank}, got shape {self}"),
            ));
        }
        Ok(())
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape(d.to_vec())
    }
}
impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape(d)
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape(d.to_vec())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
