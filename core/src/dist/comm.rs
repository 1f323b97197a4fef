//! The [`Communicator`] trait, the single-process communicator, and the
//! collectives built on a communicator's one required primitive (all-gather).

use crate::{Error, Result};

/// The collectives a distributed run needs, over the processes ("ranks") of
/// one run. Every rank calls the same collectives in the same order with
/// buffers of the same length; a collective that cannot complete (a rank has
/// gone, a transport failed, a timeout) returns [`Error::Distributed`] rather
/// than hanging or aborting.
///
/// Only [`Communicator::all_gather`] is required; the others have
/// deterministic default implementations on top of it, which an engine with
/// native collectives (MPI) overrides.
///
/// Implementations: [`SingleProcess`] (the default), [`super::ThreadComm`]
/// (ranks as threads of one process, for tests and for harnesses that run
/// several models in one process), MPI (the facade's `mpi` feature) and C
/// callbacks (the C ABI's `hatebm_comm`).
pub trait Communicator: Send + std::fmt::Debug {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;

    /// The number of ranks (≥ 1).
    fn size(&self) -> usize;

    /// A short description for logs (e.g. `mpi (rank 1 of 4)`).
    fn describe(&self) -> String {
        format!("rank {} of {}", self.rank(), self.size())
    }

    /// Concatenates every rank's `local` (all of the same length) in rank
    /// order into `out`, which holds `size() · local.len()` bytes, on every rank.
    ///
    /// # Errors
    /// [`Error::Distributed`] if the collective fails; [`Error::InvalidArgument`]
    /// for a wrongly sized `out`.
    fn all_gather(&self, local: &[u8], out: &mut [u8]) -> Result<()>;

    /// Element-wise sum of `buf` over all ranks, in place, on every rank. The
    /// default gathers every rank's buffer and adds them in rank order (so it
    /// is deterministic); engines override it with their native all-reduce,
    /// whose summation order (and so the last bits) may differ.
    ///
    /// # Errors
    /// As [`Communicator::all_gather`].
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        let all = all_gather_f32(self, buf)?;
        for (i, v) in buf.iter_mut().enumerate() {
            *v = all[i];
        }
        for r in 1..self.size() {
            let part = &all[r * buf.len()..(r + 1) * buf.len()];
            for (v, p) in buf.iter_mut().zip(part) {
                *v += p;
            }
        }
        Ok(())
    }

    /// Copies `buf` of rank `root` into `buf` of every rank (all ranks pass
    /// buffers of the same length).
    ///
    /// # Errors
    /// As [`Communicator::all_gather`]; [`Error::InvalidArgument`] for a root
    /// out of range.
    fn broadcast(&self, root: usize, buf: &mut [u8]) -> Result<()> {
        check_root(self.size(), root)?;
        let mut all = vec![0u8; buf.len() * self.size()];
        self.all_gather(buf, &mut all)?;
        buf.copy_from_slice(&all[root * buf.len()..(root + 1) * buf.len()]);
        Ok(())
    }

    /// Returns once every rank has called it.
    ///
    /// # Errors
    /// As [`Communicator::all_gather`].
    fn barrier(&self) -> Result<()> {
        let mut out = vec![0u8; self.size()];
        self.all_gather(&[0], &mut out)
    }
}

fn check_root(size: usize, root: usize) -> Result<()> {
    if root >= size {
        return Err(Error::InvalidArgument(format!(
            "broadcast root {root} is not a rank of {size}"
        )));
    }
    Ok(())
}

/// Checks the output length of an all-gather.
///
/// # Errors
/// [`Error::InvalidArgument`] if `out_len != size · local_len`.
pub fn check_gather_len(size: usize, local_len: usize, out_len: usize) -> Result<()> {
    if Some(out_len) != size.checked_mul(local_len) {
        return Err(Error::InvalidArgument(format!(
            "all-gather output holds {out_len} bytes, needs {size} × {local_len}"
        )));
    }
    Ok(())
}

/// The communicator of a run in one process: rank 0 of 1. Every collective
/// is a copy.
#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn describe(&self) -> String {
        "single process".into()
    }

    fn all_gather(&self, local: &[u8], out: &mut [u8]) -> Result<()> {
        check_gather_len(1, local.len(), out.len())?;
        out.copy_from_slice(local);
        Ok(())
    }

    fn all_reduce_sum_f32(&self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}

