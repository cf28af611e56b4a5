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

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use huddle_core::{Acknowledge, AgentToken, Authorize, GetLock, RoomError, RoomId, Seq, Viewer};
use huddle_metrics::cluster::Forwarded;
use huddle_proto::internal::FollowRequest;
use huddle_rooms::call::{Answerer, Ask};
use huddle_rooms::{
    AckRoute, FollowEnd, FollowStream, NotOwner, Ownership, RoomCall, RoomDirectory,
};

use crate::peers::{CallError, Peers, Reply};
use crate::placement::{NodeId, Peer, Placement};
use crate::upstream::{self, Feeds, Owners};
use crate::{Router, Subscribe, Subscribed};

/// Owners tried for one operation before giving up (each after reading the membership
/// again): enough for one move and one stale view, few enough to answer fast.
pub const MAX_HOPS: usize = 4;
/// The wait before the second try; it doubles with each try after (100, 200, 400 ms):
/// views of a membership change reach every node within a fraction of a second, and a
/// try without waiting would only meet the same stale view.
const HOP_BACKOFF: Duration = Duration::from_millis(100);

/// The router of a cluster node (cheap to clone: its parts are shared).
#[derive(Clone)]
pub struct ClusterRouter {
    rooms: RoomDirectory,
    placement: Arc<dyn Placement>,
    peers: Peers,
    feeds: Feeds,
}

impl ClusterRouter {
    /// `rooms` must be a [`RoomDirectory::clustered`] on the same `placement` (see
    /// [`Placed`]).
    pub fn new(rooms: RoomDirectory, placement: Arc<dyn Placement>, peers: Peers) -> Self {
        let router = Self {
            feeds: Feeds::new(rooms.clone(), placement.clone()),
            rooms: rooms.clone(),
            placement,
            peers,
        };
        rooms.route_acks(Arc::new(router.clone()));
        router
    }

    /// Upstream feeds running on this node (one per room followed from its owner).
    pub fn upstreams(&self) -> usize {
        self.feeds.upstreams()
    }

    fn rooms(&self) -> &RoomDirectory {
        &self.rooms
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
                tokio::time::sleep(HOP_BACKOFF * (1 << (hop - 1))).await;
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
            let reply = tokio::select! {
                reply = self.peers.call(target, room, O::NAME, body) => reply,
                () = left_view(self.placement.as_ref(), &target.id) => Err(CallError::Lost {
                    peer: target.id.to_string(),
                    reason: "its lease expired while the call waited".into(),
                }),
            };
            huddle_metrics::cluster::forwarded(match &reply {
                Ok(Reply::Answer(_)) => Forwarded::Ok,
                Ok(Reply::NotOwner(_)) => Forwarded::NotOwner,
                Err(_) => Forwarded::Failed,
            });
            match reply {
                Ok(Reply::Answer(answer)) => {
                    return serde_json::from_slice(&answer).unwrap_or_else(|e| {
                        Err(RoomError::Unavailable(format!(
                            "node {} answered what this node cannot read: {e}",
                            target.id
                        )))
                    });
                }
                Ok(Reply::NotOwner(owner))
                    if owner == me.as_str()
                        && view.owner(room).is_some_and(|p| p.id == me)
                        && self.rooms().ceded(room) =>
                {
                    // Both views name this node the owner: the step-down is over.
                    failures.push(format!("node {} names this node the owner", target.id));
                    tried.push(target.id.clone());
                    tried.retain(|id| id != &me);
                    self.rooms().reclaim(room);
                }
                Ok(Reply::NotOwner(owner)) if owner == target.id.as_str() => {
                    // It names itself: every view agrees it is the owner, and it stepped
                    // down a moment ago. Its step-down lasts one renewal period: ask it
                    // again after the back-off.
                    failures.push(format!("node {} stepped down from the room", target.id));
                    hint = Some(owner);
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

/// Resolves once `node` is no longer in the view: a stopped or hung owner keeps its
/// connections open and answers nothing, and only its lease, expiring in Redis, tells.
async fn left_view(placement: &dyn Placement, node: &NodeId) {
    let mut changes = placement.changes();
    loop {
        if !changes
            .borrow_and_update()
            .nodes()
            .iter()
            .any(|p| &p.id == node)
        {
            return;
        }
        if changes.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Every room's calls go to the room's owner.
impl Answerer for ClusterRouter {
    async fn answer<O: Ask>(&self, room: RoomId, op: O) -> Result<O::Answer, RoomError> {
        self.route(room, op).await
    }
}

#[async_trait]
impl Router for ClusterRouter {
    fn directory(&self) -> &RoomDirectory {
        &self.rooms
    }

    async fn call(&self, room: RoomId, call: RoomCall) {
        call.answer(room, self).await;
    }

    async fn subscribe(&self, req: Subscribe) -> Result<Subscribed, RoomError> {
        let owners: Arc<dyn Owners> = Arc::new(self.clone());
        self.feeds.subscribe(owners, req).await
    }
}

/// Push acknowledgements go to the room's owner, wherever it is now.
#[async_trait]
impl AckRoute for ClusterRouter {
    async fn acknowledge(&self, room: RoomId, ack: Acknowledge) -> Result<(), RoomError> {
        self.route(room, ack).await
    }
}

/// The owners of rooms as the upstream feeds reach them: `Follow` over the internal
/// service, and typed calls routed like any other.
#[async_trait]
impl Owners for ClusterRouter {
    async fn follow(
        &self,
        owner: &Peer,
        room: RoomId,
        after: Seq,
    ) -> Result<FollowStream, FollowEnd> {
        let request = self.peers.request(FollowRequest {
            room_id: room.to_string(),
            after_seq: after.get(),
        });
        upstream::follow_over(self.peers.client(owner), request).await
    }

    async fn authorize(&self, room: RoomId, token: AgentToken) -> Result<Viewer, RoomError> {
        self.route(room, Authorize { token }).await
    }

    async fn exists(&self, room: RoomId) -> Result<(), RoomError> {
        self.route(room, GetLock).await.map(drop)
    }
}

/// Time for a node that has just seen a new view to hand over what it no longer owns
/// (each room commits and stops), on top of the renewal period.
const SETTLE_MARGIN: Duration = Duration::from_millis(250);

/// The placement as the rooms see it: this node owns the rooms its view gives it; its
/// lease deadline is the placement's; a ceded room waits one renewal period (a third of
/// the lease TTL: every node's view has been read again by then, so views that disagreed
/// when the room was taken agree, and a node that every view names owner — one that was
/// paused past its lease and came back — serves its rooms again that soon).
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
        self.lease_ttl / 3
    }

    fn settle(&self) -> Duration {
        let Some(changed) = self.placement.view_changed_at() else {
            return Duration::ZERO;
        };
        let settled = changed + self.lease_ttl / 3 + SETTLE_MARGIN;
        settled.saturating_duration_since(Instant::now())
    }
}
