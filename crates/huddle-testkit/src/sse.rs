//! The one SSE reader of the tests, over a real SSE parser (`eventsource-stream` on
//! reqwest's byte stream): the room stream of `GET /api/messages/{room}/sse` (each
//! message's `id:` checked against its `seq`), and any other `text/event-stream`
//! (MCP GET streams and POST answers) through [`Sse::next_raw`] and [`parse_all`].

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use serde_json::Value;

pub use eventsource_stream::Event;

use crate::checks::bodies;

/// What an SSE stream did next.
#[derive(Debug)]
pub enum Next {
    Message(u64, Value),
    Ended,
    Timeout,
}

/// What the stream gave next, as it came ([`Sse::next_raw`]).
#[derive(Debug)]
pub enum Raw {
    Event(Event),
    /// The server ended the stream.
    Ended,
    /// The connection broke (a client cannot tell this from an end, but a test can).
    Broken(String),
    /// Nothing within the time given.
    Timeout,
}

type Events = Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send>>;

/// An open SSE stream.
pub struct Sse {
    events: Events,
}

impl Sse {
    /// The stream of an SSE response; asserts 200 and `text/event-stream`.
    pub fn open(resp: reqwest::Response) -> Sse {
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert_eq!(status, 200, "SSE answered {status}");
        assert!(
            ctype.starts_with("text/event-stream"),
            "SSE content-type is {ctype:?}"
        );
        Sse::from_response(resp)
    }

    /// Any `text/event-stream` response (an MCP POST answered with SSE, too).
    pub fn from_response(resp: reqwest::Response) -> Sse {
        Sse {
            events: Box::pin(resp.bytes_stream().eventsource()),
        }
    }

    /// The next event as it came, within `within`.
    pub async fn next_raw(&mut self, within: Duration) -> Raw {
        match tokio::time::timeout(within, self.events.next()).await {
            Err(_) => Raw::Timeout,
            Ok(None) => Raw::Ended,
            Ok(Some(Err(e))) => Raw::Broken(e.to_string()),
            Ok(Some(Ok(event))) => Raw::Event(event),
        }
    }

    /// [`Sse::next_raw`] until `deadline`.
    async fn next_raw_until(&mut self, deadline: tokio::time::Instant) -> Raw {
        self.next_raw(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
    }

    /// The next event with data, as JSON, within `within`; `None` on timeout or end.
    pub async fn next_data(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.next_raw_until(deadline).await {
                Raw::Event(e) if e.data.is_empty() => {}
                Raw::Event(e) => {
                    return Some(serde_json::from_str(&e.data).unwrap_or_else(|err| {
                        panic!("SSE data is not JSON ({err}): {:?}", e.data)
                    }));
                }
                Raw::Ended | Raw::Broken(_) | Raw::Timeout => return None,
            }
        }
    }

    /// The next room message (skipping pings) within `within`, as (`id:` seq, data JSON).
    /// Asserts the event id equals the message's `seq`. `None` on timeout or end.
    pub async fn next_message(&mut self, within: Duration) -> Option<(u64, Value)> {
        match self.next(within).await {
            Next::Message(seq, data) => Some((seq, data)),
            Next::Ended | Next::Timeout => None,
        }
    }

    /// Like `next_message`, but tells a stream the server ended from a silent one.
    pub async fn next(&mut self, within: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let event = match self.next_raw_until(deadline).await {
                Raw::Timeout => return Next::Timeout,
                // A transport error ends the stream as far as a client can tell.
                Raw::Ended | Raw::Broken(_) => return Next::Ended,
                Raw::Event(event) => event,
            };
            if event.event == "ping" || event.data.is_empty() {
                continue;
            }
            let data: Value = serde_json::from_str(&event.data)
                .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {:?}", event.data));
            let id: u64 = event
                .id
                .parse()
                .unwrap_or_else(|_| panic!("SSE event id is not a seq: {:?} ({})", event.id, data));
            assert_eq!(
                data["seq"].as_u64(),
                Some(id),
                "SSE `id:` must be the message's seq: {data:.300}"
            );
            return Next::Message(id, data);
        }
    }

    /// Reads (and drops) events until the server ends the stream: `Ok` when it ended
    /// cleanly, `Err` when the connection broke or the stream was still open after `within`.
    pub async fn end(&mut self, within: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match self.next_raw_until(deadline).await {
                Raw::Timeout => return Err(format!("still open after {within:?}")),
                Raw::Ended => return Ok(()),
                Raw::Broken(e) => return Err(format!("broken, not ended: {e}")),
                Raw::Event(_) => {}
            }
        }
    }

    /// Read until `n` messages arrived; panics on timeout.
    pub async fn take(&mut self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_message(left).await {
                Some((_, data)) => out.push(data),
                None => panic!(
                    "SSE: got {} of {n} messages within {within:?}: {:?}",
                    out.len(),
                    bodies(&out)
                ),
            }
        }
        out
    }

    /// Read until a message with body `body` arrives; returns everything read, that one included.
    pub async fn until_body(&mut self, body: &str, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_message(left).await {
                Some((_, data)) => {
                    let done = data["body"] == body;
                    out.push(data);
                    if done {
                        return out;
                    }
                }
                None => panic!(
                    "SSE: {body:?} did not arrive within {within:?}; got {:?}",
                    bodies(&out)
                ),
            }
        }
    }
}

/// Every event of a whole `text/event-stream` body already read (an MCP POST answer).
pub async fn parse_all(body: &str) -> Vec<Event> {
    let chunk: Result<Vec<u8>, std::convert::Infallible> = Ok(body.as_bytes().to_vec());
    futures::stream::iter([chunk])
        .eventsource()
        .filter_map(|e| async move { e.ok() })
        .collect()
        .await
}
