//! The node's rooms: activates a room's actor on demand (loading it from the store under
//! a fresh epoch), passivates it when idle or, past `RoomsConfig::max_loaded_rooms`,
//! when it is among the least recently asked for (see `RoomDirectory::load`), creates
//! rooms, and admits requests.
//!
//! The map of active actors is ours (no process-global registry), so several nodes can
//! live in one test process. Ractor mailboxes are unbounded; the admission semaphore in
//! [`RoomDirectory::call`] is what bounds the work queued on this node.
//!
//! In cluster mode ([`RoomDirectory::clustered`]) a room is activated only where the
//! cluster places it (see [`crate::ownership`]); [`RoomDirectory::ask_owned`] says
//! [`NotOwner`] instead of answering when this node does not hold the room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use async_trait::async_trait;
use huddle_core::room::NewRoom;
use huddle_core::{
    Acknowledge, AgentToken, CreateRoom, Created, Delivered, HistoryPage, MemberId, Page, Room,
    RoomError, RoomId, RoomType, Seq, validate,
};
use huddle_store::{HistoryRead, LogRange, NamedRoom, RoomPage, RoomStore};
use ractor::{Actor, ActorRef};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::Instrument;

use crate::actor::{RoomArgs, RoomMsg};
use crate::budget::Budget;
use crate::call::{self, Answerer, Ask, Port, RoomCall};
use crate::config::RoomsConfig;
use crate::feed::{self, FeedSource, Opened, Subscribe, Subscribed};
use crate::follow::{self, FollowStream};
use crate::hub::{BufferStats, Hub};
use crate::ownership::{Cluster, NotOwner, Ownership};
use crate::passwords::PasswordGate;
use crate::push::{Ack, Pusher};
use crate::store_error::room_error;
use crate::{RoomActor, endpoint, secrets};

/// Stripes of the activation locks (bounded, unlike a lock per key).
const STRIPES: usize = 64;

#[derive(Clone)]
pub struct RoomDirectory {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn RoomStore>,
    hub: Arc<Hub>,
    /// What the loaded rooms' log tails may hold together (`max_tail_bytes`).
    tail_budget: Arc<Budget>,
    pusher: Pusher,
    config: Arc<RoomsConfig>,
    actors: Mutex<Loaded>,
    /// Serialises activations of one room (so it is loaded once).
    activating: Vec<tokio::sync::Mutex<()>>,
    admission: Arc<Semaphore>,
    /// Every password check of this node (create here, join and info through the router).
    passwords: PasswordGate,
    /// In a cluster, where push acknowledgements go: the router, so an acknowledgement
    /// that arrives after its room moved still moves the cursor, on the new owner.
    /// Cleared on shutdown (the router holds this directory).
    ack_route: Mutex<Option<Arc<dyn AckRoute>>>,
    /// Cluster mode's placement checks; `None` on a single node (no check at all).
    cluster: Option<Arc<Cluster>>,
}

/// The rooms whose actor runs on this node.
#[derive(Default)]
struct Loaded {
    rooms: HashMap<RoomId, Running>,
    /// How many of them were asked to unload (and have not stopped or been asked for
    /// since): they no longer count against the bound. Kept as a count (the flags are on
    /// the rooms) so an activation checks the bound without scanning the map.
    unloading: usize,
}

/// A room's running actor, and when it was last asked for: past the bound on loaded
/// rooms, the least recently asked-for unload first.
struct Running {
    actor: ActorRef<RoomMsg>,
    used: Instant,
    unloading: bool,
}

fn stripe<T: std::hash::Hash>(key: &T) -> usize {
    use std::hash::BuildHasher;
    // One hasher per process is enough: stripes only spread contention.
    static HASHER: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    (HASHER.get_or_init(Default::default).hash_one(key) as usize) % STRIPES
}

impl RoomDirectory {
    /// Must be called inside a tokio runtime: it starts the push acknowledgement task.
    pub fn new(store: Arc<dyn RoomStore>, config: RoomsConfig) -> Self {
        Self::build(store, config, None)
    }

