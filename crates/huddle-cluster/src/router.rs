//! [`ClusterRouter`]: the [`Router`] of a node in a cluster. A room operation runs
//! where the room lives: here when this node owns it (in its view, and has not ceded
//! it), else forwarded once to the owner over the internal `Call`. A `NotOwner` answer or
//! an owner that cannot be reached makes it read the membership again and try the next
//! candidate, a bounded number of times ([`MAX_HOPS`]); then the client gets
//! `Service unavailable` saying what failed.
//!
//! A forwarded call whose answer was lost (the connection broke after it was sent) is
//! sent again only if running it twice is the same as once
//! ([`Replayable`](huddle_rooms::call::Replayable)): reads,
//! acknowledgements, and sends that carry an idempotency key. Any other operation gets
//! `Service unavailable` saying it may or may not have been applied, as when the store
//! fails under a write.
//!
//! Everything that is a read of the shared store (history, names, the listing) or
//! serialised by it (creation, under the store's name lock) runs on this node.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use huddle_core::{
    AgentToken, CreateRoom, Created, HistoryPage, MemberId, Page, PasswordProof, RoomError, RoomId,
    Seq,
};
use huddle_rooms::call::{Answerer, Ask};
use huddle_rooms::{NotOwner, Ownership, RoomCall, RoomDirectory};
use huddle_store::{NamedRoom, RoomPage};

use crate::peers::{CallError, Peers, Reply};
use crate::placement::{NodeId, Peer, Placement};
use crate::{LocalRouter, OnLag, Router, Subscribed};

/// Owners tried for one operation before giving up (each after reading the membership
/// again): enough for one move and one stale view, few enough to answer fast.
pub const MAX_HOPS: usize = 3;

/// The router of a cluster node.
pub struct ClusterRouter {
    local: LocalRouter,
    placement: Arc<dyn Placement>,
    peers: Peers,
}

impl ClusterRouter {
    /// `rooms` must be a [`RoomDirectory::clustered`] on the same `placement` (see
    /// [`Placed`]).
    pub fn new(rooms: RoomDirectory, placement: Arc<dyn Placement>, peers: Peers) -> Self {
        Self {
            local: LocalRouter::new(rooms),
            placement,
            peers,
        }
    }

    fn rooms(&self) -> &RoomDirectory {
        self.local.directory()
    }

    /// Runs `op` on `room` wherever the room lives (see the module docs).
    pub async fn route<O: Ask>(&self, room: RoomId, op: O) -> Result<O::Answer, RoomError> {
        let me = self.placement.me().clone();
        let mut tried: Vec<NodeId> = Vec::new();
        let mut hint: Option<String> = None;
        // What each hop met, for the client's error (at most one per hop).
        let mut failures: Vec<String> = Vec::new();
        let mut payload: Option<Vec<u8>> = None;
        for hop in 0..MAX_HOPS {
            if hop > 0 {
                self.placement.refresh().await;
            }
            let view = self.placement.view();
            let ranked = view.ranked(room);
            let eligible =
                |p: &Peer| !tried.contains(&p.id) && (p.id != me || !self.rooms().ceded(room));
            let hinted = hint
                .take()
                .and_then(|h| ranked.iter().find(|p| p.id.as_str() == h && eligible(p)));
            let Some(target) = hinted
                .or_else(|| ranked.iter().find(|p| eligible(p)))
                .copied()
            else {
                break;
            };
            if target.id == me {
                match self.rooms().ask_owned(room, op.clone()).await {
                    Ok(answer) => return answer,
                    Err(e @ NotOwner(_)) => {
                        failures.push(e.to_string());
                        tried.push(me.clone());
                        continue;
                    }
                }
            }
            let _in_flight = self.rooms().admit()?;
            let body = match &payload {
                Some(p) => p.clone(),
                None => {
                    let encoded = serde_json::to_vec(&op).map_err(|e| {
                        RoomError::Unavailable(format!("operation not encodable: {e}"))
                    })?;
                    payload.insert(encoded).clone()
                }
            };
            match self.peers.call(target, room, O::NAME, body).await {
                Ok(Reply::Answer(answer)) => {
                    return serde_json::from_slice(&answer).unwrap_or_else(|e| {
                        Err(RoomError::Unavailable(format!(
                            "node {} answered what this node cannot read: {e}",
                            target.id
                        )))
                    });
                }
                Ok(Reply::NotOwner(owner)) => {
                    failures.push(format!("node {} does not own the room", target.id));
                    tried.push(target.id.clone());
                    hint = Some(owner).filter(|o| !o.is_empty());
                }
                Err(e @ CallError::Unreachable { .. }) => {
                    failures.push(e.to_string());
                    tried.push(target.id.clone());
                }
                Err(e @ CallError::Lost { .. }) if op.replayable() => failures.push(e.to_string()),
                Err(e @ CallError::Lost { .. }) => {
                    return Err(RoomError::Unavailable(format!(
                        "{e}; the {} may or may not have been applied",
                        O::NAME
                    )));
                }
                Err(e @ CallError::Refused { .. }) => {
                    return Err(RoomError::Unavailable(e.to_string()));
                }
            }
        }
        if failures.is_empty() {
            failures.push("no live node".into());
        }
        Err(RoomError::Unavailable(format!(
            "room {room} could not be reached: {}",
            failures.join("; ")
        )))
    }
}

