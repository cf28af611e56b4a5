//! Joined rooms as MCP resources, and `subscriptions/listen` (protocol 2026-07-28).
//!
//! From 2026-07-28 on there are no sessions: a server pushes only on a
//! `subscriptions/listen` stream, and only `notifications/resources/updated` for the
//! resource URIs the client asked for. So each room an agent is in is a resource,
//! `huddle://rooms/<roomId>/messages?agentToken=<token>` (the token says whose view: DMs
//! to others are not in it; the session's rooms may leave it out). A listen stream sends
//! one `resources/updated` per room message the agent may see, carrying the message in
//! `_meta` (`huddle/message`), so a client need not read the resource back;
//! `resources/read` gives the most recent messages (`after=<seq>` in the URI: only later
//! ones).

use std::sync::Arc;

use axum::http::request::Parts;
use futures::StreamExt;
use huddle_app::RoomApi;
use huddle_cluster::{OnLag, Router, Subscribe};
use huddle_core::{AgentToken, Message, Page, RoomId, Seq};
use rmcp::ErrorData as McpError;
use rmcp::model::{
    NotificationMetaObject, ReadResourceResult, Resource, ResourceContents,
    ResourceUpdatedNotification, ResourceUpdatedNotificationParam, ServerNotification,
};
use rmcp::service::SubscriptionContext;
use serde_json::{Value, json};
use tokio_stream::StreamMap;

use super::listen_gate::{ListenGate, OpenOnDrop};
use super::session::Session;

/// `_meta` key of a `resources/updated` notification that carries the room message.
pub const MESSAGE_META_KEY: &str = "huddle/message";

/// A room resource, as a URI names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomUri {
    pub room: RoomId,
    pub token: Option<AgentToken>,
    pub after: Option<Seq>,
}

impl RoomUri {
    pub fn format(room: RoomId, token: Option<&AgentToken>) -> String {
        match token {
            Some(t) => format!("huddle://rooms/{room}/messages?agentToken={}", t.as_str()),
            None => format!("huddle://rooms/{room}/messages"),
        }
    }

