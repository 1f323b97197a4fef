//! The divergence guard's pieces: detecting a bad iteration, in-memory
//! snapshots of the last good state, and reseeding after a rollback.

use crate::Result;
use crate::backend::Backend;
use crate::data::BatcherState;
use crate::train::{StepStats, Trainer, TrainerState};

/// Returns a description of what is wrong with an iteration's statistics, if anything.
pub fn check_stats(s: &StepStats, max_energy_diff: Option<f64>) -> Option<String> {
    let mut values = vec![
        ("loss_ebm", s.loss_ebm),
        ("energy_pos", s.energy_pos),
        ("energy_neg", s.energy_neg),
    ];
    if let Some(g) = s.loss_gen {
        values.push(("loss_gen", g));
    }
    values.push(("chain energy", s.langevin.mean_energy));
    values.push(("latent norm", s.langevin.mean_latent_norm));
    if let Some((name, v)) = values.iter().find(|(_, v)| !v.is_finite()) {
        return Some(format!("{name} is {v}"));
    }
    match max_energy_diff {
        Some(m) if s.loss_ebm.abs() > m => Some(format!(
            "|energy difference| {:.4e} exceeds guard.max_energy_diff = {m:e}",
            s.loss_ebm.abs()
        )),
        _ => None,
    }
}

/// The chain seed after `rollbacks` rollbacks (deterministic, so a resumed run
/// that had rolled back continues identically).
pub fn reseed(seed: u64, rollbacks: u32) -> u64 {
    if rollbacks == 0 {
        seed
    } else {
        seed ^ (u64::from(rollbacks).wrapping_mul(0x9E37_79B9_7F4A_7C15)).rotate_left(29)
    }
}

/// A copy of everything an iteration changes, and the data order.
pub struct Snapshot<B: Backend> {
    state: TrainerState<B>,
    data_order: BatcherState,
}

impl<B: Backend> Snapshot<B> {
    /// Copies the trainer's state.
    ///
    /// # Errors
    /// None at present (tensor clones); kept fallible for device backends.
    pub fn take(t: &Trainer<B>, data_order: BatcherState) -> Result<Self> {
        Ok(Snapshot {
            state: t.state(),
            data_order,
        })
    }

    /// Whether a new snapshot is due at `iteration`.
    pub fn is_stale(&self, iteration: u64, every: u64) -> bool {
        iteration >= self.state.iteration + every
    }

    /// Puts the state back (keeping the trainer's current seed: the guard
    /// reseeds after restoring); returns the data order to resume from.
    ///
    /// # Errors
    /// As [`Trainer::restore`] (not for a snapshot of the same trainer).
    pub fn restore(&self, t: &mut Trainer<B>) -> Result<BatcherState> {
        let mut s = self.state.clone();
        s.seed = t.seed();
        t.restore(s)?;
        Ok(self.data_order)
    }
}
