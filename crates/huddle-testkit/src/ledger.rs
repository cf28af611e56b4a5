//! [`Ledger`]: what a cluster test was told, and the end state it checks. Senders send
//! through it (a fresh idempotency key per message — the A2A `message.messageId` —
//! kept across retries on other nodes), readers hold [`Stream`]s that resume on the
//! next node with `Last-Event-ID` when theirs fails, and [`Ledger::verify`] asserts,
//! for every room:
//! - its history, the union of every member's view, is gapless from seq 1;
//! - every acknowledged message is in it exactly once, at the seq it was acknowledged
//!   with;
//! - nobody sees a direct message that is neither from nor to them;
//! - every stream received every message its agent may see after where it started, in
//!   order, without duplicates.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::a2a::{A2a, Agent, Resume};
use crate::sse::Next;

/// How long a sender keeps retrying one message on other nodes before giving up.
const SEND_PATIENCE: Duration = Duration::from_secs(30);
/// How long [`Ledger::verify`] waits for streams to catch up with the history.
const STREAM_PATIENCE: Duration = Duration::from_secs(30);
/// Each background sender's bound on sends, so a test that goes wrong still ends.
const SENDS_PER_SENDER: usize = 5_000;

/// One acknowledged send.
#[derive(Clone, Debug)]
pub struct Ack {
    pub room: String,
    pub key: String,
    pub body: String,
    pub seq: u64,
    /// How many requests it took (1: no retry).
    pub attempts: u32,
}

/// Acknowledged sends and open streams of one test.
#[derive(Default)]
pub struct Ledger {
    acks: Mutex<Vec<Ack>>,
    /// Answers that refused a send for good (not a node failure), for the report.
    refusals: Mutex<Vec<String>>,
    /// Sends given up after [`SEND_PATIENCE`] of failures: never acknowledged.
    abandoned: Mutex<Vec<String>>,
    streams: Mutex<Vec<Arc<Stream>>>,
}

impl Ledger {
    pub fn new() -> Arc<Ledger> {
        Arc::default()
    }

