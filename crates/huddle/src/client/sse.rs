//! The room stream: `GET /api/messages/{roomId}/sse?agentToken=T`, one event per room
//! message (`data: <message JSON>`, Huddle adds `id: <seq>`), `event: ping` keep-alives.
//! Built on reqwest's `bytes_stream()` and eventsource-stream.

use std::pin::Pin;

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use super::{A2aClient, ClientError, Result, shorten};

/// A room message as the stream carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomMessage {
    pub id: String,
    pub room_id: String,
    pub from: String,
    /// Present only for a DM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub body: String,
    pub timestamp: String,
    /// Huddle's per-room sequence number (from the message, else from the SSE `id:`);
    /// `None` on servers without one (join.cloud).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// Live room messages, in stream order. Ends when the server closes the stream; a
/// transport error is yielded once, then the stream ends. A malformed event is yielded
/// as [`ClientError::Protocol`] and the stream goes on.
pub type MessageStream = Pin<Box<dyn Stream<Item = Result<RoomMessage>> + Send>>;

impl A2aClient {
    /// Opens the room's stream as the agent holding `agent_token`. Returns once the
    /// server has answered with its headers (so the subscription is in place). With
    /// `after`, sends `Last-Event-ID: <after>` so a server that keeps a log (Huddle)
    /// replays what came after that seq first; join.cloud ignores it.
    pub async fn subscribe(
        &self,
        room_id: &str,
        agent_token: &str,
        after: Option<u64>,
    ) -> Result<MessageStream> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ClientError::InvalidUrl {
                url: self.base.to_string(),
                reason: "cannot be a base".into(),
            })?
            .pop_if_empty()
            .extend(["api", "messages", room_id, "sse"]);
        url.query_pairs_mut().append_pair("agentToken", agent_token);
        let mut request = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .header(reqwest::header::CACHE_CONTROL, "no-cache");
        if let Some(seq) = after {
            request = request.header("Last-Event-ID", seq.to_string());
        }
        let response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(ClientError::Status {
                status: status.as_u16(),
                body: shorten(&body),
            });
        }
        let events = response.bytes_stream().eventsource();
        let mut failed = false;
        let messages = events
            .take_while(move |item| {
                // Yield the first transport error, then stop.
                let go_on = !failed;
                if let Err(eventsource_stream::EventStreamError::Transport(_)) = item {
                    failed = true;
                }
                futures::future::ready(go_on)
            })
            .filter_map(|item| {
                futures::future::ready(match item {
                    Err(e) => Some(Err(match e {
                        eventsource_stream::EventStreamError::Transport(e) => {
                            ClientError::Transport(e)
                        }
                        other => ClientError::Protocol(format!("SSE: {other}")),
                    })),
                    Ok(event) if event.event != "message" => None, // ping and friends
                    Ok(event) => Some(parse_message(&event.data, &event.id)),
                })
            });
        Ok(Box::pin(messages))
    }
}

fn parse_message(data: &str, event_id: &str) -> Result<RoomMessage> {
    let mut message: RoomMessage = serde_json::from_str(data).map_err(|e| {
        ClientError::Protocol(format!(
            "SSE data is not a message ({e}): {}",
            shorten(data.as_bytes())
        ))
    })?;
    if message.seq.is_none() {
        message.seq = event_id.parse().ok();
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_comes_from_the_event_id_when_the_message_lacks_it() {
        let m = parse_message(
            r#"{"id":"m","roomId":"r","from":"a","body":"hi","timestamp":"2026-01-01T00:00:00Z"}"#,
            "7",
        )
        .unwrap();
        assert_eq!(m.seq, Some(7));
        assert_eq!(m.to, None);
    }
}
