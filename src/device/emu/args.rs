//! Kernel arguments in the driver API's shape: one pointer per parameter, to that parameter's
//! value. A buffer's value is its host address (device pointers are host pointers on Emu).

use super::memory::HostMemory;
use crate::device::backend::KernelArg;
use crate::error::{Error, Result};
use std::ffi::c_void;

/// One parameter value, in a slot wide enough for any of them.
#[repr(C)]
#[derive(Clone, Copy)]
union Value {
    ptr: *mut c_void,
    i32: i32,
    u32: u32,
    i64: i64,
    u64: u64,
    f32: f32,
}

/// The values of a launch's arguments and their sizes, which the shim checks against the
/// kernel's parameter list. A clone holds the same values: a captured launch keeps one, frozen
/// as a CUDA graph's kernel node freezes its parameters (`capture`).
#[derive(Clone)]
pub(crate) struct Marshalled {
    values: Vec<Value>,
    sizes: Vec<usize>,
    pointers: Vec<*mut c_void>,
}

impl Marshalled {
    /// Borrows every buffer in `args` for as long as the result lives (its lifetime is tied to
    /// the `&mut` borrow of `args`), so the addresses stay valid through the launch.
    pub(crate) fn new(args: &mut [KernelArg<'_>]) -> Result<Marshalled> {
        let mut values = Vec::with_capacity(args.len());
        let mut sizes = Vec::with_capacity(args.len());
        for (i, arg) in args.iter_mut().enumerate() {
            let foreign = || Error::arg("emu", format!("argument {i}: buffer of another backend"));
            let (value, size) = match arg {
                KernelArg::In(buf) => {
                    let mem = buf.handle::<HostMemory>().ok_or_else(foreign)?;
                    // The kernel only reads through this pointer (the launcher's contract).
                    let ptr = mem.device_ptr(buf.offset_bytes()).cast();
                    (Value { ptr }, size_of::<*mut c_void>())
                }
                KernelArg::Out(buf) => {
                    let mem = buf.handle::<HostMemory>().ok_or_else(foreign)?;
                    let ptr = mem.device_ptr(buf.offset_bytes()).cast();
                    (Value { ptr }, size_of::<*mut c_void>())
                }
                KernelArg::I32(v) => (Value { i32: *v }, 4),
                KernelArg::U32(v) => (Value { u32: *v }, 4),
                KernelArg::I64(v) => (Value { i64: *v }, 8),
                KernelArg::U64(v) => (Value { u64: *v }, 8),
                KernelArg::F32(v) => (Value { f32: *v }, 4),
            };
            values.push(value);
            sizes.push(size);
        }
        Ok(Marshalled {
            values,
            sizes,
            pointers: Vec::new(),
        })
    }

    /// `void** args` for the shim. `values` is never resized after `new`, so the pointers into
    /// it stay valid while `self` lives.
    pub(crate) fn argv(&mut self) -> *mut *mut c_void {
        self.pointers = self
            .values
            .iter_mut()
            .map(|v| (v as *mut Value).cast::<c_void>())
            .collect();
        self.pointers.as_mut_ptr()
    }

    pub(crate) fn sizes(&self) -> &[usize] {
        &self.sizes
    }
}
