//! Black-box tests of the real `huddle` binary over HTTP on 127.0.0.1.
//!
//! One test binary (every extra binary costs a link); each test starts its own
//! `huddle serve` in its own temporary data dir, so tests run in parallel.
//!
//! Layout:
//! - `harness`    — start/kill a server process, the A2A call builder, SSE and reply helpers.
//! - `envelope`   — JSON-RPC envelope (A.3): parse errors, methods, discovery, agent card, help,
//!   aliases, the "no action" paths.
//! - `rooms`      — every `room.*` action of A.4 with its success and error texts; same-name
//!   rooms (B.3); `name:password` splitting.
//! - `messages`   — `message.send` / `history` / `unread`, missed messages (A.5), paging.
//! - `privacy`    — DMs (B.1, B.7) on every read path but streams; protected rooms (B.4).
//! - `sse`        — the SSE stream (A.6): statuses, `id: <seq>`, resume (Part C), DM privacy.
//! - `push`       — A2A push (A.8): envelope, order, DM privacy, retry after the endpoint returns.
//! - `limits`     — bounded input (B.8): text, names, description, request body.
//! - `ordering`   — concurrent senders get a gapless ordered `seq` (B.2).
//! - `passwords`  — room passwords under attack: same-name rooms, rooms per name, the
//!   per-address and per-room throttles on every protocol, the hashing queue, floods.
//! - `durability` — `kill -9` and restart on the same data dir.
//! - `memory`     — refused stream requests (SSE, gRPC, MCP) leave no memory behind.
//! - `shutdown`   — SIGTERM: streams end, requests in flight are answered, the grace bound.

mod harness;

mod durability;
mod envelope;
mod limits;
mod memory;
mod messages;
mod ordering;
mod passwords;
mod privacy;
mod push;
mod rooms;
mod shutdown;
mod sse;
