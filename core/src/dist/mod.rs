//! Data-parallel training: the [`Communicator`] a trainer uses to exchange
//! partial results with the other processes of a run, its single-process and
//! in-process (threads) implementations, and the [`ShardPlan`] that says which
//! rows and bank shards each rank owns.
//!
//! # The determinism contract
//! A run has a fixed number of shards `S` ([`DistConfig::shards`]). The global
//! batch of `B` chains is cut into `S` contiguous shards of `B/S` rows; rank
//! `r` of `R` (R divides S) owns shards `r·S/R .. (r+1)·S/R`. Every random draw
//! is addressed by the *global* row number, so a shard's chains, data jitter
//! and bank slots are the ones a single process would draw. Everything that
//! couples rows is computed **per shard** (a shard is a micro-batch: its
//! Langevin chains, its EBM and generator gradient partials), and the partials
//! of all shards are summed **in shard order** on every rank, then clipped and
//! applied by identical optimiser steps. A single process with `S` shards does
//! exactly the same arithmetic, so weights, optimiser state, bank and losses
//! are bitwise independent of `R` (for a backend whose kernels are
//! deterministic; the CPU backend's are). With [`Reduce::AllReduce`] each rank
//! sums its own shards and the ranks' sums are added by the communicator's
//! all-reduce: faster on many ranks, equal only to float rounding.
//!
//! `S = 1` (the default) is today's single-process run, unchanged.

mod comm;
mod plan;
mod thread;

pub use comm::{
    Communicator, SingleProcess, agree, all_gather_bytes, all_gather_f32, check_gather_len,
};
pub use plan::{DistConfig, Reduce, ShardPlan};
pub use thread::ThreadComm;
