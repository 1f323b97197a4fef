//! Samplers: [`langevin`] dynamics over residual and latent blocks.

pub mod langevin;

pub use langevin::{ChainKey, Chains, LangevinConfig, LangevinSampler, LangevinStats};
