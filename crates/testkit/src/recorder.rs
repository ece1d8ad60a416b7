//! Plumbing for recorded state that tests observe while the peers keep writing it.
//!
//! Both peers keep their records behind short `std` mutexes (never held across an `.await`)
//! and bump a revision whenever a record changes; the `wait_for_*` methods re-check their
//! condition on every bump until it holds or a deadline passes. A revision counter, rather than
//! a channel of items, lets any number of waiters observe the same state without consuming it.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;
use tokio::time::Instant;

/// Locks `mutex`, carrying on after a poisoning panic: the records stay meaningful even if
/// some task panicked mid-update, and a test peer must keep answering regardless.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A revision counter that waiters can block on.
#[derive(Debug)]
pub(crate) struct Changes {
    revision: watch::Sender<u64>,
}

impl Changes {
    /// Creates a counter at revision zero.
    pub(crate) fn new() -> Self {
        Changes {
            revision: watch::Sender::new(0),
        }
    }

    /// Announces that the recorded state changed.
    pub(crate) fn bump(&self) {
        self.revision
            .send_modify(|revision| *revision = revision.wrapping_add(1));
    }

    /// Waits until `condition` returns true or `deadline` passes, whichever comes first.
    ///
    /// The subscription is taken before the first check, so a change that lands between the
    /// check and the wait still wakes the waiter.
    pub(crate) async fn wait_until(&self, deadline: Instant, mut condition: impl FnMut() -> bool) {
        let mut changed = self.revision.subscribe();
        while !condition() {
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                // Timed out, or the sender is gone and nothing can change any more.
                Ok(Err(_)) | Err(_) => return,
            }
        }
    }
}