/// All-gather of `f32` buffers (little-endian on the wire): every rank's
/// `local` in rank order.
///
/// # Errors
/// As [`Communicator::all_gather`].
pub fn all_gather_f32<C: Communicator + ?Sized>(comm: &C, local: &[f32]) -> Result<Vec<f32>> {
    if comm.size() == 1 {
        return Ok(local.to_vec());
    }
    let bytes: Vec<u8> = local.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut out = vec![0u8; bytes.len() * comm.size()];
    comm.all_gather(&bytes, &mut out)?;
    Ok(out
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// All-gather of byte strings of any length: every rank's `local` in rank
/// order (two fixed-size all-gathers: lengths, then padded payloads).
///
/// # Errors
/// As [`Communicator::all_gather`].
pub fn all_gather_bytes<C: Communicator + ?Sized>(comm: &C, local: &[u8]) -> Result<Vec<Vec<u8>>> {
    if comm.size() == 1 {
        return Ok(vec![local.to_vec()]);
    }
    let mut lens = vec![0u8; 8 * comm.size()];
    comm.all_gather(&(local.len() as u64).to_le_bytes(), &mut lens)?;
    let lens: Vec<usize> = lens
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")) as usize)
        .collect();
    let max = lens.iter().copied().max().unwrap_or(0);
    let mut padded = local.to_vec();
    padded.resize(max, 0);
    let mut out = vec![0u8; max * comm.size()];
    comm.all_gather(&padded, &mut out)?;
    Ok(lens
        .iter()
        .enumerate()
        .map(|(r, &n)| out[r * max..r * max + n].to_vec())
        .collect())
}

/// The bytes of a status record in [`agree`]: a kind byte, a length and the
/// message (clipped).
const STATUS_BYTES: usize = 1024;

/// Makes every rank leave a phase the same way: gathers each rank's outcome,
/// and if any rank failed, returns on **every** rank the failure of the
/// lowest failing rank, naming it (so no rank goes on into a collective the
/// failed one will never join). [`Error::NonFinite`], [`Error::Diverged`] and
/// [`Error::Cancelled`] keep their kind (the divergence guard treats them the
/// same on every rank); any other error becomes [`Error::Distributed`] with
/// the failing rank's message.
///
/// # Errors
/// As above, and [`Error::Distributed`] if the collective itself fails.
pub fn agree<T, C: Communicator + ?Sized>(comm: &C, local: Result<T>) -> Result<T> {
    if comm.size() == 1 {
        return local;
    }
    let (kind, msg) = match &local {
        Ok(_) => (0u8, String::new()),
        Err(Error::NonFinite(m)) => (1, m.clone()),
        Err(Error::Diverged(m)) => (2, m.clone()),
        Err(Error::Cancelled) => (3, String::new()),
        Err(Error::Distributed(m)) => (4, m.clone()),
        Err(e) => (5, e.to_string()),
    };
    let mut rec = vec![0u8; STATUS_BYTES];
    rec[0] = kind;
    let mut m = msg.into_bytes();
    m.truncate(STATUS_BYTES - 3);
    // Do not cut a UTF-8 sequence in half.
    while std::str::from_utf8(&m).is_err() {
        m.pop();
    }
    rec[1..3].copy_from_slice(&(m.len() as u16).to_le_bytes());
    rec[3..3 + m.len()].copy_from_slice(&m);
    let mut all = vec![0u8; STATUS_BYTES * comm.size()];
    comm.all_gather(&rec, &mut all)?;
    // Every rank failed the same way (an error that was already agreed on):
    // each keeps its own, identical, error.
    if kind != 0 && all.chunks_exact(STATUS_BYTES).all(|r| r == rec.as_slice()) {
        return local;
    }
    for (r, rec) in all.chunks_exact(STATUS_BYTES).enumerate() {
        if rec[0] == 0 {
            continue;
        }
        let n = usize::from(u16::from_le_bytes([rec[1], rec[2]]));
        let m = String::from_utf8_lossy(&rec[3..3 + n.min(STATUS_BYTES - 3)]).into_owned();
        let size = comm.size();
        return Err(match rec[0] {
            1 => Error::NonFinite(format!("{m} (on rank {r} of {size})")),
            2 => Error::Diverged(format!("{m} (on rank {r} of {size})")),
            3 => Error::Cancelled,
            4 => Error::Distributed(m),
            _ => Error::Distributed(format!("rank {r} of {size} failed: {m}")),
        });
    }
    local
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_process_collectives_are_copies() {
        let c = SingleProcess;
        let mut out = [0u8; 3];
        c.all_gather(&[1, 2, 3], &mut out).unwrap();
        assert_eq!(out, [1, 2, 3]);
        assert!(c.all_gather(&[1, 2, 3], &mut [0u8; 2]).is_err());
        let mut v = [1.5f32, -2.0];
        c.all_reduce_sum_f32(&mut v).unwrap();
        assert_eq!(v, [1.5, -2.0]);
        assert!(c.broadcast(1, &mut [0u8; 2]).is_err());
        assert_eq!(all_gather_bytes(&c, b"abc").unwrap(), vec![b"abc".to_vec()]);
        assert!(matches!(
            agree::<(), _>(&c, Err(Error::Config("x".into()))),
            Err(Error::Config(_))
        ));
    }
}
