//! What a training run reports, and to whom: [`Run::train`](super::Run::train)
//! emits [`Event`]s to an [`Observer`].
//!
//! The library itself prints nothing. The files of a run's output folder
//! (metrics log, evaluation lines, sample pictures, curves) are written by one
//! observer, [`FileOutputs`](super::FileOutputs), which `Run::train` runs before
//! the caller's; a terminal progress bar is another observer, in the `hatebm`
//! CLI; the C ABI adapts its progress callback to this trait. Checkpoints are
//! state, not a report: the run writes them itself and then reports
//! [`Event::CheckpointSaved`].
//!
//! Counters: every `iteration` in an event, in [`Progress`] and in
//! [`StepStats`] is the number of iterations completed since the run started
//! (resumed ones included) — for an event about one iteration, that
//! iteration's 1-based number. So the first [`Event::Step`] of a fresh run has
//! `iteration == 1` and `stats.iteration == 1`, and a run resumed from a
//! checkpoint written after 5 iterations reports 6 for its next one. The C ABI
//! uses the same convention (`docs/c-abi.md`, "Iteration counters").

use std::path::Path;

use crate::Result;
use crate::train::StepStats;

use super::EvalReport;

/// Whether training goes on after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Stop after the current iteration with [`Error::Cancelled`](crate::Error::Cancelled);
    /// the run is left consistent and can be saved or resumed. Honoured after
    /// [`Event::Step`]; ignored after the other events.
    Cancel,
}

/// What an observer sees after every iteration.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress<'a> {
    /// Iterations completed in this run so far (including resumed ones);
    /// equal to `stats.iteration`.
    pub iteration: u64,
    /// The configured total (`train.steps`).
    pub total: u64,
    /// The iteration's statistics.
    pub stats: &'a StepStats,
    /// Guard rollbacks so far.
    pub rollbacks: u32,
    /// The EBM optimiser's learning-rate scale (1 until the guard scales it).
    pub lr_scale: f32,
}

/// Pictures of samples (or data) the run drew for its reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Samples<'a> {
    /// A file stem: `data`, `generator_init`, `samples_000500`, `samples_final`.
    pub name: &'a str,
    /// `n` samples, row-major, each `sample_len = data.len() / n` values.
    pub data: &'a [f32],
    /// Number of samples.
    pub n: usize,
    /// `[C, H, W]` for image data; `None` for vectors.
    pub image_dims: Option<[usize; 3]>,
    /// Training data to draw next to the samples (2-D scatter plots), if any.
    pub reference: Option<&'a [f32]>,
}

/// What the divergence guard did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardAction {
    /// The run rolled back to its last good snapshot and goes on.
    RolledBack {
        /// Iterations completed in the state it went back to.
        to_iteration: u64,
        /// Rollbacks used so far, this one included.
        rollbacks: u32,
    },
    /// The run stops with [`Error::Diverged`](crate::Error::Diverged).
    Stopped,
}

/// One thing that happened during [`Run::train`](super::Run::train).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// Training starts (every call of `train`).
    Started {
        /// Iterations already completed (non-zero after a resume).
        iteration: u64,
        /// The iteration this call trains up to.
        target: u64,
        /// The configured total (`train.steps`).
        total: u64,
        /// The backend's name, e.g. `cpu`, `tch:cuda:0`.
        backend: &'a str,
        /// The output folder (`output.dir`).
        output_dir: &'a Path,
    },
    /// An iteration finished.
    Step(Progress<'a>),
    /// The guard tripped.
    Guard {
        /// The iteration that tripped it (1-based: one more than the
        /// iterations completed before it).
        iteration: u64,
        /// What it found.
        problem: &'a str,
        /// What it did.
        action: GuardAction,
    },
    /// Samples (or data) were drawn for a picture.
    Samples(Samples<'a>),
    /// An evaluation finished (`is_final`: the one at the end of training).
    Evaluated {
        /// The report.
        report: &'a EvalReport,
        /// Whether this is the evaluation at the end of training.
        is_final: bool,
    },
    /// A checkpoint was written (atomically; it loads again).
    CheckpointSaved {
        /// Where.
        path: &'a Path,
        /// Iterations completed when it was written.
        iteration: u64,
    },
    /// The call ends normally.
    Finished {
        /// Iterations completed.
        iteration: u64,
        /// Whether the run reached `train.steps`.
        complete: bool,
        /// Wall time of this call, seconds.
        seconds: f64,
    },
}

/// Receives the events of a training run.
///
/// An error returned by an observer stops the run with that error (the
/// built-in file writer returns its I/O errors this way). Implemented for
/// closures `FnMut(&Progress) -> bool` (`false` cancels), which see only the
/// [`Event::Step`] events.
pub trait Observer {
    /// Called for every event, in order.
    ///
    /// # Errors
    /// Whatever the observer fails with; the run stops with it.
    fn on_event(&mut self, event: &Event<'_>) -> Result<Flow>;
}

impl<F: FnMut(&Progress<'_>) -> bool> Observer for F {
    fn on_event(&mut self, event: &Event<'_>) -> Result<Flow> {
        Ok(match event {
            Event::Step(p) if !self(p) => Flow::Cancel,
            _ => Flow::Continue,
        })
    }
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Observer for Silent {
    fn on_event(&mut self, _: &Event<'_>) -> Result<Flow> {
        Ok(Flow::Continue)
    }
}

/// Sends each event to `first`, then to `second`; cancels if either does.
#[derive(Debug)]
pub struct Both<'a, A: ?Sized, B: ?Sized>(pub &'a mut A, pub &'a mut B);

impl<A: Observer + ?Sized, B: Observer + ?Sized> Observer for Both<'_, A, B> {
    fn on_event(&mut self, event: &Event<'_>) -> Result<Flow> {
        let a = self.0.on_event(event)?;
        let b = self.1.on_event(event)?;
        Ok(if a == Flow::Cancel || b == Flow::Cancel {
            Flow::Cancel
        } else {
            Flow::Continue
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closure_adapter_cancels_on_false_and_ignores_other_events() {
        let stats = StepStats::default();
        let p = Progress {
            iteration: 3,
            total: 5,
            stats: &stats,
            rollbacks: 0,
            lr_scale: 1.0,
        };
        let mut seen = Vec::new();
        let mut f = |p: &Progress<'_>| {
            seen.push(p.iteration);
            p.iteration < 3
        };
        let fin = Event::Finished {
            iteration: 3,
            complete: false,
            seconds: 0.0,
        };
        assert_eq!(f.on_event(&fin).unwrap(), Flow::Continue);
        assert_eq!(f.on_event(&Event::Step(p)).unwrap(), Flow::Cancel);
        assert_eq!(seen, vec![3]);
    }

    #[test]
    fn both_cancels_if_either_cancels() {
        let stats = StepStats::default();
        let ev = Event::Step(Progress {
            iteration: 1,
            total: 2,
            stats: &stats,
            rollbacks: 0,
            lr_scale: 1.0,
        });
        let mut stop = |_: &Progress<'_>| false;
        let mut go = Silent;
        assert_eq!(
            Both(&mut go, &mut stop).on_event(&ev).unwrap(),
            Flow::Cancel
        );
        assert_eq!(
            Both(&mut go, &mut Silent).on_event(&ev).unwrap(),
            Flow::Continue
        );
    }
}
