//! The one-shot client commands (everything but the interactive `join`), and
//! [`Session`]: the server, the token store and the "act as a member" rule they share.
//!
//! Every command is one or two A2A `SendMessage` actions (docs/protocol.md, section
//! 'Actions'), so they work against any join.cloud-compatible server. Membership:
//! `--token` if given, else the stored token of (server, room, agent), else a fresh
//! `room.join` whose token is stored. A stored token the server no longer accepts (the
//! agent left or was kicked elsewhere) is forgotten and the agent joins again, once.

use std::future::Future;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use super::args::{
    AgentOpts, ClientOpts, CreateArgs, HistoryArgs, InfoArgs, MemberArgs, RoomsArgs, SendArgs,
    TargetArgs, UpdateArgs,
};
use super::output::{self, line, message_value_line, note, pad};
use super::tokens::{Entry, TokenStore, room_key};
use crate::client::{A2aClient, ActionReply, ClientError};

/// Pages of `message.unread` read at most by one `huddle unread` (100 messages each).
const MAX_UNREAD_PAGES: usize = 1000;

/// One command's view of the server: the client, the token store, the output mode.
pub struct Session {
    pub client: A2aClient,
    pub store: TokenStore,
    /// The normalized server URL, the first part of a stored token's key.
    pub server: String,
    pub json: bool,
}

/// Where a member's token came from: a stored or given one may be stale, a fresh one not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Given,
    Stored,
    Joined,
}

/// An agent able to act in a room.
#[derive(Debug, Clone)]
pub struct Member {
    /// The room's id when known (not for a bare `--token`).
    pub room_id: Option<String>,
    pub token: String,
    pub source: Source,
}

impl Session {
    pub fn new(opts: &ClientOpts) -> Result<Self> {
        let client = A2aClient::new(&opts.url)?;
        Ok(Session {
            server: client.base_url().to_owned(),
            client,
            store: TokenStore::open(!opts.no_persist)?,
            json: opts.json,
        })
    }

    /// `room.join` as `agent` (reconnecting with `token` when given), storing the token.
    pub async fn join(&self, room: &str, agent: &str, token: Option<&str>) -> Result<JoinReply> {
        let mut meta = json!({ "agentName": agent });
        if let Some(token) = token {
            meta["agentToken"] = json!(token);
        }
        let reply = self
            .client
            .action("room.join", None, Some(room), meta)
            .await?;
        let joined = JoinReply::from_reply(reply)?;
        self.store.save(Entry {
            server: self.server.clone(),
            room: room_key(room),
            room_id: joined.room_id.clone(),
            agent: agent.to_owned(),
            token: joined.token.clone(),
        })?;
        Ok(joined)
    }

    /// The member `agent` acts as: `--token`, else the stored token, else a fresh join
    /// (announced on stderr).
    pub async fn member(&self, room: &str, agent: &AgentOpts) -> Result<Member> {
        if let Some(token) = &agent.token {
            let stored = self.store.lookup(&self.server, room, &agent.name)?;
            return Ok(Member {
                room_id: stored.filter(|e| &e.token == token).map(|e| e.room_id),
                token: token.clone(),
                source: Source::Given,
            });
        }
        if let Some(entry) = self.store.lookup(&self.server, room, &agent.name)? {
            return Ok(Member {
                room_id: Some(entry.room_id),
                token: entry.token,
                source: Source::Stored,
            });
        }
        self.join_fresh(room, &agent.name).await
    }

    async fn join_fresh(&self, room: &str, agent: &str) -> Result<Member> {
        let joined = self.join(room, agent, None).await?;
        note(&joined.text);
        Ok(Member {
            room_id: Some(joined.room_id),
            token: joined.token,
            source: Source::Joined,
        })
    }

    /// Runs `act` as a member of `room` (see [`Session::member`]). When a stored token is
    /// refused as unknown, forgets it, joins again and runs `act` once more.
    pub async fn as_member<F, Fut>(
        &self,
        room: &str,
        agent: &AgentOpts,
        act: F,
    ) -> Result<(Member, ActionReply)>
    where
        F: Fn(Member) -> Fut,
        Fut: Future<Output = Result<ActionReply, ClientError>>,
    {
        let member = self.member(room, agent).await?;
        match act(member.clone()).await {
            Err(ClientError::Action(message))
                if member.source == Source::Stored && is_stale_token(&message) =>
            {
                note(format!(
                    "The stored token of {} is no longer valid ({message}); joining again.",
                    agent.name
                ));
                self.store.forget(&self.server, &member.token)?;
                let member = self.join_fresh(room, &agent.name).await?;
                let reply = act(member.clone()).await?;
                Ok((member, reply))
            }
            Err(e) => Err(e.into()),
            Ok(reply) => Ok((member, reply)),
        }
    }

    /// Prints a reply: its data as JSON with `--json` (or `{"text"}` when it has none),
    /// else its text.
    fn print_reply(&self, reply: &ActionReply) {
        if self.json {
            output::json(
                reply
                    .data
                    .as_ref()
                    .unwrap_or(&json!({ "text": reply.text })),
            );
        } else {
            line(&reply.text);
        }
    }
}

