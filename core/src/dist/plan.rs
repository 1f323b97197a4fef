//! [`DistConfig`] (the `[dist]` settings of a run) and [`ShardPlan`] (which
//! rows and shards a rank owns).

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The largest number of shards accepted.
pub const MAX_SHARDS: usize = 1 << 16;

/// How the ranks' gradient partials are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduce {
    /// Gather every shard's partial and sum them in shard order on every rank:
    /// the result is bitwise independent of the number of ranks (the default).
    #[default]
    Ordered,
    /// Each rank sums its own shards, then the communicator's all-reduce adds
    /// the ranks' sums: less traffic on many ranks, equal to the ordered
    /// result only to float rounding (the summation order depends on the
    /// number of ranks and on the MPI library).
    AllReduce,
}

/// Data-parallel settings (`[dist]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistConfig {
    /// Number of shards S of the batch and of the bank (1 = one micro-batch,
    /// the single-process behaviour). The batch size and bank sizes must be
    /// multiples of S, and a run can use any number of ranks that divides S.
    /// Fixed for the life of a run (a checkpoint refuses another S).
    pub shards: usize,
    /// How gradient partials are combined.
    pub reduce: Reduce,
    /// Every this many iterations the ranks compare a checksum of their
    /// replicated state (weights, optimiser moments) and stop on a mismatch
    /// (0 = never).
    pub check_every: u64,
}

impl Default for DistConfig {
    fn default() -> Self {
        DistConfig {
            shards: 1,
            reduce: Reduce::Ordered,
            check_every: 100,
        }
    }
}

impl DistConfig {
    /// Checks ranges.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key.
    pub fn validate(&self) -> Result<()> {
        if self.shards == 0 || self.shards > MAX_SHARDS {
            return Err(Error::Config(format!(
                "dist.shards must be in 1..={MAX_SHARDS}, got {}",
                self.shards
            )));
        }
        Ok(())
    }
}

/// Which shards (and so which global rows of a batch) a rank owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShardPlan {
    shards: usize,
    rank: usize,
    ranks: usize,
}

impl ShardPlan {
    /// The plan of rank `rank` of `ranks` over `shards` shards.
    ///
    /// # Errors
    /// [`Error::Config`] if `ranks` does not divide `shards` or `rank` is out of range.
    pub fn new(shards: usize, rank: usize, ranks: usize) -> Result<Self> {
        if ranks == 0 || rank >= ranks {
            return Err(Error::Config(format!(
                "rank {rank} of {ranks} is not a rank"
            )));
        }
        if shards == 0 || !shards.is_multiple_of(ranks) {
            return Err(Error::Config(format!(
                "{ranks} processes cannot share dist.shards = {shards} shards: the number of processes must divide it"
            )));
        }
        Ok(ShardPlan {
            shards,
            rank,
            ranks,
        })
    }

    /// The number of shards S.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks R.
    pub fn ranks(&self) -> usize {
        self.ranks
    }

    /// The shards this rank owns (global shard ids).
    pub fn local_shards(&self) -> Range<usize> {
        let per = self.shards / self.ranks;
        self.rank * per..(self.rank + 1) * per
    }

    /// Rows of shard `s` in a global batch (or bank) of `n` rows (`n` a multiple of S).
    pub fn shard_rows(&self, s: usize, n: usize) -> Range<usize> {
        let per = n / self.shards;
        s * per..(s + 1) * per
    }

    /// The rows of a global batch (or bank) of `n` rows this rank owns.
    pub fn local_rows(&self, n: usize) -> Range<usize> {
        let l = self.local_shards();
        self.shard_rows(l.start, n).start..self.shard_rows(l.end - 1, n).end
    }

    /// Checks that `n` rows (`what`, a config key) split into the shards.
    ///
    /// # Errors
    /// [`Error::Config`].
    pub fn check_divides(&self, what: &str, n: usize) -> Result<()> {
        if n.is_multiple_of(self.shards) && n >= self.shards {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "{what} = {n} must be a positive multiple of dist.shards = {}",
                self.shards
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_own_contiguous_shards_that_cover_the_batch() {
        for (s, r) in [(1, 1), (4, 1), (4, 2), (4, 4), (6, 3)] {
            let mut seen = Vec::new();
            for rank in 0..r {
                let p = ShardPlan::new(s, rank, r).unwrap();
                seen.extend(p.local_rows(12 * s));
                assert_eq!(p.local_shards().len(), s / r);
            }
            assert_eq!(seen, (0..12 * s).collect::<Vec<_>>());
        }
        assert!(ShardPlan::new(4, 0, 3).is_err());
        assert!(ShardPlan::new(4, 2, 2).is_err());
        let p = ShardPlan::new(4, 1, 2).unwrap();
        assert!(p.check_divides("train.batch_size", 10).is_err());
        assert!(p.check_divides("train.batch_size", 12).is_ok());
        assert!(
            DistConfig {
                shards: 0,
                ..DistConfig::default()
            }
            .validate()
            .is_err()
        );
    }
}
