//! Run reports: JSONL metrics, CSV tables and PNG plots. Plots are checked by decoding the PNG
//! file and locating the series' colours where the data must land, with the pixel mapping
//! recomputed here from the documented layout.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use recur::report::font::{self, draw_text, draw_text_up, text_width};
use recur::report::{
    read_csv, read_jsonl, write_csv, write_csv_f64, Canvas, Figure, MetricsWriter, PanelLayout,
    Plot, Rect, Rgb, PALETTE,
};
use serde::Serialize;
use std::fs;
use std::path::PathBuf;

fn scratch_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("report-{test}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn fresh_rng(test: &str) -> StdRng {
    let seed: u64 = rand::random();
    println!("{test}: seed {seed}");
    StdRng::seed_from_u64(seed)
}

// ---- metrics (JSON Lines) ----------------------------------------------------------------------

#[derive(Serialize)]
struct StepRecord {
    step: u64,
    loss: f64,
    split: &'static str,
}

#[test]
fn metrics_lines_parse_back_and_are_on_disk_at_once() {
    let mut rng = fresh_rng("metrics_lines_parse_back_and_are_on_disk_at_once");
    let dir = scratch_dir("metrics");
    let path = dir.join("metrics.jsonl");
    let records: Vec<StepRecord> = (0..rng.random_range(3..20))
        .map(|i| StepRecord {
            step: i * 10,
            loss: rng.random_range(-1e3..1e3),
            split: if i % 2 == 0 {
                "train"
            } else {
                "eval, \"hard\"\n"
            },
        })
        .collect();
    let mut writer = MetricsWriter::create(&path).unwrap();
    for (i, r) in records.iter().enumerate() {
        writer.write(r).unwrap();
        // The writer is still open: the line must already be in the file (a kill loses nothing).
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), i + 1);
        assert!(text.ends_with('\n'));
    }
    let text = fs::read_to_string(&path).unwrap();
    for (line, r) in text.lines().zip(&records) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["step"], r.step);
        // serde_json writes the shortest exact form, but its default (fast) parser may land
        // one ulp off, so compare to within a few ulps.
        let loss = v["loss"].as_f64().unwrap();
        assert!(
            (loss - r.loss).abs() <= 4.0 * f64::EPSILON * r.loss.abs(),
            "{loss} vs {}",
            r.loss
        );
        assert_eq!(v["split"], r.split);
    }
    assert_eq!(read_jsonl(&path).unwrap().len(), records.len());

    // Maps work too; NaN (no JSON spelling) becomes null rather than an unreadable line.
    writer
        .write(&std::collections::BTreeMap::from([("acc", f64::NAN)]))
        .unwrap();
    assert_eq!(
        read_jsonl(&path).unwrap().last().unwrap()["acc"],
        serde_json::Value::Null
    );

    let err = writer.write(&3.5f64).unwrap_err().to_string();
    assert!(
        err.contains("JSON object") && err.contains("metrics.jsonl"),
        "{err}"
    );
}