/// What `room.join` answered.
#[derive(Debug, Clone)]
pub struct JoinReply {
    pub room_id: String,
    pub token: String,
    /// `Joined room ...` or `Reconnected to room ...`.
    pub text: String,
    pub data: Value,
}

impl JoinReply {
    fn from_reply(reply: ActionReply) -> Result<Self> {
        let room_id = reply.data_str("roomId")?.to_owned();
        let token = reply.data_str("agentToken")?.to_owned();
        Ok(JoinReply {
            room_id,
            token,
            text: reply.text,
            data: reply.data.unwrap_or(Value::Null),
        })
    }

    pub fn reconnected(&self) -> bool {
        self.text.starts_with("Reconnected")
    }

    pub fn role(&self) -> &str {
        self.data["role"].as_str().unwrap_or("member")
    }

    /// The messages the agent missed while away (may be empty).
    pub fn missed(&self) -> Vec<Value> {
        messages(&self.data, "missedMessages")
    }

    /// Huddle pages missed messages; the rest are read with `message.unread`.
    pub fn missed_has_more(&self) -> bool {
        self.data["missedHasMore"].as_bool().unwrap_or(false)
    }
}

/// The server's texts for a token it does not know (any more).
fn is_stale_token(message: &str) -> bool {
    message.starts_with("Invalid agentToken") || message.contains("does not belong to this room")
}

/// `data[key]` as a list of messages.
pub fn messages(data: &Value, key: &str) -> Vec<Value> {
    data[key].as_array().cloned().unwrap_or_default()
}

/// Metadata object from optional string fields.
fn meta(fields: &[(&str, Option<&str>)]) -> Value {
    let map: Map<String, Value> = fields
        .iter()
        .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), json!(v))))
        .collect();
    Value::Object(map)
}

// ---- the commands ----

