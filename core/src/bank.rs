//! The persistent bank of `(z, x)` pairs (Algorithm 1) and its images-only
//! variant (the persistent-chain baseline).
//!
//! Capacity is fixed at construction. Each iteration draws `B` *distinct* slots
//! (the first `B` entries of a random permutation, from the
//! [`Stream::BankSlots`] stream keyed by `[iteration, shard]`), gathers their
//! pairs, and later overwrites those same slots. Several banks with different
//! `shard` ids draw independent slots (for data-parallel use).

use crate::backend::{Backend, shape};
use crate::model::Generator;
use crate::noise::{NoiseKey, NoiseSource, Stream};
use crate::{Error, Result};

/// A bank of latents and images (latents absent for the images-only bank).
#[derive(Clone, Debug)]
pub struct Bank<B: Backend> {
    /// Latents `[N, ...latent]` (`None` for an images-only bank).
    pub z: Option<B::Tensor>,
    /// Images `[N, ...sample]`.
    pub x: B::Tensor,
    /// Shard id (enters the slot-draw key).
    pub shard: u64,
    capacity: usize,
}

impl<B: Backend> Bank<B> {
    /// A bank of `capacity` pairs with `z ~ N(0, I)` (stream
    /// [`Stream::BankInit`], counter `[0, shard]`, rows `0..capacity`) and
    /// `x = G(z)`, computed in batches of `batch`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero capacity or batch; model/backend errors.
    pub fn init_from_generator(
        be: &B,
        generator: &dyn Generator<B>,
        capacity: usize,
        batch: usize,
        seed: u64,
        shard: u64,
        noise: &mut dyn NoiseSource<B>,
    ) -> Result<Self> {
        if capacity == 0 || batch == 0 {
            return Err(Error::InvalidArgument(
                "bank capacity and batch must be positive".into(),
            ));
        }
        let mut z = be.zeros(&shape::batched(capacity, generator.latent_shape()))?;
        noise.normal(
            be,
            NoiseKey::new(seed, Stream::BankInit, [0, shard]),
            &mut z,
        )?;
        let mut parts = Vec::new();
        let mut start = 0;
        while start < capacity {
            let n = batch.min(capacity - start);
            parts.push(generator.forward(&be.slice_rows(&z, start, n)?)?);
            start += n;
        }
        let refs: Vec<&B::Tensor> = parts.iter().collect();
        let x = be.concat_rows(&refs)?;
        Ok(Bank {
            z: Some(z),
            x,
            shard,
            capacity,
        })
    }

    /// A bank from existing tensors (e.g. a checkpoint).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `z` and `x` have different numbers of rows.
    pub fn from_tensors(be: &B, z: Option<B::Tensor>, x: B::Tensor, shard: u64) -> Result<Self> {
        let capacity = be.shape(&x).first().copied().unwrap_or(0);
        if let Some(z) = &z {
            let zn = be.shape(z).first().copied().unwrap_or(0);
            if zn != capacity {
                return Err(Error::shape("bank latents (rows)", &[capacity], &[zn]));
            }
        }
        if capacity == 0 {
            return Err(Error::InvalidArgument(
                "bank capacity must be positive".into(),
            ));
        }
        Ok(Bank {
            z,
            x,
            shard,
            capacity,
        })
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Draws `count` distinct slots for `iteration`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `count` exceeds the capacity.
    pub fn draw_slots(
        &self,
        noise: &mut dyn NoiseSource<B>,
        seed: u64,
        iteration: u64,
        count: usize,
    ) -> Result<Vec<usize>> {
        noise.unique_indices(
            NoiseKey::new(seed, Stream::BankSlots, [iteration, self.shard]),
            count,
            self.capacity,
        )
    }

    /// The pairs in `slots`: `(z[slots], x[slots])`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for out-of-range slots.
    pub fn gather(&self, be: &B, slots: &[usize]) -> Result<(Option<B::Tensor>, B::Tensor)> {
        let z = self
            .z
            .as_ref()
            .map(|z| be.gather_rows(z, slots))
            .transpose()?;
        Ok((z, be.gather_rows(&self.x, slots)?))
    }

    /// Overwrites `slots` with new pairs (`z` required iff the bank has latents).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for repeated or out-of-range slots or a latent
    /// mismatch; [`Error::ShapeMismatch`] for wrong row shapes.
    pub fn overwrite(
        &mut self,
        be: &B,
        slots: &[usize],
        z: Option<&B::Tensor>,
        x: &B::Tensor,
    ) -> Result<()> {
        // Validate everything before writing anything, so a bad call leaves the bank intact.
        let rows = |t: &B::Tensor| {
            let mut s = be.shape(t);
            s[0] = slots.len();
            s
        };
        if be.shape(x) != rows(&self.x) {
            return Err(Error::shape(
                "bank overwrite images",
                &rows(&self.x),
                &be.shape(x),
            ));
        }
        if let (Some(bz), Some(z)) = (self.z.as_ref(), z)
            && be.shape(z) != rows(bz)
        {
            return Err(Error::shape(
                "bank overwrite latents",
                &rows(bz),
                &be.shape(z),
            ));
        }
        match (self.z.as_mut(), z) {
            (Some(bz), Some(z)) => be.scatter_rows(bz, slots, z)?,
            (None, None) => {}
            _ => {
                return Err(Error::InvalidArgument(
                    "bank overwrite: latents given iff the bank stores latents".into(),
                ));
            }
        }
        be.scatter_rows(&mut self.x, slots, x)
    }
}
