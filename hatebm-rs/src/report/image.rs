//! [`RasterImage`]: an 8-bit gray or RGB picture, encoded as PNG.

use std::path::Path;

use crate::{Error, Result};

/// An 8-bit picture: `height` rows of `width` pixels of `channels` bytes each
/// (1 = gray, 3 = RGB), row-major, top row first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RasterImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// 1 (gray) or 3 (RGB).
    pub channels: u8,
    /// `height * width * channels` bytes.
    pub pixels: Vec<u8>,
}

impl RasterImage {
    /// A picture filled with one colour (`fill` is used as is for every byte).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `channels` is not 1 or 3, or a side is 0.
    pub fn filled(width: u32, height: u32, channels: u8, fill: u8) -> Result<Self> {
        crate::ensure!(
            channels == 1 || channels == 3,
            "image channels must be 1 or 3, got {channels}"
        );
        crate::ensure!(
            width > 0 && height > 0,
            "image size must be positive, got {width}x{height}"
        );
        Ok(RasterImage {
            width,
            height,
            channels,
            pixels: vec![fill; width as usize * height as usize * usize::from(channels)],
        })
    }

    /// The bytes of pixel `(x, y)`.
    ///
    /// # Panics
    /// When `(x, y)` is outside the picture.
    pub fn pixel(&self, x: u32, y: u32) -> &[u8] {
        let c = usize::from(self.channels);
        let i = (y as usize * self.width as usize + x as usize) * c;
        &self.pixels[i..i + c]
    }

    /// Encodes as PNG (8-bit gray or RGB).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `pixels` has the wrong length;
    /// [`Error::InvalidArgument`] for a bad channel count.
    pub fn encode_png(&self) -> Result<Vec<u8>> {
        let color = match self.channels {
            1 => png::ColorType::Grayscale,
            3 => png::ColorType::Rgb,
            c => crate::bail!("image channels must be 1 or 3, got {c}"),
        };
        let want = self.width as usize * self.height as usize * usize::from(self.channels);
        if self.pixels.len() != want {
            return Err(Error::shape(
                "image pixels",
                &[
                    self.height as usize,
                    self.width as usize,
                    usize::from(self.channels),
                ],
                &[self.pixels.len()],
            ));
        }
        let mut out = Vec::new();
        let png_err =
            |e: png::EncodingError| Error::InvalidArgument(format!("PNG encoding failed: {e}"));
        let mut enc = png::Encoder::new(&mut out, self.width, self.height);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(png_err)?;
        w.write_image_data(&self.pixels).map_err(png_err)?;
        w.finish().map_err(png_err)?;
        Ok(out)
    }

    /// Encodes as PNG and writes it to `path` atomically.
    ///
    /// # Errors
    /// As [`encode_png`](Self::encode_png); [`Error::Io`] when writing fails.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let bytes = self.encode_png()?;
        crate::data::write_atomic(path.as_ref(), &bytes)
    }
}

/// Test helper: decodes a PNG into `(width, height, color channels, bytes)`.
#[cfg(test)]
pub(crate) fn decode_png(bytes: &[u8]) -> (u32, u32, usize, Vec<u8>) {
    let dec = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, info.color_type.samples(), buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes() {
        let mut im = RasterImage::filled(3, 2, 3, 10).unwrap();
        im.pixels[3..6].copy_from_slice(&[1, 2, 3]);
        let (w, h, c, px) = decode_png(&im.encode_png().unwrap());
        assert_eq!((w, h, c), (3, 2, 3));
        assert_eq!(px, im.pixels);
        assert_eq!(im.pixel(1, 0), &[1, 2, 3]);
        assert!(RasterImage::filled(1, 1, 2, 0).is_err());
        let bad = RasterImage {
            width: 2,
            height: 2,
            channels: 1,
            pixels: vec![0; 3],
        };
        assert!(matches!(bad.encode_png(), Err(Error::ShapeMismatch { .. })));
    }
}
