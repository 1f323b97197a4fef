//! Forward pass of the MLP energy / generator: `fc1 → LeakyReLU(0.2) → … →
//! fcL` (no activation after the last layer).

use hatebm_core::Result;
use hatebm_core::nets::arch::LEAKY_SLOPE;
use hatebm_core::params::ParamSet;
use tch::Tensor;

use super::layers::{Bound, idx, linear};
use crate::tensor::{TchResultExt, TchTensor};
use crate::{TchBackend, TchDevice};

/// The MLP body shared by the energy and the generator.
pub(crate) struct Mlp {
    /// `(weight, bias)` per layer.
    layers: Vec<(usize, usize)>,
    /// The LeakyReLU slope as a 1-element PReLU weight on the device:
    /// `prelu(x, a) = x` for `x > 0`, `a·x` otherwise — the CPU backend's
    /// `if v > 0 { v } else { v·slope }` exactly (libtorch's `leaky_relu`
    /// has no slope argument in tch).
    slope: TchTensor,
}

impl Mlp {
    pub fn new(n_layers: usize, params: &ParamSet<TchBackend>, device: TchDevice) -> Result<Self> {
        let layers = (1..=n_layers)
            .map(|i| {
                Ok((
                    idx(params, &format!("fc{i}.weight"))?,
                    idx(params, &format!("fc{i}.bias"))?,
                ))
            })
            .collect::<Result<_>>()?;
        let slope = Tensor::f_from_slice(&[LEAKY_SLOPE])
            .tch()?
            .f_to(device.into())
            .tch()?;
        Ok(Mlp {
            layers,
            slope: TchTensor::wrap(slope),
        })
    }

    /// `[B, d_0] → [B, d_L]`.
    pub fn forward(&self, p: &Bound, x: &Tensor) -> Result<Tensor> {
        let n = self.layers.len();
        let mut h = x.shallow_clone();
        for (i, &(w, b)) in self.layers.iter().enumerate() {
            h = linear(p, w, Some(b), &h)?;
            if i + 1 < n {
                h = h.f_prelu(&self.slope.inner).tch()?;
            }
        }
        Ok(h)
    }
}
