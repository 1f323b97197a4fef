//! [`ThreadComm`]: the ranks of a run as threads of one process, exchanging
//! through shared memory. Used by the distributed tests (which need no MPI) and
//! by harnesses that train several replicas in one process.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::comm::{Communicator, check_gather_len};
use crate::{Error, Result};

#[derive(Debug, Default)]
struct Round {
    /// Completed rounds (the generation a waiting rank watches).
    generation: u64,
    /// Ranks that have deposited their part of the current round.
    arrived: usize,
    parts: Vec<Option<Vec<u8>>>,
    /// The result of the last completed round.
    result: Arc<Vec<u8>>,
    /// Ranks that still have to read `result` before the next round may start.
    readers_left: usize,
    /// Why the group can no longer complete a collective (a rank left, a
    /// length mismatch, a timeout).
    broken: Option<String>,
}

#[derive(Debug)]
struct Shared {
    size: usize,
    timeout: Duration,
    round: Mutex<Round>,
    cv: Condvar,
}

/// One rank of an in-process group made by [`ThreadComm::group`]. Give each
/// rank to its own thread. A rank that is dropped (its thread returned or
/// panicked) breaks the group: the others' pending and later collectives
/// return [`Error::Distributed`] instead of waiting for it; so does a
/// collective that waits longer than the group's timeout.
#[derive(Debug)]
pub struct ThreadComm {
    rank: usize,
    shared: Arc<Shared>,
}

impl ThreadComm {
    /// A group of `size` ranks whose collectives give up after 10 minutes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `size == 0`.
    pub fn group(size: usize) -> Result<Vec<ThreadComm>> {
        Self::group_with_timeout(size, Duration::from_secs(600))
    }

    /// A group of `size` ranks whose collectives give up after `timeout`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `size == 0`.
    pub fn group_with_timeout(size: usize, timeout: Duration) -> Result<Vec<ThreadComm>> {
        if size == 0 {
            return Err(Error::InvalidArgument(
                "a group needs at least one rank".into(),
            ));
        }
        let shared = Arc::new(Shared {
            size,
            timeout,
            round: Mutex::new(Round {
                parts: vec![None; size],
                ..Round::default()
            }),
            cv: Condvar::new(),
        });
        Ok((0..size)
            .map(|rank| ThreadComm {
                rank,
                shared: Arc::clone(&shared),
            })
            .collect())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Round>> {
        self.shared
            .round
            .lock()
            .map_err(|_| Error::Distributed("the in-process group's lock is poisoned".into()))
    }

    /// Waits on the condition variable until `done` holds, the group breaks or
    /// the deadline passes (then the group is broken for everyone).
    fn wait_until<'a>(
        &self,
        mut g: std::sync::MutexGuard<'a, Round>,
        deadline: Instant,
        what: &str,
        done: impl Fn(&Round) -> bool,
    ) -> Result<std::sync::MutexGuard<'a, Round>> {
        loop {
            // A round that completed before a rank left still delivers.
            if done(&g) {
                return Ok(g);
            }
            if let Some(b) = &g.broken {
                return Err(Error::Distributed(b.clone()));
            }
            let now = Instant::now();
            if now >= deadline {
                let msg = format!(
                    "rank {} waited {:.0} s for the other ranks ({what}); giving up",
                    self.rank,
                    self.shared.timeout.as_secs_f64()
                );
                g.broken = Some(msg.clone());
                self.shared.cv.notify_all();
                return Err(Error::Distributed(msg));
            }
            g = self
                .shared
                .cv
                .wait_timeout(g, deadline - now)
                .map_err(|_| Error::Distributed("the in-process group's lock is poisoned".into()))?
                .0;
        }
    }
}

impl Communicator for ThreadComm {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn describe(&self) -> String {
        format!("threads (rank {} of {})", self.rank, self.shared.size)
    }

