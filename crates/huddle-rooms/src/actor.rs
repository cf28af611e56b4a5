//! The room actor: the one writer of one room.
//!
//! Requests are handled one at a time, in mailbox order, so the room needs no lock and
//! its `seq` order is its mailbox order. A request is decided and applied to the
//! in-memory room at once, but its reply waits for the commit of its events:
//!
//! - The first request after a commit schedules a `Flush` behind everything already
//!   queued; the flush hands all events gathered meanwhile to the store in one append
//!   (group commit) on a separate task, and the actor goes on deciding new requests
//!   while that append runs (pipelining). At most one append is in flight, so appends
//!   reach the store in order.
//! - When the append finishes (`Committed`), the batch's messages and departures are
//!   published in the order of its events (so a kicked member's streams end before any
//!   message committed after the kick) and its replies released; whatever gathered
//!   meanwhile is flushed next.
//! - Under concurrency the flush may wait a little (`RoomsConfig::group_commit_wait`): when
//!   the last commit answered several callers, they are most likely on their way back
//!   with their next request. The flush then waits until they are back, next to the
//!   callers that were already waiting when the commit answered, or the wait is over. A
//!   commit costs about the same for one message as for ten (the store's writes, its log
//!   pages, the hops between actor and writer, a round trip to PostgreSQL), so bigger
//!   batches are fewer commits for the same messages; without the wait, callers split
//!   into two groups that take turns, each commit carrying only half of them. A caller
//!   alone (the last commit answered one) never waits, nor does a flush long after the
//!   last answer (more than the wait), nor the one after a wait that ran out (those
//!   callers did not come back).
//! - A subscriber is authorised here, and only then its live feed opened, in the same step
//!   as the room's `last_seq` is read: the actor is the room's only publisher, so the feed
//!   gets every message after that `last_seq` (see [`crate::feed`]).
//!
//! So a reply always means "durable", and any reply computed after another request's
//! events were applied is released after their commit too (reads included).
//!
//! If the store refuses or fails an append, the in-memory room is ahead of the store:
//! every waiting caller gets `Service unavailable` and the actor stops; the directory
//! loads the room again from the store on the next request. Domain errors never stop the
//! actor; they are replies. On a graceful stop (drain, idle) everything applied is
//! committed and answered before the actor ends.
//!
//! In cluster mode (see [`crate::ownership`]) a fenced append also cedes the room, and
//! past the node's lease deadline an answer that would go out without a commit (a read)
//! waits for the store to confirm the actor's epoch; a changed epoch cedes the room too.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use huddle_core::command::{self, LogRead};
use huddle_core::room::{Ctx, Decide};
use huddle_core::{
    Acknowledge, AgentToken, Event, GetLock, JoinRoom, Joined, Lock, Message, Missed,
    PasswordProof, Room, RoomError, Seq, SharedMessage, Timestamp, Viewer,
};
use huddle_store::{Epoch, LogRange, RoomStore, SentKey, StoreError};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use uuid::Uuid;

use crate::budget::Budget;
use crate::call::{Port, RoomCall};
use crate::config::RoomsConfig;
use crate::endpoint;
use crate::feed::Opened;
use crate::follow::Following;
use crate::hub::{Fanout, Hub};
use crate::log_tail::LogTail;
use crate::ownership::Cluster;
use crate::push::Pusher;
use crate::secrets;

/// Recent messages kept in memory per active room.
const TAIL: usize = 256;

pub enum RoomMsg {
    /// One operation, answered on its own typed port.
    Call(RoomCall),
    /// Authorise the token's agent as a reader and attach it to the fan-out (no token:
    /// refused as missing, once the room is known to exist).
    Subscribe(Option<AgentToken>, Port<Opened>),
    /// Attach a node following every event of the room (no token: the node service
    /// authenticated the node), and tell it when this actor stops.
    Follow(Port<Following>),
    /// Commit what was applied since the last flush, then publish and reply.
    Flush,
    /// The wait for more callers (see the module doc) is over, unless it is not the
    /// wait of this number (a wait that ended early leaves its timer behind).
    WaitOver(u64),
    /// The in-flight append finished (its task holds the result).
    Committed,
    /// Passivate if idle.
    IdleCheck,
    /// Passivate now if quiet, idle or not: the node holds more rooms than its bound
    /// (`RoomsConfig::max_loaded_rooms`) and this one was asked for least recently.
    Unload,
}

