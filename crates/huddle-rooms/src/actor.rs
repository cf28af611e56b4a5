//! The room actor: the one writer of one room.
//!
//! Requests are handled one at a time, in mailbox order, so the room needs no lock and
//! its `seq` order is its mailbox order. A request is decided and applied to the
//! in-memory room at once, but its reply waits: the first request after a commit
//! schedules a `Flush` message behind everything already queued, and the flush commits
//! all events gathered meanwhile in one store append (group commit), then publishes the
//! new messages and releases the replies. So a reply always means "durable", and any
//! reply sent after another request's events were applied comes after their commit too.
//!
//! If the store refuses or fails an append, the in-memory room may be ahead of the store:
//! every waiting caller gets `Service unavailable` and the actor stops; the directory
//! loads the room again from the store on the next request. Domain errors never stop the
//! actor; they are replies.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use huddle_core::command::LogRead;
use huddle_core::room::Ctx;
use huddle_core::{
    AgentToken, Command, Event, Message, Missed, Reply, Room, RoomError, RoomRequest, RoomResponse,
    Seq, Timestamp,
};
use huddle_store::{Epoch, RoomStore};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::config::RoomsConfig;
use crate::endpoint;
use crate::hub::Hub;
use crate::log_tail::LogTail;
use crate::push::Pusher;
use crate::secrets;

/// Recent messages kept in memory per active room.
const TAIL: usize = 256;

pub type RoomReply = RpcReplyPort<Result<RoomResponse, RoomError>>;

pub enum RoomMsg {
    Request(RoomRequest, RoomReply),
    /// Commit what was applied since the last flush, then publish and reply.
    Flush,
    /// Passivate if idle.
    IdleCheck,
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
}

pub struct RoomState {
    room: Room,
    epoch: Epoch,
    /// Highest `seq` known to be in the store.
    committed: Seq,
    tail: LogTail,
    pending: Vec<Event>,
    replies: Vec<(RoomReply, Result<RoomResponse, RoomError>)>,
    flush_scheduled: bool,
    last_active: Instant,
    store: Arc<dyn RoomStore>,
    hub: Arc<Hub>,
    pusher: Pusher,
    config: Arc<RoomsConfig>,
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
        myself.send_interval(check_every, || RoomMsg::IdleCheck);
        Ok(RoomState {
            committed: args.room.last_seq,
            room: args.room,
            epoch: args.epoch,
            tail: LogTail::new(TAIL, args.recent),
            pending: Vec::new(),
            replies: Vec::new(),
            flush_scheduled: false,
            last_active: Instant::now(),
            store: args.store,
            hub: args.hub,
            pusher: args.pusher,
            config: args.config,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RoomMsg>,
        msg: RoomMsg,
        state: &mut RoomState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RoomMsg::Request(req, port) => {
                state.last_active = Instant::now();
                let result = state.request(req).await;
                if state.pending.is_empty() && state.replies.is_empty() {
                    let _ = port.send(result);
                } else {
                    state.replies.push((port, result));
                    if !state.flush_scheduled {
                        state.flush_scheduled = true;
                        // While draining (shutdown) the mailbox refuses new messages:
                        // then commit right away instead.
                        if myself.send_message(RoomMsg::Flush).is_err() {
                            state.flush_scheduled = false;
                            if let Err(reason) = state.flush().await {
                                myself.stop(Some(reason));
                            }
                        }
                    }
                }
            }
            RoomMsg::Flush => {
                state.flush_scheduled = false;
                if let Err(reason) = state.flush().await {
                    tracing::warn!(room.id = %state.room.id, %reason, "room stopped after a failed commit; it reloads on the next request");
                    myself.stop(Some(reason));
                }
            }
            RoomMsg::IdleCheck => {
                let idle = state.last_active.elapsed() >= state.config.idle_timeout;
                if idle && state.pending.is_empty() && state.replies.is_empty() {
                    tracing::debug!(room.id = %state.room.id, "passivating idle room");
                    myself.stop(Some("idle".into()));
                }
            }
        }
        Ok(())
    }
}

