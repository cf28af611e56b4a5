//! Which writer lane commits next. The lanes share one queue. The first lane commits
//! one batch at a time, each taking everything queued while the one before it ran: one
//! session doing the work of a 1-lane writer. Fewer, larger commits cost PostgreSQL far
//! less CPU per write (its cost per commit barely depends on the commit's size), and one
//! session keeps its process and prepared statements warm.
//!
//! The other lanes are spares. One starts a commit beside the running ones only once
//! each of them has run for [`STALLED`]: a commit waiting on a room row's lock (a room
//! being taken over by another node, a node stopped in the middle of its transaction) or
//! on a slow WAL flush. So such a commit holds up the writes it carries, and the node's
//! other rooms for about [`STALLED`]; with every lane's commit stalled, writes wait for
//! the first to end. Each commit watches its own time: while commits end in time,
//! nothing wakes the spares.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::writes::{self, WriteOp};

/// How long a commit may take before a spare lane may start one beside it. A commit
/// here takes 1–10 ms; this is well past that, and short next to what a client would
/// call a stall.
pub(super) const STALLED: Duration = Duration::from_millis(20);

/// The lanes' shared queue and the commits they are running.
pub(super) struct Turns {
    queue: tokio::sync::Mutex<mpsc::Receiver<WriteOp>>,
    running: Mutex<Running>,
    /// A commit stalled, or ended while it was stalled or a lane waited for its turn.
    /// Nothing is notified while commits come and go in time: the spares sleep.
    changed: Notify,
}

#[derive(Default)]
struct Running {
    commits: usize,
    /// How many of them have run [`STALLED`].
    stalled: usize,
    /// Lanes with a write in hand, waiting for their turn.
    waiting: usize,
}

impl Running {
    /// Every running commit has stalled (and one runs).
    fn all_stalled(&self) -> bool {
        self.commits > 0 && self.stalled == self.commits
    }
}

/// A commit running, counted until dropped.
pub(super) struct Turn<'a> {
    turns: &'a Turns,
    stalled: bool,
}

impl Turn<'_> {
    /// Runs the commit `f`, telling the spares when it has taken [`STALLED`].
    pub(super) async fn watch<F: Future>(&mut self, f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        tokio::select! {
            out = &mut f => return out,
            () = tokio::time::sleep(STALLED) => {}
        }
        self.stalled = true;
        self.turns.running().stalled += 1;
        self.turns.changed.notify_waiters();
        f.await
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut running = self.turns.running();
        running.commits -= 1;
        running.stalled -= usize::from(self.stalled);
        let notify = self.stalled || running.waiting > 0;
        drop(running);
        if notify {
            self.turns.changed.notify_waiters();
        }
    }
}

impl Turns {
    pub(super) fn new(queue: mpsc::Receiver<WriteOp>) -> Self {
        Self {
            queue: tokio::sync::Mutex::new(queue),
            running: Mutex::new(Running::default()),
            changed: Notify::new(),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for this lane's turn (lane 0 is the first, the others spares) and fills
    /// `batch` (up to `max`) with everything queued by then. `None` once every sender
    /// is gone.
    pub(super) async fn next(
        &self,
        lane: usize,
        batch: &mut Vec<WriteOp>,
        max: usize,
    ) -> Option<Turn<'_>> {
        let spare = lane > 0;
        loop {
            if spare {
                self.until(Running::all_stalled).await;
            }
            let mut queue = self.queue.lock().await;
            let first = if spare {
                // Gives the queue back to the first lane once nothing is stalled.
                let recovered = self.until(|running| !running.all_stalled());
                tokio::select! {
                    first = queue.recv() => first?,
                    () = recovered => continue,
                }
            } else {
                queue.recv().await?
            };
            let turn = self.turn().await;
            batch.push(first);
            writes::fill(batch, &mut queue, max);
            return Some(turn);
        }
    }

    /// Starts a commit once none runs or the running ones have all stalled.
    async fn turn(&self) -> Turn<'_> {
        let mut waiting = false;
        loop {
            let changed = self.changed.notified();
            {
                let mut running = self.running();
                if running.commits == 0 || running.all_stalled() {
                    running.commits += 1;
                    running.waiting -= usize::from(waiting);
                    return Turn {
                        turns: self,
                        stalled: false,
                    };
                }
                if !waiting {
                    waiting = true;
                    running.waiting += 1;
                }
            }
            changed.await;
        }
    }

    /// Returns once the running commits are as `want` says.
    async fn until(&self, want: impl Fn(&Running) -> bool) {
        loop {
            let changed = self.changed.notified();
            if want(&self.running()) {
                return;
            }
            changed.await;
        }
    }
}
