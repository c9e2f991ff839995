//! `Figure`: plots stacked vertically in one PNG image.

use crate::error::{Error, Result};
use crate::report::panel::{PanelLayout, BACKGROUND};
use crate::report::plot::Plot;
use crate::report::raster::{Canvas, Rect};
use std::path::Path;

/// Refuses images above this many pixels (about 200 MB of RGB): a typo in a size should give an
/// error, not exhaust memory.
const MAX_PIXELS: u64 = 64 << 20;

/// A `width`×`height` image whose panels share the height equally, top to bottom:
/// `Figure::new(800, 900).panel(loss).panel(accuracy).save("curves.png")`.
#[derive(Clone, Debug)]
pub struct Figure {
    width: u32,
    height: u32,
    panels: Vec<Plot>,
}

impl Figure {
    pub fn new(width: u32, height: u32) -> Figure {
        Figure {
            width,
            height,
            panels: Vec::new(),
        }
    }

    /// Adds a plot below the previous ones.
    pub fn panel(mut self, plot: Plot) -> Figure {
        self.panels.push(plot);
        self
    }

    /// Where each panel's parts go in the image, top panel first.
    pub fn layout(&self) -> Result<Vec<PanelLayout>> {
        if self.panels.is_empty() {
            return Err(Error::arg("Figure", "a figure needs at least one panel"));
        }
        let pixels = self.width as u64 * self.height as u64;
        if pixels == 0 || pixels > MAX_PIXELS {
            return Err(Error::arg(
                "Figure",
                format!(
                    "a {}x{} image is out of range (at most {MAX_PIXELS} pixels)",
                    self.width, self.height
                ),
            ));
        }
        let n = self.panels.len() as i64;
        let (w, h) = (self.width as i64, self.height as i64);
        self.panels
            .iter()
            .enumerate()
            .map(|(i, plot)| {
                let i = i as i64;
                let (top, bottom) = (i * h / n, (i + 1) * h / n);
                let panel = Rect {
                    x: 0,
                    y: top,
                    w,
                    h: bottom - top,
                };
                PanelLayout::compute(plot, panel)
            })
            .collect()
    }

    /// Draws the figure.
    pub fn render(&self) -> Result<Canvas> {
        let layouts = self.layout()?;
        let mut canvas = Canvas::new(self.width, self.height, BACKGROUND);
        for (plot, layout) in self.panels.iter().zip(&layouts) {
            layout.draw(plot, &mut canvas);
        }
        Ok(canvas)
    }

    /// Draws the figure and writes it as a PNG file, atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.render()?.save_png(path)
    }
}
