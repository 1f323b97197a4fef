//! Data sets: file readers, the in-memory [`Dataset`], shuffled batching, 2-D toy
//! distributions and the bundled data.
//!
//! Everything is loaded into memory as `f32` in the layout the algorithms use:
//! images as `[C, H, W]` samples (channel-first, C order) scaled to `[-1, 1]`, toy data
//! as `[2]` samples in their natural units.
//!
//! | source | function | notes |
//! |---|---|---|
//! | bundled 8×8 digits | [`Dataset::digits`] | embedded in the library, `[1, 8, 8]` |
//! | bundled MNIST-5k | [`Dataset::mnist5k`], [`bundled_mnist5k_dir`] | `[1, 28, 28]`, sorted by label |
//! | NumPy `.npy` | [`npy::read_npy`], [`npy::write_npy_f32`] | `|u1`, `<f4`, `<f8`, C order |
//! | MNIST IDX | [`idx::load_idx`] | uncompressed only |
//! | CIFAR-10 binary | [`cifar::load_cifar10`] | `data_batch_*.bin` |
//! | folder of PNGs | [`png_folder::load_png_folder`] | 8/16-bit, gray/RGB(A) |
//! | 2-D toys | [`ToyDistribution`] | ring, grid, moons, swiss roll, checkerboard |
//!
//! A configuration file names its data set with a [`DataSpec`]; a training loop draws
//! batches with a [`Batcher`], whose `(epoch, position)` [`BatcherState`] goes into
//! checkpoints so that a resumed run sees the same batches.
//!
//! ```
//! use hatebm_rs::data::{Batcher, DataSpec, Dataset};
//!
//! let spec: DataSpec = toml::from_str(r#"kind = "digits""#).unwrap();
//! let digits: Dataset = spec.load()?; // 1797 samples of [1, 8, 8] in [-1, 1]
//! let (train, heldout) = digits.split(0.1, 0)?;
//! let mut batcher = Batcher::new(train.len(), 64, 1)?;
//! let mut batch = vec![0.0f32; 64 * train.sample_len()]; // [64, 1, 8, 8]
//! batcher.next_batch(&train, &mut batch)?;
//! let resume_from = batcher.state(); // store in the checkpoint
//! assert_eq!((resume_from.epoch, resume_from.position), (0, 64));
//! # assert_eq!(heldout.len(), 180);
//! # Ok::<(), hatebm_rs::Error>(())
//! ```

mod batcher;
pub mod cifar;
mod dataset;
mod embedded;
pub mod idx;
pub mod npy;
mod npy_dataset;
pub mod png_folder;
mod spec;
#[cfg(test)]
pub(crate) mod testutil;
mod toy;

pub(crate) use crate::fsutil::write_atomic;
pub use batcher::{Batcher, BatcherState, permutation};
pub use dataset::Dataset;
pub use embedded::{DIGITS_IMAGES_NPY, DIGITS_LABELS_NPY, MNIST5K_FILES, bundled_mnist5k_dir};
pub use npy::{NpyArray, NpyData};
pub use spec::DataSpec;
pub use toy::{ToyDistribution, ToyKind};
