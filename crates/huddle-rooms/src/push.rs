//! A2A push delivery.
//!
//! One queue and one worker per (room, agent): pushes to an agent are delivered in `seq`
//! order, and a slow or dead endpoint delays only its own agent. A 2xx answer is
//! acknowledged to the room, which moves the agent's read cursor.
//!
//! Push is at-least-once best effort; `message.unread` is the truth. So every bound here
//! drops rather than waits: each agent's queue holds at most `PushConfig::queue` pushes,
//! and the whole node at most `PushConfig::max_queued` (queued or being delivered). A
//! push over either bound is dropped, counted and logged; the agent's cursor does not
//! move past it, so the agent still finds the message through `message.unread`.
//!
//! A failed delivery is retried with exponential backoff while retrying can help: on a
//! network error, a timeout, 408, 429 or 5xx. Any other answer (a 4xx such as 404, or a
//! redirect, which is not followed) and an endpoint refused by the checks give up at
//! once. The head of the queue blocks the rest so order is kept.
//!
//! Endpoints are re-checked at every attempt: the literal URL, and — through the push
//! client's [`CheckedResolver`](crate::endpoint::CheckedResolver) — every address the
//! hostname resolves to. The client ignores proxy settings from the environment: a
//! proxy would make the connection on our behalf, to addresses we never checked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use huddle_core::{MemberId, RoomId, Seq, SharedMessage};
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::config::PushConfig;
use crate::endpoint;

/// A worker with nothing to do for this long exits (and is re-created on demand).
const WORKER_IDLE: Duration = Duration::from_secs(60);

/// At most one warning about dropped pushes per this interval (each drop is counted).
const DROP_WARN_INTERVAL: Duration = Duration::from_secs(1);

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
    /// Shared with the agent's queue and every other job for it: an endpoint may be
    /// kilobytes long, and a queue holds up to a thousand jobs.
    endpoint: Arc<str>,
    message: SharedMessage,
    prev: Seq,
    /// This job's place in the node-wide bound; freed when the job is done.
    _slot: OwnedSemaphorePermit,
}

type Key = (RoomId, MemberId);

/// An agent's queue, with the endpoint its newest jobs go to.
struct Queue {
    tx: mpsc::Sender<Job>,
    endpoint: Arc<str>,
    /// Set when the room left this node: the worker drops what is still queued.
    dropped: Arc<std::sync::atomic::AtomicBool>,
}

/// Why a push was dropped before any attempt.
#[derive(Clone, Copy, Debug)]
enum DropReason {
    NodeFull,
    AgentQueueFull,
}

struct Inner {
    queues: Mutex<HashMap<Key, Queue>>,
    client: reqwest::Client,
    config: PushConfig,
    allow_private: bool,
    acks: mpsc::UnboundedSender<Ack>,
    next_id: AtomicU64,
    /// Pushes queued or being delivered on this node: one permit each.
    slots: Arc<Semaphore>,
    /// Pushes dropped because a bound was reached, since the node started.
    dropped: AtomicU64,
    /// When the last drop warning was logged, in ms since `started` (`u64::MAX`: never).
    last_drop_warning: AtomicU64,
    started: Instant,
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
            .no_proxy()
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
            slots: Arc::new(Semaphore::new(config.max_queued)),
            config,
            allow_private,
            acks,
            next_id: AtomicU64::new(1),
            dropped: AtomicU64::new(0),
            last_drop_warning: AtomicU64::new(u64::MAX),
            started: Instant::now(),
        };
        (
            Self {
                inner: Arc::new(inner),
            },
            ack_rx,
        )
    }

    /// Drops every push of `room` queued on this node (the room left it, in a cluster):
    /// a delivery already under way completes, the rest is not sent from here. The new
    /// owner pushes what comes next, naming each agent's cursor in the store as the
    /// message before it, so an agent finds anything in between with `message.unread`.
    pub fn drop_room(&self, room: RoomId) {
        let mut queues = self.inner.queues.lock().expect("push queues poisoned");
        queues.retain(|(r, _), queue| {
            let keep = *r != room;
            if !keep {
                queue.dropped.store(true, Ordering::Release);
            }
            keep
        });
    }

    /// Queues `message` for the agent `member` of `room` at `endpoint`; `prev` is the
    /// message pushed to that agent before it. Dropped (counted and logged) when the
    /// node or the agent's queue is full.
    pub fn enqueue(
        &self,
        room: RoomId,
        member: MemberId,
        endpoint: &str,
        message: SharedMessage,
        prev: Seq,
    ) {
        let Ok(slot) = self.inner.slots.clone().try_acquire_owned() else {
            self.inner
                .note_drop(room, member, message.seq, DropReason::NodeFull);
            return;
        };
        let key = (room, member);
        let mut queues = self.inner.queues.lock().expect("push queues poisoned");
        let queue = queues.entry(key).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(self.inner.config.queue);
            let inner = self.inner.clone();
            let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let worker_dropped = dropped.clone();
            tokio::spawn(async move { worker(inner, key, rx, worker_dropped).await });
            Queue {
                tx,
                endpoint: Arc::from(endpoint),
                dropped,
            }
        });
        if *queue.endpoint != *endpoint {
            queue.endpoint = Arc::from(endpoint);
        }
        let job = Job {
            endpoint: queue.endpoint.clone(),
            message,
            prev,
            _slot: slot,
        };
        if let Err(e) = queue.tx.try_send(job) {
            let seq = match &e {
                mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job) => {
                    job.message.seq
                }
            };
            drop(queues);
            self.inner
                .note_drop(room, member, seq, DropReason::AgentQueueFull);
        }
    }
}

