//! The run's pictures and tables: training curves from `metrics.jsonl` (loss; train and
//! held-out accuracy) and the depth curve (accuracy after k supervision steps) with the halting
//! distribution.

use crate::error::Result;
use crate::report::{read_jsonl, write_csv_f64, Figure, Plot};
use crate::train::EvalReport;
use std::path::Path;

/// `curves.png`: loss over steps, and train exact accuracy with held-out exact accuracy.
pub fn plot_training_curves(metrics: &Path, out: &Path) -> Result<()> {
    let records = read_jsonl(metrics)?;
    // Per-step training numbers are noisy (a few halted sequences each), so they are shown as a
    // running mean over `SMOOTH` steps; evaluations are plotted as they are.
    const SMOOTH: usize = 50;
    let smooth = |points: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        let finite: Vec<(f64, f64)> = points.into_iter().filter(|p| p.1.is_finite()).collect();
        (0..finite.len())
            .map(|i| {
                let lo = i.saturating_sub(SMOOTH - 1);
                let window = &finite[lo..=i];
                let mean = window.iter().map(|p| p.1).sum::<f64>() / window.len() as f64;
                (finite[i].0, mean)
            })
            .collect()
    };
    let series = |kind: &str, key: &str| -> Vec<(f64, f64)> {
        records
            .iter()
            .filter(|r| r["kind"] == kind)
            .filter_map(|r| Some((r["step"].as_f64()?, r[key].as_f64()?)))
            .collect()
    };
    let loss = Plot::new("training loss")
        .x_label("step")
        .y_label("loss / batch")
        .series("loss (mean of 50 steps)", smooth(series("train", "loss")));
    let accuracy = Plot::new("exact accuracy")
        .x_label("step")
        .y_label("fraction")
        .y_range(0.0, 1.0)
        .series(
            "train, halted seqs (mean of 50 steps)",
            smooth(series("train", "exact_accuracy")),
        )
        .series("held-out", series("eval", "exact_accuracy"))
        .series("held-out token", series("eval", "token_accuracy"));
    Figure::new(900, 700).panel(loss).panel(accuracy).save(out)
}

/// `depth.png`: exact and token accuracy after each supervision step, and how many puzzles
/// the halting rule stops at each step.
pub fn plot_depth_curve(out: &Path, report: &EvalReport, title: &str) -> Result<()> {
    let by_step = |v: &[f64]| -> Vec<(f64, f64)> {
        v.iter()
            .enumerate()
            .map(|(k, &a)| ((k + 1) as f64, a))
            .collect()
    };
    let depth = Plot::new(title)
        .x_label("supervision steps")
        .y_label("accuracy")
        .y_range(0.0, 1.0)
        .series("exact", by_step(&report.exact_by_step))
        .series("token", by_step(&report.token_by_step));
    let n = report.puzzles.max(1) as f64;
    let halting: Vec<f64> = report
        .halt_histogram
        .iter()
        .map(|&c| c as f64 / n)
        .collect();
    let halts = Plot::new("halting step (Q head rule)")
        .x_label("supervision step")
        .y_label("fraction of puzzles")
        .series("halted here", by_step(&halting));
    Figure::new(800, 700).panel(depth).panel(halts).save(out)
}

/// `depth.csv`: one row per supervision step.
pub fn write_depth_csv(out: &Path, report: &EvalReport) -> Result<()> {
    let rows: Vec<Vec<f64>> = (0..report.exact_by_step.len())
        .map(|k| {
            vec![
                (k + 1) as f64,
                report.exact_by_step[k],
                report.token_by_step[k],
                report.halt_histogram[k] as f64,
            ]
        })
        .collect();
    write_csv_f64(
        out,
        &["step", "exact_accuracy", "token_accuracy", "halted_here"],
        &rows,
    )
}