    /// The rooms of one node of a cluster: activated only where `ownership` places
    /// them, read-fenced past the node's lease (see [`crate::ownership`]).
    pub fn clustered(
        store: Arc<dyn RoomStore>,
        config: RoomsConfig,
        ownership: Arc<dyn Ownership>,
    ) -> Self {
        Self::build(store, config, Some(Arc::new(Cluster::new(ownership))))
    }

    fn build(
        store: Arc<dyn RoomStore>,
        config: RoomsConfig,
        cluster: Option<Arc<Cluster>>,
    ) -> Self {
        let (pusher, acks) = Pusher::new(config.push.clone(), config.allow_private_endpoints);
        let inner = Arc::new(Inner {
            store,
            hub: Arc::new(Hub::new(
                config.subscriber_buffer,
                config.max_stream_backlog_bytes,
                config.max_streams,
            )),
            tail_budget: Arc::new(Budget::new(config.max_tail_bytes)),
            pusher,
            admission: Arc::new(Semaphore::new(config.max_in_flight)),
            passwords: PasswordGate::new(
                config.passwords.clone(),
                config.limits.max_password_bytes,
            ),
            config: Arc::new(config),
            actors: Mutex::new(Loaded::default()),
            activating: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            cluster,
            ack_route: Mutex::new(None),
        });
        tokio::spawn(feed_acks(Arc::downgrade(&inner), acks));
        Self { inner }
    }

    pub fn config(&self) -> &RoomsConfig {
        &self.inner.config
    }

    /// The node's password gate: room passwords are checked there, never in a room.
    pub fn passwords(&self) -> &PasswordGate {
        &self.inner.passwords
    }

