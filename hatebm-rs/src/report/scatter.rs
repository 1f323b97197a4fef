//! 2-D points as a PNG scatter plot (toy data vs. samples).

use std::path::Path;

use super::RasterImage;
use crate::{Error, Result};

/// How [`scatter_image`] draws.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScatterOptions {
    /// Side of the square picture in pixels. Default 512.
    pub size: u32,
    /// The plotted region `[x_min, x_max, y_min, y_max]`; `None` = automatic: the
    /// bounding square of all finite points (equal scale on both axes) plus a 5 %
    /// margin. Default `None`.
    pub range: Option<[f32; 4]>,
    /// Point radius in pixels (0 = single pixel). Default 1.
    pub radius: u32,
    /// Opacity of each point, `(0, 1]`; overlapping points get darker, which shows
    /// density. Default 0.5.
    pub alpha: f32,
    /// Colour of the first point set (data). Default blue `(31, 119, 180)`.
    pub primary_color: [u8; 3],
    /// Colour of the second point set (samples), drawn on top. Default red
    /// `(214, 39, 40)`.
    pub secondary_color: [u8; 3],
}

impl Default for ScatterOptions {
    fn default() -> Self {
        ScatterOptions {
            size: 512,
            range: None,
            radius: 1,
            alpha: 0.5,
            primary_color: [31, 119, 180],
            secondary_color: [214, 39, 40],
        }
    }
}

const MARGIN: u32 = 12;
const AXES: [u8; 3] = [60, 60, 60];
const GRID: [u8; 3] = [225, 225, 225];
const ZERO: [u8; 3] = [170, 170, 170];

/// Draws one or two sets of 2-D points (`[N, 2]` row-major `(x, y)`, y up) on a
/// white RGB canvas inside a dark axes box, with light grid lines at integer
/// coordinates (when at most 40 fit) and darker lines at `x = 0` and `y = 0`.
/// Non-finite points and points outside the range are skipped.
///
/// # Errors
/// [`Error::ShapeMismatch`] for an odd-length point slice; [`Error::InvalidArgument`]
/// for a size under 64 px, an alpha outside `(0, 1]`, or an empty / non-finite range.
pub fn scatter_image(
    primary: &[f32],
    secondary: Option<&[f32]>,
    opts: &ScatterOptions,
) -> Result<RasterImage> {
    for (what, pts) in [
        ("scatter points", Some(primary)),
        ("second scatter points", secondary),
    ] {
        if let Some(p) = pts
            && p.len() % 2 != 0
        {
            return Err(Error::ShapeMismatch {
                what: what.into(),
                expected: "[N, 2] (an even number of values)".into(),
                got: format!("{} values", p.len()),
            });
        }
    }
    crate::ensure!(
        opts.size >= 64,
        "scatter size must be at least 64 px, got {}",
        opts.size
    );
    crate::ensure!(
        opts.alpha > 0.0 && opts.alpha <= 1.0,
        "scatter alpha must be in (0, 1], got {}",
        opts.alpha
    );
    let [x0, x1, y0, y1] = match opts.range {
        Some(r) => r,
        None => auto_range(
            primary
                .chunks_exact(2)
                .chain(secondary.unwrap_or(&[]).chunks_exact(2)),
        ),
    };
    crate::ensure!(
        [x0, x1, y0, y1].iter().all(|v| v.is_finite()) && x1 > x0 && y1 > y0,
        "scatter range must be finite with min < max, got {:?}",
        [x0, x1, y0, y1]
    );
    let mut img = RasterImage::filled(opts.size, opts.size, 3, 255)?;
    let inner = f64::from(opts.size - 2 * MARGIN - 1);
    let to_px = |x: f32, y: f32| -> (f64, f64) {
        let px = f64::from(MARGIN) + f64::from(x - x0) / f64::from(x1 - x0) * inner;
        let py = f64::from(MARGIN) + f64::from(y1 - y) / f64::from(y1 - y0) * inner;
        (px, py)
    };
    let (lo, hi) = (MARGIN, opts.size - MARGIN - 1);
    // Grid lines at integers, then the zero axes.
    if (x1 - x0).max(y1 - y0) <= 40.0 {
        for k in (x0.ceil() as i64)..=(x1.floor() as i64) {
            let (px, _) = to_px(k as f32, 0.0);
            vline(
                &mut img,
                px.round() as u32,
                lo,
                hi,
                if k == 0 { ZERO } else { GRID },
            );
        }
        for k in (y0.ceil() as i64)..=(y1.floor() as i64) {
            let (_, py) = to_px(0.0, k as f32);
            hline(
                &mut img,
                py.round() as u32,
                lo,
                hi,
                if k == 0 { ZERO } else { GRID },
            );
        }
    }
    for (pts, color) in [
        (Some(primary), opts.primary_color),
        (secondary, opts.secondary_color),
    ] {
        for p in pts.unwrap_or(&[]).chunks_exact(2) {
            let (x, y) = (p[0], p[1]);
            if !(x.is_finite() && y.is_finite()) || x < x0 || x > x1 || y < y0 || y > y1 {
                continue;
            }
            let (px, py) = to_px(x, y);
            dot(
                &mut img,
                px.round() as i64,
                py.round() as i64,
                opts.radius,
                color,
                opts.alpha,
            );
        }
    }
    // The axes box last, so points never cover it.
    hline(&mut img, lo, lo, hi, AXES);
    hline(&mut img, hi, lo, hi, AXES);
    vline(&mut img, lo, lo, hi, AXES);
    vline(&mut img, hi, lo, hi, AXES);
    Ok(img)
}

