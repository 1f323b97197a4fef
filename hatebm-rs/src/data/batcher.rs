//! Epoch-based shuffled batching with resumable state, and the seeded permutation
//! it is built on.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::Dataset;
use crate::{Error, Result};

/// A uniformly random permutation of `0..n`, a pure function of `(n, seed, stream)`.
///
/// Drawn with a Fisher–Yates shuffle from `ChaCha8Rng::seed_from_u64(seed)` on
/// ChaCha stream `stream`, with Lemire's unbiased bounded integers. The algorithm is
/// written out here rather than taken from `rand::seq` so that the order is part of
/// this library's contract (checkpoints store `(epoch, position)` and rely on it)
/// and cannot change with a `rand` upgrade.
pub fn permutation(n: usize, seed: u64, stream: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = below(&mut rng, i as u64 + 1) as usize;
        p.swap(i, j);
    }
    p
}

/// A uniform integer in `0..bound` (`bound >= 1`), Lemire's multiply-and-reject.
fn below(rng: &mut ChaCha8Rng, bound: u64) -> u64 {
    let mut m = u128::from(rng.next_u64()) * u128::from(bound);
    if (m as u64) < bound {
        let threshold = bound.wrapping_neg() % bound;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(bound);
        }
    }
    (m >> 64) as u64
}

/// Where a [`Batcher`] stands: the next sample is element `position` of epoch
/// `epoch`'s permutation. Store it in checkpoints; [`Batcher::resume`] continues
/// from it with exactly the batches an uninterrupted run would have drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BatcherState {
    /// The epoch (0-based): how many full passes over the data are complete.
    pub epoch: u64,
    /// The position within the epoch's permutation, `0..n`.
    pub position: usize,
}

/// Draws shuffled batches of sample indices, epoch by epoch.
///
/// Each epoch is a fresh permutation of `0..n` that depends only on
/// `(seed, epoch)` (see [`permutation`]; the epoch is the ChaCha stream), so every
/// sample is visited exactly once per epoch. Batches are consecutive windows of
/// `batch_size` indices over the endless concatenation of the epochs'
/// permutations: every batch is full, and when `n` is not a multiple of
/// `batch_size` a batch straddles two epochs (the first samples of the next
/// epoch complete it). Nothing is dropped and no sample repeats within an epoch.
#[derive(Debug, Clone)]
pub struct Batcher {
    n: usize,
    batch_size: usize,
    seed: u64,
    state: BatcherState,
    perm: Vec<usize>,
    batch: Vec<usize>,
}

impl Batcher {
    /// A batcher over `n` samples at the start of epoch 0.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `n` or `batch_size` is 0.
    pub fn new(n: usize, batch_size: usize, seed: u64) -> Result<Self> {
        Self::resume(n, batch_size, seed, BatcherState::default())
    }

    /// A batcher that continues from a saved [`state`](Self::state); `n`,
    /// `batch_size` and `seed` must be those of the saved run. A `position` equal
    /// to `n` is taken as the start of the next epoch.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `n` or `batch_size` is 0 or
    /// `state.position > n`.
    pub fn resume(n: usize, batch_size: usize, seed: u64, state: BatcherState) -> Result<Self> {
        crate::ensure!(n > 0, "cannot batch an empty data set");
        crate::ensure!(batch_size > 0, "batch size must be at least 1");
        crate::ensure!(
            state.position <= n,
            "batcher position {} is beyond the {n} samples of an epoch",
            state.position
        );
        let mut state = state;
        if state.position == n {
            state.epoch += 1;
            state.position = 0;
        }
        Ok(Batcher {
            n,
            batch_size,
            seed,
            state,
            perm: permutation(n, seed, state.epoch),
            batch: Vec::with_capacity(batch_size),
        })
    }

    /// The current state: where the next batch starts.
    pub fn state(&self) -> BatcherState {
        self.state
    }

    /// The number of samples per epoch.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Always `false`: a batcher has at least one sample.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The number of indices in every batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The seed of the permutations.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The next batch of `batch_size` sample indices (each `< n`), advancing the state.
    pub fn next_indices(&mut self) -> &[usize] {
        self.batch.clear();
        while self.batch.len() < self.batch_size {
            let take = (self.batch_size - self.batch.len()).min(self.n - self.state.position);
            let p = self.state.position;
            self.batch.extend_from_slice(&self.perm[p..p + take]);
            self.state.position += take;
            if self.state.position == self.n {
                self.state.epoch += 1;
                self.state.position = 0;
                self.perm = permutation(self.n, self.seed, self.state.epoch);
            }
        }
        &self.batch
    }

