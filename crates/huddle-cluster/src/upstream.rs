//! Room feeds of a cluster node: a reader of a room this node owns reads from the room's
//! actor here; a reader of a room owned elsewhere reads from this node's fan-out, fed by
//! ONE upstream feed per room (the owner's `Follow`), shared by all its readers here.
//!
//! Opening a remote reader ([`ClusterSource`]): attach it to the fan-out first, then ask
//! the owner to authorise it (`Authorize` through the router): the owner's `last_seq` is
//! at least where the reader was attached, so what arrives in between is a duplicate the
//! stream skips, never a gap. Then make sure the room's upstream runs (started from that
//! `last_seq` if it did not).
//!
//! The upstream publishes what it receives into the fan-out. When its follow ends (the
//! room moved, the owner died or fell behind, the link broke) it reads the membership
//! again and follows the owner from the last seq it received — or, if the room is now
//! this node's, it stops and the room's actor here publishes. Each time the fan-out's
//! publisher changes (every new follow, and the hand-over to the local actor) it
//! publishes [`Fanout::Reopen`]: a departure may have been committed where this node
//! did not see it (a follow replays messages from the store, not departures), so every
//! reader asks its source again — re-authorised, so a member removed meanwhile ends —
//! and carries on from its last seq, replaying from the store what it has not read.
//! Readers also fill any `seq` gap from the store (see `huddle_rooms::feed`), so two
//! publishers overlapping for a moment during a move cost a store read, not a message.
//!
//! An upstream stops when the room has no reader left on this node, and gives up after
//! [`MAX_FAILURES`] attempts in a row that reached no owner: its readers then ask their
//! source again, and end with the error if the room is still out of reach (clients
//! resume, possibly on another node).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use huddle_core::{AgentToken, MemberId, Message, RoomError, RoomId, Seq, SharedMessage, Viewer};
use huddle_proto::internal::node_client::NodeClient;
use huddle_proto::internal::{FeedEvent, FollowRequest, feed_event};
use huddle_rooms::hub::Fanout;
use huddle_rooms::{FeedSource, FollowEnd, FollowEvent, FollowStream, Opened, RoomDirectory};
use tonic::transport::Channel;

use crate::placement::{Peer, Placement};
use crate::{Subscribe, Subscribed};

/// Attempts in a row that reach no owner before an upstream gives up.
pub const MAX_FAILURES: u32 = 8;
/// The first wait after a failed attempt; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often an upstream waiting for events checks that it still has readers.
const READERS_CHECK: Duration = Duration::from_secs(1);

/// What the feeds need of the cluster: the owner's feed, and a reader's authorisation by
/// the room (the router's `Authorize`, re-resolving the owner as any call does).
#[async_trait]
pub trait Owners: Send + Sync + 'static {
    /// Every event of `room` after `after`, from `owner` (its `Follow`).
    async fn follow(
        &self,
        owner: &Peer,
        room: RoomId,
        after: Seq,
    ) -> Result<FollowStream, FollowEnd>;

    /// The reader the token names, as the room sees it now.
    async fn authorize(&self, room: RoomId, token: AgentToken) -> Result<Viewer, RoomError>;

    /// Whether the room exists (a request without a token is refused as missing only
    /// once the room is known to exist).
    async fn exists(&self, room: RoomId) -> Result<(), RoomError>;
}

/// This node's upstream feeds.
#[derive(Clone)]
pub struct Feeds {
    inner: Arc<Inner>,
}

struct Inner {
    rooms: RoomDirectory,
    placement: Arc<dyn Placement>,
    /// Rooms with an upstream running. Its task leaves this set, under the lock, only
    /// after seeing the room without readers; a reader attaches before it looks here, so
    /// a room with a reader always has an upstream.
    running: Mutex<HashSet<RoomId>>,
}

