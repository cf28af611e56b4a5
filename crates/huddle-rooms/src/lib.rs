//! One node's room runtime.
//!
//! Layout:
//! - [`config`]    — [`RoomsConfig`]: limits, timeouts, queue sizes, push policy.
//! - [`secrets`]   — minting agent tokens, hashing and checking room passwords (argon2id).
//! - [`passwords`] — [`PasswordGate`]: every password check, off the room actors: bounded
//!   hashing threads and queue, failed attempts throttled per client address and per room.
//! - [`endpoint`]  — push endpoint checks: the literal URL at join, resolved addresses at delivery.
//! - [`actor`]     — [`RoomActor`]: owns one room; handles requests one at a time, group-commits
//!   their events, then publishes and replies.
//! - [`log_tail`]  — the actor's cache of recent messages (reads of missed/unread).
//! - [`hub`]       — per-room broadcast of committed messages, and resumable subscriptions.
//! - [`push`]      — A2A push delivery: one bounded, ordered, retrying queue per agent.
//! - [`directory`] — [`RoomDirectory`]: activates actors on demand, passivates idle ones,
//!   creates rooms, admission control in front of the (unbounded) actor mailboxes.

pub mod actor;
pub mod config;
pub mod directory;
pub mod endpoint;
pub mod hub;
pub mod log_tail;
pub mod passwords;
pub mod push;
pub mod secrets;

pub use actor::RoomActor;
pub use config::{PasswordsConfig, RoomsConfig};
pub use directory::RoomDirectory;
pub use hub::{MessageStream, SubscribeError};
pub use passwords::PasswordGate;
