//! A small client of the join.cloud-compatible wire protocol: A2A JSON-RPC `SendMessage`
//! on `POST /a2a` and the room SSE stream. It speaks only what join.cloud itself serves
//! (no Huddle extension), so everything built on it works against join.cloud too; the one
//! Huddle extra it reads is `seq` (message field and SSE `id:`), when present.
//!
//! Layout:
//! - this file — [`A2aClient`] (one pooled HTTP client per base URL), [`ActionReply`],
//!   [`ClientError`], and typed helpers for the actions the bench uses.
//! - `sse`     — [`A2aClient::subscribe`]: the live stream of a room as [`RoomMessage`]s,
//!   resumable with `Last-Event-ID`.
//!
//! Used by `huddle bench` and, later, by the `huddle` client commands (every one of them
//! is an [`A2aClient::action`] call plus, for `join`, a subscription).

mod sse;

use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub use sse::{MessageStream, RoomMessage};

/// Default per-request timeout of [`A2aClient::action`]. SSE streams have none.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an unexpected HTTP body an error carries.
const ERROR_BODY_LIMIT: usize = 300;
/// How often [`A2aClient::send_message_retrying`] sends one message at most.
pub const SEND_ATTEMPTS: u32 = 4;

/// Everything that can go wrong talking to a server. Callers branch on the kind: an
/// [`ClientError::Action`] is the server refusing a well-formed request (its `Error: ...`
/// text), everything else is the transport or the envelope.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The action failed: the reply text was `Error: <message>`; this holds `<message>`.
    #[error("{0}")]
    Action(String),
    /// The server answered with a JSON-RPC error object.
    #[error("JSON-RPC error {code}: {message}")]
    Rpc { code: i64, message: String },
    /// The server answered with a non-success HTTP status (the body, shortened).
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    /// Connecting, sending or reading failed (includes timeouts). The URL is left out:
    /// an SSE URL carries the agent's token.
    #[error("{}", error_chain(.0))]
    Transport(reqwest::Error),
    /// The server answered, but not with the shape the protocol promises.
    #[error("unexpected reply: {0}")]
    Protocol(String),
    /// The base URL given to [`A2aClient::new`] is unusable.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
}

impl ClientError {
    /// Whether the same request may succeed if sent again: the answer was lost on the
    /// way (a transport failure), or the node was briefly unable to serve it.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport(_) => true,
            ClientError::Status { status, .. } => *status >= 500,
            ClientError::Action(m) => {
                m.starts_with("Service unavailable") || m.starts_with("Server busy")
            }
            ClientError::Rpc { .. } | ClientError::Protocol(_) | ClientError::InvalidUrl { .. } => {
                false
            }
        }
    }

    /// A short stable label for counting errors by kind (`action`, `rpc`, `http`,
    /// `timeout`, `connect`, `transport`, `protocol`, `url`).
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Action(_) => "action",
            ClientError::Rpc { .. } => "rpc",
            ClientError::Status { .. } => "http",
            ClientError::Transport(e) if e.is_timeout() => "timeout",
            ClientError::Transport(e) if e.is_connect() => "connect",
            ClientError::Transport(_) => "transport",
            ClientError::Protocol(_) => "protocol",
            ClientError::InvalidUrl { .. } => "url",
        }
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        ClientError::Transport(e.without_url())
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A successful action's reply: the A2A Message's parts, unpacked.
#[derive(Debug, Clone, Default)]
pub struct ActionReply {
    /// The first text part (`Message sent`, `Joined room ...`, pretty JSON for reads).
    pub text: String,
    /// The data part, when the action returns data.
    pub data: Option<Value>,
    /// Text parts after the first: the "--- N missed message(s) ---" summary.
    pub more_text: Vec<String>,
    /// The reply's `contextId` (the room id), when given.
    #[allow(dead_code)] // read by the client commands, not by the bench
    pub context_id: Option<String>,
}

impl ActionReply {
    /// `data[key]` as a string, or a [`ClientError::Protocol`] naming what is missing.
    pub fn data_str(&self, key: &str) -> Result<&str> {
        self.data
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ClientError::Protocol(format!("reply has no data.{key}: {:?}", self.text))
            })
    }
}

/// Where an agent stands after `room.create` or `room.join`.
#[derive(Debug, Clone)]
pub struct Membership {
    pub room_id: String,
    pub agent_name: String,
    pub agent_token: String,
    /// The whole reply (role, missed messages, ...).
    #[allow(dead_code)] // read by the client commands, not by the bench
    pub reply: ActionReply,
}

impl Membership {
    fn from_reply(reply: ActionReply, agent_name: &str) -> Result<Self> {
        Ok(Membership {
            room_id: reply.data_str("roomId")?.to_owned(),
            agent_name: reply.data_str("agentName").unwrap_or(agent_name).to_owned(),
            agent_token: reply.data_str("agentToken")?.to_owned(),
            reply,
        })
    }
}

