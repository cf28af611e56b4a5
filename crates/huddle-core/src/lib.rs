//! The room as a pure state machine.
//!
//! Nothing here does I/O or knows a wire format: the gateway turns A2A/MCP/gRPC into a
//! typed room operation ([`api`]: [`SendMessage`], [`JoinRoom`], ...), the room actor (in
//! `huddle-rooms`) turns that into a typed command ([`command`]) with everything it needs
//! already fetched, and [`Room::decide`] answers with the [`Event`]s to persist and the
//! command's own answer type. [`Room::apply`] folds an event into the state; it is the
//! only place room state changes, so replay and live handling cannot disagree.
//!
//! Layout:
//! - [`ids`]      — room ids, member ids, sequence numbers.
//! - [`token`]    — self-routing agent tokens and the digest that is stored instead.
//! - [`time`]     — millisecond timestamps and their RFC 3339 rendering.
//! - [`limits`]   — every configurable input limit, with its default.
//! - [`error`]    — [`RoomError`]: the contract's error texts, one variant each.
//! - [`name`]     — the fold that decides when two agent names are the same name.
//! - [`validate`] — checks on names, descriptions, types, bodies and endpoint URLs.
//! - [`model`]    — `Room`, `Agent`, `Message`, roles and room types.
//! - [`shared`]   — [`SharedMessage`]: a logged message shared by everything that reads
//!   it, rendered to JSON once.
//! - [`command`]  — the typed commands and answers, `Event`; `Command`/`Reply` (the same
//!   commands as one enum, for tests and the fuzzer).
//! - [`room`]     — `Room::decide` and `Room::apply`, the [`room::Decide`] trait.
//! - [`decide`]   — each command's rules (docs/protocol.md, sections 'Actions' and
//!   'Differences from join.cloud, and why'), one `Decide` impl each.
//! - [`api`]      — the typed room operations a gateway sends, each with its answer
//!   ([`RoomOp`]), and [`Page`].
//! - `fuzzing`    — the room under arbitrary command sequences, shared by the fuzz target
//!   and the tests (hidden: not an API).

pub mod api;
pub mod command;
pub mod decide;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod ids;
pub mod limits;
pub mod model;
pub mod name;
pub mod room;
pub mod shared;
pub mod time;
pub mod token;
pub mod validate;

pub use api::{
    Acknowledge, Authorize, CreateRoom, Created, GetInfo, GetLock, GetUnread, HistoryPage,
    JoinRoom, Joined, LeaveRoom, Lock, ModerateAgent, Page, PasswordProof, RoomOp, RoomSummary,
    RoomView, SendMessage, UpdateRoom, Viewer,
};
pub use command::{
    Admission, Command, Delivered, Event, Missed, Moderated, Moderation, Reply, Sent, Updated,
};
pub use error::{AttemptScope, RoomError};
pub use ids::{MemberId, RoomId, Seq};
pub use limits::Limits;
pub use model::{Agent, Message, ROOM_BOT, Role, Room, RoomType, WireMessage};
pub use shared::SharedMessage;
pub use time::Timestamp;
pub use token::{AgentToken, TokenDigest};
