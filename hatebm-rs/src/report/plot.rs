//! Line plots as SVG, without dependencies: panels of named series with axes,
//! ticks, a legend and optional log-scaled y.

use std::fmt::Write as _;
use std::path::Path;

use super::ticks::{format_log_tick, format_tick, linear_ticks, log_ticks};
use crate::Result;

/// A named curve: `(x, y)` points drawn in order and joined by lines.
///
/// Points with a non-finite coordinate (or `y <= 0` on a log axis) are gaps: the
/// line is broken there. An isolated point is drawn as a dot.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// The points, usually in increasing `x`.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series from a name and points.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
        }
    }
}

/// One plot area: a title, axis labels and the series it shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Panel {
    /// Drawn above the plot area.
    pub title: String,
    /// Below the x axis (e.g. `step`).
    pub x_label: String,
    /// Beside the y axis.
    pub y_label: String,
    /// The curves, coloured in order from a 10-colour palette.
    pub series: Vec<Series>,
    /// Logarithmic y axis (decades); non-positive values are left out.
    pub log_y: bool,
}

/// The size and arrangement of the panels.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotOptions {
    /// Width of one panel in pixels. Default 640.
    pub panel_width: u32,
    /// Height of one panel in pixels. Default 280.
    pub panel_height: u32,
    /// Panels per row; panels fill rows left to right. Default 1.
    pub columns: usize,
    /// A title above all panels, if any. Default `None`.
    pub title: Option<String>,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            panel_width: 640,
            panel_height: 280,
            columns: 1,
            title: None,
        }
    }
}

/// Colours of the series, in order (matplotlib's "tab10").
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];
const LEFT: f64 = 70.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 44.0;
const SUPTITLE: f64 = 30.0;

/// Renders panels as a standalone SVG document (a string starting with `<svg`).
///
/// Never fails: empty series and panels without data are drawn as such ("no
/// data"), NaN/Inf break lines, and a constant series gets a small range around
/// its value. Long series are thinned to at most about two points per horizontal
/// pixel, keeping each pixel column's extremes, so spikes stay visible.
pub fn render_svg(panels: &[Panel], opts: &PlotOptions) -> String {
    let cols = opts.columns.max(1);
    let rows = panels.len().div_ceil(cols).max(1);
    let (pw, ph) = (
        f64::from(opts.panel_width.max(200)),
        f64::from(opts.panel_height.max(120)),
    );
    let top = if opts.title.is_some() { SUPTITLE } else { 0.0 };
    let (w, h) = (
        pw * cols.min(panels.len().max(1)) as f64,
        top + ph * rows as f64,
    );
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>"#
    );
    if let Some(t) = &opts.title {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="20" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
            w / 2.0,
            esc(t)
        );
    }
    for (i, panel) in panels.iter().enumerate() {
        let (x, y) = ((i % cols) as f64 * pw, top + (i / cols) as f64 * ph);
        let _ = writeln!(s, r#"<g transform="translate({x},{y})">"#);
        render_panel(&mut s, panel, pw, ph);
        s.push_str("</g>\n");
    }
    s.push_str("</svg>\n");
    s
}

/// Renders panels (see [`render_svg`]) and writes the SVG to `path` atomically.
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) when writing fails.
pub fn save_svg(path: impl AsRef<Path>, panels: &[Panel], opts: &PlotOptions) -> Result<()> {
    crate::data::write_atomic(path.as_ref(), render_svg(panels, opts).as_bytes())
}

fn valid(p: (f64, f64), log_y: bool) -> bool {
    p.0.is_finite() && p.1.is_finite() && (!log_y || p.1 > 0.0)
}

