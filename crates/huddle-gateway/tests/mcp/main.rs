//! The MCP endpoint (docs/protocol.md, section 'MCP') over real HTTP, against a node served
//! in-process on 127.0.0.1:0.
//!
//! - `harness`       — the node, a hand-written MCP client, a GET stream reader.
//! - `tools`         — the twelve tools' texts, `initialize`, `tools/list`.
//! - `notifications` — room messages as notifications: GET stream, ahead of results,
//!   DM privacy, several rooms per session, resume without gap or duplicate.
//! - `sessions`      — recovery of unknown/expired sessions, 404s, DELETE, expiry,
//!   Host/Origin, the second port.
//! - `sessionless`   — protocol 2026-07-28: discover, tools, `subscriptions/listen`.
//! - `clients`       — the official TypeScript and Python clients (../../tests/mcp).
//! - `cluster`       — cluster mode: a session served by its home node through any
//!   node, recovery when that node is gone, the internal route's guards.

mod clients;
mod cluster;
mod harness;
mod notifications;
mod sessionless;
mod sessions;
mod tools;
