//! One node's room runtime.
//!
//! Layout:
//! - [`config`]    — [`RoomsConfig`]: limits, timeouts, queue sizes, push policy.
//! - [`secrets`]   — minting agent tokens, hashing and checking room passwords (argon2id).
//! - [`passwords`] — [`PasswordGate`]: every password check, off the room actors: bounded
//!   hashing threads and queue, failed attempts throttled per client address and per room.
//! - [`endpoint`]  — push endpoint checks (global unicast only): the literal URL at join,
//!   resolved addresses at delivery.
//! - [`actor`]     — [`RoomActor`]: owns one room; handles requests one at a time, group-commits
//!   their events, then publishes and replies.
//! - [`log_tail`]  — the actor's cache of recent messages (reads of missed/unread), all
//!   rooms' under one node-wide budget.
//! - [`hub`]       — the node-local fan-out: one shared log of pending items per room with
//!   subscribers here (it grows with what is unread and goes with the last subscriber),
//!   all under one node-wide budget, and the node's limit on open streams.
//! - [`budget`]    — a budget of bytes shared by many holders (the two above).
//! - [`feed`]      — feed sources (the seam a remote owner plugs into) and the one
//!   resuming stream every protocol reads (its items: `huddle_core::SharedMessage`).
//! - [`follow`]    — another node following a room this node owns: every event, log then
//!   live, ending when the room's actor stops here (its upstream finds the owner again).
//! - [`push`]      — A2A push delivery: one bounded, ordered, retrying queue per agent,
//!   and a node-wide bound on queued pushes.
//! - [`ownership`] — cluster mode's hooks: which rooms this node may hold, stepping down
//!   when fenced, answering from memory only within the node's lease.
//! - [`directory`] — [`RoomDirectory`]: activates actors on demand, passivates idle ones,
//!   creates rooms, admission control in front of the (unbounded) actor mailboxes.
//! - [`traced`]    — whether the work at hand belongs to a trace the node keeps (the
//!   targets of the spans where traces enter a node).
//! - `store_error` — what a store failure means to a client (a full read queue is
//!   `Server busy`).

pub mod actor;
pub mod budget;
pub mod call;
pub mod config;
pub mod directory;
pub mod endpoint;
pub mod feed;
pub mod follow;
pub mod hub;
pub mod log_tail;
pub mod ownership;
pub mod passwords;
pub mod push;
pub mod secrets;
mod store_error;
#[cfg(feature = "testing")]
pub mod testing;
pub mod traced;

pub use actor::RoomActor;
pub use call::{Answerer, Ask, Port, RoomCall};
pub use config::{PasswordsConfig, PushConfig, RoomsConfig};
pub use directory::{AckRoute, RoomDirectory};
pub use feed::{
    CatchUp, FeedSource, MessageStream, OnLag, Opened, Subscribe, SubscribeError, Subscribed,
};
pub use follow::{FollowEnd, FollowEvent, FollowStream};
pub use ownership::{NotOwner, Ownership};
pub use passwords::PasswordGate;