impl Feeds {
    pub fn new(rooms: RoomDirectory, placement: Arc<dyn Placement>) -> Self {
        Self {
            inner: Arc::new(Inner {
                rooms,
                placement,
                running: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// A reader's stream of `room` (see `Router::subscribe`), from the room's actor here
    /// or through the room's upstream feed.
    pub async fn subscribe(
        &self,
        owners: Arc<dyn Owners>,
        req: Subscribe,
    ) -> Result<Subscribed, RoomError> {
        let source = Arc::new(ClusterSource {
            feeds: self.clone(),
            owners,
        });
        self.inner.rooms.subscribe_via(source, req).await
    }

    /// Upstream feeds running on this node (one per followed room).
    pub fn upstreams(&self) -> usize {
        self.running().len()
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashSet<RoomId>> {
        self.inner
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts `room`'s upstream from `after` unless one runs.
    fn ensure(&self, owners: &Arc<dyn Owners>, room: RoomId, after: Seq) {
        if !self.running().insert(room) {
            return;
        }
        let upstream = Upstream {
            feeds: self.clone(),
            owners: owners.clone(),
            room,
            last: after,
        };
        tokio::spawn(upstream.run());
    }

    /// Whether `room`'s upstream may stop (no reader left); if so it is no longer running.
    fn unread(&self, room: RoomId) -> bool {
        let mut running = self.running();
        let unread = self.inner.rooms.hub().subscribers(room) == 0;
        if unread {
            running.remove(&room);
        }
        unread
    }

    /// The room's owner is this node (or no node is known): read it here.
    fn local(&self, room: RoomId) -> bool {
        !matches!(self.owner(room), Owner::Node(_))
    }

    /// Where `room`'s events come from: the first node of its ranking, skipping this
    /// node when it ceded the room (a newer owner fenced it: it does not take the room
    /// straight back, so it follows the next node, as its calls go there).
    fn owner(&self, room: RoomId) -> Owner {
        let view = self.inner.placement.view();
        let me = self.inner.placement.me();
        let ceded = self.inner.rooms.ceded(room);
        match view
            .ranked(room)
            .into_iter()
            .find(|p| !(ceded && &p.id == me))
        {
            Some(p) if &p.id == me => Owner::Here,
            Some(p) => Owner::Node(p.clone()),
            None if ceded => Owner::Unknown,
            None => Owner::Here,
        }
    }
}

/// Where a room's events come from, for this node.
enum Owner {
    Here,
    Node(Peer),
    Unknown,
}

/// A reader's source in a cluster: the room's actor here when this node owns the room,
/// else the room's upstream feed (see the module docs).
struct ClusterSource {
    feeds: Feeds,
    owners: Arc<dyn Owners>,
}

#[async_trait]
impl FeedSource for ClusterSource {
    async fn open(&self, room: RoomId, reader: Option<AgentToken>) -> Result<Opened, RoomError> {
        let rooms = &self.feeds.inner.rooms;
        if self.feeds.local(room) {
            return rooms.local_source().open(room, reader).await;
        }
        let Some(token) = reader else {
            self.owners.exists(room).await?;
            return Err(RoomError::Missing(vec!["agentToken".into()]));
        };
        // Attached before the owner answers: see the module docs.
        let live = rooms.hub().attach(room);
        let viewer = self.owners.authorize(room, token).await?;
        self.feeds.ensure(&self.owners, room, viewer.last_seq);
        Ok(Opened {
            member: viewer.member,
            last_seq: viewer.last_seq,
            live,
        })
    }
}

/// One room's upstream feed.
struct Upstream {
    feeds: Feeds,
    owners: Arc<dyn Owners>,
    room: RoomId,
    /// The last seq received (or where it started).
    last: Seq,
}

impl Upstream {
    async fn run(mut self) {
        let _counted = huddle_metrics::upstream::UpstreamFeed::new();
        let (room, hub) = (self.room, self.feeds.inner.rooms.hub().clone());
        let placement = self.feeds.inner.placement.clone();
        let mut failures = 0;
        loop {
            if self.feeds.unread(room) {
                return;
            }
            let end = match self.feeds.owner(room) {
                Owner::Here => {
                    // The room is this node's now: its actor publishes from here on.
                    self.feeds.running().remove(&room);
                    hub.publish(room, &[Fanout::Reopen]);
                    return;
                }
                Owner::Node(owner) => match self.owners.follow(&owner, room, self.last).await {
                    Ok(stream) => {
                        failures = 0;
                        hub.publish(room, &[Fanout::Reopen]);
                        match self.forward(stream, &owner).await {
                            Some(end) => end,
                            None => return,
                        }
                    }
                    Err(end) => end,
                },
                Owner::Unknown => FollowEnd::Lost("no live node in the cluster".into()),
            };
            failures += 1;
            tracing::debug!(room.id = %room, last = self.last.get(), %end, "upstream feed ended; finding the owner again");
            if failures >= MAX_FAILURES {
                tracing::warn!(room.id = %room, %end, "no owner reachable for the room's upstream feed; its readers ask again");
                self.feeds.running().remove(&room);
                hub.publish(room, &[Fanout::Reopen]);
                return;
            }
            if failures > 1 {
                let backoff = FIRST_BACKOFF * 2u32.pow(failures - 2);
                tokio::time::sleep(backoff.min(MAX_BACKOFF)).await;
            }
            placement.refresh().await;
        }
    }

    /// Publishes what the follow carries until it ends (`Some`: why) or the room has no
    /// reader left here (`None`: the upstream stopped). A follow of a node that is no
    /// longer the room's owner in this node's view ends too: an owner that stopped
    /// (SIGSTOP, a hung host) keeps its connections open but sends nothing, and only
    /// the view, where its lease expires, tells.
    async fn forward(&mut self, mut stream: FollowStream, owner: &Peer) -> Option<FollowEnd> {
        let hub = self.feeds.inner.rooms.hub().clone();
        let mut check = tokio::time::interval(READERS_CHECK);
        check.tick().await;
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = check.tick() => {
                    if self.feeds.unread(self.room) {
                        return None;
                    }
                    if !matches!(self.feeds.owner(self.room), Owner::Node(p) if p.id == owner.id) {
                        return Some(FollowEnd::Lost(format!(
                            "node {} no longer owns the room in this node's view",
                            owner.id
                        )));
                    }
                    continue;
                }
            };
            match item {
                Some(Ok(FollowEvent::Message(m))) => {
                    self.last = self.last.max(m.seq);
                    hub.publish(self.room, &[Fanout::Message(m)]);
                }
                Some(Ok(FollowEvent::Removed(member))) => {
                    hub.publish(self.room, &[Fanout::Left(member)]);
                }
                Some(Err(end)) => return Some(end),
                None => return Some(FollowEnd::Lost("the feed ended".into())),
            }
        }
    }
}

/// `Follow` over the internal service: `request` (carrying the cluster's metadata) sent
/// on `client`, its events decoded. A refusal or a broken link ends the stream with
/// [`FollowEnd::Lost`], "not owner" with [`FollowEnd::Moved`].
pub async fn follow_over(
    mut client: NodeClient<Channel>,
    mut request: tonic::Request<FollowRequest>,
) -> Result<FollowStream, FollowEnd> {
    // A follow lasts as long as the room has readers here: no deadline on the stream.
    request.metadata_mut().remove("grpc-timeout");
    let stream = client.follow(request).await.map_err(lost)?.into_inner();
    let events = stream.map(|item| decode(item.map_err(lost)?));
    Ok(Box::pin(events))
}

fn decode(event: FeedEvent) -> Result<FollowEvent, FollowEnd> {
    match event.event {
        Some(feed_event::Event::Message(json)) => {
            let message: Message = serde_json::from_slice(&json)
                .map_err(|e| FollowEnd::Lost(format!("unreadable message from the owner: {e}")))?;
            Ok(FollowEvent::Message(SharedMessage::new(message)))
        }
        Some(feed_event::Event::Removed(member)) => Ok(FollowEvent::Removed(MemberId::new(member))),
        None => Err(FollowEnd::Lost("an empty event from the owner".into())),
    }
}

fn lost(status: tonic::Status) -> FollowEnd {
    match status.code() {
        tonic::Code::FailedPrecondition
            if status.message() == crate::node_service::follow::NOT_OWNER =>
        {
            FollowEnd::Moved
        }
        _ => FollowEnd::Lost(status.to_string()),
    }
}
