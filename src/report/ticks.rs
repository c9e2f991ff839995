//! Axis ticks: where to put them ("nice" steps of 1, 2 or 5 × 10^k, or powers of ten on a log
//! axis) and how to label them compactly with the plot font.

/// A tick: its position in data units and its label.
#[derive(Clone, Debug, PartialEq)]
pub struct Tick {
    pub value: f64,
    pub label: String,
}

/// About `target` evenly spaced ticks at nice values inside `[lo, hi]`.
pub fn linear_ticks(lo: f64, hi: f64, target: usize) -> Vec<Tick> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return Vec::new();
    }
    let step = nice_step((hi - lo) / target.max(1) as f64);
    if !(step.is_finite() && step > 0.0) {
        return Vec::new();
    }
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    let values: Vec<f64> = (first..=last)
        .map(|k| {
            // Snap round-off (0.1 * 3 = 0.30000000000000004) and a -0 at zero.
            let v = k as f64 * step;
            if v.abs() < step * 1e-9 {
                0.0
            } else {
                v
            }
        })
        .collect();
    let labels = linear_labels(&values, step);
    values
        .into_iter()
        .zip(labels)
        .map(|(value, label)| Tick { value, label })
        .collect()
}

/// Powers of ten inside `[lo, hi]` (both positive) for a log axis; when the range holds fewer
/// than two of them, nice linear values instead (still placed on the log axis).
pub fn log_ticks(lo: f64, hi: f64) -> Vec<Tick> {
    if !(lo > 0.0 && hi.is_finite()) || hi <= lo {
        return Vec::new();
    }
    // The tolerance keeps an exact power at an end of the range (1e-4.log10() is not exactly -4).
    let first = (lo.log10() - 1e-9).ceil() as i32;
    let last = (hi.log10() + 1e-9).floor() as i32;
    if last - first + 1 < 2 {
        return linear_ticks(lo, hi, 4)
            .into_iter()
            .filter(|t| t.value > 0.0)
            .collect();
    }
    // Thin out to at most ~8 labelled decades.
    let every = ((last - first) / 8 + 1) as usize;
    (first..=last)
        .step_by(every)
        .map(|k| Tick {
            // Parsed, not powi: `1e-4` is the f64 nearest 10^-4, powi(-4) may be an ulp off.
            value: format!("1e{k}").parse().expect("a valid float literal"),
            label: power_of_ten_label(k),
        })
        .collect()
}

/// The step of 1, 2 or 5 × 10^k closest to `raw` (Heckbert's "nice numbers").
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction < 1.5 {
        1.0
    } else if fraction < 3.0 {
        2.0
    } else if fraction < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Labels with just enough digits to tell ticks `step` apart: fixed-point for ordinary
/// magnitudes, scientific (`2.5e6`, `1e-4`) for very large or very small ones.
fn linear_labels(values: &[f64], step: f64) -> Vec<String> {
    let largest = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let step_exp = step.log10().floor() as i32;
    if largest >= 1e6 || (largest > 0.0 && largest < 1e-3) {
        let digits = (largest.log10().floor() as i32 - step_exp).max(0) as usize;
        values
            .iter()
            .map(|&v| {
                if v == 0.0 {
                    "0".to_string()
                } else {
                    format!("{v:.digits$e}")
                }
            })
            .collect()
    } else {
        let decimals = (-step_exp).max(0) as usize;
        values.iter().map(|&v| format!("{v:.decimals$}")).collect()
    }
}

fn power_of_ten_label(k: i32) -> String {
    match k {
        0..=5 => format!("{}", 10i64.pow(k as u32)),
        -3..=-1 => format!("{:.*}", (-k) as usize, 10f64.powi(k)),
        _ => format!("1e{k}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(ticks: &[Tick]) -> Vec<&str> {
        ticks.iter().map(|t| t.label.as_str()).collect()
    }

    #[test]
    fn linear_ticks_are_nice_and_inside_the_range() {
        assert_eq!(
            labels(&linear_ticks(0.0, 1.0, 5)),
            ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
        );
        assert_eq!(
            labels(&linear_ticks(-3.2, 7.9, 5)),
            ["-2", "0", "2", "4", "6"]
        );
        assert_eq!(
            labels(&linear_ticks(1e6, 3e6, 4)),
            ["1.0e6", "1.5e6", "2.0e6", "2.5e6", "3.0e6"]
        );
        assert_eq!(
            labels(&linear_ticks(0.0, 4e-4, 4)),
            ["0", "1e-4", "2e-4", "3e-4", "4e-4"]
        );
        for (lo, hi) in [(0.13, 0.17), (-1e-3, 5e-2), (12.0, 9876.0)] {
            let ticks = linear_ticks(lo, hi, 5);
            assert!(ticks.len() >= 2, "{lo}..{hi}: {ticks:?}");
            assert!(ticks.iter().all(|t| t.value >= lo && t.value <= hi));
        }
        assert!(linear_ticks(1.0, 1.0, 5).is_empty());
        assert!(linear_ticks(f64::NAN, 1.0, 5).is_empty());
    }

    #[test]
    fn log_ticks_use_powers_of_ten() {
        assert_eq!(
            labels(&log_ticks(0.5, 2e4)),
            ["1", "10", "100", "1000", "10000"]
        );
        assert_eq!(labels(&log_ticks(1e-4, 0.02)), ["1e-4", "0.001", "0.01"]);
        assert_eq!(labels(&log_ticks(2.0, 8.0)), ["2", "4", "6", "8"]);
    }
}