fn render_panel(s: &mut String, panel: &Panel, pw: f64, ph: f64) {
    let (x0, x1, y0, y1) = (LEFT, pw - RIGHT, TOP, ph - BOTTOM);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="18" text-anchor="middle" font-size="13">{}</text>"#,
        (x0 + x1) / 2.0,
        esc(&panel.title)
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (x0 + x1) / 2.0,
        ph - 8.0,
        esc(&panel.x_label)
    );
    let _ = writeln!(
        s,
        r#"<text x="14" y="{yc}" text-anchor="middle" transform="rotate(-90 14 {yc})">{}</text>"#,
        esc(&panel.y_label),
        yc = (y0 + y1) / 2.0
    );
    let pts = || {
        panel
            .series
            .iter()
            .flat_map(|se| se.points.iter().copied())
            .filter(|&p| valid(p, panel.log_y))
    };
    let bounds = pts().fold(None, |b: Option<[f64; 4]>, (x, y)| {
        Some(match b {
            None => [x, x, y, y],
            Some([a, b, c, d]) => [a.min(x), b.max(x), c.min(y), d.max(y)],
        })
    });
    if let Some([mut xl, mut xh, mut yl, mut yh]) = bounds {
        if xh - xl <= f64::EPSILON * xl.abs().max(1.0) {
            (xl, xh) = (xl - 0.5, xh + 0.5);
        }
        if panel.log_y {
            if yh / yl < 1.0 + 1e-9 {
                (yl, yh) = (yl / 2.0, yh * 2.0);
            }
        } else if yh - yl <= f64::EPSILON * yl.abs().max(1.0) {
            let d = (yl.abs() * 0.1).max(0.5);
            (yl, yh) = (yl - d, yh + d);
        }
        let (xa, xb, xt, xs) = linear_ticks(xl, xh, 6);
        let fx = |x: f64| x0 + (x - xa) / (xb - xa) * (x1 - x0);
        let (ya, yb, yticks): (f64, f64, Vec<(f64, String)>) = if panel.log_y {
            let (a, b, t) = log_ticks(yl, yh);
            (
                a.log10(),
                b.log10(),
                t.into_iter()
                    .map(|v| (v.log10(), format_log_tick(v)))
                    .collect(),
            )
        } else {
            let (a, b, t, st) = linear_ticks(yl, yh, 5);
            (
                a,
                b,
                t.into_iter().map(|v| (v, format_tick(v, st))).collect(),
            )
        };
        let fy = |y: f64| {
            let v = if panel.log_y { y.log10() } else { y };
            y1 - (v - ya) / (yb - ya) * (y1 - y0)
        };
        // Grid and tick labels.
        for &t in &xt {
            let px = fx(t);
            let _ = writeln!(
                s,
                r##"<line x1="{px:.1}" y1="{y0}" x2="{px:.1}" y2="{y1}" stroke="#e6e6e6"/>"##
            );
            let _ = writeln!(
                s,
                r#"<text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"#,
                y1 + 15.0,
                esc(&format_tick(t, xs))
            );
        }
        for (v, label) in &yticks {
            let py = y1 - (v - ya) / (yb - ya) * (y1 - y0);
            let _ = writeln!(
                s,
                r##"<line x1="{x0}" y1="{py:.1}" x2="{x1}" y2="{py:.1}" stroke="#e6e6e6"/>"##
            );
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                x0 - 5.0,
                py + 4.0,
                esc(label)
            );
        }
        for (k, se) in panel.series.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            for run in se.points.split(|&p| !valid(p, panel.log_y)) {
                let px: Vec<(f64, f64)> = thin(run.iter().map(|&(x, y)| (fx(x), fy(y))), x1 - x0);
                match px.len() {
                    0 => {}
                    1 => {
                        let _ = writeln!(
                            s,
                            r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{color}"/>"#,
                            px[0].0, px[0].1
                        );
                    }
                    _ => {
                        let mut d = String::with_capacity(px.len() * 12);
                        for (x, y) in &px {
                            let _ = write!(d, "{x:.1},{y:.1} ");
                        }
                        let _ = writeln!(
                            s,
                            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.5" stroke-linejoin="round"/>"#,
                            d.trim_end()
                        );
                    }
                }
            }
        }
    } else {
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#888888">no data</text>"##,
            (x0 + x1) / 2.0,
            (y0 + y1) / 2.0
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{x0}" y="{y0}" width="{}" height="{}" fill="none" stroke="#333333"/>"##,
        x1 - x0,
        y1 - y0
    );
    render_legend(s, panel, x1, y0);
}

fn render_legend(s: &mut String, panel: &Panel, right: f64, top: f64) {
    if panel.series.is_empty() {
        return;
    }
    let labels: Vec<String> = panel
        .series
        .iter()
        .map(|se| {
            if se.points.iter().any(|&p| valid(p, panel.log_y)) {
                se.name.clone()
            } else {
                format!("{} (no data)", se.name)
            }
        })
        .collect();
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let (bw, bh) = (
        longest as f64 * 6.5 + 34.0,
        labels.len() as f64 * 15.0 + 8.0,
    );
    let (bx, by) = (right - bw - 6.0, top + 6.0);
    let _ = writeln!(
        s,
        r##"<rect x="{bx:.1}" y="{by:.1}" width="{bw:.1}" height="{bh:.1}" fill="white" fill-opacity="0.85" stroke="#cccccc"/>"##
    );
    for (k, label) in labels.iter().enumerate() {
        let ly = by + 12.0 + k as f64 * 15.0;
        let color = PALETTE[k % PALETTE.len()];
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="2"/>"#,
            bx + 6.0,
            ly - 4.0,
            bx + 24.0,
            ly - 4.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{ly:.1}">{}</text>"#,
            bx + 28.0,
            esc(label)
        );
    }
}

/// Keeps at most the first, lowest, highest and last point of each horizontal
/// pixel column (in their original order) when a run has many more points than
/// the plot is wide and x never decreases.
fn thin(points: impl Iterator<Item = (f64, f64)>, width: f64) -> Vec<(f64, f64)> {
    let pts: Vec<(f64, f64)> = points.collect();
    if (pts.len() as f64) < 4.0 * width || pts.windows(2).any(|w| w[1].0 < w[0].0) {
        return pts;
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < pts.len() {
        let col = pts[i].0.floor();
        let mut j = i;
        while j < pts.len() && pts[j].0.floor() == col {
            j += 1;
        }
        let bucket = &pts[i..j];
        let lo = (0..bucket.len()).min_by(|&a, &b| bucket[a].1.total_cmp(&bucket[b].1));
        let hi = (0..bucket.len()).max_by(|&a, &b| bucket[a].1.total_cmp(&bucket[b].1));
        let mut keep: Vec<usize> = [Some(0), lo, hi, Some(bucket.len() - 1)]
            .into_iter()
            .flatten()
            .collect();
        keep.sort_unstable();
        keep.dedup();
        out.extend(keep.into_iter().map(|k| bucket[k]));
        i = j;
    }
    out
}

/// Escapes text for SVG content and attribute values.
pub(crate) fn esc(t: &str) -> String {
    let mut o = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => o.push('\u{fffd}'),
            c => o.push(c),
        }
    }
    o
}

