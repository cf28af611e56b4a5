//! The room actions (docs/protocol.md, section 'Actions'), independent of any envelope.
//!
//! A2A (`metadata.action`) and MCP (tools) both describe an action by a name and loose
//! parameters; [`Params`] is that common shape and [`execute`] runs it through the
//! [`Router`] and renders the contract's text and data. One place decides what each
//! action says, so A2A and MCP cannot drift apart.

use huddle_cluster::Router;
use huddle_cluster::resolve::{Access, call_by_reference, split_context};
use huddle_core::{
    AgentToken, CreateRoom, Message, Missed, Reply, RoomError, RoomId, RoomRequest, RoomResponse,
    RoomView, Seq,
};
use serde_json::{Value, json};

/// The actions, after alias resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    Join,
    Leave,
    Info,
    List,
    Promote,
    Demote,
    Kick,
    Update,
    Send,
    History,
    Unread,
    Help,
}

impl Action {
    /// `metadata.action` with join.cloud's aliases.
    pub fn parse(name: &str) -> Option<Action> {
        Some(match name {
            "room.create" | "create" => Action::Create,
            "room.join" | "join" => Action::Join,
            "room.leave" | "leave" => Action::Leave,
            "room.info" | "info" => Action::Info,
            "room.list" | "list" => Action::List,
            "room.promote" | "promote" => Action::Promote,
            "room.demote" | "demote" => Action::Demote,
            "room.kick" | "kick" => Action::Kick,
            "room.update" | "update" => Action::Update,
            "message.send" | "send" => Action::Send,
            "message.history" | "history" => Action::History,
            "message.unread" | "unread" => Action::Unread,
            "help" => Action::Help,
            _ => return None,
        })
    }

    /// The action's canonical name (`room.create`, ..., `help`).
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "room.create",
            Action::Join => "room.join",
            Action::Leave => "room.leave",
            Action::Info => "room.info",
            Action::List => "room.list",
            Action::Promote => "room.promote",
            Action::Demote => "room.demote",
            Action::Kick => "room.kick",
            Action::Update => "room.update",
            Action::Send => "message.send",
            Action::History => "message.history",
            Action::Unread => "message.unread",
            Action::Help => "help",
        }
    }

    /// Whether a `name:password` context is split for this action.
    fn splits_context(self) -> bool {
        !matches!(self, Action::Create | Action::List) && self.is_room_action()
    }

    fn is_room_action(self) -> bool {
        matches!(
            self,
            Action::Create
                | Action::Join
                | Action::Leave
                | Action::Info
                | Action::List
                | Action::Promote
                | Action::Demote
                | Action::Kick
                | Action::Update
        )
    }
}

/// Every parameter any action takes, as the envelope delivered it.
#[derive(Clone, Debug, Default)]
pub struct Params {
    /// A2A `text` / MCP `name` (create) or `text` (send).
    pub text: Option<String>,
    /// A2A `contextId` / MCP `roomId`.
    pub room: Option<String>,
    pub agent_name: Option<String>,
    pub agent_token: Option<String>,
    pub agent_endpoint: Option<String>,
    pub password: Option<String>,
    pub description: Option<String>,
    pub kind: Option<String>,
    pub to: Option<String>,
    pub target_agent: Option<String>,
    pub search: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// Not a wire parameter: the client's address, which failed password attempts are
    /// throttled by (`None` when the transport does not know it).
    pub client: Option<std::net::IpAddr>,
}

impl Params {
    /// Reads the parameters from a JSON object (A2A metadata, MCP arguments); strings only
    /// where strings are expected, numbers (or numeric strings) for limit/offset.
    pub fn from_json(v: &Value) -> Params {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let n = |k: &str| {
            v.get(k).and_then(|x| {
                x.as_i64()
                    .or_else(|| x.as_f64().map(|f| f as i64))
                    .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
            })
        };
        Params {
            text: None,
            room: s("roomId"),
            agent_name: s("agentName"),
            agent_token: s("agentToken"),
            agent_endpoint: s("agentEndpoint"),
            password: s("password"),
            description: s("description"),
            kind: s("type"),
            to: s("to"),
            target_agent: s("targetAgent"),
            search: s("search"),
            limit: n("limit"),
            offset: n("offset"),
            client: None,
        }
    }
}

