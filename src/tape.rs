//! The autograd tape: a list of recorded ops, each with a backward closure, run in reverse from a
//! scalar loss (micrograd's algorithm, dfdx's boxed closures).
//!
//! - A `Var` owns its value. The tape only keeps what backward closures captured, so values
//!   computed under `no_grad` (TRM's T−1 cycles) are freed as soon as the caller drops them, and
//!   everything is freed when the tape is dropped.
//! - Gradients accumulate by `+=` when a variable is used more than once.
//! - `Tape::param` binds a leaf to a named parameter, so `Params::accumulate` can route gradients
//!   back by the official state-dict names.
//! - The tape owns a `Compute`: where its ops (forward and backward) run, the CPU reference or a
//!   kernel backend (`ops::dispatch`, `docs/dispatch.md`).

pub use crate::device::compute::Compute;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ops::cast::cast_tensor;
use crate::params::{ParamId, Params};
use crate::shape::Shape;
use crate::tensor::Tensor;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_TAPE_ID: AtomicU64 = AtomicU64::new(1);

/// Identifies a tracked variable: which tape, and its slot in that tape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    tape: u64,
    index: usize,
}

/// A value, plus its place on a tape when gradients must flow through it.
#[derive(Clone, Debug)]
pub struct Var {
    value: Tensor,
    slot: Option<Slot>,
}

impl Var {
    /// A value that never receives a gradient (inputs, labels, fixed buffers).
    pub fn constant(value: Tensor) -> Var {
        Var { value, slot: None }
    }
    pub fn value(&self) -> &Tensor {
        &self.value
    }
    pub fn into_value(self) -> Tensor {
        self.value
    }
    pub fn shape(&self) -> &Shape {
        self.value.shape()
    }
    pub fn dims(&self) -> &[usize] {
        self.value.dims()
    }
    pub fn dtype(&self) -> DType {
        self.value.dtype()
    }
    /// Whether gradients flow into this variable.
    pub fn requires_grad(&self) -> bool {
        self.slot.is_some()
    }
    /// The same value, cut off from the tape: no gradient flows through the result.
    pub fn detach(&self) -> Var {
        Var::constant(self.value.clone())
    }
}

/// Maps the gradient of an op's output to the gradients of its inputs, in input order; `None`
/// for an input that gets no gradient (or a zero one).
pub type BackwardFn = Box<dyn Fn(&Tensor) -> Result<Vec<Option<Tensor>>>>;

struct Record {
    op: &'static str,
    output: usize,
    /// Slot of each input on this tape, or None for constants.
    inputs: Vec<Option<usize>>,
    input_shapes: Vec<Shape>,
    backward: BackwardFn,
}

#[derive(Default)]
struct State {
    n_slots: usize,
    records: Vec<Record>,
    /// Depth of nested `no_grad` scopes; recording happens only at depth 0.
    no_grad_depth: usize,
    param_leaves: Vec<(usize, ParamId)>,
}

pub struct Tape {
    id: u64,
    state: RefCell<State>,
    compute: Compute,
}

impl Default for Tape {
    fn default() -> Self {
        Tape::new()
    }
}

impl Tape {
    /// A tape whose ops run on the CPU reference.
    pub fn new() -> Tape {
        Tape::with_compute(Compute::Cpu)
    }

    /// A tape whose ops run on `compute` (their backwards too).
    pub fn with_compute(compute: Compute) -> Tape {
        Tape {
            id: NEXT_TAPE_ID.fetch_add(1, Ordering::Relaxed),
            state: RefCell::new(State::default()),
            compute,
        }
    }

    /// Where this tape's ops run.
    pub fn compute(&self) -> &Compute {
        &self.compute
    }

    fn new_slot(&self) -> Slot {
        let mut s = self.state.borrow_mut();
        s.n_slots += 1;
        Slot {
            tape: self.id,
            index: s.n_slots - 1,
        }
    }

    /// A leaf that receives a gradient.
    pub fn leaf(&self, value: Tensor) -> Var {
        Var {
            value,
            slot: Some(self.new_slot()),
        }
    }

    /// A leaf bound to parameter `id` of `params`: its gradient is what `Params::accumulate`
    /// adds to that parameter.
    pub fn param(&self, params: &Params, id: ParamId) -> Var {
        self.bind(params.value(id).clone(), id)
    }

    /// Parameter `id` as the forward pass reads it in `dtype` (the official `CastedLinear`
    /// casting its weight to the input's dtype): the value itself in its own dtype, else the
    /// up-to-date mirror `Params::keep_mirror` keeps in `dtype`, else the value cast here (one
    /// cast per binding). The gradient has `dtype`; `Params::accumulate` adds it into the f32
    /// master gradient.
    pub fn param_as(&self, params: &Params, id: ParamId, dtype: DType) -> Result<Var> {
        let value = params.value(id);
        let bound = match params.mirror(id, dtype) {
            _ if value.dtype() == dtype => value.clone(),
            Some(mirror) => mirror.clone(),
            None => cast_tensor(&self.compute, value, dtype)?,
        };
        Ok(self.bind(bound, id))
    }

