//! What the client commands print. Data goes to stdout, one line per write; diagnostics
//! go to stderr. A closed stdout (`huddle history ... | head`) ends the process quietly
//! instead of panicking.

use std::io::{ErrorKind, Write};

use serde_json::Value;

/// Prints one line of data on stdout.
pub fn line(text: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{}", text.as_ref()).and_then(|()| out.flush()) {
        std::process::exit(if e.kind() == ErrorKind::BrokenPipe {
            0
        } else {
            1
        });
    }
}

/// Prints `value` as pretty JSON on stdout (one document).
pub fn json(value: &Value) {
    line(serde_json::to_string_pretty(value).unwrap_or_default());
}

/// Prints `value` as one compact JSON line on stdout (the stream of `join --json`).
pub fn json_line(value: &Value) {
    line(serde_json::to_string(value).unwrap_or_default());
}

/// A diagnostic on stderr.
pub fn note(text: impl AsRef<str>) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", text.as_ref());
}

/// A room message as one human line: `[from] body`, or `[from -> to] body` for a DM
/// (the shape of the protocol's missed-messages summary).
pub fn message_line(from: &str, to: Option<&str>, body: &str) -> String {
    match to {
        Some(to) => format!("[{from} -> {to}] {body}"),
        None => format!("[{from}] {body}"),
    }
}

/// [`message_line`] of a message as JSON (`{from, to?, body, ...}`).
pub fn message_value_line(m: &Value) -> String {
    message_line(
        m["from"].as_str().unwrap_or("?"),
        m["to"].as_str(),
        m["body"].as_str().unwrap_or(""),
    )
}

/// `s` left-aligned in `width` columns (by chars).
pub fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(n)))
}
