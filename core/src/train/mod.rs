//! Training: the [`Trainer`] state, one iteration of every [`Mode`], and
//! sampling from a trained model.
//!
//! See `docs/training.md` for each mode's algorithm, knobs and the paper's values.

pub mod autoencoder;
pub mod config;
mod generator_state;
pub mod modes;
pub mod sample;
mod shards;
pub mod state;
pub mod trainer;

pub use autoencoder::{Autoencoder, AutoencoderConfig};
pub use config::{GenUpdate, MAX_BANK, MAX_BATCH, Mode, NoiseInit, TrainConfig};
pub use modes::ReconEnergy;
pub use sample::SampleOptions;
pub use shards::check_shards;
pub use state::{Net, NetworksState, TrainerState, check_blocks, mode_blocks};
pub use trainer::{StepStats, StepTensors, Trainer, TrainerSettings};
