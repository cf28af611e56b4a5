//! A2A push delivery (PROTOCOL.md A.8, B.9).
//!
//! One queue and one worker per (room, agent): pushes to an agent are delivered in `seq`
//! order, a slow or dead endpoint delays only its own agent, and each queue is bounded
//! (when full the new push is dropped with a warning; the agent still finds the message
//! through `message.unread`). A delivery is retried with exponential backoff; the head of
//! the queue blocks the rest so order is kept. A 2xx answer is acknowledged to the room,
//! which moves the agent's read cursor.
//!
//! Endpoints are re-checked at every attempt: the literal URL, and — through the push
//! client's [`CheckedResolver`](crate::endpoint::CheckedResolver) — every address the
//! hostname resolves to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use huddle_core::{MemberId, Message, RoomId, Seq};
use serde_json::json;
use tokio::sync::mpsc;

use crate::config::PushConfig;
use crate::endpoint;

/// A worker with nothing to do for this long exits (and is re-created on demand).
const WORKER_IDLE: Duration = Duration::from_secs(60);

/// A push that the endpoint accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    pub room: RoomId,
    pub member: MemberId,
    pub seq: Seq,
    /// The message pushed to this agent before this one (see `Command::Delivered`).
    pub prev: Seq,
}

struct Job {
    endpoint: String,
    message: Arc<Message>,
    prev: Seq,
}

type Key = (RoomId, MemberId);

struct Inner {
    queues: Mutex<HashMap<Key, mpsc::Sender<Job>>>,
    client: reqwest::Client,
    config: PushConfig,
    allow_private: bool,
    acks: mpsc::UnboundedSender<Ack>,
    next_id: AtomicU64,
}

#[derive(Clone)]
pub struct Pusher {
    inner: Arc<Inner>,
}

impl Pusher {
    /// The pusher and the stream of acknowledgements its owner must feed back to rooms.
    pub fn new(config: PushConfig, allow_private: bool) -> (Self, mpsc::UnboundedReceiver<Ack>) {
        // reqwest is built without a default TLS provider (it would pull aws-lc-sys):
        // make sure one is installed; a no-op when the binary already did it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .dns_resolver(endpoint::resolver(allow_private))
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("huddle/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("push client: the TLS provider is installed above");
        let (acks, ack_rx) = mpsc::unbounded_channel();
        let inner = Inner {
            queues: Mutex::new(HashMap::new()),
            client,
            config,
            allow_private,
            acks,
            next_id: AtomicU64::new(1),
        };
        (
            Self {
                inner: Arc::new(inner),
            },
            ack_rx,
        )
    }

    /// Queues `message` for the agent `member` of `room` at `endpoint`; `prev` is the
    /// message pushed to that agent before it.
    pub fn enqueue(
        &self,
        room: RoomId,
        member: MemberId,
        endpoint: &str,
        message: Arc<Message>,
        prev: Seq,
    ) {
        let key = (room, member);
        let job = Job {
            endpoint: endpoint.to_string(),
            message,
            prev,
        };
        let mut queues = self.inner.queues.lock().expect("push queues poisoned");
        let tx = queues.entry(key).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(self.inner.config.queue);
            let inner = self.inner.clone();
            tokio::spawn(async move { worker(inner, key, rx).await });
            tx
        });
        if let Err(e) = tx.try_send(job) {
            tracing::warn!(room.id = %room, member, error = %e, "push queue full or closed: push dropped (agent can read it via message.unread)");
        }
    }
}

async fn worker(inner: Arc<Inner>, key: Key, mut rx: mpsc::Receiver<Job>) {
    loop {
        match tokio::time::timeout(WORKER_IDLE, rx.recv()).await {
            Ok(Some(job)) => deliver(&inner, key, job).await,
            Ok(None) => return,
            Err(_) => {
                // Idle: leave, unless a job slipped in (enqueue holds the same lock).
                let mut queues = inner.queues.lock().expect("push queues poisoned");
                if rx.is_empty() {
                    queues.remove(&key);
                    return;
                }
            }
        }
    }
}

async fn deliver(inner: &Inner, (room, member): Key, job: Job) {
    let m = &job.message;
    let body = json!({
        "jsonrpc": "2.0",
        "method": "SendMessage",
        "id": inner.next_id.fetch_add(1, Ordering::Relaxed),
        "params": {"message": {
            "role": "agent",
            "parts": [{"text": m.body}],
            "contextId": m.room_id.to_string(),
            "metadata": {
                "joincloud": true,
                "from": m.from,
                "to": m.to,
                "messageId": m.id,
                "seq": m.seq,
                "timestamp": m.timestamp.rfc3339(),
            },
        }},
    });
    let cfg = &inner.config;
    let mut backoff = cfg.backoff_initial;
    for attempt in 1..=cfg.attempts {
        let outcome = match endpoint::check_url(&job.endpoint, inner.allow_private) {
            Err(e) => Err(e.to_string()),
            Ok(url) => match inner.client.post(url).json(&body).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("HTTP {}", r.status())),
                Err(e) => Err(e.to_string()),
            },
        };
        match outcome {
            Ok(()) => {
                let _ = inner.acks.send(Ack {
                    room,
                    member,
                    seq: m.seq,
                    prev: job.prev,
                });
                return;
            }
            Err(error) if attempt < cfg.attempts => {
                tracing::debug!(room.id = %room, member, seq = m.seq, attempt, %error, "push failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(cfg.backoff_max);
            }
            Err(error) => {
                tracing::warn!(room.id = %room, member, seq = m.seq, attempt, %error, "push given up");
            }
        }
    }
}
