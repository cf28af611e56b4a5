//! The `huddle` client commands, run as a user would: the real binary against a real
//! `huddle serve` on 127.0.0.1, each test with its own server and its own config dir.
//!
//! One test binary (every extra binary costs a link).
//!
//! Layout:
//! - `huddle_testkit` (a crate) — start/kill `huddle serve`, raw A2A calls to check the
//!   server side.
//! - `support`     — running the client: one-shot runs, sessions on a pseudo-terminal,
//!   a TCP proxy that cuts connections.
//! - `commands`    — every one-shot command: output, `--json`, errors (stderr, status 1).
//! - `tokens`      — the token store: file mode 0600, reconnect as the same agent,
//!   `--no-persist`, stale tokens.
//! - `interactive` — `huddle join` on a pty: lines typed in one session appear in the
//!   others, `/dm` privacy, `/history`, `/quit`, resume without gaps after a cut.

mod support;

mod commands;
mod interactive;
mod tokens;
