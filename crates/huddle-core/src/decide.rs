//! Each command's rules (docs/protocol.md, section 'Actions'): what it needs from the
//! log, what it refuses, the events it produces and the answer it gives. One
//! [`Decide`] impl per command, each with its own answer type, so the room actor never
//! has to guess which answer came back; [`Command`] dispatches to them for the tests.

use crate::command::{
    Admission, Command, Delivered, Event, Join, Leave, LogRead, Missed, Moderate, Moderated,
    Moderation, Reply, Send, Sent, Unread, Update, Updated,
};
use crate::error::RoomError;
use crate::limits::Limits;
use crate::model::{Agent, Message, Role, Room, RoomType};
use crate::room::{Ctx, Decide, Decision};
use crate::validate;

impl Decide for Join {
    type Reply = Admission;

    /// A reconnect hands out what the agent missed; a newcomer reads nothing.
    fn log_read(&self, room: &Room, limits: &Limits) -> Option<LogRead> {
        let existing = room.agent_by_name(&self.agent_name)?;
        let reconnect = Some(&existing.token) == self.token.as_ref();
        room.reader_log(reconnect.then_some(existing), limits)
    }

    fn decide(
        self,
        room: &Room,
        log: Missed,
        ctx: Ctx<'_>,
    ) -> Result<Decision<Admission>, RoomError> {
        let Join {
            agent_name,
            token,
            new_token,
            endpoint,
        } = self;
        validate::agent_name(&agent_name, ctx.limits)?;
        if let Some(existing) = room.agent_by_name(&agent_name) {
            if token.as_ref() != Some(&existing.token) {
                return Err(RoomError::NameTaken(agent_name));
            }
            let mut events = vec![Event::Reconnected {
                member: existing.member,
                endpoint: endpoint.or_else(|| existing.endpoint.clone()),
            }];
            events.extend(room.cursor_after_read(existing, &log));
            return Ok(Decision {
                events,
                reply: Admission {
                    member: existing.member,
                    agent_name: existing.name.clone(),
                    role: existing.role,
                    reconnected: true,
                    missed: log,
                },
            });
        }
        if room.agents.len() >= ctx.limits.max_agents {
            return Err(RoomError::RoomFull(ctx.limits.max_agents));
        }
        let member = room.last_member.next();
        let notice = room.notice(1, format!("{agent_name} joined the room"), &ctx);
        // A room always keeps an admin: the first to join a room everyone left takes it.
        let role = if room.admin_count() == 0 {
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
            cursor: room.last_seq.next(),
        };
        Ok(Decision {
            events: vec![Event::Joined(agent), notice],
            reply: Admission {
                member,
                agent_name,
                role,
                reconnected: false,
                missed: Missed::default(),
            },
        })
    }
}

impl Decide for Leave {
    type Reply = ();

    fn decide(self, room: &Room, _log: Missed, ctx: Ctx<'_>) -> Result<Decision<()>, RoomError> {
        let agent = room.member_of(&self.token)?;
        let mut events = vec![Event::Left {
            member: agent.member,
        }];
        // A room always keeps an admin: if the last one leaves, the longest-standing
        // remaining member takes over.
        if agent.role == Role::Admin
            && room.admin_count() == 1
            && let Some(heir) = room.agents.iter().find(|a| a.member != agent.member)
        {
            events.push(Event::RoleChanged {
                member: heir.member,
                role: Role::Admin,
            });
        }
        events.push(room.notice(1, format!("{} left the room", agent.name), &ctx));
        Ok(Decision { events, reply: () })
    }
}

impl Decide for Moderate {
    type Reply = Moderated;

