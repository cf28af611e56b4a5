//! A throwaway in-process stand-in for a join.cloud-compatible server, just enough for
//! the client and the bench to be tested without the real one: `room.create`,
//! `room.join`, `message.send` over `POST /a2a`, and the SSE stream with `id: <seq>` and
//! `Last-Event-ID` replay. No validation beyond what the tests need.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::broadcast;

#[derive(Default)]
struct Fake {
    rooms: HashMap<String, FakeRoom>,
    /// token → (room id, agent name)
    tokens: HashMap<String, (String, String)>,
    next: u64,
}

struct FakeRoom {
    log: Vec<Value>,
    tx: broadcast::Sender<Value>,
}

type Shared = Arc<Mutex<Fake>>;

/// One listener of the fake, standing for one node of a cluster: what it served.
#[derive(Clone)]
pub struct Node {
    pub url: String,
    fake: Shared,
    posts: Arc<AtomicU64>,
    streams: Arc<AtomicU64>,
}

impl Node {
    /// `POST /a2a` requests and SSE streams this listener served.
    pub fn hits(&self) -> (u64, u64) {
        (
            self.posts.load(Ordering::Relaxed),
            self.streams.load(Ordering::Relaxed),
        )
    }
}

/// Serves the fake on 127.0.0.1:0; returns its base URL. Lives until the runtime ends.
pub async fn start() -> String {
    start_nodes(1).await.remove(0).url
}

/// `n` listeners on 127.0.0.1:0 sharing one fake's rooms, like the nodes of a cluster.
pub async fn start_nodes(n: usize) -> Vec<Node> {
    let fake: Shared = Arc::default();
    let mut nodes = Vec::new();
    for _ in 0..n {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let node = Node {
            url: format!("http://{}", listener.local_addr().unwrap()),
            fake: fake.clone(),
            posts: Arc::default(),
            streams: Arc::default(),
        };
        let app = Router::new()
            .route("/a2a", post(a2a))
            .route("/api/messages/{room}/sse", get(sse))
            .with_state(node.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        nodes.push(node);
    }
    nodes
}

fn reply(text: String, data: Option<Value>) -> Json<Value> {
    let mut parts = vec![json!({ "text": text })];
    if let Some(d) = data {
        parts.push(json!({ "data": d }));
    }
    Json(json!({"jsonrpc":"2.0","id":1,"result":{"role":"agent","parts":parts}}))
}

fn post_message(room: &mut FakeRoom, room_id: &str, from: &str, body: &str) {
    let seq = room.log.len() as u64 + 1;
    let m = json!({"id": format!("m{seq}"), "roomId": room_id, "from": from, "body": body,
        "timestamp": "2026-01-01T00:00:00Z", "seq": seq});
    room.log.push(m.clone());
    let _ = room.tx.send(m);
}

async fn a2a(State(node): State<Node>, Json(req): Json<Value>) -> Json<Value> {
    node.posts.fetch_add(1, Ordering::Relaxed);
    let state = node.fake;
    if req["method"] != "SendMessage" {
        return Json(
            json!({"jsonrpc":"2.0","id":req["id"],"error":{"code":-32601,"message":"Method not found"}}),
        );
    }
    let msg = &req["params"]["message"];
    let meta = &msg["metadata"];
    let text = msg["parts"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut fake = state.lock().unwrap();
    fake.next += 1;
    let token = format!("tok{}", fake.next);
    match meta["action"].as_str().unwrap_or_default() {
        "room.create" => {
            let id = format!("room{}", fake.next);
            let (tx, _) = broadcast::channel(10_000);
            fake.rooms.insert(
                id.clone(),
                FakeRoom {
                    log: Vec::new(),
                    tx,
                },
            );
            let agent = meta["agentName"].as_str().unwrap_or_default().to_owned();
            fake.tokens
                .insert(token.clone(), (id.clone(), agent.clone()));
            let data = json!({"roomId": id, "name": text, "agentName": agent, "agentToken": token});
            reply(
                format!("Room created: {id}. Joined as {agent} (admin)."),
                Some(data),
            )
        }
        "room.join" => {
            let id = msg["contextId"].as_str().unwrap_or_default().to_owned();
            let agent = meta["agentName"].as_str().unwrap_or_default().to_owned();
            let Some(room) = fake.rooms.get_mut(&id) else {
                return reply(format!("Error: Room not found: {id}"), None);
            };
            post_message(room, &id, "room-bot", &format!("{agent} joined the room"));
            fake.tokens
                .insert(token.clone(), (id.clone(), agent.clone()));
            let data =
                json!({"roomId": id, "agentName": agent, "agentToken": token, "role": "member"});
            reply(format!("Joined room {id} as {agent}"), Some(data))
        }
        "message.send" => {
            let Some((id, agent)) = fake
                .tokens
                .get(meta["agentToken"].as_str().unwrap_or_default())
                .cloned()
            else {
                return reply("Error: Invalid agentToken".into(), None);
            };
            let room = fake.rooms.get_mut(&id).expect("token of a known room");
            post_message(room, &id, &agent, &text);
            reply("Message sent".into(), Some(json!({})))
        }
        "room.info" => reply("Room info".into(), Some(json!({}))),
        other => reply(format!("Error: Unknown action: {other}"), None),
    }
}

async fn sse(
    State(node): State<Node>,
    Path(room_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    node.streams.fetch_add(1, Ordering::Relaxed);
    let fake = node.fake.lock().unwrap();
    let Some(room) = fake.rooms.get(&room_id) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error":"Room not found"})),
        )
            .into_response();
    };
    let Some(token) = q.get("agentToken") else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error":"agentToken query param required"})),
        )
            .into_response();
    };
    if fake.tokens.get(token).is_none_or(|(r, _)| *r != room_id) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"error":"Invalid token for this room"})),
        )
            .into_response();
    }
    let after: u64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let backlog: Vec<Value> = room
        .log
        .iter()
        .filter(|m| m["seq"].as_u64() > Some(after))
        .cloned()
        .collect();
    let last = room.log.len() as u64;
    let live = tokio_stream_from(room.tx.subscribe())
        .filter(move |m| futures::future::ready(m["seq"].as_u64().unwrap_or(0) > last));
    let events = futures::stream::iter(backlog).chain(live).map(|m| {
        Ok::<_, Infallible>(
            Event::default()
                .id(m["seq"].to_string())
                .data(m.to_string()),
        )
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn tokio_stream_from(rx: broadcast::Receiver<Value>) -> impl futures::Stream<Item = Value> + Send {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(v) => return Some((v, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

/// `BenchArgs` from a command-line tail, as clap parses it.
pub fn args(line: &str) -> super::BenchArgs {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        bench: super::BenchArgs,
    }
    <Cli as clap::Parser>::try_parse_from(std::iter::once("bench").chain(line.split_whitespace()))
        .unwrap()
        .bench
}
