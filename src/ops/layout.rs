//! Shape and layout ops: `reshape`, the last-two-dims transpose (TRM-MLP's token mixing),
//! `concat`, `split`, `narrow` (slicing the puzzle prefix off), and `argmax`.

use crate::error::Result;
use crate::shape::Shape;
use crate::tape::{Tape, Var};

impl Tape {
    /// The same data viewed with a new shape of the same element count. Free: no copy.
    pub fn reshape(&self, x: &Var, shape: impl Into<Shape>) -> Result<Var> {
        let y = x.value().reshape(shape)?;
        let in_shape = x.shape().clone();
        self.record("reshape", y, &[x], move |g| Ok(vec![Some(g.reshape(in_shape.clone())?)]))
    }
}
