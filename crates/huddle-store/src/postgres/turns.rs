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
/// normally takes 1–10 ms (a round trip and a WAL flush); this is well past that, and
/// short next to what a client would call a stall.
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
                // Gives the queue back to the first lane once nothing is stalled, even
                // with a write in it.
                let recovered = self.until(|running| !running.all_stalled());
                tokio::select! {
                    biased;
                    () = recovered => continue,
                    first = queue.recv() => first?,
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

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use tokio::sync::oneshot;

    use super::*;
    use crate::writes::Write;

    fn probe() -> WriteOp {
        WriteOp {
            write: Write::Probe,
            done: oneshot::channel().0,
        }
    }

    /// The first lane's turn, with `queued` writes in its batch; the others stay queued.
    async fn first_turn<'a>(turns: &'a Turns, queued: &mpsc::Sender<WriteOp>) -> Turn<'a> {
        queued.send(probe()).await.unwrap();
        let mut batch = Vec::new();
        let turn = turns.next(0, &mut batch, 8).await.unwrap();
        assert_eq!(batch.len(), 1);
        turn
    }

    #[tokio::test(start_paused = true)]
    async fn a_spare_starts_a_commit_only_beside_one_that_stalled() {
        let (queued, queue) = mpsc::channel(8);
        let turns = Turns::new(queue);
        let mut first = first_turn(&turns, &queued).await;
        let (end, ended) = oneshot::channel::<()>();
        let mut commit = pin!(first.watch(async {
            let _ = ended.await;
        }));
        queued.send(probe()).await.unwrap();
        let mut batch = Vec::new();
        let turn = {
            let mut spare = pin!(turns.next(1, &mut batch, 8));
            tokio::select! {
                _ = &mut spare => panic!("a spare started beside a commit running in time"),
                _ = &mut commit => unreachable!("the commit runs until told"),
                () = tokio::time::sleep(STALLED - Duration::from_millis(1)) => {}
            }
            let started = tokio::time::Instant::now();
            let turn = tokio::select! {
                turn = &mut spare => turn.expect("the queue is open"),
                _ = &mut commit => unreachable!("the commit runs until told"),
            };
            assert!(
                started.elapsed() <= Duration::from_millis(1),
                "started once stalled"
            );
            turn
        };
        assert_eq!(batch.len(), 1, "the spare took the queued write");
        end.send(()).unwrap();
        commit.await;
        drop(turn);
    }

    #[tokio::test(start_paused = true)]
    async fn once_the_stall_is_over_the_first_lane_takes_the_queue_back() {
        let (queued, queue) = mpsc::channel(8);
        let turns = Turns::new(queue);
        let mut first = first_turn(&turns, &queued).await;
        let (end, ended) = oneshot::channel::<()>();
        let commit = first.watch(async {
            let _ = ended.await;
        });
        let mut batch = Vec::new();
        let mut spare = pin!(turns.next(1, &mut batch, 8));
        // The commit stalls; the spare takes the (empty) queue and waits for writes.
        tokio::select! {
            _ = &mut spare => panic!("nothing was queued"),
            () = async {
                let mut commit = pin!(commit);
                tokio::select! {
                    _ = &mut commit => unreachable!("the commit runs until told"),
                    () = tokio::time::sleep(STALLED * 2) => {}
                }
                assert!(turns.queue.try_lock().is_err(), "the spare waits on the queue");
                end.send(()).unwrap();
                commit.await;
            } => {}
        }
        drop(first);
        // The stall is over: the next write is the first lane's.
        queued.send(probe()).await.unwrap();
        let mut next = Vec::new();
        tokio::select! {
            _ = &mut spare => panic!("the spare kept the queue after the stall"),
            turn = turns.next(0, &mut next, 8) => drop(turn.expect("the queue is open")),
        }
        assert_eq!(next.len(), 1);
    }
}
