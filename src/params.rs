//! Named parameters. Names are the official PyTorch state-dict names (`L_level.layers.0.mlp.
//! gate_up_proj.weight`, ...), so checkpoints map one to one.

use crate::device::compute::Compute;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::collections::HashMap;

/// Index of a parameter in its `Params`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamId(usize);

#[derive(Clone)]
pub struct Param {
    pub name: String,
    pub value: Tensor,
    /// Accumulated gradient since the last `zero_grad`, in the value's shape.
    pub grad: Option<Tensor>,
}

#[derive(Clone, Default)]
pub struct Params {
    list: Vec<Param>,
    by_name: HashMap<String, usize>,
}

impl Params {
    pub fn new() -> Params {
        Params::default()
    }

    /// Adds a float parameter. Errors on a duplicate name or an integer tensor.
    pub fn add(&mut self, name: impl Into<String>, value: Tensor) -> Result<ParamId> {
        let name = name.into();
        value.expect_float("Params::add")?;
        if self.by_name.contains_key(&name) {
            return Err(Error::arg(
                "Params::add",
                format!("duplicate parameter name {name:?}"),
            ));
        }
        self.by_name.insert(name.clone(), self.list.len());
        self.list.push(Param {
            name,
            value,
            grad: None,
        });
        Ok(ParamId(self.list.len() - 1))
    }

    pub fn id(&self, name: &str) -> Option<ParamId> {
        self.by_name.get(name).map(|&i| ParamId(i))
    }
    pub fn get(&self, id: ParamId) -> &Param {
        &self.list[id.0]
    }
    pub fn get_mut(&mut self, id: ParamId) -> &mut Param {
        &mut self.list[id.0]
    }
    pub fn value(&self, id: ParamId) -> &Tensor {
        &self.list[id.0].value
    }
    pub fn ids(&self) -> impl Iterator<Item = ParamId> {
        (0..self.list.len()).map(ParamId)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.list.iter()
    }
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Param> {
        self.list.iter_mut()
    }
    pub fn len(&self) -> usize {
        self.list.len()
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    /// Total element count, the "parameter count" papers report.
    pub fn num_elements(&self) -> usize {
        self.list.iter().map(|p| p.value.numel()).sum()
    }

    /// Forgets every accumulated gradient.
    pub fn zero_grad(&mut self) {
        for p in &mut self.list {
            p.grad = None;
        }
    }

    /// Moves every accumulated gradient to the host (a download each for device gradients).
    pub fn grads_to_host(&mut self) -> Result<()> {
        for p in &mut self.list {
            if let Some(g) = &p.grad {
                p.grad = Some(g.to_host()?);
            }
        }
        Ok(())
    }

    /// Adds the gradients of one backward pass (`Gradients::param_grads`) to the accumulated
    /// ones, on `compute` (where the gradients live).
    pub fn accumulate<'a>(
        &mut self,
        compute: &Compute,
        grads: impl IntoIterator<Item = (ParamId, &'a Tensor)>,
    ) -> Result<()> {
        for (id, g) in grads {
            let p = &mut self.list[id.0];
            p.value.shape().expect_eq("Params::accumulate", g.shape())?;
            p.grad = Some(match p.grad.take() {
                None => g.clone(),
                Some(acc) => compute.add(&acc, g)?,
            });
        }
        Ok(())
    }
}
