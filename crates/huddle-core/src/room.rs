//! The rules: `Room::decide` checks a command against the state and says what happens;
//! `Room::apply` makes it so. Decide never mutates, apply never refuses.

use uuid::Uuid;

use crate::command::{Event, LogRead, Missed, Reply};
use crate::error::RoomError;
use crate::ids::{MemberId, RoomId, Seq};
use crate::limits::Limits;
use crate::model::{Agent, Message, ROOM_BOT, Role, Room, RoomType};
use crate::time::Timestamp;
use crate::token::TokenDigest;

/// What a decision needs from the outside world besides the state: the clock, the
/// limits, and the id of the message it may post (a decision posts at most one), so
/// that deciding stays a pure function of its inputs.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    pub now: Timestamp,
    pub limits: &'a Limits,
    pub message_id: Uuid,
}

/// The outcome of a successful command: the events to persist (in order) and the reply
/// to send once they are durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision<R = Reply> {
    pub events: Vec<Event>,
    pub reply: R,
}

impl<R> Decision<R> {
    /// The same events with the reply turned into another type.
    pub fn map<S>(self, f: impl FnOnce(R) -> S) -> Decision<S> {
        Decision {
            events: self.events,
            reply: f(self.reply),
        }
    }
}

/// One command's rules (in [`crate::decide`]): which log slice it needs, and what
/// happens — the events to persist and the answer of its own type.
pub trait Decide {
    type Reply;

    /// The log slice the decision needs, if any (see [`Room::log_read`]).
    fn log_read(&self, _room: &Room, _limits: &Limits) -> Option<LogRead> {
        None
    }

    fn decide(
        self,
        room: &Room,
        log: Missed,
        ctx: Ctx<'_>,
    ) -> Result<Decision<Self::Reply>, RoomError>;
}

/// The fields of a new room, validated by [`Room::create`].
#[derive(Clone, Debug)]
pub struct NewRoom {
    pub id: RoomId,
    pub name: String,
    pub password_hash: Option<String>,
    pub description: String,
    pub kind: RoomType,
    pub creator: String,
    pub creator_token: TokenDigest,
    pub creator_endpoint: Option<String>,
}

impl Room {
    /// A new room with its creator joined as admin (no bot notice: docs/protocol.md,
    /// section 'room.create').
    pub fn create(new: NewRoom, now: Timestamp) -> Room {
        Room {
            id: new.id,
            name: new.name,
            password_hash: new.password_hash,
            description: new.description,
            kind: new.kind,
            created_at: now,
            agents: vec![Agent {
                member: MemberId::FIRST,
                name: new.creator,
                role: Role::Admin,
                joined_at: now,
                token: new.creator_token,
                endpoint: new.creator_endpoint,
                cursor: Seq::ZERO,
            }],
            last_seq: Seq::ZERO,
            last_member: MemberId::FIRST,
        }
    }

    pub(crate) fn member_of(&self, token: &TokenDigest) -> Result<&Agent, RoomError> {
        self.agent_by_token(token).ok_or(RoomError::InvalidToken)
    }

    pub(crate) fn admin_of(&self, token: &TokenDigest) -> Result<&Agent, RoomError> {
        let agent = self.member_of(token)?;
        if agent.role != Role::Admin {
            return Err(RoomError::AdminRequired);
        }
        Ok(agent)
    }

    /// The log slice [`Room::decide`] needs for `cmd`, if any: the caller's messages
    /// after its read cursor (missed messages, unread). `None` also when the command
    /// will be refused anyway; decide reports why.
    pub fn log_read<C: Decide>(&self, cmd: &C, limits: &Limits) -> Option<LogRead> {
        cmd.log_read(self, limits)
    }

    /// The caller's unread slice: what a reconnect, a send or an unread hands out.
    pub(crate) fn reader_log(&self, agent: Option<&Agent>, limits: &Limits) -> Option<LogRead> {
        let agent = agent?;
        Some(LogRead {
            viewer: agent.member,
            after: agent.cursor,
            limit: limits.max_page,
        })
    }

    /// Decides `cmd`. `log` is what [`Room::log_read`] asked for (empty if it asked
    /// for nothing).
    pub fn decide<C: Decide>(
        &self,
        cmd: C,
        log: Missed,
        ctx: Ctx<'_>,
    ) -> Result<Decision<C::Reply>, RoomError> {
        cmd.decide(self, log, ctx)
    }

    pub(crate) fn target(&self, name: &str) -> Result<&Agent, RoomError> {
        self.agent_by_name(name)
            .ok_or_else(|| RoomError::AgentNotFound(name.to_string()))
    }

    /// Where the cursor goes after `agent` was handed `page`: past everything when the
    /// page was complete, else to the last message handed out.
    pub(crate) fn cursor_after_read(&self, agent: &Agent, page: &Missed) -> Option<Event> {
        let seq = if page.has_more {
            page.messages.last()?.seq
        } else {
            self.last_seq
        };
        (seq > agent.cursor).then_some(Event::CursorMoved {
            member: agent.member,
            seq,
        })
    }

    /// A room-bot message that will take the `offset`-th next seq of this decision.
    pub(crate) fn notice(&self, offset: u64, body: String, ctx: &Ctx<'_>) -> Event {
        Event::Posted(Message {
            seq: self.last_seq.plus(offset),
            id: ctx.message_id.to_string(),
            room_id: self.id,
            from: ROOM_BOT.to_string(),
            from_member: MemberId::BOT,
            to: None,
            to_member: None,
            body,
            timestamp: ctx.now,
            key: None,
        })
    }

    /// Folds one event into the state.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Joined(agent) => {
                self.last_member = self.last_member.max(agent.member);
                self.agents.push(agent.clone());
            }
            Event::Reconnected { member, endpoint } => {
                if let Some(a) = self.agent_mut(*member) {
                    a.endpoint = endpoint.clone();
                }
            }
            Event::Left { member } => self.agents.retain(|a| a.member != *member),
            Event::RoleChanged { member, role } => {
                if let Some(a) = self.agent_mut(*member) {
                    a.role = *role;
                }
            }
            Event::Updated { description, kind } => {
                if let Some(d) = description {
                    self.description = d.clone();
                }
                if let Some(k) = kind {
                    self.kind = *k;
                }
            }
            Event::Posted(m) => self.last_seq = self.last_seq.max(m.seq),
            Event::CursorMoved { member, seq } => {
                if let Some(a) = self.agent_mut(*member) {
                    a.cursor = a.cursor.max(*seq);
                }
            }
        }
    }

    /// Decide and, on success, apply: what the actor does for each command.
    pub fn handle<C: Decide>(
        &mut self,
        cmd: C,
        log: Missed,
        ctx: Ctx<'_>,
    ) -> Result<Decision<C::Reply>, RoomError> {
        let decision = self.decide(cmd, log, ctx)?;
        for e in &decision.events {
            self.apply(e);
        }
        Ok(decision)
    }

    /// Member id of `token`'s agent, for reads that happen outside the actor.
    pub fn viewer(&self, token: &TokenDigest) -> Result<MemberId, RoomError> {
        self.member_of(token).map(|a| a.member)
    }
}
