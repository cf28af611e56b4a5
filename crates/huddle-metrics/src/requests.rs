//! `huddle_requests_total{protocol,action,outcome}`,
//! `huddle_request_duration_seconds{protocol,action}` and
//! `huddle_limit_refusals_total{limit}`.
//!
//! Each protocol records in one place (its dispatch), never per handler. The label sets
//! are registered at their first use and kept in a map keyed by `&'static str`s: a
//! lookup under a read lock, no allocation.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

use metrics::{Counter, Histogram};

/// The protocol a request came in by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    A2a,
    Mcp,
    Grpc,
    Sse,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::A2a => "a2a",
            Protocol::Mcp => "mcp",
            Protocol::Grpc => "grpc",
            Protocol::Sse => "sse",
        }
    }
}

/// How a request ended, as operators group it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered.
    Ok,
    /// Refused for the client's input or rights (a bad token, a missing parameter).
    Error,
    /// Refused by a limit (busy, too many streams, a rate): also counted by limit.
    Refused(&'static str),
    /// The node could not serve it (store or actor failure, shutting down).
    Unavailable,
}

impl Outcome {
    fn index(self) -> usize {
        match self {
            Outcome::Ok => 0,
            Outcome::Error => 1,
            Outcome::Refused(_) => 2,
            Outcome::Unavailable => 3,
        }
    }
}

const OUTCOMES: [&str; 4] = ["ok", "error", "refused", "unavailable"];

struct Handles {
    outcomes: [Counter; 4],
    duration: Histogram,
}

type Key = (Protocol, &'static str);

fn table() -> &'static RwLock<HashMap<Key, &'static Handles>> {
    static TABLE: OnceLock<RwLock<HashMap<Key, &'static Handles>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

fn handles(protocol: Protocol, action: &'static str) -> &'static Handles {
    let key = (protocol, action);
    if let Some(h) = table().read().expect("metrics table poisoned").get(&key) {
        return h;
    }
    crate::handle();
    let mut table = table().write().expect("metrics table poisoned");
    table.entry(key).or_insert_with(|| {
        let p = protocol.as_str();
        let outcomes = OUTCOMES.map(|o| {
            metrics::counter!("huddle_requests_total", "protocol" => p, "action" => action, "outcome" => o)
        });
        let duration =
            metrics::histogram!("huddle_request_duration_seconds", "protocol" => p, "action" => action);
        // Registered once per label set for the life of the process (a bounded set:
        // actions and RPCs are the contract's names, never client input).
        Box::leak(Box::new(Handles { outcomes, duration }))
    })
}

/// Counts one request of `action` (a contract name, never client input) and its latency.
pub fn record(protocol: Protocol, action: &'static str, outcome: Outcome, elapsed: Duration) {
    let h = handles(protocol, action);
    h.outcomes[outcome.index()].increment(1);
    h.duration.record(elapsed.as_secs_f64());
    if let Outcome::Refused(limit) = outcome {
        refused(limit);
    }
}

/// Counts a refusal by the limit it names.
pub fn refused(limit: &'static str) {
    static TABLE: OnceLock<RwLock<HashMap<&'static str, Counter>>> = OnceLock::new();
    let table = TABLE.get_or_init(Default::default);
    if let Some(c) = table.read().expect("metrics table poisoned").get(limit) {
        c.increment(1);
        return;
    }
    crate::handle();
    let mut table = table.write().expect("metrics table poisoned");
    table
        .entry(limit)
        .or_insert_with(|| metrics::counter!("huddle_limit_refusals_total", "limit" => limit))
        .increment(1);
}
