//! Named parameters. Names are the official PyTorch state-dict names (`L_level.layers.0.mlp.
//! gate_up_proj.weight`, ...), so checkpoints map one to one.
//!
//! On the host each parameter owns its tensor. On a kernel backend (`make_resident`) they live in
//! arenas, as llm.c keeps them: every value in one f32 device allocation and every gradient in a
//! second with the same layout, each parameter a view at its offset. The names, shapes and
//! offsets stay on the host. So `zero_grad` is one memset, gradients are added in place, and an
//! optimizer steps every parameter with one launch over the arena.
//!
//! A model that runs its forward in bf16 (the official `forward_dtype`) keeps a mirror: every
//! value rounded to bf16, in one more arena when resident (`keep_mirror`). The tape binds the
//! mirror (`Tape::param_as`), the optimizer refreshes it with each step (the Adam arena launch
//! writes it, `refresh_mirror` otherwise), and the master values, gradients and optimizer state
//! stay f32.

use crate::device::compute::{Compute, Kernels};
use crate::device::DeviceTensor;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::kernels::elementwise::{accumulate_into, cast_into};
use crate::ops::cast::cast_tensor;
use crate::tensor::Tensor;
use std::collections::HashMap;

/// Every parameter starts at a multiple of this many elements of its arena (zeros between): 256
/// bytes of f32, cudaMalloc's own alignment, and 128 bytes of the bf16 mirror, so each mirror
/// view is as aligned as an allocation: the tensor-core GEMM reads 16-byte aligned weight rows in
/// 16-byte chunks (an unaligned view element by element). The padding is inert: its gradient is
/// zero and every update keeps it zero.
pub const ARENA_ALIGN: usize = 64;

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
    /// The device arenas, once `make_resident` put the parameters on a kernel backend.
    arena: Option<Arena>,
    /// The values in the forward dtype, when the model runs in a narrower one (`keep_mirror`).
    mirror: Option<Mirror>,
}

/// Every value converted to the forward dtype, what the tape binds in its place. Resident
/// parameters keep it in one device allocation laid out as the value arena, so the Adam launch
/// over the value arena writes it too, and a separate refresh is one cast launch.
#[derive(Clone)]
struct Mirror {
    dtype: DType,
    /// One tensor per parameter, in parameter order: views of `arena` when resident.
    values: Vec<Tensor>,
    arena: Option<Tensor>,
    /// False once a value may have changed behind the mirror's back (`get_mut`, `iter_mut`):
    /// the tape then casts the value itself until the next `refresh_mirror`. Stale copies are
    /// never bound.
    fresh: bool,
}

/// The device memory of resident parameters: values and gradients, f32, one allocation each,
/// parameter `i` at element `offsets[i]` of both.
#[derive(Clone)]
pub struct Arena {
    pub kernels: Kernels,
    pub values: Tensor,
    /// Absent for a copy that never takes gradients (an EMA shadow).
    pub grads: Option<Tensor>,
    pub offsets: Vec<usize>,
}

