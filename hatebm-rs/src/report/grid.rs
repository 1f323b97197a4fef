//! A batch of images as one PNG grid.

use std::path::Path;

use super::RasterImage;
use crate::{Error, Result};

/// How [`image_grid`] lays out a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridOptions {
    /// Images per grid row (the number of columns, as torchvision's `nrow`);
    /// fewer when the batch is smaller. Default 8.
    pub nrow: usize,
    /// Pixels of border around every cell (between cells and at the edges), in
    /// output pixels. Default 2.
    pub padding: usize,
    /// Integer nearest-neighbour upscaling of each image; 0 = automatic:
    /// `max(1, 32 / max(H, W))`, so 8×8 digits are drawn 4× (32×32) and 28×28 or
    /// larger images 1×. Default 0.
    pub upscale: usize,
    /// The gray level (0..=255) of the border. Default 255 (white), which
    /// separates the cells of black-background digits.
    pub pad_value: u8,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions {
            nrow: 8,
            padding: 2,
            upscale: 0,
            pad_value: 255,
        }
    }
}

/// Maps a value in `[-1, 1]` to a byte: clamped to `[-1, 1]`, then
/// `round((v + 1) * 127.5)`, so −1 → 0, 0 → 128, 1 → 255. NaN maps to 0.
pub fn to_u8(v: f32) -> u8 {
    if v.is_nan() {
        return 0;
    }
    ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8
}

/// Lays out a batch of images as one picture.
///
/// `images` holds `shape = [N, C, H, W]` values (C order, channel-first), nominally
/// in `[-1, 1]` and mapped by [`to_u8`]. `C` = 1 gives a gray picture, `C` = 3 an RGB
/// one. Images fill the grid row by row; unused cells of the last row keep the
/// border colour. The result is
/// `ncol * (W·s + padding) + padding` wide and `nrows * (H·s + padding) + padding`
/// high, with `s` the upscaling factor.
///
/// # Errors
/// [`Error::InvalidArgument`] for a shape that is not `[N ≥ 1, 1 | 3, H ≥ 1, W ≥ 1]`,
/// `nrow = 0`, or a picture too large (over 2³¹ pixels per side);
/// [`Error::ShapeMismatch`] when `images.len()` is not the product of `shape`.
pub fn image_grid(images: &[f32], shape: &[usize], opts: &GridOptions) -> Result<RasterImage> {
    let &[n, c, h, w] = shape else {
        crate::bail!("image grid needs a shape [N, C, H, W], got {shape:?}");
    };
    crate::ensure!(
        n > 0 && h > 0 && w > 0,
        "image grid needs a non-empty batch, got {shape:?}"
    );
    crate::ensure!(
        c == 1 || c == 3,
        "image grid needs 1 or 3 channels, got {c}"
    );
    crate::ensure!(opts.nrow > 0, "grid nrow must be at least 1");
    let expected = n * c * h * w;
    if images.len() != expected {
        return Err(Error::shape("image grid input", shape, &[images.len()]));
    }
    let s = if opts.upscale == 0 {
        (32 / h.max(w)).max(1)
    } else {
        opts.upscale
    };
    let (ch, cw) = (h * s, w * s);
    let ncol = opts.nrow.min(n);
    let nrows = n.div_ceil(ncol);
    let pad = opts.padding;
    let total_w = ncol * (cw + pad) + pad;
    let total_h = nrows * (ch + pad) + pad;
    let (Ok(tw), Ok(th)) = (u32::try_from(total_w), u32::try_from(total_h)) else {
        crate::bail!("image grid of {total_w}x{total_h} pixels is too large");
    };
    crate::ensure!(
        tw < 1 << 31 && th < 1 << 31,
        "image grid of {total_w}x{total_h} pixels is too large"
    );
    let mut out = RasterImage::filled(tw, th, c as u8, opts.pad_value)?;
    let plane = h * w;
    for (k, img) in images.chunks_exact(c * plane).enumerate() {
        let (gx, gy) = (k % ncol, k / ncol);
        let (x0, y0) = (pad + gx * (cw + pad), pad + gy * (ch + pad));
        for y in 0..ch {
            let row = (y0 + y) * total_w;
            for x in 0..cw {
                let src = (y / s) * w + x / s;
                let dst = (row + x0 + x) * c;
                for ci in 0..c {
                    out.pixels[dst + ci] = to_u8(img[ci * plane + src]);
                }
            }
        }
    }
    Ok(out)
}

