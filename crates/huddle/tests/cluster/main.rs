//! Cluster mode end to end: real `huddle serve` processes on one PostgreSQL and one
//! Redis (the test kit's `TestCluster`, lease TTL 2 s), failed in the ways a deployment
//! fails, under load. Every test ends with the same end-state check (the kit's
//! `Ledger::verify`): each room's history gapless from seq 1, every acknowledged message
//! in it exactly once, no DM seen by a third member, every stream whole and in order.
//!
//! Senders retry a failed send on another node under the same idempotency key (the A2A
//! `message.messageId`); streams resume on another node with `Last-Event-ID`.
//!
//! Layout:
//! - `failover`  — `kill -9` of a node under load; a node stopped (SIGSTOP) past its
//!   lease and continued: its late writes fenced, its late reads refused.
//! - `infra`     — Redis killed and restarted empty under load; PostgreSQL stopped and
//!   restarted under load.
//! - `membership` — a fourth node joins under load, one leaves with SIGTERM (handover).
//! - `rooms`     — concurrent creates of one (name, password) through different nodes;
//!   a DM through one node never reaches a third member's stream on another node.
//! - `partition` — the internal link between nodes cut (and healed) under load.
//! - `traces`    — a forwarded call is one trace across both nodes.

mod failover;
mod infra;
mod membership;
mod partition;
mod rooms;
mod traces;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use huddle_testkit::*;

/// Agents per room in the load tests (the creator is the first).
const AGENTS: usize = 3;

/// A room's members, the creator (its admin) first.
struct Room {
    members: Vec<Agent>,
}

impl Room {
    fn admin(&self) -> &Agent {
        &self.members[0]
    }
}

/// Creates `rooms` rooms of `AGENTS` members through the cluster's spread client.
async fn rooms(client: &A2a, tag: &str, rooms: usize) -> Vec<Room> {
    let mut out = Vec::new();
    for r in 0..rooms {
        let name = format!("{tag}-{r}");
        let mut members = vec![client.create_room(&name, &format!("{tag}{r}a0")).await];
        let id = members[0].room_id.clone();
        for a in 1..AGENTS {
            members.push(client.join(&id, &format!("{tag}{r}a{a}")).await);
        }
        out.push(Room { members });
    }
    out
}

fn members(rooms: &[Room]) -> Vec<Agent> {
    rooms.iter().flat_map(|r| r.members.clone()).collect()
}

/// Load on every room: senders (all but the admins) and one stream per room (its admin).
struct Load {
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
    senders: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    async fn start(client: &Arc<A2a>, rooms: &[Room]) -> Load {
        let ledger = Ledger::new();
        for room in rooms {
            ledger.stream(client, room.admin(), 0).await;
        }
        let senders: Vec<Agent> = rooms.iter().flat_map(|r| r.members[1..].to_vec()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let handles = ledger.spawn_senders(client, &senders, &stop);
        Load {
            ledger,
            stop,
            senders: handles,
        }
    }

    /// Stops the senders, then checks the end state through `client`.
    async fn finish(self, client: &A2a, rooms: &[Room]) -> Arc<Ledger> {
        self.finish_with(client, &members(rooms)).await
    }

    /// [`Load::finish`] over `members` (every member still in its room).
    async fn finish_with(self, client: &A2a, members: &[Agent]) -> Arc<Ledger> {
        self.stop.store(true, Ordering::Relaxed);
        for s in self.senders {
            s.await.expect("a sender panicked");
        }
        self.ledger.verify(client, members).await;
        let (refused, abandoned) = self.ledger.failures();
        eprintln!(
            "end state ok: {} acknowledged ({} after a retry), {} refused, {} abandoned",
            self.ledger.acked(),
            self.ledger.retried(),
            refused.len(),
            abandoned.len()
        );
        self.ledger
    }
}

/// Waits until every room answers a send again through `client`; returns how long that
/// took (reported, not asserted beyond a generous deadline).
async fn served_again(ledger: &Ledger, client: &A2a, rooms: &[Room], what: &str) -> Duration {
    let start = Instant::now();
    for room in rooms {
        let sent = ledger
            .send(client, &room.members[1], &format!("{what}-probe"), None)
            .await;
        assert!(
            sent.is_some(),
            "room {} was not served again after {what}: {:?}",
            room.admin().room_id,
            ledger.failures()
        );
    }
    let took = start.elapsed();
    eprintln!("rooms served again {took:?} after {what}");
    took
}