pub async fn rooms(args: RoomsArgs) -> Result<()> {
    let s = Session::new(&args.opts)?;
    let mut m = json!({});
    if let Some(search) = &args.search {
        m["search"] = json!(search);
    }
    if let Some(limit) = args.limit {
        m["limit"] = json!(limit);
    }
    if let Some(offset) = args.offset {
        m["offset"] = json!(offset);
    }
    let reply = s.client.action("room.list", None, None, m).await?;
    let data = reply.data.clone().context("room.list returned no data")?;
    if s.json {
        output::json(&data);
        return Ok(());
    }
    let rooms = data["rooms"].as_array().cloned().unwrap_or_default();
    if rooms.is_empty() {
        note("No rooms.");
        return Ok(());
    }
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let rows: Vec<[String; 4]> = rooms
        .iter()
        .map(|r| {
            [
                text(&r["name"]),
                text(&r["type"]),
                text(&r["agents"]),
                text(&r["description"]).replace(['\n', '\r'], " "),
            ]
        })
        .collect();
    let header = ["NAME", "TYPE", "AGENTS", "DESCRIPTION"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    let row = |c: [&str; 4]| {
        format!(
            "{}  {}  {}  {}",
            pad(c[0], w0),
            pad(c[1], w1),
            pad(c[2], w2),
            c[3]
        )
        .trim_end()
        .to_owned()
    };
    line(row(header));
    for r in &rows {
        line(row([&r[0], &r[1], &r[2], &r[3]]));
    }
    if let Some(total) = data["total"].as_u64()
        && total > rows.len() as u64
    {
        note(format!(
            "({} of {total} rooms shown; see --limit and --offset)",
            rows.len()
        ));
    }
    Ok(())
}

pub async fn create(args: CreateArgs) -> Result<()> {
    let s = Session::new(&args.opts)?;
    let [description, kind] = args.settings.fields();
    let m = meta(&[
        ("agentName", Some(args.agent.name.as_str())),
        ("password", args.password.as_deref()),
        description,
        kind,
    ]);
    let reply = s
        .client
        .action("room.create", Some(&args.room), None, m)
        .await?;
    let room_id = reply.data_str("roomId")?.to_owned();
    let token = reply.data_str("agentToken")?.to_owned();
    let spelling = match &args.password {
        Some(p) => format!("{}:{p}", args.room),
        None => args.room.clone(),
    };
    s.store.save(Entry {
        server: s.server.clone(),
        room: room_key(&spelling),
        room_id,
        agent: args.agent.name.clone(),
        token,
    })?;
    s.print_reply(&reply);
    Ok(())
}

pub async fn info(args: InfoArgs) -> Result<()> {
    let s = Session::new(&args.opts)?;
    let reply = s
        .client
        .action("room.info", None, Some(&args.room), json!({}))
        .await?;
    let data = reply.data.clone().context("room.info returned no data")?;
    if s.json {
        output::json(&data);
        return Ok(());
    }
    let field = |k: &str| data[k].as_str().unwrap_or("").to_owned();
    line(format!("name:        {}", field("name")));
    line(format!("id:          {}", field("roomId")));
    line(format!("type:        {}", field("type")));
    line(format!("description: {}", field("description")));
    let agents = data["agents"].as_array().cloned().unwrap_or_default();
    line(format!("agents:      {}", agents.len()));
    let width = agents
        .iter()
        .map(|a| a["name"].as_str().unwrap_or("").chars().count())
        .max()
        .unwrap_or(0);
    for a in &agents {
        line(format!(
            "  {}  {}",
            pad(a["name"].as_str().unwrap_or("?"), width),
            a["role"].as_str().unwrap_or("")
        ));
    }
    Ok(())
}

pub async fn history(args: HistoryArgs) -> Result<()> {
    let s = Session::new(&args.opts)?;
    let (_, reply) = s
        .as_member(&args.room, &args.agent, |m| {
            let mut meta = json!({ "agentToken": m.token });
            if let Some(limit) = args.limit {
                meta["limit"] = json!(limit);
            }
            if let Some(offset) = args.offset {
                meta["offset"] = json!(offset);
            }
            let client = &s.client;
            let room = m.room_id.unwrap_or_else(|| args.room.clone());
            async move {
                client
                    .action("message.history", None, Some(&room), meta)
                    .await
            }
        })
        .await?;
    let data = reply
        .data
        .clone()
        .context("message.history returned no data")?;
    if s.json {
        output::json(&data);
        return Ok(());
    }
    let list = messages(&data, "messages");
    if list.is_empty() {
        note("No messages.");
    }
    for m in &list {
        line(message_value_line(m));
    }
    Ok(())
}

pub async fn unread(args: MemberArgs) -> Result<()> {
    let s = Session::new(&args.opts)?;
    let read_page = |m: Member| {
        let client = &s.client;
        async move {
            client
                .action(
                    "message.unread",
                    None,
                    None,
                    json!({ "agentToken": m.token }),
                )
                .await
        }
    };
    let (member, first) = s.as_member(&args.room, &args.agent, read_page).await?;
    // Huddle pages unread messages (100 at a time, `hasMore`); read them all.
    let mut all = Vec::new();
    let mut reply = first;
    for _ in 0..MAX_UNREAD_PAGES {
        let data = reply.data.clone().unwrap_or(Value::Null);
        all.extend(messages(&data, "messages"));
        if !data["hasMore"].as_bool().unwrap_or(false) {
            break;
        }
        reply = read_page(member.clone()).await?;
    }
    if s.json {
        output::json(&json!({ "messages": all, "total": all.len() }));
        return Ok(());
    }
    if all.is_empty() {
        line("No unread messages");
    }
    for m in &all {
        line(message_value_line(m));
    }
    Ok(())
}

pub async fn send(args: SendArgs) -> Result<()> {
    let s = Session::new(&args.opts)?;
    let (_, reply) = s
        .as_member(&args.room, &args.agent, |m| {
            let client = &s.client;
            let (text, to) = (args.text.as_str(), args.to.as_deref());
            async move { client.send_message_retrying(&m.token, text, to).await }
        })
        .await?;
    if s.json {
        s.print_reply(&reply);
        return Ok(());
    }
    line(&reply.text);
    // Sending also hands back what the agent missed (and marks it read): show it.
    if let Some(data) = &reply.data {
        for m in messages(data, "missedMessages") {
            line(message_value_line(&m));
        }
    }
    Ok(())
}

pub async fn leave(args: MemberArgs) -> Result<()> {
    let s = Session::new(&args.opts)?;
    // No rejoin for a stale token here: joining only to leave again helps nobody.
    let member = s.member(&args.room, &args.agent).await?;
    let result = s
        .client
        .action(
            "room.leave",
            None,
            None,
            json!({ "agentToken": member.token }),
        )
        .await;
    match result {
        Ok(reply) => {
            s.store.forget(&s.server, &member.token)?;
            s.print_reply(&reply);
            Ok(())
        }
        Err(ClientError::Action(message))
            if member.source == Source::Stored && is_stale_token(&message) =>
        {
            s.store.forget(&s.server, &member.token)?;
            bail!(
                "{} is not in the room ({message}); the stored token was forgotten",
                args.agent.name
            )
        }
        Err(e) => Err(e.into()),
    }
}

/// `promote`, `demote`, `kick`: `action` is `room.promote` and so on.
pub async fn admin(action: &'static str, args: TargetArgs) -> Result<()> {
    let s = Session::new(&args.opts)?;
    let (_, reply) = s
        .as_member(&args.room, &args.agent, |m| {
            let client = &s.client;
            let meta = json!({ "agentToken": m.token, "targetAgent": args.target });
            async move { client.action(action, None, None, meta).await }
        })
        .await?;
    s.print_reply(&reply);
    Ok(())
}

pub async fn update(args: UpdateArgs) -> Result<()> {
    // At least one of them is given: `UpdateArgs`'s argument group requires it.
    let [description, kind] = args.settings.fields();
    let s = Session::new(&args.opts)?;
    let (_, reply) = s
        .as_member(&args.room, &args.agent, |m| {
            let client = &s.client;
            let meta = meta(&[("agentToken", Some(m.token.as_str())), description, kind]);
            async move { client.action("room.update", None, None, meta).await }
        })
        .await?;
    s.print_reply(&reply);
    Ok(())
}
