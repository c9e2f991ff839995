//! `Plot`: the description of one line chart (title, axis labels, series of (x, y) points,
//! optional log x axis), and the data ranges its axes span. Drawing it is `panel`'s job.

use crate::error::{Error, Result};
use crate::report::raster::Rgb;

/// Series colours, in order (the "tab10" palette: distinct, and readable on white). A plot with
/// more series than colours reuses them cyclically.
pub const PALETTE: [Rgb; 10] = [
    Rgb(31, 119, 180),
    Rgb(255, 127, 14),
    Rgb(44, 160, 44),
    Rgb(214, 39, 40),
    Rgb(148, 103, 189),
    Rgb(140, 86, 75),
    Rgb(227, 119, 194),
    Rgb(127, 127, 127),
    Rgb(188, 189, 34),
    Rgb(23, 190, 207),
];

/// One named curve. Points are joined in the given order; a point that cannot be placed (NaN
/// or infinite coordinates, or x ≤ 0 on a log axis) breaks the line there.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart, built fluently:
/// `Plot::new("loss").x_label("step").y_label("loss").log_x(true).series("train", pts)`.
#[derive(Clone, Debug, Default)]
pub struct Plot {
    pub(crate) title: String,
    pub(crate) x_label: String,
    pub(crate) y_label: String,
    pub(crate) series: Vec<Series>,
    pub(crate) log_x: bool,
    pub(crate) fixed_y: Option<(f64, f64)>,
}

impl Plot {
    pub fn new(title: impl Into<String>) -> Plot {
        Plot {
            title: title.into(),
            ..Plot::default()
        }
    }
    pub fn x_label(mut self, label: impl Into<String>) -> Plot {
        self.x_label = label.into();
        self
    }
    pub fn y_label(mut self, label: impl Into<String>) -> Plot {
        self.y_label = label.into();
        self
    }
    /// A logarithmic x axis (steps spanning decades); points with x ≤ 0 are skipped.
    pub fn log_x(mut self, on: bool) -> Plot {
        self.log_x = on;
        self
    }
    /// Fixes the y axis to `[lo, hi]` (e.g. 0..1 for accuracies) instead of fitting the data;
    /// curves leaving it are clipped. Must be finite with lo < hi, checked when drawn.
    pub fn y_range(mut self, lo: f64, hi: f64) -> Plot {
        self.fixed_y = Some((lo, hi));
        self
    }
    /// Adds a series; it gets colour `PALETTE[i % PALETTE.len()]` for the i-th series added.
    pub fn series(mut self, name: impl Into<String>, points: Vec<(f64, f64)>) -> Plot {
        self.series.push(Series {
            name: name.into(),
            points,
        });
        self
    }

    /// The colour of the `index`-th series.
    pub fn series_colour(index: usize) -> Rgb {
        PALETTE[index % PALETTE.len()]
    }

    /// True when `p` can be drawn on this plot's axes.
    pub(crate) fn placeable(&self, (x, y): (f64, f64)) -> bool {
        x.is_finite() && y.is_finite() && (!self.log_x || x > 0.0)
    }

    fn placeable_points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|&p| self.placeable(p))
    }

    /// The x range the axis spans: exactly the data's, widened when degenerate (no points, or
    /// all at one x) so the axis still has extent.
    pub(crate) fn x_range(&self) -> (f64, f64) {
        let span = min_max(self.placeable_points().map(|p| p.0));
        if self.log_x {
            match span {
                None => (1.0, 10.0),
                Some((lo, hi)) if lo == hi => (lo / 10f64.sqrt(), hi * 10f64.sqrt()),
                Some(range) => range,
            }
        } else {
            span.map_or((0.0, 1.0), widen_if_flat)
        }
    }

    /// The y range: the fixed one, or the data's with 5% headroom at each end so curves do not
    /// run along the frame.
    pub(crate) fn y_range_resolved(&self) -> Result<(f64, f64)> {
        if let Some((lo, hi)) = self.fixed_y {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(Error::arg(
                    "Plot::y_range",
                    format!(
                        "plot {:?}: y range [{lo}, {hi}] must be finite with lo < hi",
                        self.title
                    ),
                ));
            }
            return Ok((lo, hi));
        }
        Ok(match min_max(self.placeable_points().map(|p| p.1)) {
            None => (0.0, 1.0),
            Some((lo, hi)) if lo == hi => widen_if_flat((lo, hi)),
            Some((lo, hi)) => {
                let pad = 0.05 * (hi - lo);
                (lo - pad, hi + pad)
            }
        })
    }
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A range of zero width becomes one centred on the value: ±10% of it, or ±1 around zero.
fn widen_if_flat((lo, hi): (f64, f64)) -> (f64, f64) {
    if lo < hi {
        return (lo, hi);
    }
    let half = if lo == 0.0 { 1.0 } else { 0.1 * lo.abs() };
    (lo - half, hi + half)
}