/// Aborts its task when dropped (with the actor's state, however the actor stops).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Stateless handle type; the state is built in `pre_start`.
pub struct RoomActor;

pub struct RoomArgs {
    pub room: Room,
    pub epoch: Epoch,
    pub recent: Vec<Message>,
    pub store: Arc<dyn RoomStore>,
    pub hub: Arc<Hub>,
    pub pusher: Pusher,
    pub config: Arc<RoomsConfig>,
    /// The node's budget for what its rooms' tails hold.
    pub tail_budget: Arc<Budget>,
    /// Cluster mode's hooks (`None`: a single node, no check).
    pub(crate) cluster: Option<Arc<Cluster>>,
}

/// A reply waiting for the commit of what was applied before it was computed, whatever
/// its answer type.
trait Settle: Send + Sync {
    fn send(self: Box<Self>);
    fn fail(self: Box<Self>, err: RoomError);
}

struct Answer<T> {
    port: Port<T>,
    result: Result<T, RoomError>,
}

impl<T: Send + Sync> Settle for Answer<T> {
    fn send(self: Box<Self>) {
        // A caller that gave up is gone; a feed sent to it is dropped (and freed) here.
        self.port.send(self.result);
    }

    fn fail(self: Box<Self>, err: RoomError) {
        self.port.send(Err(err));
    }
}

type PendingReply = Box<dyn Settle>;

fn pending<T: Send + Sync + 'static>(port: Port<T>, result: Result<T, RoomError>) -> PendingReply {
    Box::new(Answer { port, result })
}

/// The append being written, and what to do once it is durable.
struct Inflight {
    task: tokio::task::JoinHandle<Result<(), huddle_store::StoreError>>,
    replies: Vec<PendingReply>,
    /// The batch's messages and departures, in event order.
    fanout: Vec<Fanout>,
    /// The batch's messages, for A2A push.
    messages: Vec<SharedMessage>,
    last_seq: Seq,
}

pub struct RoomState {
    room: Room,
    epoch: Epoch,
    /// Highest `seq` known to be in the store.
    committed: Seq,
    tail: LogTail,
    /// Highest `seq` handed to the store (committed or in flight).
    submitted: Seq,
    pending: Vec<Event>,
    replies: Vec<PendingReply>,
    inflight: Option<Inflight>,
    /// Per agent with an endpoint: the last message queued for push (starts at its
    /// cursor when first seen).
    pushed: std::collections::HashMap<huddle_core::MemberId, Seq>,
    flush_scheduled: bool,
    /// Callers answered by the last commit.
    last_batch: usize,
    /// Callers the next flush waits for: those the last commit answered and those that
    /// were already waiting then (0 after a wait that ran out: no wait).
    expected: usize,
    /// When the last commit answered its callers.
    answered_at: Instant,
    /// The wait that started the commit being gathered or in flight ran out.
    ran_out: bool,
    /// The wait for more callers in progress, by number (0: none), and the last number
    /// given.
    waiting: u64,
    waits: u64,
    last_active: Instant,
    /// Dropped with the state when the actor stops: ends its followers' feeds (the room
    /// may be taken elsewhere next). Its receivers are the followers: while there is one,
    /// the room does not passivate for idleness.
    stopped: tokio::sync::watch::Sender<()>,
    /// The idle check's timer. It holds the actor's cell (its mailboxes), and on its own
    /// would notice the actor gone only at its next tick, up to a quarter of the idle
    /// timeout later: every room unloaded meanwhile would stay in memory that long.
    _idle_timer: AbortOnDrop,
    store: Arc<dyn RoomStore>,
    hub: Arc<Hub>,
    pusher: Pusher,
    config: Arc<RoomsConfig>,
    cluster: Option<Arc<Cluster>>,
    /// Cluster mode: until when this actor may answer from memory. Its epoch was the
    /// room's at some moment the node's lease held, and the lease has held without a gap
    /// since, up to here (see [`RoomState::read_fence`]).
    covered_until: Instant,
}

pub(crate) fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(ms)
}

