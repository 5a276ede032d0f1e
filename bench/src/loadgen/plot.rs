//! SVG plots: a run's per-second time series (`--plot PATH`) and the
//! scalability curves of `loadgen curves`.
//!
//! Role: turn [`Series`] and curve points into self-contained SVG files with
//! `plotters`' SVG backend. Text is written as SVG `<text>` and laid out with
//! plotters' built-in size estimate (no ttf / font-kit feature), so drawing
//! needs no font files or system libraries.
//!
//! Invariants: plotting never panics on the data it is given (empty series,
//! missing latencies, a single point, zero or non-finite values are all
//! drawn or left out, never unwrapped); a failure to draw or write the file is
//! returned as an error naming the path; axes always have a non-empty range.

use std::path::Path;

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::stats::Series;

/// Size of every plot, pixels.
const SIZE: (u32, u32) = (960, 640);
/// Colours of the curves' lines, in order.
const COLOURS: [RGBColor; 4] = [BLUE, RED, GREEN, MAGENTA];

/// Turns a plotters error (not `Send` + `'static` in general) into an error
/// that names the file.
fn failed(path: &Path) -> impl Fn(String) -> anyhow::Error + '_ {
    move |e| anyhow!("drawing {}: {e}", path.display())
}

/// The upper end of an axis that shows `values` (never empty, 10 % headroom).
fn top(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    if max > 0.0 { max * 1.1 } else { 1.0 }
}

/// Writes `s` as two panels to `path`: the rate over time above, the p99
/// latency (or, without latencies, errors per second) below. Seconds with
/// errors are marked red on the rate line.
pub(crate) fn series_svg(path: &Path, title: &str, s: &Series) -> anyhow::Result<()> {
    let err = failed(path);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let root = root.titled(title, ("sans-serif", 16)).map_err(|e| err(e.to_string()))?;
    let (upper, lower) = root.split_vertically(SIZE.1 / 2 - 20);
    let t_max = top(s.samples.iter().map(|x| x.t));
    let rate: Vec<(f64, f64)> = s.samples.iter().map(|x| (x.t, x.rate)).collect();
    let errors: Vec<(f64, f64)> = s.samples.iter().filter(|x| x.errors > 0).map(|x| (x.t, x.rate)).collect();
    panel(&upper, s.rate_of, t_max, &rate, &errors).map_err(&err)?;
    let has_latency = s.samples.iter().any(|x| x.p99_ms.is_some());
    let (what, below): (String, Vec<(f64, f64)>) = if has_latency {
        let what = format!("p99 {} latency, ms", s.latency_of);
        (what, s.samples.iter().filter_map(|x| Some((x.t, x.p99_ms?))).collect())
    } else {
        ("errors per second".to_owned(), s.samples.iter().map(|x| (x.t, x.errors as f64)).collect())
    };
    panel(&lower, &what, t_max, &below, &[]).map_err(&err)?;
    root.present().map_err(|e| err(e.to_string()))
}

/// One time panel: `line` over `0..t_max`, `marks` as red dots.
fn panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    what: &str,
    t_max: f64,
    line: &[(f64, f64)],
    marks: &[(f64, f64)],
) -> Result<(), String> {
    let y_max = top(line.iter().map(|p| p.1));
    let mut c = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .caption(what, ("sans-serif", 14))
        .build_cartesian_2d(0f64..t_max, 0f64..y_max)
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .x_desc("seconds")
        .y_label_formatter(&|v| short(*v))
        .draw()
        .map_err(|e| e.to_string())?;
    c.draw_series(LineSeries::new(line.iter().copied(), BLUE.stroke_width(2))).map_err(|e| e.to_string())?;
    c.draw_series(line.iter().map(|&p| Circle::new(p, 3, BLUE.filled()))).map_err(|e| e.to_string())?;
    c.draw_series(marks.iter().map(|&p| Circle::new(p, 5, RED.filled()))).map_err(|e| e.to_string())?;
    Ok(())
}

/// A number as an axis label: 1.2M, 35k, 12, 0.35.
fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// One line of a curve plot: (size, value) points.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line {
    pub(crate) label: String,
    pub(crate) points: Vec<(f64, f64)>,
}

/// A scalability curve: sizes on a log x axis (whole decades), the main
/// figure on the left axis (solid lines, dots), and optionally the server's
/// CPU per unit of work on the right axis (dashed lines, triangles); the
/// i-th line of each axis has the same colour (one colour per server).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Curve {
    pub(crate) title: String,
    pub(crate) x_label: String,
    pub(crate) y_label: String,
    pub(crate) lines: Vec<Line>,
    /// Right axis: its label and lines (none: no right axis).
    pub(crate) cpu_label: String,
    pub(crate) cpu_lines: Vec<Line>,
}

/// Writes `c` to `path`.
pub(crate) fn curve_svg(path: &Path, c: &Curve) -> anyhow::Result<()> {
    let err = failed(path);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    draw_curve(&root, c).map_err(&err)?;
    root.present().map_err(|e| err(e.to_string()))
}

