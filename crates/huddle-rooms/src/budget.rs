//! A node-wide budget of bytes shared by many holders: the loaded rooms' log tails share
//! one, the fan-out's room logs another. Each holder counts what it takes and gives it
//! back when it drops it (or goes); what to drop when the total is over the budget is
//! each holder's own policy (see `log_tail` and `hub`).

use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub struct Budget {
    max: usize,
    used: AtomicUsize,
}

impl Budget {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max: max_bytes,
            used: AtomicUsize::new(0),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes the holders hold now (estimates: [`huddle_core::SharedMessage::held_bytes`]).
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn over(&self) -> bool {
        self.used() > self.max
    }

    pub fn take(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}