/// [`image_grid`], written to `path` as a PNG atomically.
///
/// # Errors
/// As [`image_grid`]; [`Error::Io`] when writing fails.
pub fn save_image_grid(
    path: impl AsRef<Path>,
    images: &[f32],
    shape: &[usize],
    opts: &GridOptions,
) -> Result<()> {
    image_grid(images, shape, opts)?.save_png(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testutil::TempDir;
    use crate::report::image::decode_png;

    #[test]
    fn value_mapping() {
        assert_eq!(
            [
                to_u8(-1.0),
                to_u8(0.0),
                to_u8(1.0),
                to_u8(-7.0),
                to_u8(3.0),
                to_u8(f32::NAN)
            ],
            [0, 128, 255, 0, 255, 0]
        );
    }

    #[test]
    fn gray_grid_round_trips_through_png() {
        // 3 images of 2x2, nrow 2, padding 1, no upscaling: 2 columns x 2 rows.
        let imgs = [
            -1.0, 1.0, 0.0, 1.0, // image 0
            1.0, 1.0, 1.0, 1.0, // image 1
            -1.0, -1.0, -1.0, -5.0, // image 2 (clamped)
        ];
        let opts = GridOptions {
            nrow: 2,
            padding: 1,
            upscale: 1,
            pad_value: 77,
        };
        let dir = TempDir::new("grid");
        let p = dir.path().join("g.png");
        save_image_grid(&p, &imgs, &[3, 1, 2, 2], &opts).unwrap();
        let (w, h, c, px) = decode_png(&std::fs::read(&p).unwrap());
        assert_eq!((w, h, c), (7, 7, 1));
        #[rustfmt::skip]
        let want: [u8; 49] = [
            77, 77,  77,  77,  77,  77, 77,
            77,  0, 255,  77, 255, 255, 77,
            77, 128, 255, 77, 255, 255, 77,
            77, 77,  77,  77,  77,  77, 77,
            77,  0,   0,  77,  77,  77, 77,
            77,  0,   0,  77,  77,  77, 77,
            77, 77,  77,  77,  77,  77, 77,
        ];
        assert_eq!(px, want);
    }

    #[test]
    fn rgb_grid_with_upscaling() {
        // One 1x1 RGB image (red), upscaled 3x, padding 2.
        let g = image_grid(
            &[1.0, -1.0, -1.0],
            &[1, 3, 1, 1],
            &GridOptions {
                upscale: 3,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((g.width, g.height, g.channels), (7, 7, 3));
        assert_eq!(g.pixel(2, 2), &[255, 0, 0]);
        assert_eq!(g.pixel(4, 4), &[255, 0, 0]);
        assert_eq!(g.pixel(5, 5), &[255, 255, 255]);
        let (w, h, c, px) = decode_png(&g.encode_png().unwrap());
        assert_eq!((w, h, c, px), (7, 7, 3, g.pixels.clone()));
    }

    #[test]
    fn auto_upscaling_and_layout() {
        let digits = vec![0.0; 20 * 64];
        let g = image_grid(&digits, &[20, 1, 8, 8], &GridOptions::default()).unwrap();
        // 8 columns, 3 rows of 32x32 cells with 2 px borders.
        assert_eq!((g.width, g.height), (8 * 34 + 2, 3 * 34 + 2));
        let mnist = vec![0.0; 2 * 784];
        let g = image_grid(&mnist, &[2, 1, 28, 28], &GridOptions::default()).unwrap();
        assert_eq!((g.width, g.height), (2 * 30 + 2, 32));
    }

    #[test]
    fn rejects_bad_input() {
        let o = GridOptions::default();
        assert!(image_grid(&[0.0; 8], &[2, 2, 2], &o).is_err());
        assert!(image_grid(&[0.0; 8], &[2, 2, 1, 2], &o).is_err());
        assert!(matches!(
            image_grid(&[0.0; 7], &[2, 1, 2, 2], &o),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(image_grid(&[], &[0, 1, 2, 2], &o).is_err());
        assert!(image_grid(&[0.0; 4], &[1, 1, 2, 2], &GridOptions { nrow: 0, ..o }).is_err());
    }
}