    /// Sends `body` as `agent` (a DM when `to` is given) through `client`, retrying on
    /// the next node under the same key while nodes fail or answer `Service
    /// unavailable`; records and returns the acknowledged seq. `None`: refused for good
    /// or given up.
    pub async fn send(
        &self,
        client: &A2a,
        agent: &Agent,
        body: &str,
        to: Option<&str>,
    ) -> Option<u64> {
        let key = uuid::Uuid::new_v4().to_string();
        let start = Instant::now();
        let mut attempts = 0;
        let mut last = String::new();
        while start.elapsed() < SEND_PATIENCE {
            attempts += 1;
            let mut call = client
                .act("message.send")
                .text(body)
                .token(&agent.token)
                .message_id(&key);
            if let Some(to) = to {
                call = call.meta("to", to);
            }
            match call.try_send().await {
                Ok(reply) if !reply.is_error() => {
                    let seq = reply.data()["seq"]
                        .as_u64()
                        .unwrap_or_else(|| panic!("an acknowledged send has a seq: {}", reply.0));
                    self.acks.lock().unwrap().push(Ack {
                        room: agent.room_id.clone(),
                        key,
                        body: body.to_string(),
                        seq,
                        attempts,
                    });
                    return Some(seq);
                }
                Ok(reply) if !is_unavailable(reply.text()) => {
                    self.refusals.lock().unwrap().push(reply.text().to_string());
                    return None;
                }
                Ok(reply) => last = reply.text().to_string(),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.abandoned
            .lock()
            .unwrap()
            .push(format!("{body} after {attempts} attempts: {last}"));
        None
    }

    /// One closed-loop sender per agent (a short pause between sends), until `stop`.
    /// Bodies are `<agent>-<i>`.
    pub fn spawn_senders(
        self: &Arc<Self>,
        client: &Arc<A2a>,
        agents: &[Agent],
        stop: &Arc<AtomicBool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        agents
            .iter()
            .cloned()
            .map(|agent| {
                let (ledger, client, stop) = (self.clone(), client.clone(), stop.clone());
                tokio::spawn(async move {
                    for i in 0..SENDS_PER_SENDER {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let body = format!("{}-{i}", agent.name);
                        ledger.send(&client, &agent, &body, None).await;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            })
            .collect()
    }

    /// Opens `agent`'s stream through `client`, resuming on the next node when it fails.
    pub async fn stream(&self, client: &Arc<A2a>, agent: &Agent, after: u64) -> Arc<Stream> {
        let stream = Stream::open(client.clone(), agent.clone(), after).await;
        self.streams.lock().unwrap().push(stream.clone());
        stream
    }

    /// Acknowledged sends so far.
    pub fn acked(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    /// Waits (up to 60 s) until at least `n` sends were acknowledged.
    pub async fn wait_acked(&self, n: usize) {
        crate::eventually(Duration::from_secs(60), "acknowledged sends", || async {
            (self.acked() >= n).then_some(())
        })
        .await;
    }

    /// Acknowledged sends that took more than one request.
    pub fn retried(&self) -> usize {
        self.acks
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.attempts > 1)
            .count()
    }

    /// Refusals and abandoned sends, for a test's report.
    pub fn failures(&self) -> (Vec<String>, Vec<String>) {
        (
            self.refusals.lock().unwrap().clone(),
            self.abandoned.lock().unwrap().clone(),
        )
    }

    /// The end state (see the module doc), read through `client`; `members`: every
    /// member of every room the test used. Stops the streams.
    pub async fn verify(&self, client: &A2a, members: &[Agent]) {
        let mut views: HashMap<&str, Vec<(&Agent, Vec<Value>)>> = HashMap::new();
        for agent in members {
            let view = client.history_all(agent).await;
            assert_dms_private(agent, &view, "history");
            views.entry(&agent.room_id).or_default().push((agent, view));
        }
        let acks = self.acks.lock().unwrap().clone();
        for (room, views) in &views {
            let union: BTreeMap<u64, &Value> = views
                .iter()
                .flat_map(|(_, v)| v.iter().map(|m| (seq_of(m), m)))
                .collect();
            let seqs: Vec<u64> = union.keys().copied().collect();
            let want: Vec<u64> = (1..=seqs.len() as u64).collect();
            assert_eq!(
                seqs, want,
                "room {room}'s history is not gapless from seq 1"
            );
            let mut copies: HashMap<&str, Vec<u64>> = HashMap::new();
            for (seq, m) in &union {
                copies
                    .entry(m["body"].as_str().unwrap_or(""))
                    .or_default()
                    .push(*seq);
            }
            for ack in acks.iter().filter(|a| a.room == *room) {
                assert_eq!(
                    copies.get(ack.body.as_str()).map(Vec::as_slice),
                    Some(&[ack.seq][..]),
                    "acknowledged message {:?} (seq {}, key {}) is not in room {room} exactly once at its seq",
                    ack.body,
                    ack.seq,
                    ack.key
                );
            }
        }
        let streams = self.streams.lock().unwrap().clone();
        for stream in streams {
            let view = &views
                .get(stream.agent.room_id.as_str())
                .and_then(|vs| vs.iter().find(|(a, _)| a.token == stream.agent.token))
                .unwrap_or_else(|| {
                    panic!(
                        "a stream of {} who is not among the members",
                        stream.agent.name
                    )
                })
                .1;
            let want: Vec<u64> = view
                .iter()
                .map(seq_of)
                .filter(|s| *s > stream.after)
                .collect();
            let last_wanted = want.last().copied().unwrap_or(0);
            crate::eventually(
                STREAM_PATIENCE,
                "streams to catch up with the history",
                || async { (stream.last_seq() >= last_wanted).then_some(()) },
            )
            .await;
            stream.stop();
            let got = stream.received();
            assert_dms_private(&stream.agent, &got, "stream");
            let got: Vec<u64> = got
                .iter()
                .map(seq_of)
                .filter(|s| *s <= last_wanted)
                .collect();
            assert_eq!(
                got,
                want,
                "{}'s stream (from seq {}, {} reconnects) did not get exactly what it may see, in order",
                stream.agent.name,
                stream.after,
                stream.reconnects()
            );
        }
    }
}

/// A room stream that resumes on the next node (`Last-Event-ID`) when its node fails,
/// recording every message it got, as a client behind a load balancer would.
pub struct Stream {
    pub agent: Agent,
    /// Where it started: messages after this seq.
    pub after: u64,
    received: Mutex<Vec<Value>>,
    reconnects: Mutex<u32>,
    stop: AtomicBool,
}

impl Stream {
    /// Opens the stream (asserting the first open works) and reads it on a task.
    async fn open(client: Arc<A2a>, agent: Agent, after: u64) -> Arc<Stream> {
        let first = client
            .try_sse(&agent, Resume::LastEventId(after))
            .await
            .unwrap_or_else(|e| panic!("{}'s stream did not open: {e}", agent.name));
        let stream = Arc::new(Stream {
            agent,
            after,
            received: Mutex::default(),
            reconnects: Mutex::new(0),
            stop: AtomicBool::new(false),
        });
        let reader = stream.clone();
        tokio::spawn(async move {
            let mut sse = Some(first);
            while !reader.stop.load(Ordering::Relaxed) {
                let Some(open) = sse.as_mut() else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    *reader.reconnects.lock().unwrap() += 1;
                    sse = client
                        .try_sse(
                            &reader.agent,
                            Resume::LastEventId(reader.last_seq().max(reader.after)),
                        )
                        .await
                        .ok();
                    continue;
                };
                match open.next(Duration::from_millis(500)).await {
                    Next::Message(_, m) => reader.received.lock().unwrap().push(m),
                    Next::Timeout => {}
                    Next::Ended => sse = None,
                }
            }
        });
        stream
    }

    /// The last seq received (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.received.lock().unwrap().last().map_or(0, seq_of)
    }

    /// Everything received so far, in order.
    pub fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }

    /// How often it had to open again.
    pub fn reconnects(&self) -> u32 {
        *self.reconnects.lock().unwrap()
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn seq_of(m: &Value) -> u64 {
    m["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("message without a numeric seq: {m}"))
}

/// A refusal that says the cluster could not serve it now (worth a retry elsewhere).
fn is_unavailable(text: &str) -> bool {
    text.to_ascii_lowercase().contains("unavailable")
}

/// Every direct message in `messages` is from or to `agent`.
fn assert_dms_private(agent: &Agent, messages: &[Value], path: &str) {
    for m in messages {
        if let Some(to) = m["to"].as_str() {
            assert!(
                to == agent.name || m["from"] == agent.name.as_str(),
                "{}'s {path} holds a DM from {} to {to}: {m}",
                agent.name,
                m["from"]
            );
        }
    }
}