    /// `room.create`: the uniqueness rules, then the room with its creator as admin.
    /// A name holds at most `max_rooms_per_name` rooms, which bounds the hashes a create
    /// (and a join by name) checks.
    pub async fn create(&self, req: CreateRoom) -> Result<Created, RoomError> {
        let cfg = &self.inner.config;
        validate::agent_name(&req.agent_name, &cfg.limits)?;
        let description = req.description.unwrap_or_default();
        validate::description(&description, &cfg.limits)?;
        let kind = match req.kind.as_deref() {
            Some(k) => validate::room_type(k)?,
            None => RoomType::Group,
        };
        let password = req.password.filter(|p| !p.is_empty());
        if let Some(p) = &password {
            validate::password(p, &cfg.limits)?;
        }
        if let Some(url) = &req.endpoint {
            endpoint::check_url(url, cfg.allow_private_endpoints)?;
        }
        let id = RoomId::new_random();
        let name = match req.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => validate::room_name(n, &cfg.limits)?,
            None => id.to_string(),
        };
        // The password work (matching the name's rooms, hashing the new password: seconds
        // when a flood of password checks is queued) happens before the name is locked,
        // so that it holds up no other creation of the name and, on PostgreSQL, holds no
        // pooled connection; under the lock only the rooms created meanwhile are matched.
        let (checked, password_hash) = match &password {
            Some(p) => {
                let seen = self.rooms_named(&name).await?;
                self.check_unique(&name, Some(p), &seen, &[]).await?;
                let hash = self.passwords().hash(p).await?;
                (seen, Some(hash))
            }
            None => (Vec::new(), None),
        };
        // Held until the room is stored: no other creation of this name, on this node or
        // any node sharing the store, sees the rooms of the name change meanwhile.
        let mut lock = self
            .inner
            .store
            .lock_name(&name)
            .await
            .map_err(room_error)?;
        let existing = lock.rooms_named().await.map_err(room_error)?;
        self.check_unique(&name, password.as_deref(), &existing, &checked)
            .await?;
        let token = secrets::mint_token(id);
        let room = Room::create(
            NewRoom {
                id,
                name,
                password_hash,
                description,
                kind,
                creator: req.agent_name,
                creator_token: token.digest(),
                creator_endpoint: req.endpoint,
            },
            crate::actor::now(),
        );
        lock.create_room(&room)
            .await
            .map_err(|e| RoomError::Unavailable(e.to_string()))?;
        Ok(Created {
            room_id: id,
            name: room.name,
            description: room.description,
            kind: room.kind,
            password_protected: room.password_hash.is_some(),
            agent_name: room.agents[0].name.clone(),
            agent_token: token,
        })
    }

    /// `room.create`'s uniqueness rules against the rooms `existing` of `name`: one room
    /// without a password per name, none beside protected ones, at most
    /// `max_rooms_per_name` in all, and a password no room of the name has (matched
    /// against the rooms not in `checked`, which were matched already).
    async fn check_unique(
        &self,
        name: &str,
        password: Option<&str>,
        existing: &[NamedRoom],
        checked: &[NamedRoom],
    ) -> Result<(), RoomError> {
        let Some(p) = password else {
            if existing.iter().any(|r| r.password_hash.is_none()) {
                return Err(RoomError::RoomExists(name.to_string()));
            }
            if !existing.is_empty() {
                return Err(RoomError::ProtectedRoomExists(name.to_string()));
            }
            return Ok(());
        };
        let limit = self.inner.config.max_rooms_per_name;
        if existing.len() >= limit {
            return Err(RoomError::TooManyRoomsNamed {
                name: name.to_string(),
                limit,
            });
        }
        let hashes = existing
            .iter()
            .filter(|r| !checked.iter().any(|c| c.id == r.id))
            .filter_map(|r| r.password_hash.clone())
            .collect();
        if self.passwords().matches_any(p, hashes).await? {
            return Err(RoomError::RoomExistsWithPassword(name.to_string()));
        }
        Ok(())
    }

    pub async fn rooms_named(&self, name: &str) -> Result<Vec<NamedRoom>, RoomError> {
        self.inner.store.rooms_named(name).await.map_err(room_error)
    }

    pub async fn list(&self, search: Option<&str>, page: Page) -> Result<RoomPage, RoomError> {
        let listed = self.inner.store.list_rooms(search, page).await;
        listed.map_err(room_error)
    }

    /// Runs `op` on `room`'s actor (activating it if needed) and waits for its answer.
    ///
    /// Traced as a `room.command` span (room id, command, outcome) under a kept trace
    /// ([`crate::traced`]), and the request's span learns the room id.
    pub async fn ask<O: Ask>(&self, room: RoomId, op: O) -> Result<O::Answer, RoomError> {
        self.ask_owned(room, op)
            .await
            .unwrap_or_else(|e| Err(e.into()))
    }

    /// [`RoomDirectory::ask`], or [`NotOwner`] when this node does not hold the room
    /// (cluster mode only): then nothing was applied, and the caller asks the owner.
    pub async fn ask_owned<O: Ask>(
        &self,
        room: RoomId,
        op: O,
    ) -> Result<Result<O::Answer, RoomError>, NotOwner> {
        tracing::Span::current().record("room.id", tracing::field::display(room));
        // Only under a kept trace (`traced`): for the others, not even a disabled span's
        // bookkeeping.
        let span = if crate::traced::in_kept_trace() {
            tracing::info_span!(
                "room.command",
                room.id = %room,
                command = O::NAME,
                outcome = tracing::field::Empty,
            )
        } else {
            tracing::Span::none()
        };
        let asked = async {
            let _permit = match self.admit() {
                Ok(permit) => permit,
                Err(busy) => return Ok(Err(busy)),
            };
            self.send_owned(room, |port| op.clone().into_call(port), RoomMsg::Call)
                .await
        };
        let answer = asked.instrument(span.clone()).await;
        let outcome = match &answer {
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) => "error",
            Err(NotOwner(_)) => "not_owner",
        };
        span.record("outcome", outcome);
        answer
    }

    /// Whether this node may hold `room` now (always, on a single node).
    pub fn may_hold(&self, room: RoomId) -> bool {
        self.inner.cluster.as_ref().is_none_or(|c| c.may_hold(room))
    }

    /// Ends the ceding of `room` before its time: the other nodes name this node as its
    /// owner too (a node that asked them was told so), so no view disagrees that would
    /// make two nodes fence each other in turn. Without it, a node that was paused past
    /// its lease and came back (still every view's owner of its rooms) would leave them
    /// unserved for a whole lease TTL.
    pub fn reclaim(&self, room: RoomId) {
        if let Some(c) = &self.inner.cluster {
            c.reclaim(room);
        }
    }

    /// Whether this node ceded `room` (its append was fenced, or its epoch moved past its
    /// lease) and will not take it back for now.
    pub fn ceded(&self, room: RoomId) -> bool {
        self.inner
            .cluster
            .as_ref()
            .is_some_and(|c| c.is_ceded(room))
    }

    /// The cluster's view changed: forgets the rooms ceded under the old one, and hands
    /// over every active room this node no longer owns (each commits what it applied and
    /// stops; the hub keeps its logs, so local readers keep their place). Returns how
    /// many rooms were handed over.
    pub async fn hand_over(&self, timeout: std::time::Duration) -> usize {
        let Some(cluster) = &self.inner.cluster else {
            return 0;
        };
        cluster.forget_ceded();
        let leaving: Vec<_> = self
            .inner
            .actors
            .lock()
            .expect("directory poisoned")
            .rooms
            .iter()
            .filter(|(room, _)| !cluster.may_hold(**room))
            .map(|(_, r)| r.actor.clone())
            .collect();
        let count = leaving.len();
        futures::future::join_all(leaving.iter().map(|a| a.drain_and_wait(Some(timeout)))).await;
        huddle_metrics::cluster::rooms_handed_over(count as u64);
        count
    }

    /// Runs a call that came through an object-safe seam and answers it on its port.
    pub async fn dispatch(&self, room: RoomId, call: RoomCall) {
        call.answer(room, self).await;
    }

    /// The page of `room`'s history that `viewer` (authorised by the room) may see: a
    /// store read, off the room's actor.
    pub async fn history(
        &self,
        room: RoomId,
        viewer: MemberId,
        page: Page,
    ) -> Result<HistoryPage, RoomError> {
        let _permit = self.admit()?;
        let read = HistoryRead { room, viewer, page };
        let (messages, total) = self.inner.store.history(read).await.map_err(room_error)?;
        debug_assert!(messages.iter().all(|m| m.visible_to(viewer)));
        Ok(HistoryPage { messages, total })
    }

    /// A place among the requests in flight on this node, held until the answer is
    /// complete (`Server busy` naming the limit when there is none): also taken by a
    /// cluster node for each call it forwards, so what waits on other nodes is bounded
    /// like what waits here.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, RoomError> {
        self.inner
            .admission
            .clone()
            .try_acquire_owned()
            .map_err(|_| RoomError::Busy(self.inner.config.max_in_flight))
    }

    /// Sends the message `build` makes (around `wrap`ped call) to `room`'s actor,
    /// activating it if needed, and waits for the answer on its port.
    async fn send<T, C>(
        &self,
        room: RoomId,
        build: impl Fn(Port<T>) -> C,
        wrap: impl Fn(C) -> RoomMsg,
    ) -> Result<T, RoomError> {
        self.send_owned(room, build, wrap)
            .await
            .unwrap_or_else(|e| Err(e.into()))
    }

    /// [`RoomDirectory::send`], or [`NotOwner`]: this node may not activate the room, or
    /// its actor stepped down (fenced) instead of answering.
    async fn send_owned<T, C>(
        &self,
        room: RoomId,
        build: impl Fn(Port<T>) -> C,
        wrap: impl Fn(C) -> RoomMsg,
    ) -> Result<Result<T, RoomError>, NotOwner> {
        // One retry: the actor may have passivated between lookup and send.
        for _ in 0..2 {
            let actor = match self.actor(room).await {
                Ok(actor) => actor,
                Err(Activation::NotOwner(e)) => return Err(e),
                Err(Activation::Failed(e)) => return Ok(Err(e)),
            };
            let (port, answer) = call::port();
            if actor.send_message(wrap(build(port))).is_err() {
                self.forget(room, &actor);
                continue;
            }
            match tokio::time::timeout(self.inner.config.call_timeout, answer).await {
                // An actor that stepped down fails what it had not committed (nothing of
                // it was applied) after ceding the room.
                Ok(Ok(Err(RoomError::Unavailable(_)))) if self.ceded(room) => {
                    return Err(NotOwner(room));
                }
                Ok(Ok(result)) => return Ok(result),
                Ok(Err(_dropped)) => {
                    // The actor stopped before answering (a failed commit answers first).
                    self.forget(room, &actor);
                    continue;
                }
                Err(_elapsed) => {
                    return Ok(Err(RoomError::Unavailable(
                        "the room did not answer in time".into(),
                    )));
                }
            }
        }
        Ok(Err(RoomError::Unavailable(
            "the room is restarting; retry".into(),
        )))
    }

    fn forget(&self, room: RoomId, actor: &ActorRef<RoomMsg>) {
        let mut loaded = self.inner.actors.lock().expect("directory poisoned");
        if loaded.rooms.get(&room).map(|r| r.actor.get_id()) == Some(actor.get_id())
            && loaded.rooms.remove(&room).is_some_and(|r| r.unloading)
        {
            loaded.unloading -= 1;
        }
    }

    /// The room's running actor, noted as asked for now (and counted again if it was
    /// asked to unload: it may have refused, having work under way).
    fn active(&self, room: RoomId) -> Option<ActorRef<RoomMsg>> {
        let mut loaded = self.inner.actors.lock().expect("directory poisoned");
        let running = loaded.rooms.get_mut(&room)?;
        running.used = Instant::now();
        let actor = running.actor.clone();
        if std::mem::take(&mut running.unloading) {
            loaded.unloading -= 1;
        }
        Some(actor)
    }

    /// Loads `actor` as `room`'s, and past `max_loaded_rooms` asks the least recently
    /// asked-for rooms (never this one) to unload, down to nine tenths of the bound: a
    /// flood of activations scans the map about once per tenth of the bound, not once
    /// per room. The rooms asked stop within moments (a room with work under way refuses
    /// and stays) and leave the map as any stopped actor does.
    fn load(&self, room: RoomId, actor: ActorRef<RoomMsg>) {
        let max = self.inner.config.max_loaded_rooms;
        let victims: Vec<ActorRef<RoomMsg>> = {
            let mut loaded = self.inner.actors.lock().expect("directory poisoned");
            let running = Running {
                actor,
                used: Instant::now(),
                unloading: false,
            };
            // (The activation lock leaves no other actor of the room in the map; one
            // replaced anyway must not stay counted as unloading.)
            if loaded
                .rooms
                .insert(room, running)
                .is_some_and(|r| r.unloading)
            {
                loaded.unloading -= 1;
            }
            let counted = loaded.rooms.len() - loaded.unloading;
            if counted <= max {
                return;
            }
            let mut oldest: Vec<(Instant, RoomId)> = loaded
                .rooms
                .iter()
                .filter(|(id, r)| **id != room && !r.unloading)
                .map(|(id, r)| (r.used, *id))
                .collect();
            let unload = (counted - (max - max / 10).max(1)).min(oldest.len());
            if unload < oldest.len() {
                oldest.select_nth_unstable(unload);
            }
            oldest.truncate(unload);
            let mut victims = Vec::with_capacity(unload);
            for (_, id) in oldest {
                if let Some(r) = loaded.rooms.get_mut(&id) {
                    r.unloading = true;
                    victims.push(r.actor.clone());
                }
            }
            loaded.unloading += victims.len();
            victims
        };
        tracing::debug!(
            rooms = victims.len(),
            max_loaded_rooms = max,
            "unloading the least recently used rooms"
        );
        for actor in victims {
            let _ = actor.send_message(RoomMsg::Unload);
        }
    }

    /// The room's actor, activated (loaded under a new epoch) if it is not running. An
    /// unknown room leaves nothing behind: no actor, no entry, no feed.
    async fn actor(&self, room: RoomId) -> Result<ActorRef<RoomMsg>, Activation> {
        // An active room this node no longer owns is on its way out (hand-over): calls
        // go to the owner meanwhile.
        if !self.may_hold(room) {
            return Err(Activation::NotOwner(NotOwner(room)));
        }
        if let Some(a) = self.active(room) {
            return Ok(a);
        }
        let _guard = self.inner.activating[stripe(&room)].lock().await;
        if let Some(a) = self.active(room) {
            return Ok(a);
        }
        if let Some(cluster) = &self.inner.cluster {
            let settle = cluster.settle();
            if !settle.is_zero() {
                tokio::time::sleep(settle).await;
                if !cluster.may_hold(room) {
                    return Err(Activation::NotOwner(NotOwner(room)));
                }
            }
        }
        let unavailable = |e: String| RoomError::Unavailable(e);
        let (state, epoch) = self
            .inner
            .store
            .acquire(room)
            .await
            .map_err(|e| unavailable(e.to_string()))?
            .ok_or_else(|| RoomError::RoomNotFound(room.to_string()))?;
        if self.inner.cluster.is_some() {
            huddle_metrics::cluster::room_taken_over();
        }
        let recent = self
            .inner
            .store
            .messages_after(LogRange::all(room, state.last_seq.minus(64), 64))
            .await
            .map_err(room_error)?;
        let args = RoomArgs {
            room: state,
            epoch,
            recent,
            store: self.inner.store.clone(),
            hub: self.inner.hub.clone(),
            pusher: self.inner.pusher.clone(),
            config: self.inner.config.clone(),
            tail_budget: self.inner.tail_budget.clone(),
            cluster: self.inner.cluster.clone(),
        };
        let (actor, handle) = Actor::spawn(None, RoomActor, args)
            .await
            .map_err(|e| unavailable(format!("room actor failed to start: {e}")))?;
        self.load(room, actor.clone());
        let weak = Arc::downgrade(&self.inner);
        let watched = actor.clone();
        tokio::spawn(async move {
            let _ = handle.await;
            if let Some(inner) = weak.upgrade() {
                RoomDirectory { inner }.forget(room, &watched);
            }
        });
        Ok(actor)
    }

    /// A stream of the messages the token's agent may see with `seq > after` (default:
    /// from now on): the log tail first, then live. One call the room answers once: an
    /// unknown room is `RoomNotFound` whatever the token, a missing token is
    /// `RoomError::Missing` (and takes no stream place).
    pub async fn subscribe(&self, req: Subscribe) -> Result<Subscribed, RoomError> {
        self.subscribe_via(self.local_source(), req).await
    }

    /// [`RoomDirectory::subscribe`] with the room's messages coming from `source` (the
    /// room's owner on another node) into this node's fan-out.
    pub async fn subscribe_via(
        &self,
        source: Arc<dyn FeedSource>,
        req: Subscribe,
    ) -> Result<Subscribed, RoomError> {
        feed::open(source, &self.inner.hub, self.inner.store.clone(), req).await
    }

    /// This node's rooms as the source of their own feeds (the room's actor here).
    pub fn local_source(&self) -> Arc<dyn FeedSource> {
        Arc::new(LocalSource(Arc::downgrade(&self.inner)))
    }

    /// This node's fan-out: where a remote source publishes what it receives.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    /// Every event of `room` with `seq > after` (log first, then live), for another node
    /// following the room this node owns (see [`crate::follow`]). Node-privileged: no
    /// token, every message; the caller has authenticated the node.
    pub async fn follow(&self, room: RoomId, after: Seq) -> Result<FollowStream, RoomError> {
        let following = {
            let _admitted = self.admit()?;
            self.send(room, |port| port, RoomMsg::Follow).await?
        };
        Ok(follow::stream(
            self.inner.store.clone(),
            room,
            after,
            following,
        ))
    }

    /// What `room`'s fan-out log holds on this node (`None`: nobody follows it here).
    pub fn feed_buffer(&self, room: RoomId) -> Option<BufferStats> {
        self.inner.hub.buffer(room)
    }

    /// Rooms with a live feed open on this node (each has an open subscription).
    pub fn live_rooms(&self) -> usize {
        self.inner.hub.live_rooms()
    }

    /// Rooms whose actor is running on this node.
    /// What the loaded rooms' log tails hold now, in bytes (an estimate; bounded by
    /// `RoomsConfig::max_tail_bytes`).
    pub fn tail_bytes(&self) -> usize {
        self.inner.tail_budget.used()
    }

    /// What the rooms' fan-out logs hold for streams that have not read it yet, in bytes
    /// (an estimate; bounded by `RoomsConfig::max_stream_backlog_bytes`).
    pub fn stream_backlog_bytes(&self) -> usize {
        self.inner.hub.backlog_bytes()
    }

    pub fn active_rooms(&self) -> usize {
        self.inner
            .actors
            .lock()
            .expect("directory poisoned")
            .rooms
            .len()
    }

    /// Sends push acknowledgements through `route` (the cluster's router) instead of to
    /// this node's rooms: a push under way when its room moved is acknowledged on the new
    /// owner.
    pub fn route_acks(&self, route: Arc<dyn AckRoute>) {
        *self.inner.ack_route.lock().expect("directory poisoned") = Some(route);
    }

    /// Stops every room after it has handled what is already in its mailbox.
    pub async fn shutdown(&self, timeout: std::time::Duration) {
        self.inner
            .ack_route
            .lock()
            .expect("directory poisoned")
            .take();
        let actors: Vec<_> = self
            .inner
            .actors
            .lock()
            .expect("directory poisoned")
            .rooms
            .values()
            .map(|r| r.actor.clone())
            .collect();
        for a in actors {
            let _ = a.drain_and_wait(Some(timeout)).await;
        }
    }
}