    fn decide(
        self,
        room: &Room,
        _log: Missed,
        ctx: Ctx<'_>,
    ) -> Result<Decision<Moderated>, RoomError> {
        let admin = room.admin_of(&self.token)?;
        let t = room.target(&self.target)?;
        let (change, notice) = match self.action {
            Moderation::Promote => (
                Event::RoleChanged {
                    member: t.member,
                    role: Role::Admin,
                },
                format!("{} promoted {} to admin", admin.name, t.name),
            ),
            Moderation::Demote => {
                if t.role == Role::Admin && room.admin_count() == 1 {
                    return Err(RoomError::LastAdmin);
                }
                (
                    Event::RoleChanged {
                        member: t.member,
                        role: Role::Member,
                    },
                    format!("{} demoted {} to member", admin.name, t.name),
                )
            }
            Moderation::Kick => {
                if t.member == admin.member {
                    return Err(RoomError::KickSelf);
                }
                (
                    Event::Left { member: t.member },
                    format!("{} kicked {} from the room", admin.name, t.name),
                )
            }
        };
        Ok(Decision {
            events: vec![change, room.notice(1, notice, &ctx)],
            reply: Moderated {
                target: t.name.clone(),
            },
        })
    }
}

impl Decide for Update {
    type Reply = Updated;

    fn decide(
        self,
        room: &Room,
        _log: Missed,
        ctx: Ctx<'_>,
    ) -> Result<Decision<Updated>, RoomError> {
        let Update {
            token,
            description,
            kind,
        } = self;
        if description.is_none() && kind.is_none() {
            return Err(RoomError::NothingToUpdate);
        }
        let admin = room.admin_of(&token)?;
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
        let notice = format!("{} updated room {}", admin.name, changes.join(" and "));
        Ok(Decision {
            events: vec![
                Event::Updated { description, kind },
                room.notice(1, notice, &ctx),
            ],
            reply: Updated { changes },
        })
    }
}

impl Decide for Send {
    type Reply = Sent;

    /// A send hands the sender what it missed before its own message.
    fn log_read(&self, room: &Room, limits: &Limits) -> Option<LogRead> {
        room.reader_log(room.agent_by_token(&self.token), limits)
    }

    fn decide(self, room: &Room, log: Missed, ctx: Ctx<'_>) -> Result<Decision<Sent>, RoomError> {
        let Send {
            token,
            body,
            to,
            key,
            earlier,
        } = self;
        let sender = room.member_of(&token)?;
        if let Some(key) = &key {
            validate::message_id(key)?;
        }
        // A retry: the same key, the same message → the first answer, nothing new.
        if let Some(first) = earlier.filter(|m| m.from_member == sender.member && m.key == key) {
            let same_recipient = match (&first.to, &to) {
                (None, None) => true,
                (Some(a), Some(b)) => crate::name::fold(a) == crate::name::fold(b),
                _ => false,
            };
            if first.body != body || !same_recipient {
                return Err(RoomError::MessageIdReused);
            }
            return Ok(Decision {
                events: vec![],
                reply: Sent {
                    seq: first.seq,
                    missed: Missed::default(),
                },
            });
        }
        validate::message_body(&body, ctx.limits)?;
        if room.kind == RoomType::Channel && sender.role != Role::Admin {
            return Err(RoomError::ChannelAdminsOnly);
        }
        // The recipient is found by its folded name; the message names it as it
        // joined, so its clients recognise themselves in `to`.
        let (to, to_member) = match to {
            Some(name) => {
                let recipient = room.target(&name)?;
                (Some(recipient.name.clone()), Some(recipient.member))
            }
            None => (None, None),
        };
        let seq = room.last_seq.next();
        let message = Message {
            seq,
            id: ctx.message_id.to_string(),
            room_id: room.id,
            from: sender.name.clone(),
            from_member: sender.member,
            to,
            to_member,
            body,
            timestamp: ctx.now,
            key,
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
            reply: Sent { seq, missed: log },
        })
    }
}

impl Decide for Unread {
    type Reply = Missed;

    fn log_read(&self, room: &Room, limits: &Limits) -> Option<LogRead> {
        room.reader_log(room.agent_by_token(&self.token), limits)
    }

    fn decide(
        self,
        room: &Room,
        log: Missed,
        _ctx: Ctx<'_>,
    ) -> Result<Decision<Missed>, RoomError> {
        let agent = room.member_of(&self.token)?;
        let events = room.cursor_after_read(agent, &log).into_iter().collect();
        Ok(Decision { events, reply: log })
    }
}

