//! Data-parallel training: the core's [`Communicator`] and shard plan (see
//! [`hatebm_core::dist`] for the determinism contract), plus the engines that
//! live in the facade: MPI (feature `mpi`) and the start-up checks every rank
//! runs before training.

pub use hatebm_core::dist::*;

#[cfg(feature = "mpi")]
mod mpi;
#[cfg(feature = "mpi")]
pub use mpi::MpiComm;

use crate::{Error, Result};

/// This process's rank and the number of processes as an MPI launcher
/// (OpenMPI's `mpirun`, MPICH's Hydra, Slurm's `srun` with PMI/PMIx) set
/// them in the environment, or `None` when not started by one. Read before
/// MPI is initialised (for log prefixes, and to refuse a build without MPI).
pub fn launcher_rank_and_size() -> Option<(usize, usize)> {
    let get = |keys: &[&str]| {
        keys.iter()
            .filter_map(|k| std::env::var(k).ok())
            .find_map(|v| v.trim().parse::<usize>().ok())
    };
    let size = get(&[
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_SIZE",
        "SLURM_NTASKS",
    ])?;
    let rank = get(&[
        "OMPI_COMM_WORLD_RANK",
        "PMI_RANK",
        "PMIX_RANK",
        "SLURM_PROCID",
    ])
    .unwrap_or(0);
    Some((rank, size))
}

/// Refuses to start a data-parallel run whose ranks differ in library
/// version, configuration (its hash, see `Run::config_hash`) or backend:
/// every rank gathers every rank's fingerprint and compares it with rank 0's.
/// A no-op in a single process. Collective.
///
/// # Errors
/// [`Error::Distributed`] naming the ranks that differ and how.
pub fn check_same_run(comm: &dyn Communicator, config_hash: &str) -> Result<()> {
    if comm.size() == 1 {
        return Ok(());
    }
    let mine = format!(
        "libhatebm {} config {config_hash}",
        env!("CARGO_PKG_VERSION")
    );
    let all = all_gather_bytes(comm, mine.as_bytes())?;
    let bad: Vec<String> = all
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, f)| *f != &all[0])
        .map(|(r, f)| format!("rank {r}: {}", String::from_utf8_lossy(f)))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::Distributed(format!(
            "the ranks do not run the same thing (rank 0: {}; {}): start every rank with the same library and configuration",
            String::from_utf8_lossy(&all[0]),
            bad.join("; ")
        )))
    }
}