impl Inner {
    /// Counts a dropped push and warns about it, at most once per
    /// [`DROP_WARN_INTERVAL`] (an endpoint that stopped answering can make thousands).
    fn note_drop(&self, room: RoomId, member: MemberId, seq: Seq, reason: DropReason) {
        let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let last = self.last_drop_warning.load(Ordering::Relaxed);
        let due =
            last == u64::MAX || now.saturating_sub(last) >= DROP_WARN_INTERVAL.as_millis() as u64;
        if due
            && self
                .last_drop_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let (limit, what) = match reason {
                DropReason::NodeFull => (self.config.max_queued, "pushes queued on this node"),
                DropReason::AgentQueueFull => (self.config.queue, "pushes queued for this agent"),
            };
            tracing::warn!(
                room.id = %room,
                member = member.get(),
                seq = seq.get(),
                limit,
                dropped_total = total,
                "push dropped: too many {what} (the agent can read the message via message.unread)"
            );
        } else {
            tracing::debug!(
                room.id = %room,
                member = member.get(),
                seq = seq.get(),
                ?reason,
                dropped_total = total,
                "push dropped"
            );
        }
    }
}

async fn worker(
    inner: Arc<Inner>,
    key: Key,
    mut rx: mpsc::Receiver<Job>,
    dropped: Arc<std::sync::atomic::AtomicBool>,
) {
    loop {
        match tokio::time::timeout(WORKER_IDLE, rx.recv()).await {
            // The room left this node: its new owner pushes from the agents' cursors.
            Ok(Some(_)) if dropped.load(Ordering::Acquire) => continue,
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
            Err(e) => Err(Failure::Final(e.to_string())),
            Ok(url) => match inner.client.post(url).json(&body).send().await {
                Ok(r) => judge(r.status()),
                Err(e) => Err(Failure::Retry(e.to_string())),
            },
        };
        match outcome {
            Ok(()) => {
                huddle_metrics::push::delivered();
                let _ = inner.acks.send(Ack {
                    room,
                    member,
                    seq: m.seq,
                    prev: job.prev,
                });
                return;
            }
            Err(Failure::Retry(error)) if attempt < cfg.attempts => {
                tracing::debug!(room.id = %room, member = member.get(), seq = m.seq.get(), attempt, %error, "push failed; retrying");
                huddle_metrics::push::retried();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(cfg.backoff_max);
            }
            Err(Failure::Retry(error) | Failure::Final(error)) => {
                tracing::warn!(room.id = %room, member = member.get(), seq = m.seq.get(), attempt, %error, "push given up");
                huddle_metrics::push::given_up();
                return;
            }
        }
    }
}

/// A failed attempt: worth retrying, or not.
enum Failure {
    Retry(String),
    Final(String),
}

/// What an endpoint's answer means for the push: 2xx delivered; 408 (timeout), 429 (rate
/// limited) and 5xx are passing troubles worth a retry; any other answer (4xx, or a
/// redirect, which the client does not follow) will not change, so it ends the push.
fn judge(status: StatusCode) -> Result<(), Failure> {
    if status.is_success() {
        return Ok(());
    }
    let error = format!("HTTP {status}");
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Err(Failure::Retry(error))
    } else {
        Err(Failure::Final(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_passing_troubles_are_retried() {
        for code in [200, 202, 204] {
            assert!(judge(StatusCode::from_u16(code).unwrap()).is_ok(), "{code}");
        }
        for code in [408, 429, 500, 502, 503, 504] {
            let judged = judge(StatusCode::from_u16(code).unwrap());
            assert!(matches!(judged, Err(Failure::Retry(_))), "{code}");
        }
        for code in [301, 302, 307, 400, 401, 403, 404, 405, 410, 413, 422] {
            let judged = judge(StatusCode::from_u16(code).unwrap());
            assert!(matches!(judged, Err(Failure::Final(_))), "{code}");
        }
    }
}