impl Actor for RoomActor {
    type Msg = RoomMsg;
    type State = RoomState;
    type Arguments = RoomArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RoomMsg>,
        args: RoomArgs,
    ) -> Result<RoomState, ActorProcessingErr> {
        let check_every = (args.config.idle_timeout / 4).max(Duration::from_millis(100));
        let _idle_timer = AbortOnDrop(myself.send_interval(check_every, || RoomMsg::IdleCheck));
        Ok(RoomState {
            _idle_timer,
            committed: args.room.last_seq,
            submitted: args.room.last_seq,
            inflight: None,
            pushed: Default::default(),
            room: args.room,
            epoch: args.epoch,
            tail: LogTail::new(TAIL, args.recent, args.tail_budget),
            pending: Vec::new(),
            replies: Vec::new(),
            flush_scheduled: false,
            last_batch: 0,
            expected: 0,
            answered_at: Instant::now(),
            ran_out: false,
            waiting: 0,
            waits: 0,
            last_active: Instant::now(),
            stopped: tokio::sync::watch::Sender::new(()),
            store: args.store,
            hub: args.hub,
            pusher: args.pusher,
            config: args.config,
            // Just loaded under a new epoch: covered while the current lease holds.
            covered_until: args
                .cluster
                .as_ref()
                .and_then(|c| c.lease_deadline())
                .unwrap_or_else(Instant::now),
            cluster: args.cluster,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RoomMsg>,
        msg: RoomMsg,
        state: &mut RoomState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RoomMsg::Call(call) => {
                state.last_active = Instant::now();
                let reply = state.call(call).await;
                state.reply(&myself, reply).await;
            }
            RoomMsg::Subscribe(token, port) => {
                state.last_active = Instant::now();
                let result = state.subscribe(token);
                state.reply(&myself, pending(port, result)).await;
            }
            RoomMsg::Follow(port) => {
                state.last_active = Instant::now();
                let following = state.follow();
                state.reply(&myself, pending(port, Ok(following))).await;
            }
            RoomMsg::Flush => {
                state.flush_scheduled = false;
                if state.inflight.is_none() && !state.wait_for_callers(&myself) {
                    state.start_commit(&myself);
                }
            }
            RoomMsg::WaitOver(n) => {
                if n == state.waiting {
                    state.end_wait(&myself, true);
                }
            }
            RoomMsg::Committed => {
                state.finish_commit(&myself).await;
                if !state.pending.is_empty() || !state.replies.is_empty() {
                    state.schedule_flush(&myself).await;
                }
            }
            RoomMsg::IdleCheck => {
                if state.last_active.elapsed() >= state.config.idle_timeout && state.quiet() {
                    tracing::debug!(room.id = %state.room.id, "passivating idle room");
                    myself.stop(Some("idle".into()));
                }
            }
            RoomMsg::Unload => {
                if state.quiet() {
                    tracing::debug!(room.id = %state.room.id, "unloading a room: too many loaded");
                    myself.stop(Some("unloaded".into()));
                }
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<RoomMsg>,
        state: &mut RoomState,
    ) -> Result<(), ActorProcessingErr> {
        // Graceful stop: commit and answer everything that was applied.
        state.commit_now(&myself).await;
        // In a cluster, a room that leaves this node (handed over, or fenced by a newer
        // owner) leaves its readers here without a publisher: they ask their source
        // again, which now follows the room from its new owner (from their last seq).
        // Its queued pushes are dropped: push runs on the owner.
        if let Some(cluster) = &state.cluster {
            let room = state.room.id;
            if !cluster.may_hold(room) {
                if state.hub.subscribers(room) > 0 {
                    state.hub.publish(room, &[Fanout::Reopen]);
                }
                // Push runs on the owner: the new one pushes from the agents' cursors.
                state.pusher.drop_room(room);
            }
        }
        Ok(())
    }
}

impl RoomState {
    /// Nothing applied waits for a commit or an answer, and no node follows the room:
    /// stopping now loses nothing and leaves nobody without a publisher.
    fn quiet(&self) -> bool {
        self.pending.is_empty()
            && self.replies.is_empty()
            && self.inflight.is_none()
            && self.stopped.receiver_count() == 0
    }

    /// Runs one operation; its answer waits for the commit of what precedes it.
    async fn call(&mut self, call: RoomCall) -> PendingReply {
        match call {
            RoomCall::Join(op, port) => pending(port, self.join(op).await),
            RoomCall::Leave(op, port) => {
                let cmd = command::Leave {
                    token: op.token.digest(),
                };
                pending(port, self.run(cmd).await)
            }
            RoomCall::Moderate(op, port) => {
                let cmd = command::Moderate {
                    token: op.token.digest(),
                    target: op.target,
                    action: op.action,
                };
                pending(port, self.run(cmd).await)
            }
            RoomCall::Update(op, port) => {
                let cmd = command::Update {
                    token: op.token.digest(),
                    description: op.description,
                    kind: op.kind,
                };
                pending(port, self.run(cmd).await)
            }
            RoomCall::Send(op, port) => {
                let token = op.token.digest();
                let earlier = match &op.key {
                    Some(key) => self.sent_with_key(&token, key).await,
                    None => Ok(None),
                };
                let sent = match earlier {
                    Ok(earlier) => {
                        let cmd = command::Send {
                            token,
                            body: op.body,
                            to: op.to,
                            key: op.key,
                            earlier,
                        };
                        self.run(cmd).await
                    }
                    Err(e) => Err(e),
                };
                pending(port, sent)
            }
            RoomCall::Unread(op, port) => {
                let cmd = command::Unread {
                    token: op.token.digest(),
                };
                pending(port, self.run(cmd).await)
            }
            RoomCall::Acknowledge(Acknowledge(delivered), port) => {
                pending(port, self.run(delivered).await)
            }
            RoomCall::Info(op, port) => {
                let view = self.check_access(op.proof.as_ref(), op.token);
                pending(port, view.map(|()| self.room.view()))
            }
            RoomCall::Lock(GetLock, port) => {
                pending(port, Ok(Lock(self.room.password_hash.clone())))
            }
            RoomCall::Authorize(op, port) => pending(port, self.viewer(&op.token)),
        }
    }

    /// `room.join`: the password proof and endpoint checked, a token minted in case
    /// this is a newcomer.
    async fn join(&mut self, op: JoinRoom) -> Result<Joined, RoomError> {
        self.check_password(op.proof.as_ref())?;
        if let Some(url) = &op.endpoint {
            endpoint::check_url(url, self.config.allow_private_endpoints)?;
        }
        let new_token = secrets::mint_token(self.room.id);
        let cmd = command::Join {
            agent_name: op.agent_name,
            token: op.token.as_ref().map(AgentToken::digest),
            new_token: new_token.digest(),
            endpoint: op.endpoint,
        };
        let admission = self.run(cmd).await?;
        Ok(Joined {
            cursor: self
                .room
                .agent(admission.member)
                .map_or(Seq::ZERO, |a| a.cursor),
            room_id: self.room.id,
            agent_token: match (admission.reconnected, op.token) {
                (true, Some(t)) => t,
                _ => new_token,
            },
            agent_name: admission.agent_name,
            role: admission.role,
            reconnected: admission.reconnected,
            missed: admission.missed,
        })
    }

    /// The message the token's agent sent under idempotency `key`, if any: from the log
    /// tail (which holds every message not yet committed, so two sends of one key in a
    /// row find each other), else from the store (which keeps keys with their messages).
    async fn sent_with_key(
        &self,
        token: &huddle_core::TokenDigest,
        key: &str,
    ) -> Result<Option<Message>, RoomError> {
        let Some(member) = self.room.agent_by_token(token).map(|a| a.member) else {
            return Ok(None);
        };
        let recent = self
            .tail
            .iter_after(Seq::ZERO)
            .rev()
            .find(|m| m.from_member == member && m.key.as_deref() == Some(key));
        if let Some(m) = recent {
            return Ok(Some(m.message().clone()));
        }
        // Older messages are only in the store: one indexed lookup, skipped while the
        // tail still holds the whole log.
        let whole_log = self
            .tail
            .iter_after(Seq::ZERO)
            .next()
            .is_none_or(|m| m.seq == 1);
        if whole_log {
            return Ok(None);
        }
        let sent = SentKey {
            room: self.room.id,
            sender: member,
            key,
        };
        self.store
            .sent_with_key(sent)
            .await
            .map_err(crate::store_error::room_error)
    }

    /// The member a token belongs to, as a reader of the room.
    fn viewer(&self, token: &AgentToken) -> Result<Viewer, RoomError> {
        let member = self.room.viewer(&token.digest())?;
        let agent = self.room.agent(member).ok_or(RoomError::InvalidToken)?;
        Ok(Viewer {
            member,
            agent_name: agent.name.clone(),
            last_seq: self.room.last_seq,
        })
    }

    /// Authorises a reader and attaches it to the fan-out; nothing is allocated for a
    /// refused or missing token.
    fn subscribe(&self, token: Option<AgentToken>) -> Result<Opened, RoomError> {
        let token = token.ok_or_else(|| RoomError::Missing(vec!["agentToken".into()]))?;
        let member = self.room.viewer(&token.digest())?;
        Ok(Opened {
            member,
            last_seq: self.room.last_seq,
            live: self.hub.attach(self.room.id),
        })
    }

    /// Attaches a follower to the fan-out in the step that reads `last_seq`, as
    /// [`RoomState::subscribe`] does for a reader.
    fn follow(&self) -> Following {
        Following {
            last_seq: self.room.last_seq,
            live: self.hub.attach(self.room.id),
            stopped: self.stopped.subscribe(),
        }
    }

    /// Sends `reply` now if nothing uncommitted precedes it, else after the next commit.
    async fn reply(&mut self, myself: &ActorRef<RoomMsg>, reply: PendingReply) {
        if self.pending.is_empty() && self.replies.is_empty() && self.inflight.is_none() {
            match self.read_fence(myself).await {
                Ok(()) => reply.send(),
                Err(e) => reply.fail(e),
            }
        } else {
            self.replies.push(reply);
            if self.waiting != 0 && self.replies.len() >= self.expected {
                // Every caller expected is back: no need to wait longer.
                self.end_wait(myself, false);
            } else {
                self.schedule_flush(myself).await;
            }
        }
    }

    /// At a flush: waits for the callers of the last commit to come back if it answered
    /// several, recently, and fewer than expected wait now (see the module doc). Also
    /// after a commit that took longer than the wait (a slow disk, a remote store): the
    /// callers that gathered while it ran are only part of the room's callers, and
    /// without the wait the two parts would take turns, each commit carrying half. The
    /// wait holds the flush slot, so nothing else schedules one meanwhile; it ends with
    /// [`RoomState::end_wait`].
    fn wait_for_callers(&mut self, myself: &ActorRef<RoomMsg>) -> bool {
        let wait = self.config.group_commit_wait;
        let several = self.last_batch >= 2;
        if wait.is_zero()
            || !several
            || self.replies.len() >= self.expected
            || self.answered_at.elapsed() >= wait
        {
            return false;
        }
        self.waits += 1;
        self.waiting = self.waits;
        self.flush_scheduled = true;
        let (me, n) = (myself.clone(), self.waiting);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            // A stopped actor committed what waited on its way out.
            let _ = me.send_message(RoomMsg::WaitOver(n));
        });
        true
    }

    /// Ends the wait for callers and commits what gathered; `ran_out`: the wait's time
    /// was up before the callers were back.
    fn end_wait(&mut self, myself: &ActorRef<RoomMsg>, ran_out: bool) {
        self.waiting = 0;
        self.ran_out = ran_out;
        self.flush_scheduled = false;
        if self.inflight.is_none() {
            self.start_commit(myself);
        }
    }

    /// In cluster mode, an answer from memory goes out at once only while the node's
    /// lease has held without a gap since this actor last knew its epoch current; past
    /// that (even if a later renewal made the lease valid again: the node may have been
    /// paused, and another node may have taken the room meanwhile and, say, kicked the
    /// reader) it goes out once the store confirms the epoch. A changed epoch cedes the
    /// room and stops the actor.
    async fn read_fence(&mut self, myself: &ActorRef<RoomMsg>) -> Result<(), RoomError> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let now = Instant::now();
        let deadline = cluster.lease_deadline();
        // A deadline only moves back when the node leaves (its lease ends at once).
        let live = deadline.is_some_and(|d| now < d);
        if live && now < self.covered_until {
            // The renewal behind `deadline` was sent before now, so while the lease
            // still held: the coverage goes on without a gap.
            if let Some(d) = deadline {
                self.covered_until = self.covered_until.max(d);
            }
            return Ok(());
        }
        let current = self
            .store
            .epoch(self.room.id)
            .await
            .map_err(crate::store_error::room_error)?;
        if current == Some(self.epoch) {
            // Confirmed now: covered from here while the current lease holds.
            self.covered_until = deadline.filter(|d| *d > now).unwrap_or(now);
            return Ok(());
        }
        cluster.cede(self.room.id);
        tracing::info!(room.id = %self.room.id, "room taken by another node past this node's lease: stepping down");
        myself.stop(Some("stepped down".into()));
        Err(RoomError::Unavailable(
            "this node no longer owns the room".into(),
        ))
    }

    /// Decides and applies `cmd`, fetching the log slice it needs first.
    async fn run<C: Decide>(&mut self, cmd: C) -> Result<C::Reply, RoomError> {
        let log = match self.room.log_read(&cmd, &self.config.limits) {
            Some(read) => self.read_log(read).await?,
            None => Missed::default(),
        };
        let ctx = Ctx {
            now: now(),
            limits: &self.config.limits,
            message_id: Uuid::new_v4(),
        };
        let decision = self.room.handle(cmd, log, ctx)?;
        for e in &decision.events {
            if let Event::Posted(m) = e {
                self.tail.push(SharedMessage::new(m.clone()));
            }
        }
        self.pending.extend(decision.events);
        Ok(decision.reply)
    }

    /// Visible messages after a cursor: from the tail when it reaches back far enough,
    /// else from the store (committed part) followed by the tail (the rest).
    async fn read_log(&self, read: LogRead) -> Result<Missed, RoomError> {
        let want = read.limit + 1;
        let mut out: Vec<SharedMessage> = Vec::new();
        if !self.tail.covers(read.after, self.room.last_seq) && read.after < self.committed {
            out = self
                .store
                .messages_after(LogRange {
                    room: self.room.id,
                    viewer: Some(read.viewer),
                    after: read.after,
                    limit: want,
                })
                .await
                .map_err(crate::store_error::room_error)?
                .into_iter()
                .map(SharedMessage::new)
                .collect();
        }
        let from = out.last().map(|m| m.seq).unwrap_or(read.after);
        if out.len() < want {
            out.extend(
                self.tail
                    .iter_after(from)
                    .filter(|m| m.visible_to(read.viewer))
                    .take(want - out.len())
                    .cloned(),
            );
        }
        let has_more = out.len() > read.limit;
        out.truncate(read.limit);
        Ok(Missed {
            messages: out,
            has_more,
        })
    }

    /// A protected room needs its password to join (join.cloud's rule, even on reconnect).
    /// The password was verified before the request came (the node's password gate: the
    /// slow hash never runs here); the room checks that the proof names its own hash.
    fn check_password(&self, proof: Option<&PasswordProof>) -> Result<(), RoomError> {
        let Some(hash) = &self.room.password_hash else {
            return Ok(());
        };
        match proof {
            Some(p) if p.opens(hash) => Ok(()),
            _ => Err(RoomError::InvalidPassword),
        }
    }

    /// A protected room's details need its password or a member's token.
    fn check_access(
        &self,
        proof: Option<&PasswordProof>,
        token: Option<AgentToken>,
    ) -> Result<(), RoomError> {
        if let Some(t) = token
            && self.room.agent_by_token(&t.digest()).is_some()
        {
            return Ok(());
        }
        self.check_password(proof)
    }

    /// Asks for a flush behind what is queued, unless an append is in flight (its
    /// completion flushes next). While draining (shutdown) the mailbox refuses new
    /// messages: then commit right away.
    async fn schedule_flush(&mut self, myself: &ActorRef<RoomMsg>) {
        if self.inflight.is_some() || self.flush_scheduled {
            return;
        }
        self.flush_scheduled = true;
        if myself.send_message(RoomMsg::Flush).is_err() {
            self.flush_scheduled = false;
            self.commit_now(myself).await;
        }
    }

    /// Hands the pending events to the store on a task; replies wait for it. With no
    /// events (only reads were waiting), the replies go out at once.
    fn start_commit(&mut self, myself: &ActorRef<RoomMsg>) {
        let events = std::mem::take(&mut self.pending);
        let replies = std::mem::take(&mut self.replies);
        if events.is_empty() {
            self.answered(replies);
            return;
        }
        let messages = self.tail.newer_than(self.submitted);
        let fanout = fanout_in_event_order(&events, &messages);
        self.submitted = self.room.last_seq;
        let store = self.store.clone();
        let (room, epoch) = (self.room.id, self.epoch);
        let me = myself.clone();
        let task = tokio::spawn(async move {
            let result = store.append(room, epoch, events).await;
            // Refused while draining: then the actor awaits this task itself.
            let _ = me.send_message(RoomMsg::Committed);
            result
        });
        self.inflight = Some(Inflight {
            task,
            replies,
            fanout,
            messages,
            last_seq: self.room.last_seq,
        });
    }

    /// Sends the replies of a commit (or of a flush with nothing to write), and notes
    /// whom the next flush waits for.
    fn answered(&mut self, replies: Vec<PendingReply>) {
        self.last_batch = replies.len();
        self.expected = if std::mem::take(&mut self.ran_out) {
            0
        } else {
            replies.len() + self.replies.len()
        };
        replies.into_iter().for_each(|r| r.send());
        self.answered_at = Instant::now();
    }

    /// Completes the in-flight append: publish, push and reply, or — if it failed —
    /// fail every waiting caller and stop the actor.
    async fn finish_commit(&mut self, myself: &ActorRef<RoomMsg>) {
        let Some(batch) = self.inflight.take() else {
            return;
        };
        let outcome = match batch.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e @ StoreError::Fenced(..))) => {
                // A newer owner took the room: step down, and do not take it back.
                if let Some(cluster) = &self.cluster {
                    cluster.cede(self.room.id);
                }
                Err(e.to_string())
            }
            Ok(Err(
                e @ (StoreError::NoSuchRoom(_) | StoreError::Backend(_) | StoreError::Busy(_)),
            )) => Err(e.to_string()),
            Err(e) => Err(format!("commit task failed: {e}")),
        };
        match outcome {
            Ok(()) => {
                self.committed = batch.last_seq;
                self.tail.trim(self.committed);
                self.hub.publish(self.room.id, &batch.fanout);
                self.push(&batch.messages);
                self.answered(batch.replies);
            }
            Err(reason) => {
                // Everything applied after the failed batch builds on it: drop it all.
                let err = RoomError::Unavailable(format!("commit failed: {reason}"));
                self.pending.clear();
                for reply in batch.replies.into_iter().chain(self.replies.drain(..)) {
                    reply.fail(err.clone());
                }
                tracing::warn!(room.id = %self.room.id, %reason, "room stopped after a failed commit; it reloads on the next request");
                myself.stop(Some(reason));
            }
        }
    }

    /// Commits everything applied so far and waits for it (drain, stop).
    async fn commit_now(&mut self, myself: &ActorRef<RoomMsg>) {
        self.finish_commit(myself).await;
        if !self.pending.is_empty() || !self.replies.is_empty() {
            self.start_commit(myself);
            self.finish_commit(myself).await;
        }
    }

    /// Queues A2A pushes: every agent with an endpoint gets what it may see and has not
    /// seen yet (never its own messages). Each push names the one queued before it for
    /// the same agent, so acknowledgements move the cursor only without gaps.
    fn push(&mut self, messages: &[SharedMessage]) {
        for agent in &self.room.agents {
            let Some(url) = &agent.endpoint else { continue };
            let prev = self.pushed.entry(agent.member).or_insert(agent.cursor);
            for m in messages {
                if m.from_member != agent.member
                    && m.seq > agent.cursor
                    && m.visible_to(agent.member)
                {
                    self.pusher
                        .enqueue(self.room.id, agent.member, url, m.clone(), *prev);
                    *prev = m.seq;
                }
            }
        }
    }
}

/// A batch's messages and departures in the order of its events. `messages` are the
/// batch's posted messages (shared with the log tail), in the same order as their events.
fn fanout_in_event_order(events: &[Event], messages: &[SharedMessage]) -> Vec<Fanout> {
    let mut messages = messages.iter();
    events
        .iter()
        .filter_map(|e| match e {
            Event::Posted(posted) => {
                let shared = messages.next().cloned();
                debug_assert_eq!(shared.as_ref().map(|m| m.seq), Some(posted.seq));
                shared.map(Fanout::Message)
            }
            Event::Left { member } => Some(Fanout::Left(*member)),
            Event::Joined(_)
            | Event::Reconnected { .. }
            | Event::RoleChanged { .. }
            | Event::Updated { .. }
            | Event::CursorMoved { .. } => None,
        })
        .collect()
}
