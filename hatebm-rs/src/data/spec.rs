//! [`DataSpec`]: which data set to load, as written in a configuration file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Dataset, ToyKind, bundled_mnist5k_dir, cifar, idx, png_folder};
use crate::Result;

/// Which data set to load; the `[data]` table of a configuration file.
///
/// Tagged by `kind` (snake case); unknown keys are rejected. Examples (TOML):
///
/// ```toml
/// [data]
/// kind = "digits"                      # bundled 8×8 digits, [1, 8, 8]
/// ```
/// ```toml
/// [data]
/// kind = "mnist5k"                     # bundled copy, 28×28 padded to 32×32
/// pad_to_32 = true
/// ```
/// ```toml
/// [data]
/// kind = "toy"
/// name = "ring8"
/// n = 50000
/// seed = 1
/// ```
///
/// Relative paths are taken relative to the working directory; a configuration
/// loader should first call [`resolve_paths`](Self::resolve_paths) with the
/// configuration file's folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSpec {
    /// The embedded 8×8 digits ([`Dataset::digits`]). (A struct variant without
    /// fields, so that `deny_unknown_fields` also rejects stray keys here.)
    Digits {},
    /// MNIST-5k ([`Dataset::mnist5k`]).
    Mnist5k {
        /// The folder with the two `.npy` files; default: the repository's bundled
        /// copy ([`bundled_mnist5k_dir`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<PathBuf>,
        /// Pad 28×28 to 32×32 with the background value −1 (for the 32×32 networks).
        #[serde(default)]
        pad_to_32: bool,
    },
    /// A `.npy` array ([`Dataset::load_npy`]): `[N, D]`, `[N, H, W]` or `[N, C, H, W]`.
    Npy {
        /// The array file.
        path: PathBuf,
        /// An optional 1-d label array.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        labels: Option<PathBuf>,
        /// Scale `x / scale_max * 2 - 1`; default 255 for `uint8` data, none for floats.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scale_max: Option<f32>,
    },
    /// MNIST-style IDX files, uncompressed ([`idx::load_idx`]).
    Idx {
        /// The image file (`*-images-idx3-ubyte`).
        images: PathBuf,
        /// The label file (`*-labels-idx1-ubyte`), optional.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        labels: Option<PathBuf>,
    },
    /// CIFAR-10 binary batches, concatenated in order ([`cifar::load_cifar10`]).
    Cifar10 {
        /// The `data_batch_*.bin` files.
        files: Vec<PathBuf>,
    },
    /// Every `.png` in a folder ([`png_folder::load_png_folder`]).
    PngFolder {
        /// The folder.
        path: PathBuf,
        /// 1 or 3; default: 1 when all images are gray, else 3.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channels: Option<usize>,
    },
    /// Samples of a 2-D toy distribution with its default parameters
    /// ([`ToyKind::distribution`]).
    Toy {
        /// `ring8`, `grid25`, `two_moons`, `swiss_roll` or `checkerboard`.
        name: ToyKind,
        /// Number of samples (default 10 000).
        #[serde(default = "default_toy_n")]
        n: usize,
        /// Sampling seed (default 0).
        #[serde(default)]
        seed: u64,
    },
}

fn default_toy_n() -> usize {
    10_000
}

impl Default for DataSpec {
    /// `DataSpec::Digits {}`, the bundled default.
    fn default() -> Self {
        DataSpec::Digits {}
    }
}

impl DataSpec {
    /// The value range `[lo, hi]` the loader maps the data into, when it has
    /// one by construction: every image loader scales to `[-1, 1]` (`npy` only
    /// with `scale_max`); `None` for float `npy` arrays and the 2-D toys, whose
    /// samples are not bounded. The range samples are clamped to on save
    /// (`sample.clamp`).
    pub fn value_range(&self) -> Option<(f32, f32)> {
        match self {
            DataSpec::Npy {
                scale_max: None, ..
            }
            | DataSpec::Toy { .. } => None,
            _ => Some((-1.0, 1.0)),
        }
    }

    /// The image shape `[C, H, W]` this data set is known to hold without
    /// loading it (the bundled digits and MNIST-5k), if any.
    pub fn known_image_dims(&self) -> Option<[usize; 3]> {
        match self {
            DataSpec::Digits {} => Some([1, 8, 8]),
            DataSpec::Mnist5k { pad_to_32, .. } => {
                Some(if *pad_to_32 { [1, 32, 32] } else { [1, 28, 28] })
            }
            _ => None,
        }
    }