    pub fn parse(uri: &str) -> Option<RoomUri> {
        let rest = uri.strip_prefix("huddle://rooms/")?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let room = path
            .strip_suffix("/messages")
            .unwrap_or(path)
            .parse()
            .ok()?;
        let mut parsed = RoomUri {
            room,
            token: None,
            after: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v);
            match k {
                "agentToken" if !v.is_empty() => parsed.token = Some(AgentToken::from_wire(v)),
                "after" => parsed.after = v.parse().ok(),
                _ => {}
            }
        }
        Some(parsed)
    }

    /// The agent whose view this is: the URI's token, or the session's for that room.
    fn token(&self, session: Option<&Arc<Session>>) -> Option<AgentToken> {
        self.token.clone().or_else(|| {
            session?
                .choose(Some(&self.room.to_string()))
                .ok()
                .map(|r| r.token)
        })
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `resources/list`: the session's rooms (a sessionless request has none to show).
pub fn list(session: Option<&Arc<Session>>) -> Vec<Resource> {
    let Some(session) = session else {
        return Vec::new();
    };
    session
        .rooms()
        .iter()
        .filter_map(|r| {
            let name = r.name.clone().unwrap_or_else(|| r.room_id.to_string());
            serde_json::from_value(json!({
                "uri": RoomUri::format(r.room_id, None),
                "name": format!("room/{}", r.room_id),
                "title": format!("Room {name}"),
                "description": format!("Messages of room {name} as {} sees them.", r.agent_name),
                "mimeType": "application/json",
            }))
            .ok()
        })
        .collect()
}

/// `resources/read`: the most recent messages the agent may see (after `after=`, if given).
pub async fn read(
    router: &dyn Router,
    session: Option<&Arc<Session>>,
    uri: &str,
) -> Result<ReadResourceResult, McpError> {
    let parsed = RoomUri::parse(uri)
        .ok_or_else(|| McpError::resource_not_found(format!("Unknown resource: {uri}"), None))?;
    let token = parsed.token(session).ok_or_else(|| {
        McpError::invalid_params(
            format!(
                "Not joined to room {}: give agentToken in the URI",
                parsed.room
            ),
            None,
        )
    })?;
    let reference = parsed.room.to_string();
    let page = Page::new(Some(Page::MAX_LIMIT as i64), None);
    let (_, history) = RoomApi::new(router)
        .history(token, Some(&reference), page)
        .await
        .map_err(|e| McpError::invalid_params(e.to_string(), None))?;
    let messages: Vec<Value> = history
        .messages
        .iter()
        .filter(|m| parsed.after.is_none_or(|after| m.seq > after))
        .map(Message::to_json)
        .collect();
    let text = serde_json::to_string(&messages).unwrap_or_default();
    let contents: ResourceContents = serde_json::from_value(json!({
        "uri": uri,
        "mimeType": "application/json",
        "text": text,
    }))
    .map_err(|e| McpError::internal_error(e.to_string(), None))?;
    Ok(ReadResourceResult::new(vec![contents]))
}

/// The URIs a listen request may subscribe to: room resources (validated when opened).
pub fn acceptable(uris: &[String]) -> Vec<String> {
    uris.iter()
        .filter(|u| RoomUri::parse(u).is_some())
        .cloned()
        .collect()
}

/// One listen stream follows a bounded number of rooms.
pub fn too_many_listen_rooms(limit: usize) -> String {
    format!("Too many rooms in one subscriptions/listen: the limit is {limit}")
}

/// Runs one `subscriptions/listen` stream until the client cancels it: for each room
/// message the agent may see, `notifications/resources/updated` on the room's URI.
/// At most `max_rooms` rooms (each is a room subscription held as long as the stream).
pub async fn listen(
    router: Arc<dyn Router>,
    session: Option<Arc<Session>>,
    ctx: SubscriptionContext,
    max_rooms: usize,
) -> Result<(), McpError> {
    let uris = ctx
        .accepted()
        .resource_subscriptions
        .clone()
        .unwrap_or_default();
    if uris.len() > max_rooms {
        return Err(McpError::invalid_params(
            too_many_listen_rooms(max_rooms),
            None,
        ));
    }
    // The acknowledgement is held until every feed is open, or this returns early.
    let gate = OpenOnDrop(
        ctx.request_context()
            .extensions
            .get::<Parts>()
            .and_then(|p| p.extensions.get::<ListenGate>())
            .cloned(),
    );
    let mut feeds = StreamMap::new();
    for (i, uri) in uris.iter().enumerate() {
        let parsed = RoomUri::parse(uri).expect("accepted URIs parse");
        let token = parsed.token(session.as_ref()).ok_or_else(|| {
            McpError::invalid_params(format!("Not joined to room {}", parsed.room), None)
        })?;
        // From `after=`, else from now on; a feed that falls behind resumes on its own
        // from the last message sent.
        let request = Subscribe {
            room: parsed.room,
            reader: Some(token),
            after: parsed.after,
            on_lag: OnLag::Resume,
        };
        let subscribed = router
            .subscribe(request)
            .await
            .map_err(|e| McpError::invalid_params(e.to_string(), None))?;
        feeds.insert(i, subscribed.stream);
    }
    drop(gate);
    loop {
        let next = tokio::select! {
            _ = ctx.cancelled() => return Ok(()),
            next = feeds.next(), if !feeds.is_empty() => next,
        };
        let Some((i, item)) = next else {
            // Every room's stream ended (the agents left): a graceful end.
            return Ok(());
        };
        match item {
            Ok(m) => {
                let mut note = ResourceUpdatedNotification::new(
                    ResourceUpdatedNotificationParam::new(uris[i].clone()),
                );
                let mut meta = NotificationMetaObject::new();
                meta.insert(MESSAGE_META_KEY.to_string(), m.to_json());
                note.extensions.insert(meta);
                if ctx
                    .sink()
                    .send(ServerNotification::ResourceUpdatedNotification(note))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            // The agent left, or resuming was refused: this room's feed is over.
            Err(e) => tracing::debug!(room = %uris[i], error = %e, "listen feed ended"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_uris_round_trip() {
        let room = RoomId::new_random();
        let token = AgentToken::mint(room, "c2VjcmV0");
        let uri = RoomUri::format(room, Some(&token));
        let parsed = RoomUri::parse(&uri).unwrap();
        assert_eq!(parsed.room, room);
        assert_eq!(parsed.token, Some(token.clone()));
        let with_after = format!("{uri}&after=7");
        assert_eq!(
            RoomUri::parse(&with_after).unwrap().after,
            Some(Seq::new(7))
        );
        let plain = RoomUri::parse(&RoomUri::format(room, None)).unwrap();
        assert_eq!(plain.token, None);
        let encoded = format!(
            "huddle://rooms/{room}/messages?agentToken={}",
            token.as_str().replace('.', "%2E")
        );
        assert_eq!(RoomUri::parse(&encoded).unwrap().token, Some(token));
        assert_eq!(RoomUri::parse("huddle://rooms/nope/messages"), None);
        assert_eq!(RoomUri::parse("file:///etc/passwd"), None);
    }
}