/// A successful action: the text line and, when the action returns data, the data.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub text: String,
    pub data: Option<Value>,
    pub room_id: Option<RoomId>,
    /// After a join or create: the agent's read cursor (not on the wire). Notification
    /// delivery to an MCP session carries on from here.
    pub cursor: Option<Seq>,
}

impl Outcome {
    fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            data: None,
            room_id: None,
            cursor: None,
        }
    }

    /// The messages under `data.missedMessages`, if any (for the A2A summary part).
    pub fn missed(&self) -> Option<&Vec<Value>> {
        self.data.as_ref()?.get("missedMessages")?.as_array()
    }
}

pub(crate) fn required(present: &[(&str, bool)]) -> Result<(), RoomError> {
    let missing: Vec<&str> = present
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| *n)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(RoomError::missing(&missing))
    }
}

fn non_empty(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.is_empty())
}

fn token(p: &Params) -> Result<AgentToken, RoomError> {
    match p.agent_token.as_deref() {
        Some(t) if !t.is_empty() => Ok(AgentToken::from_wire(t)),
        _ => Err(RoomError::missing(&["agentToken"])),
    }
}

/// The room a token routes to (docs/architecture.md, section 'Self-routing tokens'); a
/// token that names no room is invalid.
pub(crate) fn token_room(t: &AgentToken) -> Result<RoomId, RoomError> {
    t.room_id().ok_or(RoomError::InvalidToken)
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

pub(crate) fn unexpected(r: RoomResponse) -> RoomError {
    RoomError::Unavailable(format!("unexpected room answer {r:?}"))
}

fn add_missed(data: &mut Value, missed: &Missed) {
    if missed.messages.is_empty() {
        return;
    }
    data["missedMessages"] = Value::Array(missed.messages.iter().map(Message::to_json).collect());
    data["missedCount"] = json!(missed.messages.len());
    if missed.has_more {
        data["missedHasMore"] = json!(true);
    }
}

/// Runs `action` with `p`.
pub async fn execute(
    router: &dyn Router,
    action: Action,
    mut p: Params,
) -> Result<Outcome, RoomError> {
    if action.splits_context()
        && let Some(ctx) = p.room.take()
    {
        let (room, password) = split_context(&ctx, p.password.take());
        p.room = Some(room);
        p.password = password;
    }
    match action {
        Action::Help => Ok(Outcome {
            text: crate::docs::text(),
            data: Some(json!({ "documentation": crate::docs::structured() })),
            room_id: None,
            cursor: None,
        }),
        Action::Create => create(router, p).await,
        Action::Join => join(router, p).await,
        Action::Leave => {
            let t = token(&p)?;
            let room = token_room(&t)?;
            call(router, room, RoomRequest::Leave { token: t }).await?;
            Ok(Outcome {
                room_id: Some(room),
                ..Outcome::text(format!("Left room {room}"))
            })
        }
        Action::Info => info(router, p).await,
        Action::List => {
            let limit = p.limit.unwrap_or(20).clamp(1, 100) as usize;
            let offset = p.offset.unwrap_or(0).max(0) as usize;
            let page = router
                .list(p.search.as_deref().filter(|s| !s.is_empty()), limit, offset)
                .await?;
            let rooms: Vec<Value> = page
                .rooms
                .iter()
                .map(|r| {
                    json!({
                        "name": r.name,
                        "description": r.description,
                        "type": r.kind.as_str(),
                        "agents": r.agents,
                        "createdAt": r.created_at.rfc3339(),
                    })
                })
                .collect();
            let rooms = Value::Array(rooms);
            Ok(Outcome {
                text: pretty(&rooms),
                data: Some(json!({ "rooms": rooms, "total": page.total })),
                room_id: None,
                cursor: None,
            })
        }
        Action::Promote | Action::Demote | Action::Kick => {
            required(&[
                ("agentToken", non_empty(&p.agent_token)),
                ("targetAgent", non_empty(&p.target_agent)),
            ])?;
            let t = token(&p)?;
            let room = token_room(&t)?;
            let target = p.target_agent.unwrap_or_default();
            let req = match action {
                Action::Promote => RoomRequest::Promote { token: t, target },
                Action::Demote => RoomRequest::Demote { token: t, target },
                _ => RoomRequest::Kick { token: t, target },
            };
            let text = match call(router, room, req).await? {
                Reply::Promoted { target } => format!("Promoted {target} to admin"),
                Reply::Demoted { target } => format!("Demoted {target} to member"),
                Reply::Kicked { target } => format!("Kicked {target} from the room"),
                other => return Err(unexpected(RoomResponse::Done(other))),
            };
            Ok(Outcome {
                room_id: Some(room),
                ..Outcome::text(text)
            })
        }
        Action::Update => {
            if p.description.is_none() && p.kind.is_none() {
                return Err(RoomError::NothingToUpdate);
            }
            let t = token(&p)?;
            let room = token_room(&t)?;
            let req = RoomRequest::Update {
                token: t,
                description: p.description,
                kind: p.kind,
            };
            match call(router, room, req).await? {
                Reply::Updated { changes } => Ok(Outcome {
                    room_id: Some(room),
                    ..Outcome::text(format!("Room updated: {}", changes.join(", ")))
                }),
                other => Err(unexpected(RoomResponse::Done(other))),
            }
        }
        Action::Send => {
            required(&[
                ("text", p.text.is_some()),
                ("agentToken", non_empty(&p.agent_token)),
            ])?;
            let t = token(&p)?;
            let room = token_room(&t)?;
            let req = RoomRequest::Send {
                token: t,
                body: p.text.unwrap_or_default(),
                to: p.to.filter(|s| !s.is_empty()),
            };
            match call(router, room, req).await? {
                Reply::Sent { seq, missed } => {
                    let mut data = json!({ "seq": seq });
                    add_missed(&mut data, &missed);
                    Ok(Outcome {
                        text: "Message sent".into(),
                        data: Some(data),
                        room_id: Some(room),
                        cursor: None,
                    })
                }
                other => Err(unexpected(RoomResponse::Done(other))),
            }
        }
        Action::History => history(router, p).await,
        Action::Unread => {
            let t = token(&p)?;
            let room = token_room(&t)?;
            match call(router, room, RoomRequest::Unread { token: t }).await? {
                Reply::Unread(page) => {
                    let messages: Vec<Value> = page.messages.iter().map(Message::to_json).collect();
                    let text = if messages.is_empty() {
                        "No unread messages".to_string()
                    } else {
                        pretty(&Value::Array(messages.clone()))
                    };
                    let mut data = json!({ "messages": messages, "total": page.messages.len() });
                    if page.has_more {
                        data["hasMore"] = json!(true);
                    }
                    Ok(Outcome {
                        text,
                        data: Some(data),
                        room_id: Some(room),
                        cursor: None,
                    })
                }
                other => Err(unexpected(RoomResponse::Done(other))),
            }
        }
    }
}

/// A room operation whose answer is a plain [`Reply`].
pub(crate) async fn call(
    router: &dyn Router,
    room: RoomId,
    req: RoomRequest,
) -> Result<Reply, RoomError> {
    match router.call(room, req).await {
        Ok(RoomResponse::Done(reply)) => Ok(reply),
        Ok(other) => Err(unexpected(other)),
        // The token named a room that does not exist: to the client, a bad token.
        Err(RoomError::RoomNotFound(_)) => Err(RoomError::InvalidToken),
        Err(e) => Err(e),
    }
}

async fn create(router: &dyn Router, p: Params) -> Result<Outcome, RoomError> {
    required(&[("agentName", non_empty(&p.agent_name))])?;
    let created = router
        .create(CreateRoom {
            name: p.text.filter(|t| !t.trim().is_empty()),
            agent_name: p.agent_name.unwrap_or_default(),
            password: p.password,
            description: p.description,
            kind: p.kind,
            endpoint: p.agent_endpoint,
        })
        .await?;
    let protected = if created.password_protected {
        " (password protected)"
    } else {
        ""
    };
    Ok(Outcome {
        text: format!(
            "Room created: {}{protected}. Joined as {} (admin).",
            created.room_id, created.agent_name
        ),
        data: Some(json!({
            "roomId": created.room_id.to_string(),
            "name": created.name,
            "description": created.description,
            "type": created.kind.as_str(),
            "passwordProtected": created.password_protected,
            "agentName": created.agent_name,
            "agentToken": created.agent_token.as_str(),
        })),
        room_id: Some(created.room_id),
        // A new room's creator has seen nothing yet: everything in it is news.
        cursor: Some(0),
    })
}

async fn join(router: &dyn Router, p: Params) -> Result<Outcome, RoomError> {
    required(&[
        ("roomId", non_empty(&p.room)),
        ("agentName", non_empty(&p.agent_name)),
    ])?;
    let reference = p.room.unwrap_or_default();
    let agent_name = p.agent_name.unwrap_or_default();
    let token = p
        .agent_token
        .filter(|t| !t.is_empty())
        .map(AgentToken::from_wire);
    let endpoint = p.agent_endpoint.filter(|e| !e.is_empty());
    let Joined {
        room_id,
        agent_name,
        agent_token,
        role,
        reconnected,
        missed,
        cursor,
    } = join_room(
        router,
        &reference,
        Access {
            password: p.password,
            client: p.client,
            member_of: None,
        },
        agent_name,
        token,
        endpoint,
    )
    .await?;
    let verb = if reconnected {
        "Reconnected to room"
    } else {
        "Joined room"
    };
    let mut data = json!({
        "roomId": room_id.to_string(),
        "agentName": agent_name,
        "agentToken": agent_token.as_str(),
        "role": role.as_str(),
    });
    add_missed(&mut data, &missed);
    Ok(Outcome {
        text: format!("{verb} {room_id} as {agent_name}"),
        data: Some(data),
        room_id: Some(room_id),
        cursor: Some(cursor),
    })
}

/// A room's answer to a join: what `room.join` / `JoinRoom` render.
pub(crate) struct Joined {
    pub room_id: RoomId,
    pub agent_name: String,
    pub agent_token: AgentToken,
    pub role: huddle_core::Role,
    pub reconnected: bool,
    pub missed: Missed,
    pub cursor: Seq,
}

/// Joins (or reconnects to) the room `reference` names — an id, a name, same-name rooms
/// told apart by password. Shared by every protocol's join.
pub(crate) async fn join_room(
    router: &dyn Router,
    reference: &str,
    access: Access,
    agent_name: String,
    token: Option<AgentToken>,
    endpoint: Option<String>,
) -> Result<Joined, RoomError> {
    let (_, response) = call_by_reference(router, reference, access, |proof| RoomRequest::Join {
        agent_name: agent_name.clone(),
        proof,
        token: token.clone(),
        endpoint: endpoint.clone(),
    })
    .await?;
    match response {
        RoomResponse::Joined {
            room_id,
            agent_name,
            agent_token,
            role,
            reconnected,
            missed,
            cursor,
        } => Ok(Joined {
            room_id,
            agent_name,
            agent_token,
            role,
            reconnected,
            missed,
            cursor,
        }),
        other => Err(unexpected(other)),
    }
}

async fn info(router: &dyn Router, p: Params) -> Result<Outcome, RoomError> {
    required(&[("roomId", non_empty(&p.room))])?;
    let reference = p.room.unwrap_or_default();
    let token = p
        .agent_token
        .filter(|t| !t.is_empty())
        .map(AgentToken::from_wire);
    let view = room_view(router, &reference, p.password, p.client, token).await?;
    let agents: Vec<Value> = view
        .agents
        .iter()
        .map(
            |a| json!({"name": a.name, "role": a.role.as_str(), "joinedAt": a.joined_at.rfc3339()}),
        )
        .collect();
    let data = json!({
        "roomId": view.room_id.to_string(),
        "name": view.name,
        "description": view.description,
        "type": view.kind.as_str(),
        "passwordProtected": view.password_protected,
        "createdAt": view.created_at.rfc3339(),
        "agents": agents,
        "lastSeq": view.last_seq,
    });
    Ok(Outcome {
        text: pretty(&data),
        data: Some(data),
        room_id: Some(view.room_id),
        cursor: None,
    })
}

/// A room's details (`room.info`, gRPC `GetRoom`): a protected room needs its password or
/// a member's `token`.
pub(crate) async fn room_view(
    router: &dyn Router,
    reference: &str,
    password: Option<String>,
    client: Option<std::net::IpAddr>,
    token: Option<AgentToken>,
) -> Result<RoomView, RoomError> {
    let access = Access {
        password,
        client,
        member_of: token.as_ref().and_then(AgentToken::room_id),
    };
    let (_, response) = call_by_reference(router, reference, access, |proof| RoomRequest::Info {
        proof,
        token: token.clone(),
    })
    .await?;
    match response {
        RoomResponse::Info(view) => Ok(view),
        other => Err(unexpected(other)),
    }
}

async fn history(router: &dyn Router, p: Params) -> Result<Outcome, RoomError> {
    let t = token(&p)?;
    let own = token_room(&t)?;
    let limit = p.limit.unwrap_or(20).clamp(1, 100) as usize;
    let offset = p.offset.unwrap_or(0).max(0) as usize;
    let room = reading_room(router, &t, own, p.room.as_deref()).await?;
    let req = RoomRequest::History {
        token: t,
        limit,
        offset,
    };
    match router.call(room, req).await {
        Ok(RoomResponse::History { messages, total }) => {
            let messages: Vec<Value> = messages.iter().map(Message::to_json).collect();
            let messages = Value::Array(messages);
            Ok(Outcome {
                text: pretty(&messages),
                data: Some(json!({ "messages": messages, "total": total })),
                room_id: Some(room),
                cursor: None,
            })
        }
        Ok(other) => Err(unexpected(other)),
        Err(RoomError::RoomNotFound(_)) => Err(RoomError::InvalidToken),
        Err(e) => Err(e),
    }
}

/// The room an agent reads (history, gRPC `Subscribe`): its token's room `own`, which
/// `reference` (an id or a name, optional) must name. Any other reference — another
/// room's id or name, or one that names no room at all — is `agentToken does not belong
/// to this room` once the token is known to be valid: the answer is the same whether
/// that room exists, so a member cannot probe for room ids or names. An id is compared
/// with the token's room without looking it up.
pub(crate) async fn reading_room(
    router: &dyn Router,
    t: &AgentToken,
    own: RoomId,
    reference: Option<&str>,
) -> Result<RoomId, RoomError> {
    let Some(reference) = reference.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(own);
    };
    let named = match reference.parse::<RoomId>() {
        Ok(id) => id == own,
        // A name: does it name the token's room (same-name rooms included)?
        Err(_) => huddle_cluster::resolve::candidates(router, reference)
            .await?
            .contains(&own),
    };
    if named {
        return Ok(own);
    }
    // Is it a token at all? Then it is the wrong room for it.
    call_viewer(router, own, t).await?;
    Err(RoomError::TokenNotInRoom)
}

async fn call_viewer(router: &dyn Router, room: RoomId, t: &AgentToken) -> Result<(), RoomError> {
    match router
        .call(room, RoomRequest::Authorize { token: t.clone() })
        .await
    {
        Ok(_) => Ok(()),
        Err(RoomError::RoomNotFound(_)) => Err(RoomError::InvalidToken),
        Err(e) => Err(e),
    }
}

/// The A2A third part: `\n--- N missed message(s) ---\n` then `[from] body` lines.
pub fn missed_summary(missed: &[Value]) -> String {
    let lines: Vec<String> = missed
        .iter()
        .map(|m| {
            let from = m.get("from").and_then(Value::as_str).unwrap_or("");
            let body = m.get("body").and_then(Value::as_str).unwrap_or("");
            match m.get("to").and_then(Value::as_str) {
                Some(to) => format!("[{from} -> {to}] {body}"),
                None => format!("[{from}] {body}"),
            }
        })
        .collect();
    format!(
        "\n--- {} missed message(s) ---\n{}",
        missed.len(),
        lines.join("\n")
    )
}