/// A client of one server. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct A2aClient {
    http: reqwest::Client,
    /// Base URL with a trailing `/` on its path, so `join` appends.
    base: Url,
    /// `<base>/a2a`, parsed once.
    a2a: Url,
    /// Per-request timeout for actions.
    timeout: Duration,
    /// JSON-RPC ids; shared by clones so ids stay unique per client.
    next_id: std::sync::Arc<AtomicU64>,
}

impl A2aClient {
    /// A client of the server at `base_url` (e.g. `http://localhost:3000`), with one
    /// pooled HTTP client (HTTP/1.1, keep-alive, `TCP_NODELAY`).
    pub fn new(base_url: &str) -> Result<Self> {
        install_crypto_provider();
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: base_url.to_owned(),
            reason,
        };
        let mut base = Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("scheme must be http or https".into()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_query(None);
        base.set_fragment(None);
        let a2a = base.join("a2a").map_err(|e| invalid(e.to_string()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(A2aClient {
            http,
            base,
            a2a,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            next_id: Default::default(),
        })
    }

    /// The normalized base URL, with a trailing `/` (`http://localhost:3000/`): the
    /// client commands key stored tokens by it.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// The same client with another per-action timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs one action: posts the A2A `SendMessage` envelope
    /// `{"role":"user","parts":[{"text"}],"contextId","metadata":{"action", ...metadata}}`
    /// to `/a2a` and unpacks the reply. `metadata` must be a JSON object or `null`.
    /// A reply text `Error: <m>` becomes [`ClientError::Action`]`(<m>)`.
    pub async fn action(
        &self,
        action: &str,
        text: Option<&str>,
        context_id: Option<&str>,
        metadata: Value,
    ) -> Result<ActionReply> {
        let mut meta = match metadata {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                return Err(ClientError::Protocol(format!(
                    "metadata must be a JSON object, not {other}"
                )));
            }
        };
        // `action` is this call's argument, never the caller's metadata.
        meta.remove("action");
        self.action_with(action, text, context_id, &meta).await
    }

    /// [`A2aClient::action`] with any serializable metadata object (no JSON tree built).
    async fn action_with<M: Serialize>(
        &self,
        action: &str,
        text: Option<&str>,
        context_id: Option<&str>,
        metadata: &M,
    ) -> Result<ActionReply> {
        self.action_as(action, text, context_id, None, metadata)
            .await
    }

    /// [`A2aClient::action_with`] with the A2A `messageId` of the message.
    async fn action_as<M: Serialize>(
        &self,
        action: &str,
        text: Option<&str>,
        context_id: Option<&str>,
        message_id: Option<&str>,
        metadata: &M,
    ) -> Result<ActionReply> {
        let text_part = text.map(|text| TextPart { text });
        let params = SendParams {
            message: OutMessage {
                role: "user",
                parts: text_part.as_slice(),
                context_id,
                message_id,
                metadata: OutMetadata {
                    action,
                    rest: metadata,
                },
            },
        };
        let reply: ReplyMessage = self.call("SendMessage", &params).await?;
        parse_action_result(reply)
    }

    /// One JSON-RPC call on `/a2a`; JSON-RPC errors become [`ClientError::Rpc`].
    async fn call<P: Serialize, R: DeserializeOwned>(&self, method: &str, params: &P) -> Result<R> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let envelope = Envelope {
            jsonrpc: "2.0",
            id,
            method,
            params,
        };
        let response = self
            .http
            .post(self.a2a.clone())
            .timeout(self.timeout)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&envelope)
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            return Err(ClientError::Status {
                status: status.as_u16(),
                body: shorten(&body),
            });
        }
        let reply: RpcReply<R> = serde_json::from_slice(&body)
            .map_err(|e| ClientError::Protocol(format!("{e}: {}", shorten(&body))))?;
        if let Some(err) = reply.error {
            return Err(ClientError::Rpc {
                code: err.code,
                message: err.message,
            });
        }
        reply.result.ok_or_else(|| {
            ClientError::Protocol(format!("neither result nor error: {}", shorten(&body)))
        })
    }

    /// `room.create`: creates room `name` (server-made id when `None`) and joins as its
    /// admin `agent_name`. `extra` (object or null) adds `password`, `description`, `type`.
    pub async fn create_room(
        &self,
        name: Option<&str>,
        agent_name: &str,
        extra: Value,
    ) -> Result<Membership> {
        let meta = with_field(extra, "agentName", agent_name)?;
        let reply = self.action("room.create", name, None, meta).await?;
        Membership::from_reply(reply, agent_name)
    }

    /// `room.join`: `room` is an id, a name, or `name:password`.
    pub async fn join_room(
        &self,
        room: &str,
        agent_name: &str,
        extra: Value,
    ) -> Result<Membership> {
        let meta = with_field(extra, "agentName", agent_name)?;
        let reply = self.action("room.join", None, Some(room), meta).await?;
        Membership::from_reply(reply, agent_name)
    }

    /// `message.send` as the agent holding `agent_token`; `to` makes it a DM. With a
    /// `message_id`, the server stores the message once however often it is sent.
    pub async fn send_message(
        &self,
        agent_token: &str,
        text: &str,
        to: Option<&str>,
        message_id: Option<&str>,
    ) -> Result<ActionReply> {
        let meta = SendMetadata { agent_token, to };
        self.action_as("message.send", Some(text), None, message_id, &meta)
            .await
    }

    /// [`A2aClient::send_message`] under a fresh message id, sent again under the same id
    /// (so never stored twice) while the answer is lost or the node briefly unavailable:
    /// at most [`SEND_ATTEMPTS`] times, waiting 250 ms, then twice as long each time.
    pub async fn send_message_retrying(
        &self,
        agent_token: &str,
        text: &str,
        to: Option<&str>,
    ) -> Result<ActionReply> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut wait = std::time::Duration::from_millis(250);
        let mut attempt = 1;
        loop {
            match self.send_message(agent_token, text, to, Some(&id)).await {
                Err(e) if e.is_transient() && attempt < SEND_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "send failed; sending again under its id");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
                answer => return answer,
            }
        }
    }
}

