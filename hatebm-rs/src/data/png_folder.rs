//! A folder of PNG images as a data set.
//!
//! Every file whose name ends in `.png` (any case) directly inside the folder is
//! read, in byte order of the file names (so the order is the same on every
//! platform); other files and subfolders are ignored. All images must have the same
//! width and height.
//!
//! Decoding: palette images and gray images below 8 bits are expanded, a `tRNS`
//! transparency becomes an alpha channel, and **alpha is dropped** (not composited
//! over a background). 8-bit samples are scaled by `x / 255 * 2 - 1`; **16-bit
//! samples are kept at full precision**, scaled by `x / 65535 * 2 - 1`.
//!
//! Channels: gray → 3 channels repeats the gray value; RGB → 1 channel uses the
//! ITU-R BT.601 luma `0.299 R + 0.587 G + 0.114 B` (as PIL's `convert("L")`).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use super::Dataset;
use crate::{Error, Result};

/// One decoded image, before channel conversion.
struct Decoded {
    width: u32,
    height: u32,
    /// Channels in the decoded buffer: 1 (gray), 2 (gray+alpha), 3 (RGB), 4 (RGBA).
    color_channels: usize,
    /// Samples in `[0, 1]`, interleaved `[H, W, color_channels]`.
    samples: Vec<f32>,
}

/// The `.png` files directly inside `dir`, sorted by file name.
///
/// # Errors
/// [`Error::Io`] when the folder cannot be listed.
pub fn list_png_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let is_png = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        if is_png && path.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Loads every PNG in `dir` (see the [module docs](self)) as a data set of
/// `[C, H, W]` samples in `[-1, 1]`, named after the folder, without labels.
///
/// `channels`: `Some(1)` or `Some(3)` converts every image to that many channels;
/// `None` keeps gray data gray — 1 channel when every image is gray (with or
/// without alpha), else 3.
///
/// # Errors
/// [`Error::InvalidArgument`] for a channel count other than 1 or 3 or a folder
/// without PNG files; [`Error::Io`] when a file cannot be read; [`Error::Format`]
/// naming the file when it is not a decodable PNG or its size differs from the
/// first image's.
pub fn load_png_folder(dir: &Path, channels: Option<usize>) -> Result<Dataset> {
    if let Some(c) = channels {
        crate::ensure!(c == 1 || c == 3, "PNG channels must be 1 or 3, got {c}");
    }
    let files = list_png_files(dir)?;
    crate::ensure!(!files.is_empty(), "no .png files in `{}`", dir.display());
    let mut images = Vec::with_capacity(files.len());
    for f in &files {
        let img = decode_png_file(f)?;
        if let Some(first) = images.first() {
            let first: &Decoded = first;
            if (img.width, img.height) != (first.width, first.height) {
                return Err(Error::format(
                    f.display().to_string(),
                    format!(
                        "image is {}x{} but {} is {}x{}: all images in the folder must have the same size",
                        img.width,
                        img.height,
                        files[0].display(),
                        first.width,
                        first.height
                    ),
                ));
            }
        }
        images.push(img);
    }
    let out_c = channels.unwrap_or_else(|| {
        if images.iter().all(|i| i.color_channels <= 2) {
            1
        } else {
            3
        }
    });
    let (w, h) = (images[0].width as usize, images[0].height as usize);
    let mut data = Vec::with_capacity(images.len() * out_c * h * w);
    for img in &images {
        to_chw(img, out_c, &mut data);
    }
    let name = dir
        .file_name()
        .map_or_else(|| "png".to_owned(), |s| s.to_string_lossy().into_owned());
    Dataset::from_f32(name, data, vec![out_c, h, w], None)
}

