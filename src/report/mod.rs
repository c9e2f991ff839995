//! Run reports: metrics files (JSON Lines, CSV) and PNG plots of curves, drawn by a small
//! built-in rasterizer with an embedded bitmap font (no plotting or font crates).

pub mod csv;
pub mod figure;
pub mod font;
pub mod metrics;
pub mod panel;
pub mod plot;
pub mod raster;
pub mod ticks;

pub use csv::{read_csv, write_csv, write_csv_f64};
pub use figure::Figure;
pub use metrics::{read_jsonl, MetricsWriter};
pub use panel::PanelLayout;
pub use plot::{Plot, Series, PALETTE};
pub use raster::{Canvas, Rect, Rgb};
