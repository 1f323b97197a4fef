//! [`BusyCell`]: a handle's value plus a busy flag, so that a call on a
//! handle that is already inside a call — re-entered from one of its own
//! callbacks, or used from a second thread at the same time — is refused
//! with `HATEBM_MISUSE` instead of aliasing the value (undefined behaviour in
//! Rust terms, silently corrupted state in practice).
//!
//! The flag is an atomic taken with compare-and-swap at the start of every
//! entry point that touches the value and released when the entry point
//! returns (also on error and on a caught panic: the guard's `Drop`). The
//! value sits in an [`UnsafeCell`], reached only through a held guard, so two
//! calls never hold references to it at once; the cell itself is only ever
//! borrowed shared.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Failure;
use crate::status::hatebm_status;

/// A value that at most one call uses at a time.
#[derive(Debug)]
pub struct BusyCell<T> {
    busy: AtomicBool,
    value: UnsafeCell<T>,
}

impl<T> BusyCell<T> {
    /// Wraps `value`, not busy.
    pub fn new(value: T) -> Self {
        BusyCell {
            busy: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the cell for one call.
    ///
    /// # Errors
    /// `HATEBM_MISUSE` naming `what` if another call holds it.
    pub fn enter(&self, what: &str) -> Result<BusyGuard<'_, T>, Failure> {
        self.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .map_err(|_| {
                Failure::new(
                    hatebm_status::HATEBM_MISUSE,
                    format!(
                        "{what} is already in use by another call: a call on it from inside one of its own callbacks, or from a second thread at the same time (a {what} is used by one thread at a time, and its callbacks must not call it)"
                    ),
                )
            })?;
        Ok(BusyGuard { cell: self })
    }

    /// Whether a call holds the cell now.
    pub fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// The value, for dropping the cell.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

// SAFETY: like a mutex: the value is reached only through a guard, and the
// busy flag (compare-and-swap) lets one guard exist at a time, so sharing the
// cell between threads hands the value from thread to thread (hence `T: Send`).
unsafe impl<T: Send> Sync for BusyCell<T> {}

/// The right to use a [`BusyCell`]'s value for one call.
#[derive(Debug)]
pub struct BusyGuard<'a, T> {
    cell: &'a BusyCell<T>,
}

impl<T> Deref for BusyGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this call holds the busy flag
        // (taken by compare-and-swap in `enter`), so no other reference to the
        // value exists; the guard's own borrows follow Rust's rules.
        unsafe { &*self.cell.value.get() }
    }
}

impl<T> DerefMut for BusyGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this borrow unique.
        unsafe { &mut *self.cell.value.get() }
    }
}

impl<T> Drop for BusyGuard<'_, T> {
    fn drop(&mut self) {
        self.cell.busy.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_entry_is_misuse_until_the_first_returns() {
        let c = BusyCell::new(5);
        {
            let mut g = c.enter("thing").unwrap();
            *g += 1;
            let e = c.enter("thing").unwrap_err();
            assert_eq!(e.status(), hatebm_status::HATEBM_MISUSE);
            assert!(
                e.message().contains("thing is already in use"),
                "{}",
                e.message()
            );
            assert!(c.is_busy());
        }
        assert!(!c.is_busy());
        assert_eq!(*c.enter("thing").unwrap(), 6);
    }

    #[test]
    fn concurrent_entries_exclude_each_other() {
        let c = BusyCell::new(0u64);
        let refused = AtomicBool::new(false);
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut g = c.enter("thing").unwrap();
                barrier.wait(); // the other thread tries while we hold it
                barrier.wait();
                *g += 1;
            });
            s.spawn(|| {
                barrier.wait();
                refused.store(c.enter("thing").is_err(), Ordering::SeqCst);
                barrier.wait();
            });
        });
        assert!(refused.load(Ordering::SeqCst));
        assert_eq!(*c.enter("thing").unwrap(), 1);
    }
}