/// Appends `img` as `[out_c, H, W]` values in `[-1, 1]`.
fn to_chw(img: &Decoded, out_c: usize, out: &mut Vec<f32>) {
    let src_c = img.color_channels;
    let has_color = src_c >= 3;
    let px = img.samples.chunks_exact(src_c);
    let start = out.len();
    let plane = (img.width * img.height) as usize;
    out.resize(start + out_c * plane, 0.0);
    let dst = &mut out[start..];
    for (i, p) in px.enumerate() {
        let (r, g, b) = if has_color {
            (p[0], p[1], p[2])
        } else {
            (p[0], p[0], p[0])
        };
        if out_c == 1 {
            let y = if has_color {
                0.299 * r + 0.587 * g + 0.114 * b
            } else {
                r
            };
            dst[i] = y.clamp(0.0, 1.0) * 2.0 - 1.0;
        } else {
            dst[i] = r * 2.0 - 1.0;
            dst[plane + i] = g * 2.0 - 1.0;
            dst[2 * plane + i] = b * 2.0 - 1.0;
        }
    }
}

fn decode_png_file(path: &Path) -> Result<Decoded> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_png_bytes(&bytes, &path.display().to_string())
}

/// The largest decoded PNG accepted, in bytes (a 8192 × 8192 RGBA image at
/// 16 bits): a header may claim any size up to 2³¹ × 2³¹ pixels.
pub const MAX_PNG_DECODED_BYTES: usize = 8192 * 8192 * 8;

/// Decodes one PNG held in memory; what [`load_png_folder`] does per file.
/// Returns `(width, height, channels, samples in [0, 1])`.
///
/// # Errors
/// [`Error::Format`] for bytes that are not a decodable PNG, or an image
/// larger than [`MAX_PNG_DECODED_BYTES`].
pub fn decode_png(bytes: &[u8], context: &str) -> Result<(u32, u32, usize, Vec<f32>)> {
    let d = decode_png_bytes(bytes, context)?;
    Ok((d.width, d.height, d.color_channels, d.samples))
}

