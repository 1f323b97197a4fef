//! Backend-independent network descriptions ([`arch`]).

pub mod arch;

pub use arch::{EncoderArch, EnergyArch, GeneratorArch};

use crate::Result;
use crate::backend::Backend;
use crate::model::{Energy, Generator};

/// A backend that can build the built-in networks of [`arch`].
///
/// Algorithms and trainers are generic over `B: BuildNets`, so the same config
/// builds the same network (same names, shapes and initial weights) on every
/// backend.
pub trait BuildNets: Backend {
    /// Builds the energy network `arch` with weights initialised from `seed`.
    ///
    /// # Errors
    /// [`crate::Error::Config`] for an invalid architecture; backend errors.
    fn build_energy(&self, arch: &EnergyArch, seed: u64) -> Result<Box<dyn Energy<Self>>>;

    /// Builds the generator network `arch` with weights initialised from `seed`.
    ///
    /// # Errors
    /// [`crate::Error::Config`] for an invalid architecture; backend errors.
    fn build_generator(&self, arch: &GeneratorArch, seed: u64) -> Result<Box<dyn Generator<Self>>>;

    /// Builds the autoencoder's encoder (a [`Generator`] from images to codes).
    /// Backends without it return [`crate::Error::BackendUnavailable`]; the
    /// autoencoder pretraining then runs on the CPU backend.
    ///
    /// # Errors
    /// [`crate::Error::Config`] for an invalid architecture; backend errors.
    fn build_encoder(&self, arch: &EncoderArch, seed: u64) -> Result<Box<dyn Generator<Self>>> {
        let _ = (arch, seed);
        Err(crate::Error::BackendUnavailable {
            name: format!("{} encoder", self.name()),
            hint: "the autoencoder encoder is implemented on the CPU backend".into(),
        })
    }
}