/// One room's calls, routed.
struct Routed<'a> {
    router: &'a ClusterRouter,
    room: RoomId,
}

impl Answerer for Routed<'_> {
    async fn answer<O: Ask>(&self, op: O) -> Result<O::Answer, RoomError> {
        self.router.route(self.room, op).await
    }
}

#[async_trait]
impl Router for ClusterRouter {
    async fn create(&self, req: CreateRoom) -> Result<Created, RoomError> {
        self.local.create(req).await
    }

    async fn call(&self, room: RoomId, call: RoomCall) {
        call.answer(&Routed { router: self, room }).await;
    }

    async fn history(
        &self,
        room: RoomId,
        viewer: MemberId,
        page: Page,
    ) -> Result<HistoryPage, RoomError> {
        self.local.history(room, viewer, page).await
    }

    async fn rooms_named(&self, name: &str) -> Result<Vec<NamedRoom>, RoomError> {
        self.local.rooms_named(name).await
    }

    async fn check_password(
        &self,
        client: Option<IpAddr>,
        password: &str,
        rooms: &[(RoomId, String)],
    ) -> Result<Option<(RoomId, PasswordProof)>, RoomError> {
        self.local.check_password(client, password, rooms).await
    }

    async fn list(&self, search: Option<&str>, page: Page) -> Result<RoomPage, RoomError> {
        self.local.list(search, page).await
    }

    async fn subscribe(
        &self,
        room: RoomId,
        reader: Option<AgentToken>,
        after: Option<Seq>,
        on_lag: OnLag,
    ) -> Result<Subscribed, RoomError> {
        crate::upstream::subscribe(self.rooms(), room, reader, after, on_lag).await
    }
}

/// The placement as the rooms see it: this node owns the rooms its view gives it; its
/// lease deadline is the placement's; a ceded room waits one lease TTL.
pub struct Placed {
    placement: Arc<dyn Placement>,
    lease_ttl: Duration,
}

impl Placed {
    pub fn new(placement: Arc<dyn Placement>, lease_ttl: Duration) -> Self {
        Self {
            placement,
            lease_ttl,
        }
    }
}

impl Ownership for Placed {
    fn owns(&self, room: RoomId) -> bool {
        let view = self.placement.view();
        view.owner(room)
            .is_some_and(|p| &p.id == self.placement.me())
    }

    fn lease_deadline(&self) -> Option<Instant> {
        self.placement.lease_deadline()
    }

    fn cede_for(&self) -> Duration {
        self.lease_ttl
    }
}