/// Installs rustls' ring provider for the process (reqwest is built without one). A
/// second call, or a provider installed by someone else, is fine.
pub(crate) fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn with_field(extra: Value, key: &str, value: &str) -> Result<Value> {
    match extra {
        Value::Null => Ok(json!({ key: value })),
        Value::Object(mut map) => {
            map.insert(key.to_owned(), json!(value));
            Ok(Value::Object(map))
        }
        other => Err(ClientError::Protocol(format!(
            "metadata must be a JSON object, not {other}"
        ))),
    }
}

#[derive(Serialize)]
struct Envelope<'a, P> {
    jsonrpc: &'static str,
    id: u64,
    method: &'a str,
    params: &'a P,
}

#[derive(Serialize)]
struct SendParams<'a, M> {
    message: OutMessage<'a, M>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutMessage<'a, M> {
    role: &'static str,
    parts: &'a [TextPart<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    context_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
    metadata: OutMetadata<'a, M>,
}

#[derive(Serialize)]
struct TextPart<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct OutMetadata<'a, M> {
    action: &'a str,
    #[serde(flatten)]
    rest: &'a M,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SendMetadata<'a> {
    agent_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
}

#[derive(Deserialize)]
struct RpcReply<R> {
    result: Option<R>,
    error: Option<RpcErrorBody>,
}

#[derive(Deserialize)]
struct RpcErrorBody {
    code: i64,
    #[serde(default)]
    message: String,
}

/// The A2A Message a `SendMessage` answers with.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReplyMessage {
    #[serde(default)]
    parts: Vec<ReplyPart>,
    #[serde(default)]
    context_id: Option<String>,
}

#[derive(Deserialize)]
struct ReplyPart {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    data: Option<Value>,
}

/// Unpacks an A2A Message result: first text part, data part, later text parts.
fn parse_action_result(result: ReplyMessage) -> Result<ActionReply> {
    let mut reply = ActionReply {
        context_id: result.context_id,
        ..ActionReply::default()
    };
    let mut seen_text = false;
    for part in result.parts {
        if let Some(t) = part.text {
            if seen_text {
                reply.more_text.push(t);
            } else {
                reply.text = t;
                seen_text = true;
            }
        } else if let Some(d) = part.data
            && reply.data.is_none()
        {
            reply.data = Some(d);
        }
    }
    if !seen_text {
        return Err(ClientError::Protocol("reply has no text part".into()));
    }
    if reply.data.is_none()
        && let Some(message) = reply.text.strip_prefix("Error: ")
    {
        return Err(ClientError::Action(message.to_owned()));
    }
    Ok(reply)
}

fn shorten(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    if s.len() <= ERROR_BODY_LIMIT {
        return s.to_owned();
    }
    let mut end = ERROR_BODY_LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// `reqwest::Error`'s own text hides the cause ("error sending request"); add the chain.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(v: Value) -> ReplyMessage {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn error_reply_becomes_action_error() {
        let r = parse_action_result(reply(
            json!({"role":"agent","parts":[{"text":"Error: Invalid agentToken"}]}),
        ));
        assert!(matches!(r, Err(ClientError::Action(m)) if m == "Invalid agentToken"));
    }

    #[test]
    fn reply_parts_are_unpacked() {
        let r = parse_action_result(reply(json!({
            "role":"agent","contextId":"r1",
            "parts":[{"text":"Message sent"},{"data":{"missedCount":1}},{"text":"\n--- 1 missed message(s) ---\n[a] hi"}]
        })))
        .unwrap();
        assert_eq!(r.text, "Message sent");
        assert_eq!(r.data.unwrap()["missedCount"], 1);
        assert_eq!(r.more_text.len(), 1);
        assert_eq!(r.context_id.as_deref(), Some("r1"));
    }

    #[test]
    fn base_url_keeps_its_path_prefix() {
        let c = A2aClient::new("http://h:1/prefix").unwrap();
        assert_eq!(c.a2a.as_str(), "http://h:1/prefix/a2a");
        let c = A2aClient::new("http://h:1").unwrap();
        assert_eq!(c.a2a.as_str(), "http://h:1/a2a");
        assert!(A2aClient::new("ftp://h").is_err());
    }
}