/// Test helper: checks that every tag emitted is closed and properly nested,
/// returning the element names seen.
#[cfg(test)]
pub(crate) fn check_balanced(svg: &str) -> Vec<String> {
    let mut stack: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("unterminated tag") + start;
        let tag = &rest[start + 1..end];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
        } else {
            let name: String = tag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            assert!(!name.is_empty(), "bad tag <{tag}>");
            seen.push(name.clone());
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        rest = &rest[end + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testutil::TempDir;

    fn panel(series: Vec<Series>, log_y: bool) -> Panel {
        Panel {
            title: "loss <&> \"x\"".into(),
            x_label: "step".into(),
            y_label: "value".into(),
            series,
            log_y,
        }
    }

    #[test]
    fn renders_series_names_and_is_balanced() {
        let a = Series::new(
            "train/loss",
            (0..50)
                .map(|i| (i as f64, 1.0 / (1.0 + i as f64)))
                .collect(),
        );
        let b = Series::new(
            "held-out",
            vec![(0.0, 0.5), (f64::NAN, 1.0), (10.0, 0.4), (20.0, 0.3)],
        );
        let svg = render_svg(
            &[panel(vec![a, b], false), panel(vec![], true)],
            &PlotOptions {
                title: Some("run 1".into()),
                columns: 2,
                ..Default::default()
            },
        );
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("train/loss") && svg.contains("held-out") && svg.contains("run 1"));
        assert!(svg.contains("loss &lt;&amp;&gt; &quot;x&quot;"));
        let tags = check_balanced(&svg);
        // The NaN breaks series b into a dot and a 2-point line.
        assert_eq!(tags.iter().filter(|t| *t == "polyline").count(), 2);
        assert_eq!(tags.iter().filter(|t| *t == "circle").count(), 1);
        assert!(svg.contains("no data"));
    }

    #[test]
    fn log_axis_skips_non_positive_and_labels_decades() {
        let s = Series::new(
            "lr",
            vec![
                (0.0, 1e-4),
                (1.0, 0.0),
                (2.0, 1e-2),
                (3.0, 1e-1),
                (4.0, -3.0),
            ],
        );
        let svg = render_svg(&[panel(vec![s], true)], &PlotOptions::default());
        check_balanced(&svg);
        for label in [">1e-4<", ">0.001<", ">0.01<", ">0.1<"] {
            assert!(svg.contains(label), "{label} missing");
        }
    }

    #[test]
    fn handles_degenerate_input() {
        for series in [
            vec![Series::new("empty", vec![])],
            vec![Series::new("nan", vec![(f64::NAN, f64::NAN)])],
            vec![Series::new("const", vec![(0.0, 3.0), (1.0, 3.0)])],
            vec![Series::new("one", vec![(5.0, 5.0)])],
            vec![Series::new(
                "infinite",
                vec![(0.0, f64::INFINITY), (1.0, 1.0), (2.0, 2.0)],
            )],
        ] {
            for log_y in [false, true] {
                let svg = render_svg(&[panel(series.clone(), log_y)], &PlotOptions::default());
                check_balanced(&svg);
                assert!(!svg.contains("NaN"), "{svg}");
                assert_eq!(
                    svg.matches("inf").count(),
                    svg.matches("infinite").count(),
                    "{svg}"
                );
            }
        }
        assert!(render_svg(&[], &PlotOptions::default()).starts_with("<svg"));
        let svg = render_svg(
            &[panel(vec![Series::new("empty", vec![])], false)],
            &PlotOptions::default(),
        );
        assert!(svg.contains("empty (no data)"));
    }

    #[test]
    fn long_series_are_thinned_keeping_spikes() {
        let mut pts: Vec<(f64, f64)> = (0..100_000)
            .map(|i| (i as f64, (i as f64 * 0.01).sin()))
            .collect();
        pts[54_321].1 = 40.0;
        let svg = render_svg(
            &[panel(vec![Series::new("long", pts)], false)],
            &PlotOptions::default(),
        );
        assert!(svg.len() < 200_000, "{} bytes", svg.len());
        assert!(svg.contains(">40<"), "the spike sets the y range");
    }

    #[test]
    fn saves_atomically() {
        let dir = TempDir::new("svg");
        let p = dir.path().join("c.svg");
        save_svg(
            &p,
            &[panel(
                vec![Series::new("a", vec![(0.0, 1.0), (1.0, 2.0)])],
                false,
            )],
            &PlotOptions::default(),
        )
        .unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().starts_with("<svg"));
    }
}
