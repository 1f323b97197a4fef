//! Samplers: [`langevin`] dynamics over residual and latent blocks.

pub mod langevin;

pub use langevin::{
    ChainKey, Chains, HISTORY_ROWS, LangevinConfig, LangevinSampler, LangevinStats, MAX_STEPS,
    check_steps,
};
