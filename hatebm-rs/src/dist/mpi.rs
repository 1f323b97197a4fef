//! [`MpiComm`]: a [`Communicator`] over MPI (feature `mpi`, through the
//! `mpi` crate). The library duplicates whatever communicator it is given, so
//! its collectives never mix with the caller's, and it finalises MPI only if
//! it initialised it itself.
//!
//! Errors: rsmpi leaves MPI's default error handler (`MPI_ERRORS_ARE_FATAL`)
//! in place, so a failed collective (a peer that died, a broken link) aborts
//! this process, and `mpirun` then stops every rank of the job: a run never
//! hangs on a dead peer, but the error is reported by `mpirun`, not by a
//! [`crate::Error`]. Failures that the library detects itself (a bad data
//! file, NaN, a guard trip) are agreed between the ranks first
//! ([`super::agree`]), so every rank reports the same message and exits.

use std::ffi::c_int;

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::environment::Universe;
use mpi::topology::{Communicator as _, SimpleCommunicator};
use mpi::traits::{AsRaw, FromRaw};

use super::Communicator;
use crate::{Error, Result};

/// One rank's handle on an MPI communicator (a duplicate the library owns).
pub struct MpiComm {
    /// `None` only during drop.
    comm: Option<SimpleCommunicator>,
    rank: usize,
    size: usize,
    /// Present when this handle initialised MPI: dropping it finalises MPI.
    universe: Option<Universe>,
}

impl std::fmt::Debug for MpiComm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiComm")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .field("owns_mpi", &self.universe.is_some())
            .finish()
    }
}

// SAFETY: an `MpiComm` is used by one thread at a time (a `Run` or session
// is single-threaded, and the C ABI's busy flag refuses concurrent use), so
// moving it between threads needs MPI's `MPI_THREAD_SERIALIZED` level, which
// `MpiComm::world` asks for (and checks) when it initialises MPI; a harness
// that initialised MPI itself is told in `docs/distributed.md` to do the same.
unsafe impl Send for MpiComm {}

impl MpiComm {
    /// The world communicator (duplicated). Initialises MPI at
    /// `MPI_THREAD_SERIALIZED` if nobody has (then dropping the returned
    /// handle finalises it); otherwise uses the running MPI.
    ///
    /// # Errors
    /// [`Error::Distributed`] if MPI was already finalised or cannot give the
    /// thread level this library needs.
    pub fn world() -> Result<Self> {
        if mpi::environment::is_finalized() {
            return Err(Error::Distributed("MPI has already been finalised".into()));
        }
        let universe = match mpi::initialize_with_threading(mpi::Threading::Serialized) {
            Some((u, level)) => {
                if level < mpi::Threading::Serialized {
                    return Err(Error::Distributed(format!(
                        "this MPI gives thread level {level:?}; libhatebm needs at least Serialized"
                    )));
                }
                Some(u)
            }
            None => None,
        };
        let world = SimpleCommunicator::world();
        let comm = world.duplicate();
        Ok(Self::wrap(comm, universe))
    }

    /// A duplicate of the caller's communicator given as a Fortran handle
    /// (`MPI_Comm_c2f(comm)` in C), for harnesses that run MPI themselves.
    /// MPI must be initialised; this handle never finalises it.
    ///
    /// # Errors
    /// [`Error::Distributed`] if MPI is not initialised (or finalised) or the
    /// handle is `MPI_COMM_NULL`.
    pub fn from_fortran_handle(handle: c_int) -> Result<Self> {
        if !mpi::environment::is_initialized() || mpi::environment::is_finalized() {
            return Err(Error::Distributed(
                "MPI is not initialised: call MPI_Init before handing libhatebm a communicator"
                    .into(),
            ));
        }
        // SAFETY: MPI is initialised; `MPI_Comm_f2c` accepts any integer and
        // returns `MPI_COMM_NULL` for handles it does not know.
        let raw = unsafe { mpi::ffi::MPI_Comm_f2c(handle) };
        // SAFETY: reading an MPI constant (set by the C shim at start-up).
        if raw == unsafe { mpi::ffi::RSMPI_COMM_NULL } {
            return Err(Error::Distributed(format!(
                "MPI communicator handle {handle} is MPI_COMM_NULL"
            )));
        }
        // SAFETY: reading an MPI constant (set by the C shim at start-up).
        let mut dup = unsafe { mpi::ffi::RSMPI_COMM_NULL };
        // SAFETY: `raw` is a live communicator (checked above, not NULL);
        // `dup` receives a new one that this handle owns.
        let rc = unsafe { mpi::ffi::MPI_Comm_dup(raw, &mut dup) };
        if rc != 0 {
            return Err(Error::Distributed(format!("MPI_Comm_dup failed ({rc})")));
        }
        // SAFETY: `dup` is a new, live intra-communicator owned by no one else
        // (neither MPI_COMM_WORLD nor MPI_COMM_SELF).
        let comm = unsafe { SimpleCommunicator::from_raw(dup) };
        Ok(Self::wrap(comm, None))
    }

    fn wrap(comm: SimpleCommunicator, universe: Option<Universe>) -> Self {
        let (rank, size) = (comm.rank() as usize, comm.size() as usize);
        MpiComm {
            comm: Some(comm),
            rank,
            size,
            universe,
        }
    }

    fn comm(&self) -> &SimpleCommunicator {
        self.comm.as_ref().expect("present until drop")
    }

    /// The raw communicator (the library's duplicate).
    pub fn as_raw(&self) -> mpi::ffi::MPI_Comm {
        self.comm().as_raw()
    }
}

impl Communicator for MpiComm {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn describe(&self) -> String {
        format!("MPI (rank {} of {})", self.rank, self.size)
    }

    fn all_gather(&self, local: &[u8], out: &mut [u8]) -> Result<()> {
        super::check_gather_len(self.size, local.len(), out.len())?;
        if local.len() > i32::MAX as usize {
            return Err(Error::Distributed(format!(
                "an all-gather of {} bytes per rank exceeds MPI's count limit",
                local.len()
            )));
        }
        self.comm().all_gather_into(local, out);
        Ok(())
    }

    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        let send = buf.to_vec();
        self.comm()
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
        Ok(())
    }

    fn broadcast(&self, root: usize, buf: &mut [u8]) -> Result<()> {
        if root >= self.size {
            return Err(Error::InvalidArgument(format!(
                "broadcast root {root} is not a rank of {}",
                self.size
            )));
        }
        self.comm().process_at_rank(root as i32).broadcast_into(buf);
        Ok(())
    }

    fn barrier(&self) -> Result<()> {
        self.comm().barrier();
        Ok(())
    }
}

impl Drop for MpiComm {
    fn drop(&mut self) {
        if let Some(c) = self.comm.take() {
            if mpi::environment::is_finalized() {
                // Freeing a communicator after MPI_Finalize is erroneous.
                std::mem::forget(c);
            } else {
                drop(c);
            }
        }
        // Then, if this handle initialised MPI, finalise it.
        drop(self.universe.take());
    }
}
