//! Data-parallel training: the core's [`Communicator`] and shard plan (see
//! [`hatebm_core::dist`] for the determinism contract), plus the engines that
//! live in the facade: MPI (feature `mpi`) and the start-up checks every rank
//! runs before training.

pub use hatebm_core::dist::*;
