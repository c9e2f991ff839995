//! The demo's toy task: sort a sequence of digits. Each example is `len` digits drawn uniformly
//! from `0..vocab`; the label at position i is the i-th smallest digit.
//!
//! Sorting needs each position to know its absolute index, which RoPE alone does not give; the
//! model gets it the way TRM does, from a prefix token at position 0 that RoPE covers too.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use rand::rngs::StdRng;
use rand::Rng;

#[derive(Clone, Copy, Debug)]
pub struct SortTask {
    pub len: usize,
    pub vocab: usize,
}

impl SortTask {
    pub fn new(len: usize, vocab: usize) -> Result<SortTask> {
        if len == 0 || vocab < 2 {
            return Err(Error::arg(
                "SortTask",
                format!("need len ≥ 1 and vocab ≥ 2, got len {len}, vocab {vocab}"),
            ));
        }
        Ok(SortTask { len, vocab })
    }

    /// A batch of (inputs, labels), both i32 [batch, len].
    pub fn batch(&self, rng: &mut StdRng, batch: usize) -> (Tensor, Tensor) {
        let mut inputs = Vec::with_capacity(batch * self.len);
        let mut labels = Vec::with_capacity(batch * self.len);
        for _ in 0..batch {
            let mut seq: Vec<i32> = (0..self.len)
                .map(|_| rng.random_range(0..self.vocab as i32))
                .collect();
            inputs.extend_from_slice(&seq);
            seq.sort_unstable();
            labels.extend_from_slice(&seq);
        }
        let shape = [batch, self.len];
        (
            Tensor::from_vec(inputs, shape).expect("sized to the shape"),
            Tensor::from_vec(labels, shape).expect("sized to the shape"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn labels_are_the_sorted_inputs() {
        let task = SortTask::new(16, 8).unwrap();
        let (x, y) = task.batch(&mut StdRng::seed_from_u64(1), 5);
        let (x, y) = (x.to_vec_i32().unwrap(), y.to_vec_i32().unwrap());
        for (xs, ys) in x.chunks(16).zip(y.chunks(16)) {
            let mut s = xs.to_vec();
            s.sort();
            assert_eq!(s, ys);
            assert!(xs.iter().all(|&v| (0..8).contains(&v)));
        }
        assert!(SortTask::new(0, 8).is_err());
        assert!(SortTask::new(4, 1).is_err());
    }
}
