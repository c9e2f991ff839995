//! One plot drawn into a rectangle of a figure: the layout (title, legend, plot area, tick
//! labels, axis labels) and the drawing.
//!
//! Top to bottom a panel holds the title, the legend (one row per line of entries, above the
//! data so it never hides a curve), the framed plot area with tick labels left and below, and
//! the x-axis label; the y-axis label reads upward on the left.

use crate::error::{Error, Result};
use crate::report::font::{draw_text, draw_text_up, text_height, text_width};
use crate::report::plot::Plot;
use crate::report::raster::{Canvas, Rect, Rgb};
use crate::report::ticks::{linear_ticks, log_ticks, Tick};

pub const BACKGROUND: Rgb = Rgb(255, 255, 255);
pub const TEXT: Rgb = Rgb(30, 30, 30);
pub const FRAME: Rgb = Rgb(60, 60, 60);
pub const GRID: Rgb = Rgb(228, 228, 228);

/// Width of the series lines, in pixels.
pub const LINE_THICKNESS: u32 = 2;
const PAD: i64 = 8;
const TICK_LEN: i64 = 4;
const GAP: i64 = 3;
const TITLE_HEIGHT: i64 = 14;
const LEGEND_SWATCH: i64 = 14;
const LEGEND_ROW: i64 = 11;
const LEGEND_ENTRY_GAP: i64 = 12;
/// Below this plot-area size the panel is refused: labels would eat all the room.
const MIN_PLOT_SIDE: i64 = 16;

/// Where everything of one panel goes, and how data maps to pixels. Public so callers (and
/// tests) can locate the curves in the image.
#[derive(Clone, Debug)]
pub struct PanelLayout {
    /// The panel's share of the figure.
    pub panel: Rect,
    pub title_area: Rect,
    /// Empty (zero height) when no series has a name.
    pub legend_area: Rect,
    /// The data rectangle, inside the frame: x_range spans its first to last column, y_range
    /// its last to first row.
    pub plot_area: Rect,
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
    pub log_x: bool,
    pub x_ticks: Vec<Tick>,
    pub y_ticks: Vec<Tick>,
    title_scale: u32,
    /// Top-left corner of each legend entry, by series index (None: unnamed series).
    legend_entries: Vec<Option<(i64, i64)>>,
}

impl PanelLayout {
    /// The column (fractional) where `x` lands: `plot_area.x + t·(w − 1)` with `t` the position
    /// of x in `x_range`, linear or logarithmic.
    pub fn x_to_px(&self, x: f64) -> f64 {
        let (lo, hi) = self.x_range;
        let t = if self.log_x {
            (x.ln() - lo.ln()) / (hi.ln() - lo.ln())
        } else {
            (x - lo) / (hi - lo)
        };
        self.plot_area.x as f64 + t * (self.plot_area.w - 1) as f64
    }

    /// The row (fractional) where `y` lands: `y_range.1` on the plot area's top row,
    /// `y_range.0` on its bottom row.
    pub fn y_to_px(&self, y: f64) -> f64 {
        let (lo, hi) = self.y_range;
        let t = (hi - y) / (hi - lo);
        self.plot_area.y as f64 + t * (self.plot_area.h - 1) as f64
    }

