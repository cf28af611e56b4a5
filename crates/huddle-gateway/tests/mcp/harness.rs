//! A real node in-process (the test kit's `Node::start` on 127.0.0.1:0, embedded store in
//! a temp dir), and a hand-written MCP client that shows exactly what goes over the wire.
//!
//! - [`Node`] serves the whole node until dropped; `mcp` is its MCP endpoint.
//! - [`Session`] is one legacy MCP session (POST / GET / DELETE with `Mcp-Session-Id`).
//! - [`Posted`] is a POST's answer: status, headers and the JSON-RPC messages it carried.
//! - [`Live`] reads a GET stream with the test kit's SSE reader.

#![allow(dead_code)]

use std::time::Duration;

use huddle_gateway::mcp::{Mcp, McpConfig};
use huddle_node::NodeConfig;
use huddle_rooms::RoomsConfig;
use huddle_testkit::{Raw, Sse, TestNode};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

pub use huddle_testkit::http_client;

pub const WAIT: Duration = Duration::from_secs(10);

/// The in-process node of the test kit, with its MCP endpoint at hand.
pub struct Node {
    pub base: String,
    pub mcp: Mcp,
    pub http: reqwest::Client,
    /// Shuts the node down when dropped.
    _node: TestNode,
}

impl Node {
    pub async fn start() -> Node {
        Self::start_with(McpConfig::default()).await
    }

    pub async fn start_with(config: McpConfig) -> Node {
        Self::start_with_rooms(config, RoomsConfig::default()).await
    }

    pub async fn start_with_rooms(config: McpConfig, rooms: RoomsConfig) -> Node {
        Self::start_configured(|c| {
            c.mcp = config;
            c.rooms = rooms;
        })
        .await
    }

    /// A node with any of its settings changed by `configure`.
    pub async fn start_configured(configure: impl FnOnce(&mut NodeConfig)) -> Node {
        let node = TestNode::start_with(configure).await;
        Node {
            base: node.base.clone(),
            mcp: node.node().mcp().clone(),
            http: node.http.clone(),
            _node: node,
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
        parse_sse(&raw).await
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

/// The JSON-RPC messages of an SSE body (events without JSON data skipped).
async fn parse_sse(raw: &str) -> Vec<Value> {
    huddle_testkit::parse_all(raw)
        .await
        .into_iter()
        .filter(|e| !e.data.trim().is_empty())
        .filter_map(|e| serde_json::from_str(&e.data).ok())
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

    /// Another handle on this session, sending to `url` (another node's `/mcp`).
    pub fn at(&self, url: String) -> Session {
        Session {
            http: self.http.clone(),
            url,
            id: self.id.clone(),
            version: self.version.clone(),
            next: self.next + 1000,
        }
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

/// A session's GET stream.
pub struct Live {
    events: Sse,
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
            events: Sse::from_response(resp),
            last_id: None,
        };
        // The priming event: the starting cursor, no data.
        let first = match live.events.next_raw(WAIT).await {
            Raw::Event(e) => e,
            other => panic!("priming event: {other:?}"),
        };
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
            let event = match self.events.next_raw(within).await {
                Raw::Event(e) => e,
                Raw::Ended | Raw::Broken(_) | Raw::Timeout => return None,
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
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.events.next_raw(left).await {
                Raw::Timeout => return false,
                Raw::Ended | Raw::Broken(_) => return true,
                Raw::Event(_) => continue,
            }
        }
    }
}