    /// Draws the next batch and copies its samples into `out`
    /// (`batch_size * dataset.sample_len()` values, shape
    /// [`dataset.batch_shape(batch_size)`](Dataset::batch_shape)); returns the indices.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `dataset` does not have `n` samples or `out`
    /// has the wrong length; the state is left unchanged then.
    pub fn next_batch(&mut self, dataset: &Dataset, out: &mut [f32]) -> Result<&[usize]> {
        if dataset.len() != self.n {
            return Err(Error::ShapeMismatch {
                what: format!("samples in `{}` for this batcher", dataset.name()),
                expected: self.n.to_string(),
                got: dataset.len().to_string(),
            });
        }
        if out.len() != self.batch_size * dataset.sample_len() {
            return Err(Error::shape(
                "batch buffer",
                &dataset.batch_shape(self.batch_size),
                &[out.len()],
            ));
        }
        self.next_indices();
        dataset.gather(&self.batch, out)?;
        Ok(&self.batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_is_a_permutation_and_seeded() {
        let p = permutation(1000, 3, 0);
        let mut s = p.clone();
        s.sort_unstable();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
        assert_eq!(p, permutation(1000, 3, 0));
        assert_ne!(p, permutation(1000, 4, 0));
        assert_ne!(p, permutation(1000, 3, 1));
        assert!(permutation(0, 1, 1).is_empty());
        assert_eq!(permutation(1, 1, 1), vec![0]);
    }

    #[test]
    fn permutation_is_pinned() {
        // The order is part of the checkpoint contract: it must never change.
        assert_eq!(permutation(10, 42, 0), PINNED_42_0);
    }
    const PINNED_42_0: [usize; 10] = [9, 7, 2, 5, 0, 1, 4, 3, 8, 6];

    #[test]
    fn permutation_is_roughly_uniform() {
        // Where does element 0 land? Each of the 4 slots ~ 1/4 of the time.
        let mut counts = [0usize; 4];
        for seed in 0..4000 {
            let p = permutation(4, seed, 0);
            counts[p.iter().position(|&x| x == 0).unwrap()] += 1;
        }
        for c in counts {
            assert!((850..1150).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn every_epoch_visits_every_sample_once() {
        for (n, b) in [(10, 3), (12, 4), (7, 7), (5, 11)] {
            let mut bt = Batcher::new(n, b, 9).unwrap();
            let mut stream = Vec::new();
            while stream.len() < 3 * n {
                let batch = bt.next_indices();
                assert_eq!(batch.len(), b);
                stream.extend_from_slice(batch);
            }
            for e in 0..3 {
                let mut epoch = stream[e * n..(e + 1) * n].to_vec();
                assert_eq!(epoch, permutation(n, 9, e as u64), "n={n} b={b} epoch {e}");
                epoch.sort_unstable();
                assert_eq!(epoch, (0..n).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn deterministic_and_resumable() {
        let mut a = Batcher::new(23, 5, 77).unwrap();
        let mut b = Batcher::new(23, 5, 77).unwrap();
        let mut saved = None;
        let mut tail_a = Vec::new();
        for step in 0..20 {
            let x = a.next_indices().to_vec();
            assert_eq!(x, b.next_indices());
            if step == 6 {
                saved = Some(a.state());
            }
            if step > 6 {
                tail_a.push(x);
            }
        }
        let st = saved.unwrap();
        assert_eq!(st.epoch, 1); // 35 indices drawn, 23 per epoch
        assert_eq!(st.position, 35 - 23);
        let mut r = Batcher::resume(23, 5, 77, st).unwrap();
        let tail_r: Vec<Vec<usize>> = (0..13).map(|_| r.next_indices().to_vec()).collect();
        assert_eq!(tail_a, tail_r);
        let json = serde_json::to_string(&st).unwrap();
        assert_eq!(serde_json::from_str::<BatcherState>(&json).unwrap(), st);
    }

    #[test]
    fn resume_at_epoch_end_and_errors() {
        let r = Batcher::resume(
            4,
            2,
            0,
            BatcherState {
                epoch: 2,
                position: 4,
            },
        )
        .unwrap();
        assert_eq!(
            r.state(),
            BatcherState {
                epoch: 3,
                position: 0
            }
        );
        assert!(
            Batcher::resume(
                4,
                2,
                0,
                BatcherState {
                    epoch: 0,
                    position: 5
                }
            )
            .is_err()
        );
        assert!(Batcher::new(0, 2, 0).is_err());
        assert!(Batcher::new(3, 0, 0).is_err());
    }

    #[test]
    fn next_batch_gathers() {
        let data: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let ds = Dataset::from_f32("t", data, vec![1], None).unwrap();
        let mut bt = Batcher::new(6, 4, 1).unwrap();
        let mut out = vec![0.0; 4];
        let idx = bt.next_batch(&ds, &mut out).unwrap().to_vec();
        assert_eq!(out, idx.iter().map(|&i| i as f32).collect::<Vec<_>>());
        let before = bt.state();
        assert!(bt.next_batch(&ds, &mut [0.0; 3]).is_err());
        assert_eq!(bt.state(), before);
        let other = Dataset::from_f32("o", vec![0.0; 5], vec![1], None).unwrap();
        assert!(bt.next_batch(&other, &mut out).is_err());
    }
}
