//! The built-in networks on the CPU backend.

mod common;
mod ebm;
mod ebm_blocks;
mod encoder;
mod generator;
mod mlp;
mod mlp_rows;

pub use ebm::CpuSnganEnergy;
pub use encoder::CpuEncoder;
pub use generator::CpuConvGenerator;
pub use mlp::{CpuMlpEnergy, CpuMlpGenerator};

use super::CpuBackend;
use crate::Result;
use crate::model::{Energy, Generator};
use crate::nets::arch::{EncoderArch, EnergyArch, GeneratorArch};

/// Builds the CPU energy network for `arch`, initialised from `seed`.
///
/// # Errors
/// [`crate::Error::Config`] for an invalid architecture.
pub fn build_energy(arch: &EnergyArch, seed: u64) -> Result<Box<dyn Energy<CpuBackend>>> {
    Ok(match arch {
        EnergyArch::Mlp { .. } => Box::new(CpuMlpEnergy::new(arch, seed)?),
        EnergyArch::Sngan { .. } => Box::new(CpuSnganEnergy::new(arch, seed)?),
    })
}

/// Builds the CPU generator network for `arch`, initialised from `seed`.
///
/// # Errors
/// [`crate::Error::Config`] for an invalid architecture.
pub fn build_generator(arch: &GeneratorArch, seed: u64) -> Result<Box<dyn Generator<CpuBackend>>> {
    Ok(match arch {
        GeneratorArch::Mlp { .. } => Box::new(CpuMlpGenerator::new(arch, seed)?),
        GeneratorArch::Sngan { .. } | GeneratorArch::Decoder32 { .. } => {
            Box::new(CpuConvGenerator::new(arch, seed)?)
        }
    })
}

impl crate::nets::BuildNets for CpuBackend {
    fn build_energy(&self, arch: &EnergyArch, seed: u64) -> Result<Box<dyn Energy<CpuBackend>>> {
        build_energy(arch, seed)
    }

    fn build_generator(
        &self,
        arch: &GeneratorArch,
        seed: u64,
    ) -> Result<Box<dyn Generator<CpuBackend>>> {
        build_generator(arch, seed)
    }

    fn build_encoder(
        &self,
        arch: &EncoderArch,
        seed: u64,
    ) -> Result<Box<dyn Generator<CpuBackend>>> {
        Ok(Box::new(CpuEncoder::new(arch, seed)?))
    }
}