    /// A leaf holding `value` whose gradient `Params::accumulate` adds to parameter `id`.
    fn bind(&self, value: Tensor, id: ParamId) -> Var {
        let var = self.leaf(value);
        let index = var.slot.expect("leaf has a slot").index;
        self.state.borrow_mut().param_leaves.push((index, id));
        var
    }

    /// Runs `f` without recording: results carry no gradient. Scopes nest, and recording resumes
    /// when the outermost scope ends, even if `f` panics.
    pub fn no_grad<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Resume<'a>(&'a RefCell<State>);
        impl Drop for Resume<'_> {
            fn drop(&mut self) {
                self.0.borrow_mut().no_grad_depth -= 1;
            }
        }
        self.state.borrow_mut().no_grad_depth += 1;
        let _resume = Resume(&self.state);
        f()
    }

    /// Whether ops are being recorded now (false inside `no_grad`).
    pub fn is_recording(&self) -> bool {
        self.state.borrow().no_grad_depth == 0
    }

    /// The number of ops recorded so far.
    pub fn len(&self) -> usize {
        self.state.borrow().records.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records an op whose forward produced `value` from `inputs`. `backward` maps the output's
    /// gradient to one optional gradient per input. Nothing is recorded (and `backward` is
    /// dropped) inside `no_grad` or when no input requires a gradient.
    pub fn record(
        &self,
        op: &'static str,
        value: Tensor,
        inputs: &[&Var],
        backward: impl Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + 'static,
    ) -> Result<Var> {
        let mut slots = Vec::with_capacity(inputs.len());
        for v in inputs {
            match v.slot {
                Some(s) if s.tape != self.id => {
                    return Err(Error::Tape(format!(
                        "{op}: an input belongs to another tape"
                    )))
                }
                s => slots.push(s.map(|s| s.index)),
            }
        }
        if !self.is_recording() || slots.iter().all(Option::is_none) {
            return Ok(Var::constant(value));
        }
        let output = self.new_slot();
        self.state.borrow_mut().records.push(Record {
            op,
            output: output.index,
            inputs: slots,
            input_shapes: inputs.iter().map(|v| v.shape().clone()).collect(),
            backward: Box::new(backward),
        });
        Ok(Var {
            value,
            slot: Some(output),
        })
    }

    /// Backpropagates from a one-element `loss`. Returns the gradients of the leaves; gradients
    /// of intermediate values are freed as soon as they have been propagated.
    pub fn backward(&self, loss: &Var) -> Result<Gradients> {
        if loss.value.numel() != 1 {
            return Err(Error::Tape(format!(
                "backward needs a one-element loss, got shape {}",
                loss.shape()
            )));
        }
        let slot = match loss.slot {
            Some(s) if s.tape == self.id => s,
            Some(_) => return Err(Error::Tape("the loss belongs to another tape".into())),
            None => {
                return Err(Error::Tape(
                    "the loss does not depend on anything that requires a gradient".into(),
                ))
            }
        };
        let state = self.state.borrow();
        let mut grads: Vec<Option<Tensor>> = vec![None; state.n_slots];
        grads[slot.index] = Some(self.compute.ones(loss.shape(), loss.dtype())?);
        for rec in state.records.iter().rev() {
            let Some(g) = grads[rec.output].take() else {
                continue;
            };
            let input_grads = (rec.backward)(&g)?;
            if input_grads.len() != rec.inputs.len() {
                return Err(Error::Tape(format!(
                    "{}: backward returned {} gradients for {} inputs",
                    rec.op,
                    input_grads.len(),
                    rec.inputs.len()
                )));
            }
            for ((slot, shape), grad) in rec.inputs.iter().zip(&rec.input_shapes).zip(input_grads) {
                let (Some(slot), Some(grad)) = (slot, grad) else {
                    continue;
                };
                if grad.shape() != shape {
                    return Err(Error::Tape(format!(
                        "{}: backward produced a gradient of shape {} for an input of shape {shape}",
                        rec.op,
                        grad.shape()
                    )));
                }
                grads[*slot] = Some(match grads[*slot].take() {
                    None => grad,
                    Some(acc) => self.compute.add(&acc, &grad)?,
                });
            }
        }
        Ok(Gradients {
            tape: self.id,
            grads,
            param_leaves: state.param_leaves.clone(),
        })
    }
}

/// The leaf gradients of one backward pass.
pub struct Gradients {
    tape: u64,
    grads: Vec<Option<Tensor>>,
    param_leaves: Vec<(usize, ParamId)>,
}

impl Gradients {
    /// The gradient of a leaf, or None if nothing flowed into it.
    pub fn get(&self, var: &Var) -> Option<&Tensor> {
        let slot = var.slot?;
        if slot.tape != self.tape {
            return None;
        }
        self.grads.get(slot.index)?.as_ref()
    }

    /// (parameter, gradient) for every `Tape::param` leaf that received a gradient. A parameter
    /// bound more than once appears once per binding; `Params::accumulate` sums them.
    pub fn param_grads(&self) -> impl Iterator<Item = (ParamId, &Tensor)> {
        self.param_leaves
            .iter()
            .filter_map(|&(slot, id)| self.grads[slot].as_ref().map(|g| (id, g)))
    }
}