impl Arena {
    /// Total elements of the arena.
    pub fn len(&self) -> usize {
        self.values.numel()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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
        if self.arena.is_some() {
            return Err(Error::arg(
                "Params::add",
                format!("cannot add {name:?}: the parameters are already resident on a device"),
            ));
        }
        self.mirror_is_stale();
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
    /// The position of `id` in parameter order (its slot in `Arena::offsets`).
    pub fn index(&self, id: ParamId) -> usize {
        id.0
    }
    pub fn get(&self, id: ParamId) -> &Param {
        &self.list[id.0]
    }
    pub fn get_mut(&mut self, id: ParamId) -> &mut Param {
        self.mirror_is_stale();
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
        self.mirror_is_stale();
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

    /// The device arenas, when resident.
    pub fn arena(&self) -> Option<&Arena> {
        self.arena.as_ref()
    }

    /// Moves every parameter into device arenas on `compute` (nothing on the CPU): one upload of
    /// all values, and a gradient arena, zeroed. Values must be f32 (the master weights). Values
    /// that are already device views are brought back first, so this also rebuilds the arena
    /// after a checkpoint replaced some values with host tensors.
    pub fn make_resident(&mut self, compute: &Compute) -> Result<()> {
        self.resident(compute, true)
    }

    /// `make_resident` without a gradient arena, for values that never take gradients (an EMA
    /// shadow).
    pub fn make_resident_values(&mut self, compute: &Compute) -> Result<()> {
        self.resident(compute, false)
    }

    fn resident(&mut self, compute: &Compute, with_grads: bool) -> Result<()> {
        let Some(kernels) = compute.kernels() else {
            // Host values stay where they are; a mirror catches up with values a checkpoint set.
            return self.refresh_mirror();
        };
        let backend = kernels.backend();
        let (host, offsets) = self.packed_values()?;
        let values = host.to_device(backend)?;
        let grads = if with_grads {
            let mut grads = DeviceTensor::uninit(backend.as_ref(), [values.numel()], DType::F32)?;
            kernels.memset(&mut grads.buf, 0)?;
            Some(grads.into_tensor(backend)?)
        } else {
            None
        };
        self.install(Arena {
            kernels: kernels.clone(),
            values,
            grads,
            offsets,
        })?;
        match self.mirror.as_ref().map(|m| m.dtype) {
            Some(dtype) => self.keep_mirror(dtype),
            None => Ok(()),
        }
    }

    /// A second set of the same parameters in new device memory, copied device to device, with
    /// no gradient arena (what an EMA shadow needs). Errors unless resident.
    pub fn resident_copy(&self) -> Result<Params> {
        let arena = self.arena.as_ref().ok_or_else(|| {
            Error::arg("Params::resident_copy", "the parameters are not resident")
        })?;
        let kernels = &arena.kernels;
        let mut copy = DeviceTensor::uninit(kernels.backend().as_ref(), [arena.len()], DType::F32)?;
        let source = DeviceTensor::borrow(&arena.values).expect("arena values are on the device");
        kernels.copy(&mut copy.buf, &source.buf)?;
        let mut out = Params {
            list: self.list.clone(),
            by_name: self.by_name.clone(),
            arena: None,
            mirror: None,
        };
        for p in &mut out.list {
            p.grad = None;
        }
        out.install(Arena {
            kernels: kernels.clone(),
            values: copy.into_tensor(kernels.backend())?,
            grads: None,
            offsets: arena.offsets.clone(),
        })?;
        Ok(out)
    }

    /// Every value on the host in parameter order, each at a multiple of `ARENA_ALIGN`, as one
    /// f32 tensor, and each parameter's offset in it.
    fn packed_values(&self) -> Result<(Tensor, Vec<usize>)> {
        let mut all = Vec::with_capacity(self.num_elements() + ARENA_ALIGN * self.list.len());
        let mut offsets = Vec::with_capacity(self.list.len());
        for p in &self.list {
            if p.value.dtype() != DType::F32 {
                return Err(Error::DType {
                    op: "Params::make_resident",
                    expected: "f32 master weights",
                    got: p.value.dtype(),
                });
            }
            all.resize(all.len().next_multiple_of(ARENA_ALIGN), 0.0);
            offsets.push(all.len());
            all.extend(p.value.to_host()?.to_vec_f32()?);
        }
        let n = all.len();
        Ok((Tensor::from_vec(all, [n])?, offsets))
    }

    /// Points every value at its view of `arena` and forgets the gradients.
    fn install(&mut self, arena: Arena) -> Result<()> {
        for (p, &offset) in self.list.iter_mut().zip(&arena.offsets) {
            p.value = arena.values.view(offset, p.value.shape().clone())?;
            p.grad = None;
        }
        self.arena = Some(arena);
        Ok(())
    }

    /// Forgets every accumulated gradient (resident: one memset of the gradient arena).
    pub fn zero_grad(&mut self) -> Result<()> {
        for p in &mut self.list {
            p.grad = None;
        }
        if let Some(Arena {
            kernels,
            grads: Some(grads),
            ..
        }) = &self.arena
        {
            let mut buf = DeviceTensor::borrow(grads).expect("arena gradients are on the device");
            kernels.memset(&mut buf.buf, 0)?;
        }
        Ok(())
    }

    /// Adds the gradients of one backward pass (`Gradients::param_grads`) to the accumulated
    /// ones, on `compute` (where the gradients live). Resident parameters add them in place into
    /// the gradient arena (which `zero_grad` zeroed), one launch each, widening a bf16 gradient
    /// (of a mirror binding) as it adds it; host parameters keep f32 gradients for f32 values.
    pub fn accumulate<'a>(
        &mut self,
        compute: &Compute,
        grads: impl IntoIterator<Item = (ParamId, &'a Tensor)>,
    ) -> Result<()> {
        const OP: &str = "Params::accumulate";
        for (id, g) in grads {
            let p = &mut self.list[id.0];
            p.value.shape().expect_eq(OP, g.shape())?;
            match &self.arena {
                Some(arena) => {
                    let grads = arena.grads.as_ref().ok_or_else(|| {
                        Error::arg(
                            OP,
                            format!("{:?} belongs to a copy that takes no gradients", p.name),
                        )
                    })?;
                    let acc = grads.view(arena.offsets[id.0], p.value.shape().clone())?;
                    let resident = arena.kernels.resident(g)?;
                    let mut out =
                        DeviceTensor::borrow(&acc).expect("arena gradients are on the device");
                    // A bf16 gradient (of a mirror binding) is widened as it is added.
                    accumulate_into(arena.kernels.backend().as_ref(), &mut out, &resident)?;
                    p.grad = Some(acc);
                }
                None => {
                    // The gradient of a mirror binding is bf16; the master gradient stays f32.
                    let g = &cast_tensor(compute, g, p.value.dtype())?;
                    p.grad = Some(match p.grad.take() {
                        None => g.clone(),
                        Some(acc) => compute.add(&acc, g)?,
                    });
                }
            }
        }
        Ok(())
    }
}

impl Params {
    /// Keeps a copy of every value in `dtype` for the forward pass to bind (`Tape::param_as`):
    /// bf16 builds the mirror from the current values (resident: one allocation and one cast
    /// launch), the values' own dtype drops it. `make_resident` moves it with the values.
    pub fn keep_mirror(&mut self, dtype: DType) -> Result<()> {
        if self.list.iter().all(|p| p.value.dtype() == dtype) {
            self.mirror = None;
            return Ok(());
        }
        let arena = match &self.arena {
            None => None,
            Some(arena) => {
                let backend = arena.kernels.backend();
                let buf = DeviceTensor::uninit(backend.as_ref(), [arena.len()], dtype)?;
                Some(buf.into_tensor(backend)?)
            }
        };
        let values = match &arena {
            None => Vec::new(),
            Some(all) => self
                .list
                .iter()
                .zip(&self.arena.as_ref().expect("resident").offsets)
                .map(|(p, &offset)| all.view(offset, p.value.shape().clone()))
                .collect::<Result<_>>()?,
        };
        self.mirror = Some(Mirror {
            dtype,
            values,
            arena,
            fresh: false,
        });
        self.refresh_mirror()
    }

    /// The dtype of the mirror, if the parameters keep one.
    pub fn mirror_dtype(&self) -> Option<DType> {
        self.mirror.as_ref().map(|m| m.dtype)
    }

    /// Parameter `id` in `dtype` as the mirror holds it, when there is an up-to-date mirror in
    /// that dtype.
    pub fn mirror(&self, id: ParamId, dtype: DType) -> Option<&Tensor> {
        self.mirror
            .as_ref()
            .filter(|m| m.dtype == dtype && m.fresh)
            .map(|m| &m.values[id.0])
    }

    /// Recomputes the mirror from the values (nothing without one): resident, ONE cast launch
    /// over the arena; on the host, each value rounded as `Tensor::to_dtype` rounds (to nearest
    /// even, like the `cast_to_bf16_f32` kernel). Adam calls it after a step that did not write
    /// the mirror itself (the one-launch arena step does).
    pub fn refresh_mirror(&mut self) -> Result<()> {
        let Some(mirror) = &mut self.mirror else {
            return Ok(());
        };
        match (&self.arena, &mirror.arena) {
            (Some(arena), Some(copy)) => {
                let source =
                    DeviceTensor::borrow(&arena.values).expect("arena values are on the device");
                let mut dest = DeviceTensor::borrow(copy).expect("the mirror is on the device");
                cast_into(arena.kernels.backend().as_ref(), &source, &mut dest)?;
            }
            _ => {
                mirror.values = self
                    .list
                    .iter()
                    .map(|p| p.value.to_dtype(mirror.dtype))
                    .collect::<Result<_>>()?;
            }
        }
        mirror.fresh = true;
        Ok(())
    }

    /// The resident mirror's arena (bf16, laid out as the value arena), which the Adam arena step
    /// writes in the launch that updates the values.
    pub(crate) fn mirror_arena(&self) -> Option<&Tensor> {
        self.mirror.as_ref()?.arena.as_ref()
    }

    /// Records that the mirror arena was just written from the values (`mirror_arena`).
    pub(crate) fn mirror_refreshed(&mut self) -> Result<()> {
        if let Some(m) = &mut self.mirror {
            m.fresh = true;
        }
        Ok(())
    }

    fn mirror_is_stale(&mut self) {
        if let Some(m) = &mut self.mirror {
            m.fresh = false;
        }
    }
}