/// [`scatter_image`], written to `path` as a PNG atomically.
///
/// # Errors
/// As [`scatter_image`]; [`Error::Io`] when writing fails.
pub fn save_scatter_png(
    path: impl AsRef<Path>,
    primary: &[f32],
    secondary: Option<&[f32]>,
    opts: &ScatterOptions,
) -> Result<()> {
    scatter_image(primary, secondary, opts)?.save_png(path)
}

fn auto_range<'a>(points: impl Iterator<Item = &'a [f32]>) -> [f32; 4] {
    let mut b = [
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    for p in points.filter(|p| p[0].is_finite() && p[1].is_finite()) {
        b = [
            b[0].min(p[0]),
            b[1].max(p[0]),
            b[2].min(p[1]),
            b[3].max(p[1]),
        ];
    }
    if !b[0].is_finite() {
        return [-1.0, 1.0, -1.0, 1.0];
    }
    let (cx, cy) = ((b[0] + b[1]) / 2.0, (b[2] + b[3]) / 2.0);
    let half = ((b[1] - b[0]).max(b[3] - b[2]) / 2.0 * 1.05).max(1e-3);
    [cx - half, cx + half, cy - half, cy + half]
}

fn put(img: &mut RasterImage, x: u32, y: u32, c: [u8; 3]) {
    if x < img.width && y < img.height {
        let i = (y as usize * img.width as usize + x as usize) * 3;
        img.pixels[i..i + 3].copy_from_slice(&c);
    }
}

fn hline(img: &mut RasterImage, y: u32, x0: u32, x1: u32, c: [u8; 3]) {
    (x0..=x1).for_each(|x| put(img, x, y, c));
}

fn vline(img: &mut RasterImage, x: u32, y0: u32, y1: u32, c: [u8; 3]) {
    (y0..=y1).for_each(|y| put(img, x, y, c));
}

fn dot(img: &mut RasterImage, cx: i64, cy: i64, r: u32, c: [u8; 3], alpha: f32) {
    let r = i64::from(r);
    for y in cy - r..=cy + r {
        for x in cx - r..=cx + r {
            if (x - cx).pow(2) + (y - cy).pow(2) > r * r + r
                || x < 0
                || y < 0
                || x >= i64::from(img.width)
                || y >= i64::from(img.height)
            {
                continue;
            }
            let i = (y as usize * img.width as usize + x as usize) * 3;
            for (px, &ck) in img.pixels[i..i + 3].iter_mut().zip(&c) {
                let old = f32::from(*px);
                *px = (old + alpha * (f32::from(ck) - old)).round() as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testutil::TempDir;
    use crate::report::image::decode_png;

    #[test]
    fn draws_points_box_and_both_colours() {
        let opts = ScatterOptions {
            size: 100,
            range: Some([-1.0, 1.0, -1.0, 1.0]),
            radius: 0,
            alpha: 1.0,
            ..Default::default()
        };
        // (-1, 1) is the top-left corner of the box; (0.5, -0.5) lower right of centre.
        let img = scatter_image(&[0.5, -0.5], Some(&[-0.5, 0.5]), &opts).unwrap();
        let inner = 100.0 - 2.0 * 12.0 - 1.0;
        let px = |v: f64| (12.0 + (v + 1.0) / 2.0 * inner).round() as u32;
        assert_eq!(img.pixel(px(0.5), px(0.5)), &[31, 119, 180]); // y flipped: -0.5 → lower
        assert_eq!(img.pixel(px(-0.5), px(-0.5)), &[214, 39, 40]);
        assert_eq!(img.pixel(12, 50), &AXES);
        assert_eq!(img.pixel(87, 30), &AXES);
        assert_eq!(img.pixel(3, 3), &[255, 255, 255]);
        assert_eq!(img.pixel(px(0.0), 30), &ZERO);
    }

    #[test]
    fn saves_a_png_with_auto_range_and_skips_non_finite() {
        let dir = TempDir::new("scatter");
        let p = dir.path().join("s.png");
        let data = crate::data::ToyDistribution::ring8()
            .sample_seeded(500, 1)
            .unwrap()
            .0;
        let mut samples = data.clone();
        samples.extend_from_slice(&[f32::NAN, 0.0, f32::INFINITY, 1.0]);
        save_scatter_png(&p, &data, Some(&samples), &ScatterOptions::default()).unwrap();
        let (w, h, c, px) = decode_png(&std::fs::read(&p).unwrap());
        assert_eq!((w, h, c), (512, 512, 3));
        assert!(
            px.chunks(3).any(|q| q[0] > q[2]),
            "red-ish sample points drawn"
        );
        assert_eq!(
            auto_range([[f32::NAN, 1.0].as_slice()].into_iter()),
            [-1.0, 1.0, -1.0, 1.0]
        );
    }

    #[test]
    fn rejects_bad_input() {
        let o = ScatterOptions::default();
        assert!(matches!(
            scatter_image(&[1.0], None, &o),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(scatter_image(&[0.0, 0.0], Some(&[1.0]), &o).is_err());
        assert!(scatter_image(&[0.0, 0.0], None, &ScatterOptions { size: 10, ..o }).is_err());
        assert!(scatter_image(&[0.0, 0.0], None, &ScatterOptions { alpha: 0.0, ..o }).is_err());
        let bad_range = ScatterOptions {
            range: Some([1.0, 1.0, 0.0, 1.0]),
            ..o
        };
        assert!(scatter_image(&[0.0, 0.0], None, &bad_range).is_err());
    }
}
