//! The rules: `Room::decide` checks a command against the state and says what happens;
//! `Room::apply` makes it so. Decide never mutates, apply never refuses.

use uuid::Uuid;

use crate::command::{Command, Event, LogRead, Missed, Reply};
use crate::error::RoomError;
use crate::ids::{MemberId, RoomId};
use crate::limits::Limits;
use crate::model::{Agent, Message, ROOM_BOT, Role, Room, RoomType};
use crate::time::Timestamp;
use crate::token::TokenDigest;
use crate::validate;

/// What a decision needs from the outside world besides the state.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    pub now: Timestamp,
    pub limits: &'a Limits,
}

/// The outcome of a successful command: the events to persist (in order) and the reply
/// to send once they are durable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub events: Vec<Event>,
    pub reply: Reply,
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
                member: 1,
                name: new.creator,
                role: Role::Admin,
                joined_at: now,
                token: new.creator_token,
                endpoint: new.creator_endpoint,
                cursor: 0,
            }],
            last_seq: 0,
            last_member: 1,
        }
    }

    fn member_of(&self, token: &TokenDigest) -> Result<&Agent, RoomError> {
        self.agent_by_token(token).ok_or(RoomError::InvalidToken)
    }

    fn admin_of(&self, token: &TokenDigest) -> Result<&Agent, RoomError> {
        let agent = self.member_of(token)?;
        if agent.role != Role::Admin {
            return Err(RoomError::AdminRequired);
        }
        Ok(agent)
    }

    /// The log slice [`Room::decide`] needs for `cmd`, if any: the caller's messages
    /// after its read cursor (missed messages, unread). `None` also when the command
    /// will be refused anyway; decide reports why.
    pub fn log_read(&self, cmd: &Command, limits: &Limits) -> Option<LogRead> {
        let agent = match cmd {
            Command::Join {
                agent_name, token, ..
            } => {
                let existing = self.agent_by_name(agent_name)?;
                (Some(&existing.token) == token.as_ref()).then_some(existing)?
            }
            Command::Send { token, .. } | Command::Unread { token } => {
                self.agent_by_token(token)?
            }
            _ => return None,
        };
        Some(LogRead {
            viewer: agent.member,
            after: agent.cursor,
            limit: limits.max_page,
        })
    }

    /// Decides `cmd`. `log` is what [`Room::log_read`] asked for (empty if it asked
    /// for nothing).
    pub fn decide(&self, cmd: Command, log: Missed, ctx: Ctx<'_>) -> Result<Decision, RoomError> {
        match cmd {
            Command::Join {
                agent_name,
                token,
                new_token,
                endpoint,
            } => self.decide_join(agent_name, token, new_token, endpoint, log, ctx),
            Command::Leave { token } => {
                let agent = self.member_of(&token)?;
                let mut events = vec![Event::Left {
                    member: agent.member,
                }];
                // A room always keeps an admin: if the last one leaves, the longest-standing
                // remaining member takes over.
                if agent.role == Role::Admin
                    && self.admin_count() == 1
                    && let Some(heir) = self.agents.iter().find(|a| a.member != agent.member)
                {
                    events.push(Event::RoleChanged {
                        member: heir.member,
                        role: Role::Admin,
                    });
                }
                events.push(self.notice(1, format!("{} left the room", agent.name), ctx.now));
                Ok(Decision {
                    events,
                    reply: Reply::Left,
                })
            }
            Command::Promote { token, target } => {
                let admin = self.admin_of(&token)?;
                let t = self.target(&target)?;
                Ok(Decision {
                    events: vec![
                        Event::RoleChanged {
                            member: t.member,
                            role: Role::Admin,
                        },
                        self.notice(
                            1,
                            format!("{} promoted {} to admin", admin.name, t.name),
                            ctx.now,
                        ),
                    ],
                    reply: Reply::Promoted {
                        target: t.name.clone(),
                    },
                })
            }
            Command::Demote { token, target } => {
                let admin = self.admin_of(&token)?;
                let t = self.target(&target)?;
                if t.role == Role::Admin && self.admin_count() == 1 {
                    return Err(RoomError::LastAdmin);
                }
                Ok(Decision {
                    events: vec![
                        Event::RoleChanged {
                            member: t.member,
                            role: Role::Member,
                        },
                        self.notice(
                            1,
                            format!("{} demoted {} to member", admin.name, t.name),
                            ctx.now,
                        ),
                    ],
                    reply: Reply::Demoted {
                        target: t.name.clone(),
                    },
                })
            }
            Command::Kick { token, target } => {
                let admin = self.admin_of(&token)?;
                let t = self.target(&target)?;
                if t.member == admin.member {
                    return Err(RoomError::KickSelf);
                }
                Ok(Decision {
                    events: vec![
                        Event::Left { member: t.member },
                        self.notice(
                            1,
                            format!("{} kicked {} from the room", admin.name, t.name),
                            ctx.now,
                        ),
                    ],
                    reply: Reply::Kicked {
                        target: t.name.clone(),
                    },
                })
            }
            Command::Update {
                token,
                description,
                kind,
            } => {
                if description.is_none() && kind.is_none() {
                    return Err(RoomError::NothingToUpdate);
                }
                let admin = self.admin_of(&token)?;
                if let Some(d) = &description {
                    validate::description(d, ctx.limits)?;
                }
                let kind = kind.as_deref().map(validate::room_type).transpose()?;
                let mut changes = Vec::new();
                if description.is_some() {
                    changes.push("description".to_string());
                }
                if let Some(k) = kind {
                    changes.push(format!("type to {}", k.as_str()));
                }
                Ok(Decision {
                    events: vec![
                        Event::Updated { description, kind },
                        self.notice(
                            1,
                            format!("{} updated room {}", admin.name, changes.join(" and ")),
                            ctx.now,
                        ),
                    ],
                    reply: Reply::Updated { changes },
                })
            }
            Command::Send { token, body, to } => {
                let sender = self.member_of(&token)?;
                validate::message_body(&body, ctx.limits)?;
                if self.kind == RoomType::Channel && sender.role != Role::Admin {
                    return Err(RoomError::ChannelAdminsOnly);
                }
                // The recipient is found by its folded name; the message names it as it
                // joined, so its clients recognise themselves in `to`.
                let (to, to_member) = match to {
                    Some(name) => {
                        let recipient = self.target(&name)?;
                        (Some(recipient.name.clone()), Some(recipient.member))
                    }
                    None => (None, None),
                };
                let seq = self.last_seq + 1;
                let message = Message {
                    seq,
                    id: Uuid::new_v4().to_string(),
                    room_id: self.id,
                    from: sender.name.clone(),
                    from_member: sender.member,
                    to,
                    to_member,
                    body,
                    timestamp: ctx.now,
                };
                // The sender's cursor passes its own message unless missed messages remain.
                let cursor = if log.has_more {
                    log.messages.last().map(|m| m.seq)
                } else {
                    Some(seq)
                };
                let mut events = vec![Event::Posted(message)];
                events.extend(cursor.map(|seq| Event::CursorMoved {
                    member: sender.member,
                    seq,
                }));
                Ok(Decision {
                    events,
                    reply: Reply::Sent { seq, missed: log },
                })
            }
            Command::Unread { token } => {
                let agent = self.member_of(&token)?;
                let events = self.cursor_after_read(agent, &log).into_iter().collect();
                Ok(Decision {
                    events,
                    reply: Reply::Unread(log),
                })
            }
            Command::Delivered { member, seq, prev } => {
                let events = match self.agent(member) {
                    Some(a) if a.cursor >= prev && seq > a.cursor && seq <= self.last_seq => {
                        vec![Event::CursorMoved { member, seq }]
                    }
                    _ => vec![],
                };
                Ok(Decision {
                    events,
                    reply: Reply::Delivered,
                })
            }
        }
    }

    fn decide_join(
        &self,
        agent_name: String,
        token: Option<TokenDigest>,
        new_token: TokenDigest,
        endpoint: Option<String>,
        log: Missed,
        ctx: Ctx<'_>,
    ) -> Result<Decision, RoomError> {
        validate::agent_name(&agent_name, ctx.limits)?;
        if let Some(existing) = self.agent_by_name(&agent_name) {
            if token.as_ref() != Some(&existing.token) {
                return Err(RoomError::NameTaken(agent_name));
            }
            let mut events = vec![Event::Reconnected {
                member: existing.member,
                endpoint: endpoint.or_else(|| existing.endpoint.clone()),
            }];
            events.extend(self.cursor_after_read(existing, &log));
            return Ok(Decision {
                events,
                reply: Reply::Joined {
                    member: existing.member,
                    agent_name: existing.name.clone(),
                    role: existing.role,
                    reconnected: true,
                    missed: log,
                },
            });
        }
        let member = self.last_member + 1;
        let notice = self.notice(1, format!("{agent_name} joined the room"), ctx.now);
        // A room always keeps an admin: the first to join a room everyone left takes it.
        let role = if self.admin_count() == 0 {
            Role::Admin
        } else {
            Role::Member
        };
        let agent = Agent {
            member,
            name: agent_name.clone(),
            role,
            joined_at: ctx.now,
            token: new_token,
            endpoint,
            // A newcomer has seen everything up to and including its own join notice.
            cursor: self.last_seq + 1,
        };
        Ok(Decision {
            events: vec![Event::Joined(agent), notice],
            reply: Reply::Joined {
                member,
                agent_name,
                role,
                reconnected: false,
                missed: Missed::default(),
            },
        })
    }

    fn target(&self, name: &str) -> Result<&Agent, RoomError> {
        self.agent_by_name(name)
            .ok_or_else(|| RoomError::AgentNotFound(name.to_string()))
    }

    /// Where the cursor goes after `agent` was handed `page`: past everything when the
    /// page was complete, else to the last message handed out.
    fn cursor_after_read(&self, agent: &Agent, page: &Missed) -> Option<Event> {
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
    fn notice(&self, offset: u64, body: String, now: Timestamp) -> Event {
        Event::Posted(Message {
            seq: self.last_seq + offset,
            id: Uuid::new_v4().to_string(),
            room_id: self.id,
            from: ROOM_BOT.to_string(),
            from_member: 0,
            to: None,
            to_member: None,
            body,
            timestamp: now,
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
    pub fn handle(
        &mut self,
        cmd: Command,
        log: Missed,
        ctx: Ctx<'_>,
    ) -> Result<Decision, RoomError> {
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
