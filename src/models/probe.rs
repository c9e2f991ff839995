//! An optional recorder of intermediate tensors (embeddings, every net call, every block), so a
//! test can compare them with the official code's trace one by one instead of only the final
//! output, where the chaotic recursion would hide where a difference starts.

use crate::tensor::Tensor;
use std::cell::RefCell;

#[derive(Default)]
pub struct Probe {
    records: Option<RefCell<Vec<(String, Tensor)>>>,
}

impl Probe {
    /// A probe that records nothing (the normal case: no copies are kept).
    pub fn off() -> Probe {
        Probe { records: None }
    }

    /// A probe that keeps every tensor it is shown.
    pub fn recording() -> Probe {
        Probe {
            records: Some(RefCell::new(Vec::new())),
        }
    }

    pub fn is_recording(&self) -> bool {
        self.records.is_some()
    }

    /// Keeps `value` under `name()`; the name is only built when recording.
    pub fn record(&self, name: impl FnOnce() -> String, value: &Tensor) {
        if let Some(records) = &self.records {
            records.borrow_mut().push((name(), value.clone()));
        }
    }

    /// The recorded tensors, in recording order.
    pub fn take(self) -> Vec<(String, Tensor)> {
        self.records.map(RefCell::into_inner).unwrap_or_default()
    }
}