    /// Lays out `plot` in `panel`. Errors when the panel is too small for its labels, or the
    /// plot's ranges are unusable.
    pub fn compute(plot: &Plot, panel: Rect) -> Result<PanelLayout> {
        let x_range = plot.x_range();
        let y_range = plot.y_range_resolved()?;
        if !(x_range.1 - x_range.0).is_finite() || !(y_range.1 - y_range.0).is_finite() {
            return Err(Error::arg(
                "Figure",
                format!(
                    "plot {:?}: data spans x {x_range:?}, y {y_range:?}, too wide to draw",
                    plot.title
                ),
            ));
        }
        let inner_w = panel.w - 2 * PAD;
        let title_scale = if text_width(&plot.title, 2) as i64 <= inner_w {
            2
        } else {
            1
        };
        let title_area = Rect {
            x: panel.x + PAD,
            y: panel.y + PAD,
            w: inner_w.max(0),
            h: TITLE_HEIGHT,
        };
        let (legend_entries, legend_rows) = legend_positions(
            plot,
            panel.x + PAD,
            title_area.y + TITLE_HEIGHT + 4,
            inner_w,
        );
        let legend_area = Rect {
            x: panel.x + PAD,
            y: title_area.y + TITLE_HEIGHT + 4,
            w: inner_w.max(0),
            h: legend_rows * LEGEND_ROW,
        };

        // Vertical extent first: it does not depend on tick labels.
        let label_h = text_height(1) as i64;
        let top = legend_area.y + legend_area.h + 6 + 1;
        let x_label_h = if plot.x_label.is_empty() {
            0
        } else {
            label_h + 4
        };
        let bottom = panel.y + panel.h - PAD - x_label_h - label_h - 2 - TICK_LEN - 1;
        let plot_h = bottom - top;

        let y_ticks = linear_ticks(y_range.0, y_range.1, (plot_h / 40).clamp(2, 8) as usize);
        let y_tick_w = y_ticks
            .iter()
            .map(|t| text_width(&t.label, 1) as i64)
            .max()
            .unwrap_or(0);
        let y_label_w = if plot.y_label.is_empty() {
            0
        } else {
            label_h + 4
        };
        let left = panel.x + PAD + y_label_w + y_tick_w + GAP + TICK_LEN + 1;

        let rough_w = panel.x + panel.w - PAD - left;
        let x_ticks = if plot.log_x {
            log_ticks(x_range.0, x_range.1)
        } else {
            linear_ticks(x_range.0, x_range.1, (rough_w / 80).clamp(2, 10) as usize)
        };
        // The last x label is centred on its tick and may stick out past the frame.
        let overhang = x_ticks
            .last()
            .map_or(0, |t| text_width(&t.label, 1) as i64 / 2);
        let right = panel.x + panel.w - PAD - overhang.max(1);
        let plot_area = Rect {
            x: left,
            y: top,
            w: right - left,
            h: plot_h,
        };
        if plot_area.w < MIN_PLOT_SIDE || plot_area.h < MIN_PLOT_SIDE {
            return Err(Error::arg(
                "Figure",
                format!(
                    "plot {:?}: a {}x{} panel leaves only {}x{} pixels for the data; \
                     make the figure larger or use fewer panels",
                    plot.title, panel.w, panel.h, plot_area.w, plot_area.h
                ),
            ));
        }
        Ok(PanelLayout {
            panel,
            title_area,
            legend_area,
            plot_area,
            x_range,
            y_range,
            log_x: plot.log_x,
            x_ticks,
            y_ticks,
            title_scale,
            legend_entries,
        })
    }

    /// Draws `plot` (the one this layout was computed for) onto `canvas`.
    pub fn draw(&self, plot: &Plot, canvas: &mut Canvas) {
        self.draw_grid_and_frame(canvas);
        self.draw_tick_labels(canvas);
        for (i, series) in plot.series.iter().enumerate() {
            self.draw_series(plot, &series.points, Plot::series_colour(i), canvas);
        }
        self.draw_legend(plot, canvas);
        self.draw_labels(plot, canvas);
    }

    fn frame(&self) -> Rect {
        let a = self.plot_area;
        Rect {
            x: a.x - 1,
            y: a.y - 1,
            w: a.w + 2,
            h: a.h + 2,
        }
    }

    fn draw_grid_and_frame(&self, canvas: &mut Canvas) {
        let a = self.plot_area;
        for t in &self.x_ticks {
            let col = self.x_to_px(t.value).round() as i64;
            canvas.fill_rect(col, a.y, 1, a.h as u32, GRID);
        }
        for t in &self.y_ticks {
            let row = self.y_to_px(t.value).round() as i64;
            canvas.fill_rect(a.x, row, a.w as u32, 1, GRID);
        }
        canvas.stroke_rect(self.frame(), FRAME);
    }

