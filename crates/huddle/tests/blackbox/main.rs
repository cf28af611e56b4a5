//! Black-box tests of the real `huddle` binary over HTTP on 127.0.0.1.
//!
//! One test binary (every extra binary costs a link); each test starts its own
//! `huddle serve` in its own temporary data dir, so tests run in parallel. With
//! `HUDDLE_TEST_STORE=postgres` every node is on its own database of one throwaway
//! PostgreSQL instead (the test kit's `store`); with `HUDDLE_TEST_STORE=cluster` every
//! server is a 3-node cluster whose client spreads its requests over the nodes. `make
//! test` runs the suite all three ways (the Makefile says which tests each pass skips).
//! Tests that are SQLite-only by nature say so and use `ServerBuilder::sqlite_only`.
//!
//! The server process, the A2A call builder, the SSE reader and the reply helpers are
//! the test kit's (`huddle_testkit`: `Server`, `Call`, `Reply`, `Sse`).
//!
//! Layout:
//! - `envelope`   — JSON-RPC envelope: parse errors, methods, discovery, agent card, help,
//!   aliases, the "no action" paths.
//! - `rooms`      — every `room.*` action with its success and error texts; same-name
//!   rooms; `name:password` splitting.
//! - `messages`   — `message.send` / `history` / `unread`, missed messages, paging.
//! - `privacy`    — DMs (private; to a stranger) on every read path but streams; protected rooms.
//! - `sse`        — the SSE stream: statuses, `id: <seq>`, resume, DM privacy.
//! - `push`       — A2A push: envelope, order, DM privacy, retry after the endpoint returns.
//! - `limits`     — bounded input: text, names, description, request body.
//! - `ordering`   — concurrent senders get a gapless ordered `seq`.
//! - `idempotency` — a send retried under its message id (A2A, gRPC), reused for another text.
//! - `passwords`  — room passwords under attack: same-name rooms, rooms per name, the
//!   per-address and per-room throttles on every protocol, the hashing queue, floods.
//! - `deploy`     — deploy/: hadolint, kustomize overlays validated, their args through `--check-config`.
//! - `durability` — `kill -9` and restart on the same data dir.
//! - `pg_faults`  — a node on PostgreSQL under load: `kill -9`, the database stopped
//!   and back.
//! - `memory`     — refused stream requests (SSE, gRPC, MCP) leave no memory behind;
//!   idle SSE streams hold little.
//! - `ops`        — metrics, readiness, logs, `--check-config`, OTLP traces.
//! - `shutdown`   — SIGTERM: streams end, requests in flight are answered, the grace bound.
//! - `sent_keys`  — a send's idempotency key found in the store, past the tail and a restart.
//! - `store_copy` — a data dir copied to PostgreSQL (`huddle store copy`) served by
//!   `huddle serve --store postgres://...`.

mod deploy;
mod durability;
mod envelope;
mod idempotency;
mod limits;
mod memory;
mod messages;
mod ops;
mod ordering;
mod passwords;
mod pg_faults;
mod privacy;
mod push;
mod rooms;
mod sent_keys;
mod shutdown;
mod sse;
mod store_copy;