impl RoomState {
    async fn request(&mut self, req: RoomRequest) -> Result<RoomResponse, RoomError> {
        let done = |r: Reply| RoomResponse::Done(r);
        match req {
            RoomRequest::Join {
                agent_name,
                password,
                token,
                endpoint,
            } => {
                self.check_password(password).await?;
                if let Some(url) = &endpoint {
                    endpoint::check_url(url, self.config.allow_private_endpoints)?;
                }
                let new_token = secrets::mint_token(self.room.id);
                let cmd = Command::Join {
                    agent_name,
                    token: token.as_ref().map(AgentToken::digest),
                    new_token: new_token.digest(),
                    endpoint,
                };
                match self.run(cmd).await? {
                    Reply::Joined {
                        agent_name,
                        role,
                        reconnected,
                        missed,
                        ..
                    } => Ok(RoomResponse::Joined {
                        room_id: self.room.id,
                        agent_name,
                        agent_token: match (reconnected, token) {
                            (true, Some(t)) => t,
                            _ => new_token,
                        },
                        role,
                        reconnected,
                        missed,
                    }),
                    other => Err(unexpected(other)),
                }
            }
            RoomRequest::Leave { token } => self
                .run(Command::Leave {
                    token: token.digest(),
                })
                .await
                .map(done),
            RoomRequest::Promote { token, target } => self
                .run(Command::Promote {
                    token: token.digest(),
                    target,
                })
                .await
                .map(done),
            RoomRequest::Demote { token, target } => self
                .run(Command::Demote {
                    token: token.digest(),
                    target,
                })
                .await
                .map(done),
            RoomRequest::Kick { token, target } => self
                .run(Command::Kick {
                    token: token.digest(),
                    target,
                })
                .await
                .map(done),
            RoomRequest::Update {
                token,
                description,
                kind,
            } => self
                .run(Command::Update {
                    token: token.digest(),
                    description,
                    kind,
                })
                .await
                .map(done),
            RoomRequest::Send { token, body, to } => self
                .run(Command::Send {
                    token: token.digest(),
                    body,
                    to,
                })
                .await
                .map(done),
            RoomRequest::Unread { token } => self
                .run(Command::Unread {
                    token: token.digest(),
                })
                .await
                .map(done),
            RoomRequest::Delivered { member, seq } => {
                self.run(Command::Delivered { member, seq }).await.map(done)
            }
            RoomRequest::Info { password, token } => {
                self.check_access(password, token).await?;
                Ok(RoomResponse::Info(self.room.view()))
            }
            RoomRequest::Authorize { token } | RoomRequest::History { token, .. } => {
                let member = self.room.viewer(&token.digest())?;
                let agent = self.room.agent(member).ok_or(RoomError::InvalidToken)?;
                Ok(RoomResponse::Viewer {
                    member,
                    agent_name: agent.name.clone(),
                    last_seq: self.room.last_seq,
                })
            }
        }
    }

    /// Decides and applies `cmd`, fetching the log slice it needs first.
    async fn run(&mut self, cmd: Command) -> Result<Reply, RoomError> {
        let log = match self.room.log_read(&cmd, &self.config.limits) {
            Some(read) => self.read_log(read).await?,
            None => Missed::default(),
        };
        let ctx = Ctx {
            now: now(),
            limits: &self.config.limits,
        };
        let decision = self.room.handle(cmd, log, ctx)?;
        for e in &decision.events {
            if let Event::Posted(m) = e {
                self.tail.push(Arc::new(m.clone()));
            }
        }
        self.pending.extend(decision.events);
        Ok(decision.reply)
    }

    /// Visible messages after a cursor: from the tail when it reaches back far enough,
    /// else from the store (committed part) followed by the tail (the rest).
    async fn read_log(&self, read: LogRead) -> Result<Missed, RoomError> {
        let want = read.limit + 1;
        let mut out: Vec<Message> = Vec::new();
        if !self.tail.covers(read.after, self.room.last_seq) && read.after < self.committed {
            out = self
                .store
                .messages_after(self.room.id, Some(read.viewer), read.after, want)
                .await
                .map_err(|e| RoomError::Unavailable(e.to_string()))?;
        }
        let from = out.last().map(|m| m.seq).unwrap_or(read.after);
        if out.len() < want {
            out.extend(
                self.tail
                    .iter_after(from)
                    .filter(|m| m.visible_to(read.viewer))
                    .take(want - out.len())
                    .map(|m| (**m).clone()),
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
    async fn check_password(&self, password: Option<String>) -> Result<(), RoomError> {
        let Some(hash) = &self.room.password_hash else {
            return Ok(());
        };
        match password {
            Some(p) => match secrets::verify_password(p, hash.clone()).await {
                true => Ok(()),
                false => Err(RoomError::InvalidPassword),
            },
            None => Err(RoomError::InvalidPassword),
        }
    }

    /// B.4: a protected room's details need its password or a member's token.
    async fn check_access(
        &self,
        password: Option<String>,
        token: Option<AgentToken>,
    ) -> Result<(), RoomError> {
        if let Some(t) = token
            && self.room.agent_by_token(&t.digest()).is_some()
        {
            return Ok(());
        }
        self.check_password(password).await
    }

    /// Commits pending events, then publishes and releases replies. An `Err` means the
    /// room must stop (its memory may be ahead of the store).
    async fn flush(&mut self) -> Result<(), String> {
        let events = std::mem::take(&mut self.pending);
        if !events.is_empty() {
            let left: Vec<_> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Left { member } => Some(*member),
                    _ => None,
                })
                .collect();
            if let Err(e) = self.store.append(self.room.id, self.epoch, events).await {
                let err = RoomError::Unavailable(format!("commit failed: {e}"));
                for (port, _) in self.replies.drain(..) {
                    let _ = port.send(Err(err.clone()));
                }
                return Err(e.to_string());
            }
            let new = self.tail.newer_than(self.committed);
            self.committed = self.room.last_seq;
            self.tail.trim(self.committed);
            self.hub.publish(self.room.id, &new, &left);
            self.push(&new);
        }
        for (port, result) in self.replies.drain(..) {
            let _ = port.send(result);
        }
        Ok(())
    }

    /// Queues A2A pushes: every agent with an endpoint gets what it may see and has not
    /// seen yet (never its own messages).
    fn push(&self, messages: &[Arc<Message>]) {
        for agent in &self.room.agents {
            let Some(url) = &agent.endpoint else { continue };
            for m in messages {
                if m.from_member != agent.member
                    && m.seq > agent.cursor
                    && m.visible_to(agent.member)
                {
                    self.pusher
                        .enqueue(self.room.id, agent.member, url, m.clone());
                }
            }
        }
    }
}

fn unexpected(reply: Reply) -> RoomError {
    RoomError::Unavailable(format!("unexpected room reply {reply:?}"))
}