impl Decide for Delivered {
    type Reply = ();

    fn decide(self, room: &Room, _log: Missed, _ctx: Ctx<'_>) -> Result<Decision<()>, RoomError> {
        let Delivered { member, seq, prev } = self;
        let events = match room.agent(member) {
            Some(a) if a.cursor >= prev && seq > a.cursor && seq <= room.last_seq => {
                vec![Event::CursorMoved { member, seq }]
            }
            _ => vec![],
        };
        Ok(Decision { events, reply: () })
    }
}

impl Command {
    /// The typed command this one stands for, and how its answer reads as a [`Reply`].
    fn typed(self) -> Typed {
        match self {
            Command::Join {
                agent_name,
                token,
                new_token,
                endpoint,
            } => Typed::Join(Join {
                agent_name,
                token,
                new_token,
                endpoint,
            }),
            Command::Leave { token } => Typed::Leave(Leave { token }),
            Command::Promote { token, target } => {
                Typed::moderate(token, target, Moderation::Promote)
            }
            Command::Demote { token, target } => Typed::moderate(token, target, Moderation::Demote),
            Command::Kick { token, target } => Typed::moderate(token, target, Moderation::Kick),
            Command::Update {
                token,
                description,
                kind,
            } => Typed::Update(Update {
                token,
                description,
                kind,
            }),
            Command::Send {
                token,
                body,
                to,
                key,
                earlier,
            } => Typed::Send(Send {
                token,
                body,
                to,
                key,
                earlier,
            }),
            Command::Unread { token } => Typed::Unread(Unread { token }),
            Command::Delivered { member, seq, prev } => {
                Typed::Delivered(Delivered { member, seq, prev })
            }
        }
    }
}

/// [`Command`] as its typed command.
enum Typed {
    Join(Join),
    Leave(Leave),
    Moderate(Moderate),
    Update(Update),
    Send(Send),
    Unread(Unread),
    Delivered(Delivered),
}

impl Typed {
    fn moderate(token: crate::TokenDigest, target: String, action: Moderation) -> Typed {
        Typed::Moderate(Moderate {
            token,
            target,
            action,
        })
    }
}

impl Decide for Command {
    type Reply = Reply;

    fn log_read(&self, room: &Room, limits: &Limits) -> Option<LogRead> {
        match self.clone().typed() {
            Typed::Join(c) => c.log_read(room, limits),
            Typed::Send(c) => c.log_read(room, limits),
            Typed::Unread(c) => c.log_read(room, limits),
            Typed::Leave(_) | Typed::Moderate(_) | Typed::Update(_) | Typed::Delivered(_) => None,
        }
    }

    fn decide(self, room: &Room, log: Missed, ctx: Ctx<'_>) -> Result<Decision<Reply>, RoomError> {
        Ok(match self.typed() {
            Typed::Join(c) => c.decide(room, log, ctx)?.map(|a| Reply::Joined {
                member: a.member,
                agent_name: a.agent_name,
                role: a.role,
                reconnected: a.reconnected,
                missed: a.missed,
            }),
            Typed::Leave(c) => c.decide(room, log, ctx)?.map(|()| Reply::Left),
            Typed::Moderate(c) => {
                let action = c.action;
                c.decide(room, log, ctx)?
                    .map(|Moderated { target }| match action {
                        Moderation::Promote => Reply::Promoted { target },
                        Moderation::Demote => Reply::Demoted { target },
                        Moderation::Kick => Reply::Kicked { target },
                    })
            }
            Typed::Update(c) => c
                .decide(room, log, ctx)?
                .map(|Updated { changes }| Reply::Updated { changes }),
            Typed::Send(c) => c
                .decide(room, log, ctx)?
                .map(|Sent { seq, missed }| Reply::Sent { seq, missed }),
            Typed::Unread(c) => c.decide(room, log, ctx)?.map(Reply::Unread),
            Typed::Delivered(c) => c.decide(room, log, ctx)?.map(|()| Reply::Delivered),
        })
    }
}
