//! The official SwiGLU MLP: `gate_up_proj` (D → 2·inter, no bias), `silu(gate)·up`, `down_proj`
//! (inter → D, no bias).

use crate::error::Result;
use crate::nn::Linear;
use crate::params::Params;
use crate::tape::{Tape, Var};

/// The official intermediate width: `round(expansion·hidden·2/3)` rounded up to a multiple of
/// 256 (hidden 512, expansion 4 → 1536; TRM-MLP's token mixer over L = 97 → 512).
pub fn intermediate_size(hidden: usize, expansion: f64) -> usize {
    let raw = (expansion * hidden as f64 * 2.0 / 3.0).round() as usize;
    raw.div_ceil(256) * 256
}

pub struct SwiGlu {
    pub gate_up_proj: Linear,
    pub down_proj: Linear,
}

impl SwiGlu {
    pub fn new(
        params: &mut Params,
        prefix: &str,
        hidden: usize,
        expansion: f64,
        seed: u64,
    ) -> Result<SwiGlu> {
        let inter = intermediate_size(hidden, expansion);
        Ok(SwiGlu {
            gate_up_proj: Linear::new(
                params,
                &format!("{prefix}gate_up_proj."),
                hidden,
                2 * inter,
                false,
                seed,
            )?,
            down_proj: Linear::new(
                params,
                &format!("{prefix}down_proj."),
                inter,
                hidden,
                false,
                seed,
            )?,
        })
    }

    pub fn forward(&self, tape: &Tape, params: &Params, x: &Var) -> Result<Var> {
        let gate_up = self.gate_up_proj.forward(tape, params, x)?;
        let act = tape.swiglu(&gate_up)?;
        self.down_proj.forward(tape, params, &act)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intermediate_sizes_match_the_official_configs() {
        assert_eq!(intermediate_size(512, 4.0), 1536);
        assert_eq!(intermediate_size(97, 4.0), 512);
        assert_eq!(intermediate_size(916, 4.0), 2560);
        assert_eq!(intermediate_size(64, 4.0), 256);
    }
}