fn draw_curve(root: &DrawingArea<SVGBackend<'_>, Shift>, c: &Curve) -> Result<(), String> {
    let all = || c.lines.iter().chain(&c.cpu_lines).flat_map(|l| l.points.iter());
    let xs = all().map(|p| p.0).filter(|x| x.is_finite() && *x > 0.0);
    let (x_min, x_max) = xs.fold((f64::MAX, 0.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    // Whole decades around the points, so every decade is labelled.
    let (x_min, x_max) = if x_max > 0.0 {
        (10f64.powf((x_min / 1.2).log10().floor()), 10f64.powf((x_max * 1.2).log10().ceil()))
    } else {
        (1.0, 10.0)
    };
    let y_max = top(c.lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)));
    let cpu_max = top(c.cpu_lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)));
    let mut chart = ChartBuilder::on(root)
        .margin(16)
        .caption(&c.title, ("sans-serif", 16))
        .x_label_area_size(44)
        .y_label_area_size(84)
        .right_y_label_area_size(if c.cpu_lines.is_empty() { 0 } else { 84 })
        .build_cartesian_2d((x_min..x_max).log_scale(), 0f64..y_max)
        .map_err(|e| e.to_string())?
        .set_secondary_coord((x_min..x_max).log_scale(), 0f64..cpu_max);
    chart
        .configure_mesh()
        .x_desc(c.x_label.as_str())
        .y_desc(c.y_label.as_str())
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| short(*v))
        .draw()
        .map_err(|e| e.to_string())?;
    if !c.cpu_lines.is_empty() {
        chart
            .configure_secondary_axes()
            .y_desc(c.cpu_label.as_str())
            .y_label_formatter(&|v| short(*v))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    for (i, l) in c.lines.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(l.points.iter().copied(), colour.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(l.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart
            .draw_series(l.points.iter().map(|&p| Circle::new(p, 4, colour.filled())))
            .map_err(|e| e.to_string())?;
    }
    for (i, l) in c.cpu_lines.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let dashed = DashedLineSeries::new(l.points.iter().copied(), 6, 4, colour.stroke_width(1));
        chart
            .draw_secondary_series(dashed)
            .map_err(|e| e.to_string())?
            .label(format!("{} (right axis)", l.label))
            .legend(move |(x, y)| {
                DashedPathElement::new(vec![(x, y), (x + 20, y)], 4, 3, colour.stroke_width(1))
            });
        chart
            .draw_secondary_series(l.points.iter().map(|&p| TriangleMarker::new(p, 5, colour.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::stats::Sample;
    use super::*;

    fn svg(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn a_series_plot_is_an_svg_with_both_panels() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("run.svg");
        let samples = vec![
            Sample { t: 1.0, rate: 120_000.0, p99_ms: Some(3.5), errors: 0 },
            Sample { t: 2.0, rate: 130_000.0, p99_ms: None, errors: 2 },
            Sample { t: 2.6, rate: 0.0, p99_ms: Some(80.0), errors: 0 },
        ];
        let s = Series { rate_of: "acked/s", latency_of: "deliver", samples };
        series_svg(&path, "pairs [pairs=100]", &s).expect("plot");
        let text = svg(&path);
        assert!(text.starts_with("<svg"), "{}", &text[..text.len().min(80)]);
        assert!(text.contains("acked/s") && text.contains("p99 deliver latency, ms"));
        // An empty series (a run that failed at once) still draws.
        let empty = Series { rate_of: "ready conns/s", latency_of: "", samples: Vec::new() };
        series_svg(&path, "idle", &empty).expect("empty plot");
        assert!(svg(&path).contains("errors per second"));
    }

    #[test]
    fn a_curve_plot_has_a_log_axis_and_a_cpu_axis() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("curve.svg");
        let c = Curve {
            title: "fanout".to_owned(),
            x_label: "members".to_owned(),
            y_label: "deliveries/s".to_owned(),
            lines: vec![
                Line {
                    label: "missive".to_owned(),
                    points: vec![(100.0, 9e5), (1000.0, 1.2e6), (1e4, 1.1e6)],
                },
                Line { label: "nats".to_owned(), points: vec![(100.0, 2e6)] },
            ],
            cpu_label: "broker CPU µs per delivery".to_owned(),
            cpu_lines: vec![Line { label: "cpu".to_owned(), points: vec![(100.0, 1.5), (1e4, 1.2)] }],
        };
        curve_svg(&path, &c).expect("plot");
        let text = svg(&path);
        assert!(text.contains("deliveries/s") && text.contains("broker CPU"));
        let none = Curve { lines: Vec::new(), cpu_lines: Vec::new(), ..c };
        curve_svg(&path, &none).expect("a curve without points still draws");
    }

    #[test]
    fn short_labels() {
        assert_eq!(short(1_300_000.0), "1.3M");
        assert_eq!(short(35_000.0), "35k");
        assert_eq!(short(12.0), "12");
        assert_eq!(short(0.0), "0");
        assert_eq!(short(0.351), "0.35");
        assert_eq!(short(1.0), "1", "whole numbers (a log axis's decades) have no decimals");
    }
}