    fn draw_tick_labels(&self, canvas: &mut Canvas) {
        let frame = self.frame();
        let half_text = text_height(1) as i64 / 2;
        for t in &self.y_ticks {
            let row = self.y_to_px(t.value).round() as i64;
            canvas.fill_rect(frame.x - TICK_LEN, row, TICK_LEN as u32, 1, FRAME);
            let w = text_width(&t.label, 1) as i64;
            let x = frame.x - TICK_LEN - GAP - w;
            draw_text(canvas, x, row - half_text, &t.label, TEXT, 1);
        }
        let below = frame.y + frame.h;
        for t in &self.x_ticks {
            let col = self.x_to_px(t.value).round() as i64;
            canvas.fill_rect(col, below, 1, TICK_LEN as u32, FRAME);
            let w = text_width(&t.label, 1) as i64;
            draw_text(canvas, col - w / 2, below + TICK_LEN + 2, &t.label, TEXT, 1);
        }
    }

    /// Joins consecutive placeable points; a point with no placeable neighbour gets a small
    /// square so a single measurement is still visible.
    fn draw_series(&self, plot: &Plot, points: &[(f64, f64)], colour: Rgb, canvas: &mut Canvas) {
        let px = |p: (f64, f64)| (self.x_to_px(p.0), self.y_to_px(p.1));
        let ok: Vec<bool> = points.iter().map(|&p| plot.placeable(p)).collect();
        for i in 0..points.len() {
            if !ok[i] {
                continue;
            }
            let next_ok = ok.get(i + 1).copied().unwrap_or(false);
            let prev_ok = i > 0 && ok[i - 1];
            if next_ok {
                canvas.line(
                    px(points[i]),
                    px(points[i + 1]),
                    colour,
                    LINE_THICKNESS,
                    self.plot_area,
                );
            } else if !prev_ok {
                let (x, y) = px(points[i]);
                canvas.line((x, y), (x, y), colour, LINE_THICKNESS + 1, self.plot_area);
            }
        }
    }

    fn draw_legend(&self, plot: &Plot, canvas: &mut Canvas) {
        let mid = text_height(1) as i64 / 2;
        for (i, series) in plot.series.iter().enumerate() {
            let Some((x, y)) = self.legend_entries[i] else {
                continue;
            };
            let colour = Plot::series_colour(i);
            canvas.fill_rect(x, y + mid - 1, LEGEND_SWATCH as u32, LINE_THICKNESS, colour);
            draw_text(canvas, x + LEGEND_SWATCH + 4, y, &series.name, TEXT, 1);
        }
    }

    fn draw_labels(&self, plot: &Plot, canvas: &mut Canvas) {
        let t = self.title_area;
        let w = text_width(&plot.title, self.title_scale) as i64;
        let h = text_height(self.title_scale) as i64;
        draw_text(
            canvas,
            t.x + (t.w - w) / 2,
            t.y + (t.h - h) / 2,
            &plot.title,
            TEXT,
            self.title_scale,
        );
        let a = self.plot_area;
        let label_h = text_height(1) as i64;
        if !plot.x_label.is_empty() {
            let w = text_width(&plot.x_label, 1) as i64;
            let y = self.panel.y + self.panel.h - PAD - label_h;
            draw_text(canvas, a.x + (a.w - w) / 2, y, &plot.x_label, TEXT, 1);
        }
        if !plot.y_label.is_empty() {
            let len = text_width(&plot.y_label, 1) as i64;
            let x = self.panel.x + PAD;
            draw_text_up(canvas, x, a.y + (a.h - len) / 2, &plot.y_label, TEXT, 1);
        }
    }
}

/// Flows the named series' legend entries left to right from (x, y), wrapping at `width`.
/// Returns each series' entry position (None when unnamed) and the number of rows used.
fn legend_positions(plot: &Plot, x: i64, y: i64, width: i64) -> (Vec<Option<(i64, i64)>>, i64) {
    let mut positions = Vec::with_capacity(plot.series.len());
    let (mut cx, mut row) = (0i64, 0i64);
    let mut rows = 0;
    for series in &plot.series {
        if series.name.is_empty() {
            positions.push(None);
            continue;
        }
        let w = LEGEND_SWATCH + 4 + text_width(&series.name, 1) as i64;
        if cx > 0 && cx + w > width {
            cx = 0;
            row += 1;
        }
        positions.push(Some((x + cx, y + row * LEGEND_ROW)));
        rows = row + 1;
        cx += w + LEGEND_ENTRY_GAP;
    }
    (positions, rows)
}
