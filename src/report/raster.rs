//! A small RGB raster: a pixel buffer with clipped rectangles and thick lines, encoded as PNG.
//! No anti-aliasing, on purpose: every drawn pixel has exactly its colour, so a plot can be
//! checked pixel by pixel.

use crate::checkpoint::atomic::write_atomically;
use crate::checkpoint::file_error::io_error;
use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// An 8-bit RGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rgb(pub u8, pub u8, pub u8);

/// An axis-aligned pixel rectangle: columns `x..x + w`, rows `y..y + h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
}

impl Rect {
    pub fn contains(&self, x: i64, y: i64) -> bool {
        x >= self.x && x < self.x + self.w && y >= self.y && y < self.y + self.h
    }
    /// The overlap of two rectangles (possibly empty: zero width or height).
    pub fn intersect(&self, other: &Rect) -> Rect {
        let x0 = self.x.max(other.x);
        let y0 = self.y.max(other.y);
        let x1 = (self.x + self.w).min(other.x + other.w);
        let y1 = (self.y + self.h).min(other.y + other.h);
        Rect {
            x: x0,
            y: y0,
            w: (x1 - x0).max(0),
            h: (y1 - y0).max(0),
        }
    }
}

/// A `width`×`height` RGB image, row-major, top row first.
#[derive(Clone)]
pub struct Canvas {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Canvas {
    pub fn new(width: u32, height: u32, background: Rgb) -> Canvas {
        let n = width as usize * height as usize;
        let mut rgb = Vec::with_capacity(3 * n);
        for _ in 0..n {
            rgb.extend_from_slice(&[background.0, background.1, background.2]);
        }
        Canvas { width, height, rgb }
    }

    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }
    pub fn bounds(&self) -> Rect {
        Rect {
            x: 0,
            y: 0,
            w: self.width as i64,
            h: self.height as i64,
        }
    }

    /// The colour at (x, y), or `None` outside the canvas.
    pub fn pixel(&self, x: i64, y: i64) -> Option<Rgb> {
        if !self.bounds().contains(x, y) {
            return None;
        }
        let i = 3 * (y as usize * self.width as usize + x as usize);
        Some(Rgb(self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]))
    }

    /// Sets one pixel; coordinates outside the canvas are ignored.
    pub fn set(&mut self, x: i64, y: i64, colour: Rgb) {
        if self.bounds().contains(x, y) {
            let i = 3 * (y as usize * self.width as usize + x as usize);
            self.rgb[i..i + 3].copy_from_slice(&[colour.0, colour.1, colour.2]);
        }
    }

    /// Fills a `w`×`h` rectangle at (x, y), clipped to the canvas.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: u32, h: u32, colour: Rgb) {
        let r = Rect {
            x,
            y,
            w: w as i64,
            h: h as i64,
        }
        .intersect(&self.bounds());
        for yy in r.y..r.y + r.h {
            for xx in r.x..r.x + r.w {
                self.set(xx, yy, colour);
            }
        }
    }

    /// Draws the 1-pixel outline of `r`.
    pub fn stroke_rect(&mut self, r: Rect, colour: Rgb) {
        if r.w <= 0 || r.h <= 0 {
            return;
        }
        self.fill_rect(r.x, r.y, r.w as u32, 1, colour);
        self.fill_rect(r.x, r.y + r.h - 1, r.w as u32, 1, colour);
        self.fill_rect(r.x, r.y, 1, r.h as u32, colour);
        self.fill_rect(r.x + r.w - 1, r.y, 1, r.h as u32, colour);
    }

    /// Draws the segment from `a` to `b` (pixel coordinates; pixel centres at integers) with a
    /// square brush `thickness` pixels wide, keeping only pixels inside `clip`. The segment is
    /// clipped geometrically first, so far-away endpoints cost nothing; segments with a
    /// non-finite endpoint are skipped.
    pub fn line(&mut self, a: (f64, f64), b: (f64, f64), colour: Rgb, thickness: u32, clip: Rect) {
        let clip = clip.intersect(&self.bounds());
        if clip.w == 0 || clip.h == 0 {
            return;
        }
        // Clip against the clip box grown by the brush, so a thick line's edge is not cut short.
        let margin = thickness as f64;
        let window = (
            clip.x as f64 - margin,
            clip.y as f64 - margin,
            (clip.x + clip.w - 1) as f64 + margin,
            (clip.y + clip.h - 1) as f64 + margin,
        );
        let Some((a, b)) = clip_segment(a, b, window) else {
            return;
        };
        let (mut x, mut y) = (a.0.round() as i64, a.1.round() as i64);
        let (x1, y1) = (b.0.round() as i64, b.1.round() as i64);
        // Bresenham over all octants.
        let dx = (x1 - x).abs();
        let dy = -(y1 - y).abs();
        let sx = if x < x1 { 1 } else { -1 };
        let sy = if y < y1 { 1 } else { -1 };
        let mut err = dx + dy;
        let t = thickness.max(1) as i64;
        let lo = -(t / 2);
        loop {
            for oy in lo..lo + t {
                for ox in lo..lo + t {
                    if clip.contains(x + ox, y + oy) {
                        self.set(x + ox, y + oy, colour);
                    }
                }
            }
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// The raw RGB bytes, row-major, top row first.
    pub fn rgb_bytes(&self) -> &[u8] {
        &self.rgb
    }

    /// Encodes the canvas as an 8-bit RGB PNG.
    fn write_png(&self, out: &mut dyn Write) -> std::result::Result<(), png::EncodingError> {
        let mut encoder = png::Encoder::new(out, self.width, self.height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&self.rgb)?;
        writer.finish()
    }

    /// Saves the canvas as a PNG file, atomically (see `write_atomically`).
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        write_atomically(path, |w| {
            self.write_png(w).map_err(|e| match e {
                png::EncodingError::IoError(io) => io_error(path, io),
                other => Error::arg("save_png", format!("{}: {other}", path.display())),
            })
        })
    }
}

impl std::fmt::Debug for Canvas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pixels would be megabytes of noise in a message.
        write!(f, "Canvas({}x{})", self.width, self.height)
    }
}

/// Liang–Barsky clipping of segment a→b to the box (x0, y0, x1, y1); `None` if it misses.
fn clip_segment(
    a: (f64, f64),
    b: (f64, f64),
    (x0, y0, x1, y1): (f64, f64, f64, f64),
) -> Option<((f64, f64), (f64, f64))> {
    if ![a.0, a.1, b.0, b.1].iter().all(|v| v.is_finite()) {
        return None;
    }
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - x0),
        (dx, x1 - a.0),
        (-dy, a.1 - y0),
        (dy, y1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    if t0 > t1 {
        return None;
    }
    Some((
        (a.0 + t0 * dx, a.1 + t0 * dy),
        (a.0 + t1 * dx, a.1 + t1 * dy),
    ))
}