fn decode_png_bytes(bytes: &[u8], context: &str) -> Result<Decoded> {
    let ctx = || context.to_string();
    let bad = |e: png::DecodingError| Error::format(ctx(), format!("not a decodable PNG: {e}"));
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(bad)?;
    let size = reader
        .output_buffer_size()
        .filter(|&s| s <= MAX_PNG_DECODED_BYTES)
        .ok_or_else(|| {
            let i = reader.info();
            Error::format(
                ctx(),
                format!(
                    "image of {} x {} pixels is larger than the {MAX_PNG_DECODED_BYTES} bytes accepted",
                    i.width, i.height
                ),
            )
        })?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(bad)?;
    buf.truncate(info.line_size * info.height as usize);
    let color_channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => {
            return Err(Error::format(ctx(), "palette image was not expanded"));
        }
    };
    let row_samples = info.width as usize * color_channels;
    let mut samples = Vec::with_capacity(row_samples * info.height as usize);
    for row in buf.chunks_exact(info.line_size) {
        match info.bit_depth {
            png::BitDepth::Eight => {
                samples.extend(row[..row_samples].iter().map(|&v| f32::from(v) / 255.0));
            }
            png::BitDepth::Sixteen => samples.extend(
                row[..2 * row_samples]
                    .chunks_exact(2)
                    .map(|c| f32::from(u16::from_be_bytes([c[0], c[1]])) / 65535.0),
            ),
            d => {
                return Err(Error::format(
                    ctx(),
                    format!("unexpected bit depth {d:?} after expansion"),
                ));
            }
        }
    }
    Ok(Decoded {
        width: info.width,
        height: info.height,
        color_channels,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testutil::TempDir;

    fn png_bytes(
        w: u32,
        h: u32,
        color: png::ColorType,
        depth: png::BitDepth,
        data: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(depth);
        let mut wr = enc.write_header().unwrap();
        wr.write_image_data(data).unwrap();
        wr.finish().unwrap();
        out
    }

    #[test]
    fn loads_sorted_and_converts_channels() {
        use png::{BitDepth::*, ColorType::*};
        let dir = TempDir::new("pngs");
        // 2x1 images. b.png is RGBA, a.PNG gray, c.png gray+alpha, d.png 16-bit RGB.
        dir.write(
            "b.png",
            &png_bytes(2, 1, Rgba, Eight, &[255, 0, 0, 9, 0, 0, 255, 9]),
        );
        dir.write("a.PNG", &png_bytes(2, 1, Grayscale, Eight, &[0, 255]));
        dir.write(
            "c.png",
            &png_bytes(2, 1, GrayscaleAlpha, Eight, &[51, 0, 102, 0]),
        );
        dir.write(
            "d.png",
            &png_bytes(
                2,
                1,
                Rgb,
                Sixteen,
                &[0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0],
            ),
        );
        dir.write("notes.txt", b"ignored");
        std::fs::create_dir(dir.path().join("sub.png")).unwrap();

        let d = load_png_folder(dir.path(), Some(3)).unwrap();
        assert_eq!((d.len(), d.sample_shape()), (4, &[3, 1, 2][..]));
        assert_eq!(d.sample(0), &[-1.0, 1.0, -1.0, 1.0, -1.0, 1.0]); // a: gray replicated
        assert_eq!(d.sample(1), &[1.0, -1.0, -1.0, -1.0, -1.0, 1.0]); // b: alpha dropped
        let s = d.sample(3); // d: 16-bit, full precision
        assert_eq!(s[0], 1.0);
        assert!((s[5] - (32768.0 / 65535.0 * 2.0 - 1.0)).abs() < 1e-6);

        let g = load_png_folder(dir.path(), Some(1)).unwrap();
        assert_eq!(g.sample_shape(), &[1, 1, 2]);
        assert!((g.sample(1)[0] - (0.299 * 2.0 - 1.0)).abs() < 1e-6); // pure red
        assert!((g.sample(2)[0] - (51.0 / 255.0 * 2.0 - 1.0)).abs() < 1e-6);
        // Not all gray: native channel count is 3.
        assert_eq!(
            load_png_folder(dir.path(), None).unwrap().sample_shape(),
            &[3, 1, 2]
        );
    }

    #[test]
    fn gray_folder_defaults_to_one_channel_and_expands_low_bit_depth() {
        let dir = TempDir::new("pngs-gray");
        // 1-bit gray, 8 pixels in one byte: 1010_0000 → white, black, white, ...
        dir.write(
            "x.png",
            &png_bytes(
                3,
                1,
                png::ColorType::Grayscale,
                png::BitDepth::One,
                &[0b1010_0000],
            ),
        );
        let d = load_png_folder(dir.path(), None).unwrap();
        assert_eq!(d.sample_shape(), &[1, 1, 3]);
        assert_eq!(d.data(), &[1.0, -1.0, 1.0]);
    }

    #[test]
    fn rejects_mismatched_sizes_naming_the_file() {
        let dir = TempDir::new("pngs-size");
        dir.write(
            "1.png",
            &png_bytes(
                2,
                2,
                png::ColorType::Grayscale,
                png::BitDepth::Eight,
                &[0; 4],
            ),
        );
        dir.write(
            "2.png",
            &png_bytes(
                3,
                2,
                png::ColorType::Grayscale,
                png::BitDepth::Eight,
                &[0; 6],
            ),
        );
        let e = load_png_folder(dir.path(), Some(1)).unwrap_err();
        assert!(
            matches!(&e, Error::Format { context, message } if context.ends_with("2.png") && message.contains("3x2")),
            "{e}"
        );
    }

    #[test]
    fn rejects_non_png_with_png_name() {
        let dir = TempDir::new("pngs-fake");
        dir.write("fake.png", b"GIF89a this is not a png");
        let e = load_png_folder(dir.path(), Some(1)).unwrap_err();
        assert!(
            matches!(&e, Error::Format { context, message } if context.ends_with("fake.png") && message.contains("not a decodable PNG")),
            "{e}"
        );
    }

    #[test]
    fn rejects_bad_arguments() {
        let dir = TempDir::new("pngs-empty");
        assert!(matches!(
            load_png_folder(dir.path(), None),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            load_png_folder(dir.path(), Some(2)),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            load_png_folder(&dir.path().join("nope"), None),
            Err(Error::Io { .. })
        ));
    }
}