    fn all_gather(&self, local: &[u8], out: &mut [u8]) -> Result<()> {
        let size = self.shared.size;
        check_gather_len(size, local.len(), out.len())?;
        let deadline = Instant::now() + self.shared.timeout;
        let g = self.lock()?;
        // The previous round's result must have been read by everyone.
        let mut g = self.wait_until(g, deadline, "previous collective", |r| r.readers_left == 0)?;
        let generation = g.generation;
        g.parts[self.rank] = Some(local.to_vec());
        g.arrived += 1;
        if g.arrived == size {
            let parts: Vec<Vec<u8>> = g
                .parts
                .iter_mut()
                .map(|p| p.take().unwrap_or_default())
                .collect();
            if parts.iter().any(|p| p.len() != local.len()) {
                let lens: Vec<usize> = parts.iter().map(Vec::len).collect();
                let msg = format!("ranks called a collective with different lengths {lens:?}");
                g.broken = Some(msg.clone());
                self.shared.cv.notify_all();
                return Err(Error::Distributed(msg));
            }
            g.result = Arc::new(parts.concat());
            g.arrived = 0;
            g.readers_left = size;
            g.generation += 1;
            self.shared.cv.notify_all();
        } else {
            g = self.wait_until(g, deadline, "all-gather", |r| r.generation != generation)?;
        }
        out.copy_from_slice(&g.result);
        g.readers_left -= 1;
        if g.readers_left == 0 {
            self.shared.cv.notify_all();
        }
        Ok(())
    }
}

impl Drop for ThreadComm {
    fn drop(&mut self) {
        if self.shared.size == 1 {
            return;
        }
        let mut g = match self.shared.round.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if g.broken.is_none() {
            g.broken = Some(format!(
                "rank {} of {} left the group",
                self.rank, self.shared.size
            ));
        }
        self.shared.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::{agree, all_gather_bytes};

    #[test]
    fn all_gather_orders_by_rank_over_many_rounds() {
        let comms = ThreadComm::group(3).unwrap();
        let handles: Vec<_> = comms
            .into_iter()
            .map(|c| {
                std::thread::spawn(move || {
                    for round in 0..200u8 {
                        let mut out = [0u8; 6];
                        c.all_gather(&[c.rank() as u8, round], &mut out).unwrap();
                        assert_eq!(out, [0, round, 1, round, 2, round]);
                    }
                    let mut v = [c.rank() as f32 + 0.5];
                    c.all_reduce_sum_f32(&mut v).unwrap();
                    assert_eq!(v[0], 4.5);
                    let mut b = [c.rank() as u8; 4];
                    c.broadcast(2, &mut b).unwrap();
                    assert_eq!(b, [2; 4]);
                    let msg = vec![7u8; c.rank() * 5];
                    let all = all_gather_bytes(&c, &msg).unwrap();
                    assert_eq!(all.iter().map(Vec::len).collect::<Vec<_>>(), [0, 5, 10]);
                    c.barrier().unwrap();
                    // Rank 1 fails: everyone sees its message.
                    let local: Result<()> = if c.rank() == 1 {
                        Err(Error::Config("bad file".into()))
                    } else {
                        Ok(())
                    };
                    match agree(&c, local) {
                        Err(Error::Distributed(m)) => {
                            assert!(m.contains("rank 1 of 3") && m.contains("bad file"), "{m}");
                        }
                        other => panic!("{other:?}"),
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }

    #[test]
    fn a_rank_that_leaves_breaks_the_group_instead_of_hanging() {
        let mut comms = ThreadComm::group_with_timeout(2, Duration::from_secs(60)).unwrap();
        let gone = comms.pop().unwrap();
        let c = comms.pop().unwrap();
        let t = std::thread::spawn(move || {
            let mut out = [0u8; 2];
            c.all_gather(&[1], &mut out)
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(gone);
        let err = t.join().unwrap().unwrap_err();
        assert!(err.to_string().contains("rank 1 of 2 left"), "{err}");
    }

    #[test]
    fn a_collective_times_out() {
        let comms = ThreadComm::group_with_timeout(2, Duration::from_millis(100)).unwrap();
        let mut out = [0u8; 2];
        let err = comms[0].all_gather(&[1], &mut out).unwrap_err();
        assert!(err.to_string().contains("giving up"), "{err}");
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        let comms = ThreadComm::group(2).unwrap();
        let mut it = comms.into_iter();
        let (a, b) = (it.next().unwrap(), it.next().unwrap());
        let t = std::thread::spawn(move || {
            let mut out = [0u8; 4];
            let r = b.all_gather(&[1, 2], &mut out);
            (r, b)
        });
        let mut out = [0u8; 2];
        let ra = a.all_gather(&[1], &mut out);
        let (rb, _b) = t.join().unwrap();
        assert!(ra.is_err() && rb.is_err());
    }
}