#[test]
fn metrics_append_resumes_and_drops_a_torn_last_line() {
    let dir = scratch_dir("metrics-append");
    let path = dir.join("m.jsonl");
    {
        let mut w = MetricsWriter::create(&path).unwrap();
        w.write(&serde_json::json!({"step": 1})).unwrap();
        w.write(&serde_json::json!({"step": 2})).unwrap();
    }
    MetricsWriter::append(&path)
        .unwrap()
        .write(&serde_json::json!({"step": 3}))
        .unwrap();
    let steps = |path: &PathBuf| -> Vec<i64> {
        read_jsonl(path)
            .unwrap()
            .iter()
            .map(|v| v["step"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(steps(&path), [1, 2, 3]);

    // A run killed mid-line leaves a torn record: resuming drops it.
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("{\"step\": 4, \"lo");
    fs::write(&path, &text).unwrap();
    assert!(read_jsonl(&path)
        .unwrap_err()
        .to_string()
        .contains("line 4"));
    MetricsWriter::append(&path)
        .unwrap()
        .write(&serde_json::json!({"step": 5}))
        .unwrap();
    assert_eq!(steps(&path), [1, 2, 3, 5]);

    // A complete record that merely lacks its newline is kept.
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("{\"step\": 6}");
    fs::write(&path, &text).unwrap();
    MetricsWriter::append(&path)
        .unwrap()
        .write(&serde_json::json!({"step": 7}))
        .unwrap();
    assert_eq!(steps(&path), [1, 2, 3, 5, 6, 7]);

    // Appending to a file that does not exist starts it.
    let fresh = dir.join("new.jsonl");
    MetricsWriter::append(&fresh)
        .unwrap()
        .write(&serde_json::json!({"step": 0}))
        .unwrap();
    assert_eq!(steps(&fresh), [0]);
}

// ---- CSV ---------------------------------------------------------------------------------------

#[test]
fn csv_round_trips_awkward_text() {
    let dir = scratch_dir("csv");
    let path = dir.join("t.csv");
    let header = ["name", "note, with comma", "empty"];
    let rows = vec![
        vec!["plain".to_string(), "a \"quoted\" word".into(), "".into()],
        vec![
            "multi\nline".into(),
            "crlf\r\nend".into(),
            "ünï,códe".into(),
        ],
        vec!["".into(), "\"".into(), ",".into()],
    ];
    write_csv(&path, &header, &rows).unwrap();
    let (h, back) = read_csv(&path).unwrap();
    assert_eq!(h, header);
    assert_eq!(back, rows);

    // The encoding itself, spelled out (RFC 4180 quoting).
    let simple = dir.join("simple.csv");
    write_csv(
        &simple,
        &["a", "b"],
        &[
            vec!["1".into(), "x,y".into()],
            vec!["say \"hi\"".into(), "".into()],
        ],
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(&simple).unwrap(),
        "a,b\n1,\"x,y\"\n\"say \"\"hi\"\"\",\n"
    );
}

#[test]
fn csv_f64_rows_parse_back_bit_exactly() {
    let mut rng = fresh_rng("csv_f64_rows_parse_back_bit_exactly");
    let dir = scratch_dir("csv-f64");
    let path = dir.join("curve.csv");
    let cols = rng.random_range(1..6);
    let header: Vec<String> = (0..cols).map(|c| format!("col{c}")).collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let specials = [f64::NAN, f64::INFINITY, -0.0, 5e-324, 1e300, 0.1, -7.0];
    let rows: Vec<Vec<f64>> = (0..rng.random_range(1..40))
        .map(|r| {
            (0..cols)
                .map(|c| {
                    if (r + c) % 5 == 0 {
                        specials[(r * cols + c) % specials.len()]
                    } else {
                        f64::from_bits(rng.random::<u64>() >> 2)
                    }
                })
                .collect()
        })
        .collect();
    write_csv_f64(&path, &header, &rows).unwrap();
    let (h, back) = read_csv(&path).unwrap();
    assert_eq!(h, header);
    assert_eq!(back.len(), rows.len());
    for (got_row, want_row) in back.iter().zip(&rows) {
        for (got, want) in got_row.iter().zip(want_row) {
            let parsed: f64 = got.parse().unwrap();
            assert!(
                parsed.to_bits() == want.to_bits() || (parsed.is_nan() && want.is_nan()),
                "{got} vs {want:?}"
            );
        }
    }
}

#[test]
fn csv_problems_are_reported_with_file_and_line() {
    let dir = scratch_dir("csv-errors");
    let path = dir.join("bad.csv");
    let err = write_csv(
        &path,
        &["a", "b"],
        &[vec!["1".into(), "2".into()], vec!["3".into()]],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("row 1 has 1 fields") && err.contains("bad.csv"),
        "{err}"
    );
    assert!(!path.exists(), "a refused table must not be written");

    fs::write(&path, "a,b\r\n1,2\r\n3,\"open\n4,5\n").unwrap();
    let err = read_csv(&path).unwrap_err().to_string();
    assert!(err.contains("bad.csv") && err.contains("line 3"), "{err}");
    fs::write(&path, "a,b\r\n1,2\r\n3,4,5\r\n").unwrap();
    let err = read_csv(&path).unwrap_err().to_string();
    assert!(err.contains("line 3: 3 fields"), "{err}");
    fs::write(&path, "x,y\r\n1,\"2\r\n2\"\r\n").unwrap();
    let (_, rows) = read_csv(&path).unwrap();
    assert_eq!(rows, vec![vec!["1".to_string(), "2\r\n2".to_string()]]);
}

// ---- plots -------------------------------------------------------------------------------------

/// A decoded PNG: (width, height, RGB bytes).
fn decode_png(path: &PathBuf) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

struct Image {
    width: u32,
    rgb: Vec<u8>,
}

impl Image {
    fn load(path: &PathBuf) -> Image {
        let (width, _, rgb) = decode_png(path);
        Image { width, rgb }
    }
    fn at(&self, x: i64, y: i64) -> Rgb {
        let i = 3 * (y as usize * self.width as usize + x as usize);
        Rgb(self.rgb[i], self.rgb[i + 1], self.rgb[i + 2])
    }
    /// Every (x, y) of `colour` inside `r`.
    fn find(&self, colour: Rgb, r: Rect) -> Vec<(i64, i64)> {
        let mut hits = Vec::new();
        for y in r.y..r.y + r.h {
            for x in r.x..r.x + r.w {
                if self.at(x, y) == colour {
                    hits.push((x, y));
                }
            }
        }
        hits
    }
}

/// The row the plot's documented mapping puts `y` on, computed here: the top row of the plot
/// area is y_range.1, the bottom row y_range.0.
fn expected_row(layout: &PanelLayout, y: f64) -> i64 {
    let a = layout.plot_area;
    let (lo, hi) = layout.y_range;
    a.y + ((hi - y) / (hi - lo) * (a.h - 1) as f64).round() as i64
}

fn expected_col(layout: &PanelLayout, x: f64) -> i64 {
    let a = layout.plot_area;
    let (lo, hi) = layout.x_range;
    let t = if layout.log_x {
        (x.log10() - lo.log10()) / (hi.log10() - lo.log10())
    } else {
        (x - lo) / (hi - lo)
    };
    a.x + (t * (a.w - 1) as f64).round() as i64
}

fn save_and_load(figure: &Figure, dir: &std::path::Path, name: &str) -> (Vec<PanelLayout>, Image) {
    let path = dir.join(name);
    figure.save(&path).unwrap();
    (figure.layout().unwrap(), Image::load(&path))
}

#[test]
fn png_has_the_figure_size_and_panels_tile_it() {
    let dir = scratch_dir("plot-size");
    let (w, h) = (613, 451); // odd sizes: no power-of-two luck
    let figure = Figure::new(w, h)
        .panel(Plot::new("a").series("s", vec![(0.0, 1.0), (1.0, 2.0)]))
        .panel(Plot::new("b").series("s", vec![(0.0, 1.0), (1.0, 2.0)]))
        .panel(Plot::new("c").series("s", vec![(0.0, 1.0), (1.0, 2.0)]));
    let path = dir.join("size.png");
    figure.save(&path).unwrap();
    let (dw, dh, rgb) = decode_png(&path);
    assert_eq!((dw, dh), (w, h));
    assert_eq!(rgb.len(), (w * h * 3) as usize);
    let layouts = figure.layout().unwrap();
    let mut next_top = 0;
    for l in &layouts {
        assert_eq!(l.panel.y, next_top);
        assert_eq!(l.panel.w, w as i64);
        assert!(l.panel.h >= 150);
        next_top = l.panel.y + l.panel.h;
    }
    assert_eq!(next_top, h as i64);
}

#[test]
fn horizontal_lines_land_on_their_rows() {
    let dir = scratch_dir("plot-rows");
    let xs: Vec<f64> = (0..=20).map(|i| i as f64 * 0.5).collect();
    let at = |y: f64| xs.iter().map(|&x| (x, y)).collect::<Vec<_>>();
    for fixed in [true, false] {
        let mut plot = Plot::new("levels")
            .x_label("step")
            .y_label("value")
            .series("half", at(0.5))
            .series("quarter", at(0.25));
        if fixed {
            plot = plot.y_range(0.0, 1.0);
        }
        let (layouts, img) = save_and_load(&Figure::new(500, 360).panel(plot), &dir, "rows.png");
        let l = &layouts[0];
        if fixed {
            assert_eq!(l.y_range, (0.0, 1.0));
        } else {
            // Fitted: the data span with 5% headroom each side.
            let pad = 0.05 * 0.25;
            assert!(
                (l.y_range.0 - (0.25 - pad)).abs() < 1e-12,
                "{:?}",
                l.y_range
            );
            assert!((l.y_range.1 - (0.5 + pad)).abs() < 1e-12, "{:?}", l.y_range);
        }
        assert_eq!(l.x_range, (0.0, 10.0));
        for (i, y) in [(0usize, 0.5), (1, 0.25)] {
            let hits = img.find(PALETTE[i], l.plot_area);
            assert!(!hits.is_empty(), "series {i} not drawn");
            let row = expected_row(l, y);
            let rows: std::collections::BTreeSet<i64> = hits.iter().map(|h| h.1).collect();
            assert!(
                rows.contains(&row),
                "series {i}: rows {rows:?}, expected {row}"
            );
            assert!(
                rows.iter().all(|r| (r - row).abs() <= 1),
                "series {i}: rows {rows:?}"
            );
            // The line spans the whole x range: first to last column of the plot area.
            let cols: Vec<i64> = hits.iter().map(|h| h.0).collect();
            assert_eq!(*cols.iter().min().unwrap(), l.plot_area.x);
            assert_eq!(
                *cols.iter().max().unwrap(),
                l.plot_area.x + l.plot_area.w - 1
            );
        }
    }
}

#[test]
fn a_diagonal_follows_the_mapping_in_both_axes() {
    let mut rng = fresh_rng("a_diagonal_follows_the_mapping_in_both_axes");
    let dir = scratch_dir("plot-diagonal");
    // A random straight line, sampled at ragged x positions.
    let (slope, offset) = (rng.random_range(-3.0..3.0), rng.random_range(-5.0..5.0));
    let mut xs: Vec<f64> = (0..rng.random_range(2..30))
        .map(|_| rng.random_range(-10.0..10.0))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let points: Vec<(f64, f64)> = xs.iter().map(|&x| (x, slope * x + offset)).collect();
    let plot = Plot::new("line").series("y=ax+b", points.clone());
    let (layouts, img) = save_and_load(&Figure::new(420, 300).panel(plot), &dir, "diag.png");
    let l = &layouts[0];
    let hits = img.find(PALETTE[0], l.plot_area);
    assert!(
        hits.len() as i64 >= l.plot_area.w,
        "too few pixels: {}",
        hits.len()
    );
    let a = l.plot_area;
    for &(col, row) in &hits {
        // Invert the column to x, then the line gives the row the pixel should be near.
        let x = l.x_range.0 + (col - a.x) as f64 / (a.w - 1) as f64 * (l.x_range.1 - l.x_range.0);
        let want = expected_row(l, slope * x + offset);
        // Bresenham steps plus the 2-pixel brush: within a pixel or two, more for steep lines.
        let tolerance = 2
            + (slope.abs() * (l.x_range.1 - l.x_range.0)
                / (a.w as f64)
                / (l.y_range.1 - l.y_range.0)
                * a.h as f64)
                .ceil() as i64;
        assert!(
            (row - want).abs() <= tolerance,
            "pixel ({col},{row}) vs row {want}"
        );
    }
    // Both ends of the data are drawn.
    for &(x, y) in [points[0], points[points.len() - 1]].iter() {
        let (c, r) = (expected_col(l, x), expected_row(l, y));
        assert!(
            hits.iter()
                .any(|&(hx, hy)| (hx - c).abs() <= 1 && (hy - r).abs() <= 1),
            "end ({x}, {y}) at ({c}, {r}) not drawn"
        );
    }
}

#[test]
fn log_x_places_decades_evenly() {
    let dir = scratch_dir("plot-log");
    // y = log10(x): a straight line on a log x axis.
    let points: Vec<(f64, f64)> = (0..=40)
        .map(|i| {
            let x = 10f64.powf(i as f64 / 10.0);
            (x, x.log10())
        })
        .collect();
    let mut with_bad = points.clone();
    with_bad.insert(0, (0.0, 5.0)); // x ≤ 0 cannot be placed on a log axis: skipped
    with_bad.insert(0, (-3.0, 5.0));
    let plot = Plot::new("log")
        .log_x(true)
        .y_range(0.0, 4.0)
        .series("decades", with_bad);
    let (layouts, img) = save_and_load(&Figure::new(480, 320).panel(plot), &dir, "log.png");
    let l = &layouts[0];
    assert!(l.log_x);
    assert_eq!(l.x_range, (1.0, 10_000.0));
    let labels: Vec<&str> = l.x_ticks.iter().map(|t| t.label.as_str()).collect();
    assert_eq!(labels, ["1", "10", "100", "1000", "10000"]);
    let hits = img.find(PALETTE[0], l.plot_area);
    for decade in 0..=4 {
        let x = 10f64.powi(decade);
        let (c, r) = (expected_col(l, x), expected_row(l, decade as f64));
        assert!(
            hits.iter().any(|&(hx, hy)| hx == c && (hy - r).abs() <= 1),
            "decade {decade}: nothing at column {c} near row {r}"
        );
    }
    // The skipped points (y = 5 is above the fixed range anyway) leave no trace at the top.
    assert!(hits.iter().all(|&(_, y)| y >= expected_row(l, 4.0) - 1));
}

#[test]
fn nan_points_break_the_line_without_panicking() {
    let dir = scratch_dir("plot-nan");
    let points = vec![
        (0.0, 1.0),
        (1.0, 1.0),
        (2.0, f64::NAN),
        (3.0, 1.0),
        (4.0, 1.0),
        (f64::NAN, 3.0),
        (f64::INFINITY, 1.0),
    ];
    let plot = Plot::new("gaps")
        .y_range(0.0, 2.0)
        .series("with gaps", points)
        .series("all nan", vec![(f64::NAN, f64::NAN); 3]);
    let (layouts, img) = save_and_load(&Figure::new(400, 300).panel(plot), &dir, "nan.png");
    let l = &layouts[0];
    assert_eq!(
        l.x_range,
        (0.0, 4.0),
        "non-finite points must not stretch the axis"
    );
    let hits = img.find(PALETTE[0], l.plot_area);
    let (c1, c3) = (expected_col(l, 1.0), expected_col(l, 3.0));
    let row = expected_row(l, 1.0);
    assert!(hits.iter().any(|&(x, _)| x < c1) && hits.iter().any(|&(x, _)| x > c3));
    assert!(hits.iter().all(|&(_, y)| (y - row).abs() <= 1));
    // Nothing bridges the NaN: no pixel strictly between x = 1 and x = 3 (beyond the brush).
    assert!(
        hits.iter().all(|&(x, _)| x <= c1 + 1 || x >= c3 - 1),
        "the line was drawn across the NaN gap"
    );
    assert!(img.find(PALETTE[1], l.plot_area).is_empty());
}

#[test]
fn degenerate_data_still_renders() {
    let dir = scratch_dir("plot-degenerate");
    let plots = [
        Plot::new("no series"),
        Plot::new("empty series").series("nothing", vec![]),
        Plot::new("flat").series("flat", vec![(0.0, 3.0), (1.0, 3.0), (2.0, 3.0)]),
        Plot::new("zero").series("zero", vec![(0.0, 0.0), (5.0, 0.0)]),
        Plot::new("one point").series("dot", vec![(5.0, 2.0)]),
        Plot::new("vertical").series("v", vec![(1.0, 0.0), (1.0, 1.0)]),
        Plot::new("log one")
            .log_x(true)
            .series("dot", vec![(100.0, 1.0)]),
    ];
    for (i, plot) in plots.into_iter().enumerate() {
        let figure = Figure::new(320, 240).panel(plot);
        let (layouts, img) = save_and_load(&figure, &dir, &format!("d{i}.png"));
        let l = &layouts[0];
        assert!(
            l.x_range.0 < l.x_range.1 && l.y_range.0 < l.y_range.1,
            "{i}: {l:?}"
        );
        let hits = img.find(PALETTE[0], l.plot_area);
        match i {
            0 | 1 => assert!(hits.is_empty()),
            _ => {
                // Degenerate data sits at the middle of the widened range.
                assert!(!hits.is_empty(), "plot {i} drew nothing");
                let mid_row = l.plot_area.y + (l.plot_area.h - 1) / 2;
                let mid_col = l.plot_area.x + (l.plot_area.w - 1) / 2;
                if i == 4 || i == 6 {
                    assert!(
                        hits.iter()
                            .all(|&(x, y)| (x - mid_col).abs() <= 2 && (y - mid_row).abs() <= 2),
                        "plot {i}: {hits:?}"
                    );
                }
                if i == 2 || i == 3 {
                    assert!(
                        hits.iter().all(|&(_, y)| (y - mid_row).abs() <= 1),
                        "plot {i}"
                    );
                }
                if i == 5 {
                    assert!(
                        hits.iter().all(|&(x, _)| (x - mid_col).abs() <= 1),
                        "plot {i}"
                    );
                }
            }
        }
    }
}

#[test]
fn titles_are_drawn_in_the_title_area() {
    let dir = scratch_dir("plot-title");
    let data = vec![(0.0, 1.0), (1.0, 0.0)];
    let figure =
        |title: &str| Figure::new(360, 260).panel(Plot::new(title).series("s", data.clone()));
    let (l_blank, blank) = save_and_load(&figure(""), &dir, "blank.png");
    let (l_a, a) = save_and_load(&figure("Loss (train)"), &dir, "a.png");
    let (_, b) = save_and_load(&figure("Accuracy %"), &dir, "b.png");
    let t = l_blank[0].title_area;
    assert_eq!(t, l_a[0].title_area);
    assert_eq!(
        l_blank[0].plot_area, l_a[0].plot_area,
        "a title must not move the plot"
    );
    let dark = |img: &Image| {
        (t.y..t.y + t.h)
            .flat_map(|y| (t.x..t.x + t.w).map(move |x| (x, y)))
            .filter(|&(x, y)| img.at(x, y) == recur::report::panel::TEXT)
            .collect::<Vec<_>>()
    };
    assert!(dark(&blank).is_empty());
    let (da, db) = (dark(&a), dark(&b));
    assert!(da.len() > 50, "title drew {} pixels", da.len());
    assert_ne!(da, db, "different titles must differ");
    // Centred: the text's horizontal extent is symmetric about the middle within a pixel or two.
    let (min_x, max_x) = (
        da.iter().map(|p| p.0).min().unwrap(),
        da.iter().map(|p| p.0).max().unwrap(),
    );
    let centre = t.x + t.w / 2;
    assert!(
        ((min_x + max_x) / 2 - centre).abs() <= 2,
        "{min_x}..{max_x} vs {centre}"
    );
    // The inked extent: from the first glyph's left column to the last lit column of ')'.
    let last_lit_col = (0..5)
        .filter(|col| {
            font::glyph(')')
                .unwrap()
                .iter()
                .any(|row| row & (0b10000 >> col) != 0)
        })
        .max()
        .unwrap();
    let n = "Loss (train)".len() as i64;
    assert_eq!(max_x - min_x + 1, ((n - 1) * 6 + last_lit_col + 1) * 2);
    assert!(max_x - min_x < text_width("Loss (train)", 2) as i64);
}

#[test]
fn legend_shows_each_named_series_colour() {
    let dir = scratch_dir("plot-legend");
    let mut plot = Plot::new("many");
    for i in 0..4 {
        let name = if i == 2 {
            String::new()
        } else {
            format!("run {i}")
        };
        plot = plot.series(name, vec![(0.0, i as f64), (1.0, i as f64 + 1.0)]);
    }
    let (layouts, img) = save_and_load(&Figure::new(300, 260).panel(plot), &dir, "legend.png");
    let legend = layouts[0].legend_area;
    assert!(legend.h > 0);
    for (i, &colour) in PALETTE.iter().take(4).enumerate() {
        let shown = !img.find(colour, legend).is_empty();
        assert_eq!(shown, i != 2, "series {i} in legend: {shown}");
    }
    // A series with no name gets no legend at all.
    let plain = Plot::new("plain").series("", vec![(0.0, 0.0), (1.0, 1.0)]);
    let layouts = Figure::new(300, 200).panel(plain).layout().unwrap();
    assert_eq!(layouts[0].legend_area.h, 0);
}

#[test]
fn bad_figures_are_errors_not_panics() {
    let plot = || Plot::new("p").series("s", vec![(0.0, 0.0), (1.0, 1.0)]);
    let cases = [
        (Figure::new(300, 200), "at least one panel"),
        (Figure::new(0, 200).panel(plot()), "out of range"),
        (Figure::new(60, 40).panel(plot()), "leaves only"),
        (
            Figure::new(300, 200).panel(plot().y_range(1.0, 1.0)),
            "lo < hi",
        ),
        (
            Figure::new(300, 200).panel(plot().y_range(f64::NAN, 1.0)),
            "lo < hi",
        ),
        (
            Figure::new(300, 200)
                .panel(Plot::new("huge").series("s", vec![(0.0, -1e308), (1.0, 1e308)])),
            "too wide",
        ),
    ];
    for (i, (figure, needle)) in cases.into_iter().enumerate() {
        let err = figure.render().unwrap_err().to_string();
        assert!(err.contains(needle), "case {i}: {err}");
    }
    let dir = scratch_dir("plot-bad");
    let path = dir.join("never.png");
    assert!(Figure::new(60, 40).panel(plot()).save(&path).is_err());
    assert!(!path.exists());
}

// ---- the font ----------------------------------------------------------------------------------

#[test]
fn font_covers_the_label_alphabet_with_distinct_glyphs() {
    let required = ('0'..='9')
        .chain('A'..='Z')
        .chain('a'..='z')
        .chain(" .-%/()_:=,+".chars());
    for c in required {
        let g = font::glyph(c).unwrap_or_else(|| panic!("no glyph for {c:?}"));
        assert_eq!(g.iter().any(|&row| row != 0), c != ' ', "{c:?}");
        assert!(g.iter().all(|&row| row < 32), "{c:?} wider than 5 columns");
    }
    let all: Vec<char> = font::characters().collect();
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            assert_ne!(
                font::glyph(*a),
                font::glyph(*b),
                "{a:?} and {b:?} look the same"
            );
        }
    }
}

#[test]
fn text_is_drawn_scaled_and_rotated() {
    let ink = Rgb(200, 0, 0);
    let text = "R2d=%";
    let (x0, y0, scale) = (3i64, 4i64, 2u32);
    let mut flat = Canvas::new(80, 30, Rgb(255, 255, 255));
    draw_text(&mut flat, x0, y0, text, ink, scale);
    // Every font pixel of every glyph is a scale×scale block at its place; nothing else is inked.
    let mut expected = std::collections::BTreeSet::new();
    for (i, c) in text.chars().enumerate() {
        let g = font::glyph(c).unwrap();
        for (row, bits) in g.iter().enumerate() {
            for col in 0..5 {
                if bits & (0b10000 >> col) != 0 {
                    for dy in 0..scale as i64 {
                        for dx in 0..scale as i64 {
                            expected.insert((
                                x0 + (i as i64 * 6 + col) * scale as i64 + dx,
                                y0 + row as i64 * scale as i64 + dy,
                            ));
                        }
                    }
                }
            }
        }
    }
    let inked: std::collections::BTreeSet<(i64, i64)> = (0..30)
        .flat_map(|y| (0..80).map(move |x| (x, y)))
        .filter(|&(x, y)| flat.pixel(x, y) == Some(ink))
        .collect();
    assert_eq!(inked, expected);

    // Rotated a quarter turn anticlockwise: flat pixel (x, y) goes to (y, len - 1 - x).
    let len = text_width(text, 1) as i64;
    let mut flat1 = Canvas::new(len as u32, 7, Rgb(255, 255, 255));
    draw_text(&mut flat1, 0, 0, text, ink, 1);
    let mut up = Canvas::new(7, len as u32, Rgb(255, 255, 255));
    draw_text_up(&mut up, 0, 0, text, ink, 1);
    for y in 0..7 {
        for x in 0..len {
            assert_eq!(flat1.pixel(x, y), up.pixel(y, len - 1 - x), "({x},{y})");
        }
    }
}