/// The rooms of this node as the source of their own feeds: the room's actor authorises
/// the reader, reads `last_seq` and attaches it to the fan-out in one step of its mailbox.
/// Weak, so that open streams do not keep a dropped directory alive.
struct LocalSource(Weak<Inner>);

#[async_trait]
impl FeedSource for LocalSource {
    async fn open(&self, room: RoomId, reader: Option<AgentToken>) -> Result<Opened, RoomError> {
        let inner = self
            .0
            .upgrade()
            .ok_or_else(|| RoomError::Unavailable("the node is shutting down".into()))?;
        let dir = RoomDirectory { inner };
        let _admitted = dir.admit()?;
        dir.send(
            room,
            |port| (reader.clone(), port),
            |(reader, port)| RoomMsg::Subscribe(reader, port),
        )
        .await
    }
}

/// Feeds push acknowledgements back to their rooms (moving the agents' cursors).
async fn feed_acks(dir: Weak<Inner>, mut acks: mpsc::UnboundedReceiver<Ack>) {
    while let Some(ack) = acks.recv().await {
        let Some(inner) = dir.upgrade() else { return };
        let dir = RoomDirectory { inner };
        let ack_op = Acknowledge(Delivered {
            member: ack.member,
            seq: ack.seq,
            prev: ack.prev,
        });
        let route = dir
            .inner
            .ack_route
            .lock()
            .expect("directory poisoned")
            .clone();
        let recorded = match route {
            Some(route) => route.acknowledge(ack.room, ack_op).await,
            None => dir.ask(ack.room, ack_op).await,
        };
        if let Err(e) = recorded {
            tracing::debug!(room.id = %ack.room, error = %e, "push ack not recorded");
        }
    }
}

/// Where a cluster node sends push acknowledgements (its router: to the room's owner).
#[async_trait]
pub trait AckRoute: Send + Sync + 'static {
    async fn acknowledge(&self, room: RoomId, ack: Acknowledge) -> Result<(), RoomError>;
}

/// The directory answers every room's calls (see [`RoomDirectory::ask`]).
impl Answerer for RoomDirectory {
    async fn answer<O: Ask>(&self, room: RoomId, op: O) -> Result<O::Answer, RoomError> {
        self.ask(room, op).await
    }
}

/// Why a room's actor is not there to ask.
enum Activation {
    /// The cluster places the room elsewhere (or this node ceded it).
    NotOwner(NotOwner),
    /// The room does not exist, or loading it failed.
    Failed(RoomError),
}

impl From<RoomError> for Activation {
    fn from(e: RoomError) -> Self {
        Activation::Failed(e)
    }
}
