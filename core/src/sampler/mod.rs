//! Samplers: [`langevin`] dynamics over residual and latent blocks, and the
//! exact or kinetic alternatives of [`mh`] (MALA, HMC, BAOAB, the shadow-MH
//! monitor).

pub mod ais;
pub mod langevin;
pub mod mh;
pub mod probit;

pub use ais::{AisConfig, AisResult, ais};
pub use langevin::{
    ChainKey, Chains, HISTORY_ROWS, LangevinConfig, LangevinSampler, LangevinStats, MAX_LEAPFROG,
    MAX_STEPS, MIN_MASS_WARMUP, Method, check_steps,
};
pub use mh::MhStats;
