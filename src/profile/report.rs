//! A step's cost as the profile reports it: one row per kernel name (launches, bytes, FLOPs, the
//! roofline time on the named GPU) and the totals, from the `Counts` of a step. Counts over
//! several segments (evaluation) are divided by the segment count, so every number is per step.

use crate::device::counting::Counts;
use crate::profile::cost::{launch_flops, uses_tensor_cores};
use crate::profile::roofline::Gpu;
use serde::Serialize;
use std::collections::BTreeMap;

/// Every launch of one kernel in a step.
#[derive(Clone, Debug, Serialize)]
pub struct KernelRow {
    pub name: String,
    pub launches: f64,
    /// Bytes of the buffers the launches were passed (each read or written once).
    pub bytes: f64,
    /// FLOPs from `cost::launch_flops`; 0 when the kernel has no formula (`has_flop_formula`).
    pub flops: f64,
    pub has_flop_formula: bool,
    pub tensor_cores: bool,
    /// The roofline lower bound on the launches' time, seconds.
    pub roofline_s: f64,
}

/// One step's totals and kernel rows.
#[derive(Clone, Debug, Serialize)]
pub struct StepCost {
    pub launches_per_step: f64,
    pub h2d_per_step: f64,
    pub h2d_bytes_per_step: f64,
    pub d2h_per_step: f64,
    pub d2h_bytes_per_step: f64,
    /// Explicit `synchronize` calls.
    pub syncs_per_step: f64,
    /// Times the host waits for the device: explicit synchronisations plus downloads (a
    /// download waits for the work pending on its buffer, so on a GPU each one stalls the step).
    pub host_waits_per_step: f64,
    pub allocs_per_step: f64,
    pub alloc_bytes_per_step: f64,
    pub memsets_per_step: f64,
    pub device_copies_per_step: f64,
    pub cpu_fallbacks_per_step: f64,
    /// The ops that fell back to the CPU, with how often (per step).
    pub cpu_fallbacks: BTreeMap<String, f64>,
    /// Bytes set by memsets plus bytes read and written by device-to-device copies.
    pub memset_and_copy_bytes_per_step: f64,
    /// The kernels' bytes plus `memset_and_copy_bytes_per_step`: the device memory traffic the
    /// step asks for, before caches.
    pub bytes_per_step: f64,
    pub flops_per_step: f64,
    /// Sum of the kernels' roofline times plus the memsets' and copies' at HBM speed.
    pub roofline_s: f64,
    pub kernels: Vec<KernelRow>,
    /// Kernels launched that have no FLOP formula (counted as 0 FLOPs).
    pub no_flop_formula: Vec<String>,
}

impl StepCost {
    /// The cost of `counts`, divided by `per` (1 for one step; the segment count for an
    /// evaluation batch), drawn for `gpu`.
    pub fn new(counts: &Counts, per: usize, gpu: &Gpu) -> StepCost {
        let per = per.max(1) as f64;
        let mut rows: BTreeMap<&str, KernelRow> = BTreeMap::new();
        for launch in &counts.launches {
            let flops = launch_flops(launch);
            let tensor_cores = uses_tensor_cores(&launch.name);
            let bytes = (launch.bytes_in + launch.bytes_out) as f64;
            let row = rows.entry(&launch.name).or_insert_with(|| KernelRow {
                name: launch.name.clone(),
                launches: 0.0,
                bytes: 0.0,
                flops: 0.0,
                has_flop_formula: true,
                tensor_cores,
                roofline_s: 0.0,
            });
            row.launches += 1.0;
            row.bytes += bytes;
            row.flops += flops.unwrap_or(0.0);
            row.has_flop_formula &= flops.is_some();
            // Per launch: each launch is bounded by its own bytes or FLOPs.
            row.roofline_s += gpu.seconds(bytes, flops.unwrap_or(0.0), tensor_cores);
        }
        let mut kernels: Vec<KernelRow> = rows
            .into_values()
            .map(|mut r| {
                r.launches /= per;
                r.bytes /= per;
                r.flops /= per;
                r.roofline_s /= per;
                r
            })
            .collect();
        kernels.sort_by(|a, b| b.bytes.total_cmp(&a.bytes).then(a.name.cmp(&b.name)));
        let no_flop_formula = kernels
            .iter()
            .filter(|r| !r.has_flop_formula)
            .map(|r| r.name.clone())
            .collect();
        let moved = (counts.memset_bytes + 2 * counts.copy_bytes) as f64 / per;
        let kernel_bytes: f64 = kernels.iter().map(|r| r.bytes).sum();
        let mut cpu_fallbacks = BTreeMap::new();
        for op in &counts.fallbacks {
            *cpu_fallbacks.entry(op.to_string()).or_insert(0.0) += 1.0 / per;
        }
        StepCost {
            launches_per_step: counts.launches.len() as f64 / per,
            h2d_per_step: counts.uploads as f64 / per,
            h2d_bytes_per_step: counts.upload_bytes as f64 / per,
            d2h_per_step: counts.downloads as f64 / per,
            d2h_bytes_per_step: counts.download_bytes as f64 / per,
            syncs_per_step: counts.syncs as f64 / per,
            host_waits_per_step: (counts.syncs + counts.downloads) as f64 / per,
            allocs_per_step: counts.allocs as f64 / per,
            alloc_bytes_per_step: counts.alloc_bytes as f64 / per,
            memsets_per_step: counts.memsets as f64 / per,
            device_copies_per_step: counts.copies as f64 / per,
            cpu_fallbacks_per_step: counts.fallbacks.len() as f64 / per,
            cpu_fallbacks,
            memset_and_copy_bytes_per_step: moved,
            bytes_per_step: kernel_bytes + moved,
            flops_per_step: kernels.iter().map(|r| r.flops).sum(),
            roofline_s: kernels.iter().map(|r| r.roofline_s).sum::<f64>()
                + moved / gpu.hbm_bytes_per_s,
            kernels,
            no_flop_formula,
        }
    }

    /// The `n` kernels with the longest roofline time, longest first.
    pub fn top_by_time(&self, n: usize) -> Vec<&KernelRow> {
        let mut rows: Vec<&KernelRow> = self.kernels.iter().collect();
        rows.sort_by(|a, b| b.roofline_s.total_cmp(&a.roofline_s));
        rows.truncate(n);
        rows
    }

    /// The `n` kernels that move the most bytes, most first.
    pub fn top_by_bytes(&self, n: usize) -> Vec<&KernelRow> {
        self.kernels.iter().take(n).collect()
    }
}
