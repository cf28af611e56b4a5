//! A real node in-process (embedded store in a temp dir, the whole HTTP app on
//! 127.0.0.1:0), and a hand-written MCP client that shows exactly what goes over the wire.
//!
//! - [`Node`] serves `app(state)` until dropped.
//! - [`Session`] is one legacy MCP session (POST / GET / DELETE with `Mcp-Session-Id`).
//! - [`Posted`] is a POST's answer: status, headers and the JSON-RPC messages it carried.
//! - [`Live`] reads a GET stream with a real SSE parser.

#![allow(dead_code)]

use std::pin::Pin;
use std::sync::{Arc, Once};
use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use huddle_cluster::LocalRouter;
use huddle_gateway::mcp::{Mcp, McpConfig};
use huddle_gateway::{AppState, GatewayConfig};
use huddle_rooms::{RoomDirectory, RoomsConfig};
use huddle_store::{Durability, EmbeddedStore};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

pub const WAIT: Duration = Duration::from_secs(10);

static CRYPTO: Once = Once::new();

pub fn http_client() -> reqwest::Client {
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

pub struct Node {
    pub base: String,
    pub mcp: Mcp,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Node {
    pub async fn start() -> Node {
        Self::start_with(McpConfig::default()).await
    }

    pub async fn start_with(config: McpConfig) -> Node {
        Self::start_with_rooms(config, RoomsConfig::default()).await
    }

    pub async fn start_with_rooms(config: McpConfig, rooms: RoomsConfig) -> Node {
        // Before the room directory: its A2A pusher builds a reqwest client.
        let http = http_client();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path(), Durability::Process).expect("store");
        let directory = RoomDirectory::new(Arc::new(store), rooms);
        let router: Arc<dyn huddle_cluster::Router> = Arc::new(LocalRouter::new(directory));
        let shutdown = tokio_util::sync::CancellationToken::new();
        let mcp = Mcp::new(router.clone(), config, shutdown.clone());
        let app = huddle_gateway::app_with_mcp(
            AppState {
                router,
                config: Arc::new(GatewayConfig::default()),
                shutdown,
            },
            mcp.clone(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Node {
            base,
            mcp,
            http,
            stop: Some(stop),
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// A session after the `initialize` handshake (protocol 2025-06-18).
    pub async fn session(&self) -> Session {
        Session::open(self.http.clone(), self.url(), "2025-06-18").await
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A POST's answer.
#[derive(Debug)]
pub struct Posted {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// Every JSON-RPC message of the body (SSE events or one JSON document), in order.
    pub messages: Vec<Value>,
    pub raw: String,
}

impl Posted {
    pub fn session_id(&self) -> Option<String> {
        self.headers
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_string())
    }

    /// The response (the message with an `id` and a `result` or `error`).
    pub fn response(&self) -> &Value {
        self.messages
            .iter()
            .find(|m| {
                m.get("id").is_some() && (m.get("result").is_some() || m.get("error").is_some())
            })
            .unwrap_or_else(|| panic!("no response in {:?}", self.raw))
    }

    /// The `notifications/message` that came before the response.
    pub fn notes(&self) -> Vec<Value> {
        self.messages
            .iter()
            .take_while(|m| m.get("id").is_none())
            .filter(|m| m["method"] == "notifications/message")
            .cloned()
            .collect()
    }
}

/// A tool's answer.
#[derive(Debug)]
pub struct ToolCall {
    pub posted: Posted,
    pub text: String,
    pub is_error: bool,
}

impl ToolCall {
    /// The JSON data after the text's first line.
    pub fn data(&self) -> Value {
        let (_, data) = self
            .text
            .split_once('\n')
            .unwrap_or_else(|| panic!("no data in {:?}", self.text));
        serde_json::from_str(data).unwrap()
    }

    pub fn bodies(&self) -> Vec<String> {
        bodies(&self.posted.notes())
    }
}

/// The `body` of each notification.
pub fn bodies(notes: &[Value]) -> Vec<String> {
    notes
        .iter()
        .map(|n| {
            n["params"]["data"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

pub async fn post_raw(
    http: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> Posted {
    let mut req = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.json(body).send().await.expect("POST /mcp");
    let status = resp.status();
    let headers = resp.headers().clone();
    let is_sse = headers
        .get("content-type")
        .is_some_and(|c| c.to_str().unwrap().starts_with("text/event-stream"));
    let raw = resp.text().await.unwrap();
    let messages = if is_sse {
        parse_sse(&raw)
    } else {
        serde_json::from_str::<Value>(&raw).into_iter().collect()
    };
    Posted {
        status,
        headers,
        messages,
        raw,
    }
}

fn parse_sse(raw: &str) -> Vec<Value> {
    raw.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            let data = data.join("\n");
            if data.trim().is_empty() {
                None
            } else {
                serde_json::from_str(&data).ok()
            }
        })
        .collect()
}

pub struct Session {
    pub http: reqwest::Client,
    pub url: String,
    pub id: String,
    pub version: String,
    next: u64,
}

impl Session {
    pub async fn open(http: reqwest::Client, url: String, version: &str) -> Session {
        let init = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "harness", "version": "1"}},
        });
        let posted = post_raw(&http, &url, &[], &init).await;
        assert_eq!(posted.status, StatusCode::OK, "{}", posted.raw);
        let id = posted
            .session_id()
            .expect("initialize answers with Mcp-Session-Id");
        let mut s = Session {
            http,
            url,
            id,
            version: version.to_string(),
            next: 1,
        };
        let note = s
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(note.status, StatusCode::ACCEPTED, "{}", note.raw);
        s
    }

    pub async fn post(&mut self, body: Value) -> Posted {
        let headers = [
            ("mcp-session-id", self.id.as_str()),
            ("mcp-protocol-version", self.version.as_str()),
        ];
        let posted = post_raw(&self.http, &self.url, &headers, &body).await;
        if let Some(id) = posted.session_id() {
            self.id = id;
        }
        posted
    }

    pub async fn request(&mut self, method: &str, params: Value) -> Posted {
        self.next += 1;
        let body = json!({"jsonrpc": "2.0", "id": self.next, "method": method, "params": params});
        self.post(body).await
    }

    pub async fn call(&mut self, tool: &str, args: Value) -> ToolCall {
        let posted = self
            .request("tools/call", json!({"name": tool, "arguments": args}))
            .await;
        assert_eq!(posted.status, StatusCode::OK, "{}", posted.raw);
        let result = posted.response()["result"].clone();
        assert!(result.is_object(), "{tool}: {}", posted.raw);
        let content = result["content"].as_array().expect("content");
        assert_eq!(content[0]["type"], "text");
        ToolCall {
            text: content[0]["text"].as_str().unwrap().to_string(),
            is_error: result["isError"].as_bool().unwrap_or(false),
            posted,
        }
    }

    /// A tool call that must succeed.
    pub async fn ok(&mut self, tool: &str, args: Value) -> ToolCall {
        let c = self.call(tool, args).await;
        assert!(!c.is_error, "{tool} failed: {}", c.text);
        c
    }

    /// A tool call that must fail with exactly `text`.
    pub async fn fails(&mut self, tool: &str, args: Value, text: &str) {
        let c = self.call(tool, args).await;
        assert!(c.is_error, "{tool} should fail, got {}", c.text);
        assert_eq!(c.text, text, "{tool}");
    }

    pub async fn live(&self, last_event_id: Option<&str>) -> Live {
        Live::open(&self.http, &self.url, &self.id, last_event_id).await
    }

    pub async fn delete(&self) -> reqwest::Response {
        self.http
            .delete(&self.url)
            .header("mcp-session-id", &self.id)
            .send()
            .await
            .unwrap()
    }
}

type SseStream =
    Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send>>;

/// A session's GET stream.
pub struct Live {
    events: SseStream,
    /// The id of the last event read (the resume point).
    pub last_id: Option<String>,
}

impl Live {
    pub async fn open(
        http: &reqwest::Client,
        url: &str,
        session: &str,
        last_event_id: Option<&str>,
    ) -> Live {
        let mut req = http
            .get(url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", session)
            .timeout(Duration::from_secs(3600));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "GET /mcp");
        let mut live = Live {
            events: Box::pin(resp.bytes_stream().eventsource()),
            last_id: None,
        };
        // The priming event: the starting cursor, no data.
        let first = tokio::time::timeout(WAIT, live.events.next())
            .await
            .expect("priming event")
            .expect("stream open")
            .unwrap();
        assert!(first.data.is_empty(), "priming event has no data");
        if !first.id.is_empty() {
            live.last_id = Some(first.id);
        }
        live
    }

    /// The next `notifications/message`, or `None` when none comes within `within` (or
    /// the stream ends).
    pub async fn next_within(&mut self, within: Duration) -> Option<Value> {
        loop {
            let event = match tokio::time::timeout(within, self.events.next()).await {
                Ok(Some(Ok(e))) => e,
                _ => return None,
            };
            if event.data.is_empty() {
                continue;
            }
            self.last_id = Some(event.id.clone());
            let v: Value = serde_json::from_str(&event.data).unwrap();
            assert_eq!(v["method"], "notifications/message", "{v}");
            return Some(v);
        }
    }

    pub async fn next(&mut self) -> Value {
        self.next_within(WAIT).await.expect("a notification")
    }

    /// The bodies of the next `n` notifications.
    pub async fn bodies(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(bodies(&[self.next().await]).remove(0));
        }
        out
    }

    /// Whether the stream ended (the server closed it) within `within`.
    pub async fn ends_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.events.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }
}
