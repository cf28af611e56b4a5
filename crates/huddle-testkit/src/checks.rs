//! Small checks on what a node answered: message lists (bodies, seqs, gapless order,
//! room-bot filtered out), id and time formats, and [`eventually`] for state that
//! settles over real sockets.

use std::time::Duration;

use serde_json::Value;

pub fn bodies(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["body"].as_str().unwrap_or("<no body>").to_string())
        .collect()
}

pub fn seqs(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| {
            m["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("message without a numeric seq: {m}"))
        })
        .collect()
}

/// Asserts the seqs are exactly `first, first+1, ...` (no gap, no duplicate, ascending).
pub fn assert_contiguous(messages: &[Value], first: u64) {
    let got = seqs(messages);
    let want: Vec<u64> = (first..first + got.len() as u64).collect();
    assert_eq!(got, want, "seqs are not contiguous from {first}");
}

/// Messages from anyone but room-bot.
pub fn from_agents(messages: &[Value]) -> Vec<Value> {
    messages
        .iter()
        .filter(|m| m["from"] != "room-bot")
        .cloned()
        .collect()
}

pub fn is_uuid_v4(s: &str) -> bool {
    uuid::Uuid::parse_str(s)
        .map(|u| u.get_version_num() == 4)
        .unwrap_or(false)
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` (or `+00:00`): RFC 3339 in UTC.
pub fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    let shape = b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':';
    shape && (s.ends_with('Z') || s.ends_with("+00:00"))
}

/// Poll `check` every 50 ms until it returns `Some`, or panic after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub const SECOND: Duration = Duration::from_secs(1);