    /// Loads the data set.
    ///
    /// # Errors
    /// Whatever the loader returns: [`Error::Io`](crate::Error::Io) for missing
    /// files, [`Error::Format`](crate::Error::Format) naming a malformed file,
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) for bad parameters.
    pub fn load(&self) -> Result<Dataset> {
        match self {
            DataSpec::Digits {} => Dataset::digits(),
            DataSpec::Mnist5k { path, pad_to_32 } => {
                let dir = match path {
                    Some(p) => p.clone(),
                    None => bundled_mnist5k_dir()?,
                };
                let d = Dataset::mnist5k(dir)?;
                if *pad_to_32 { d.pad(2, -1.0) } else { Ok(d) }
            }
            DataSpec::Npy {
                path,
                labels,
                scale_max,
            } => Dataset::load_npy(path, labels.as_deref(), *scale_max),
            DataSpec::Idx { images, labels } => idx::load_idx(images, labels.as_deref()),
            DataSpec::Cifar10 { files } => cifar::load_cifar10(files),
            DataSpec::PngFolder { path, channels } => png_folder::load_png_folder(path, *channels),
            DataSpec::Toy { name, n, seed } => name.distribution().dataset(*n, *seed),
        }
    }

    /// Makes every relative path absolute by joining it onto `base` (usually the
    /// folder of the configuration file); absolute paths are left alone.
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        match self {
            DataSpec::Digits {} | DataSpec::Toy { .. } => {}
            DataSpec::Mnist5k { path, .. } => path.iter_mut().for_each(fix),
            DataSpec::Npy { path, labels, .. } => {
                fix(path);
                labels.iter_mut().for_each(fix);
            }
            DataSpec::Idx { images, labels } => {
                fix(images);
                labels.iter_mut().for_each(fix);
            }
            DataSpec::Cifar10 { files } => files.iter_mut().for_each(fix),
            DataSpec::PngFolder { path, .. } => fix(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        data: DataSpec,
    }

    fn parse(s: &str) -> std::result::Result<DataSpec, String> {
        toml::from_str::<Cfg>(s)
            .map(|c| c.data)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn parses_every_kind_from_toml() {
        assert_eq!(
            parse("[data]\nkind = \"digits\"").unwrap(),
            DataSpec::Digits {}
        );
        assert_eq!(
            parse("[data]\nkind = \"mnist5k\"\npad_to_32 = true").unwrap(),
            DataSpec::Mnist5k {
                path: None,
                pad_to_32: true
            }
        );
        assert_eq!(
            parse("[data]\nkind = \"toy\"\nname = \"two_moons\"\nn = 5").unwrap(),
            DataSpec::Toy {
                name: ToyKind::TwoMoons,
                n: 5,
                seed: 0
            }
        );
        assert_eq!(
            parse("[data]\nkind = \"npy\"\npath = \"x.npy\"\nscale_max = 16.0").unwrap(),
            DataSpec::Npy {
                path: "x.npy".into(),
                labels: None,
                scale_max: Some(16.0)
            }
        );
        assert_eq!(
            parse("[data]\nkind = \"idx\"\nimages = \"i\"\nlabels = \"l\"").unwrap(),
            DataSpec::Idx {
                images: "i".into(),
                labels: Some("l".into())
            }
        );
        assert_eq!(
            parse("[data]\nkind = \"cifar10\"\nfiles = [\"a.bin\", \"b.bin\"]").unwrap(),
            DataSpec::Cifar10 {
                files: vec!["a.bin".into(), "b.bin".into()]
            }
        );
        assert_eq!(
            parse("[data]\nkind = \"png_folder\"\npath = \"imgs\"\nchannels = 3").unwrap(),
            DataSpec::PngFolder {
                path: "imgs".into(),
                channels: Some(3)
            }
        );
    }

    #[test]
    fn rejects_unknown_kinds_fields_and_toys() {
        assert!(parse("[data]\nkind = \"imagenet\"").is_err());
        let e = parse("[data]\nkind = \"mnist5k\"\npad_to32 = true").unwrap_err();
        assert!(e.contains("pad_to32"), "{e}");
        assert!(parse("[data]\nkind = \"digits\"\npath = \"x\"").is_err());
        assert!(parse("[data]\nkind = \"toy\"\nname = \"ring9\"").is_err());
        assert!(parse("[data]\nkind = \"npy\"").is_err());
    }

    #[test]
    fn roundtrips_through_toml() {
        for spec in [
            DataSpec::Digits {},
            DataSpec::Mnist5k {
                path: Some("m".into()),
                pad_to_32: false,
            },
            DataSpec::Toy {
                name: ToyKind::Grid25,
                n: 7,
                seed: 3,
            },
            DataSpec::PngFolder {
                path: "p".into(),
                channels: None,
            },
        ] {
            #[derive(Serialize)]
            struct Out<'a> {
                data: &'a DataSpec,
            }
            let text = toml::to_string(&Out { data: &spec }).unwrap();
            assert_eq!(parse(&text).unwrap(), spec, "{text}");
        }
    }

    #[test]
    fn loads_and_resolves() {
        let d = DataSpec::Toy {
            name: ToyKind::Ring8,
            n: 64,
            seed: 1,
        }
        .load()
        .unwrap();
        assert_eq!((d.len(), d.sample_shape()), (64, &[2][..]));
        assert_eq!(DataSpec::default().load().unwrap().len(), 1797);
        let m = DataSpec::Mnist5k {
            path: None,
            pad_to_32: true,
        }
        .load()
        .unwrap();
        assert_eq!(m.sample_shape(), &[1, 32, 32]);
        let mut s = DataSpec::Cifar10 {
            files: vec!["a.bin".into(), "/abs/b.bin".into()],
        };
        s.resolve_paths(Path::new("/cfg"));
        assert_eq!(
            s,
            DataSpec::Cifar10 {
                files: vec!["/cfg/a.bin".into(), "/abs/b.bin".into()]
            }
        );
    }
}
