//! Routing room operations to the room's owner.
//!
//! Protocols talk to rooms only through the [`Router`] trait: [`LocalRouter`] on a single
//! node (every room local), [`ClusterRouter`] in a cluster (the room's owner, here or
//! over the internal node service), so gateways do not change.
//!
//! Room operations cross this seam as a [`RoomCall`]: the operation and the typed port
//! of its answer, so the seam stays object-safe and nothing pairs answers with requests
//! at run time. [`Router::ask`] is how callers use it: one typed operation in, its
//! typed answer out.
//!
//! Layout:
//! - [`placement`]    — views of the live nodes, rendezvous owners, the `Placement` seam.
//! - [`router`]       — [`ClusterRouter`]: local or forwarded, re-resolving on `NotOwner`.
//! - [`peers`]        — channels to the other nodes and the metadata of every hop.
//! - [`node_service`] — the internal `huddle.internal.v1.Node` service (`Call`, `Follow`).
//! - [`upstream`]     — room feeds across nodes: one upstream feed per room read here
//!   and owned elsewhere, shared by its readers, resuming across moves.
//! - [`trace`]        — W3C trace context across hops.

pub mod node_service;
pub mod peers;
pub mod placement;
pub mod router;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;
pub mod upstream;

pub use router::{ClusterRouter, Placed};

use std::net::IpAddr;

use async_trait::async_trait;
use huddle_core::{
    CreateRoom, Created, HistoryPage, MemberId, Page, PasswordProof, RoomError, RoomId,
};
/// Calls and their answers, re-exported so callers need not know `huddle-rooms`.
pub use huddle_rooms::call;
use huddle_rooms::call::Ask;
/// What [`Router::subscribe`] takes and returns, re-exported so gateways need not know
/// `huddle-rooms`.
pub use huddle_rooms::{CatchUp, MessageStream, OnLag, Subscribe, SubscribeError, Subscribed};
use huddle_rooms::{RoomCall, RoomDirectory};
use huddle_store::{NamedRoom, RoomPage};

/// The seam between the protocols and the rooms. What depends on where a room lives —
/// its operations and its feeds — each router answers its own way; the rest is answered
/// by this node's directory on any node (reads of the shared store, creation, the
/// password gate), once, in the provided methods.
#[async_trait]
pub trait Router: Send + Sync + 'static {
    /// This node's rooms, for what any node answers itself (the provided methods). An
    /// operation on a room goes through [`Router::call`] instead, which reaches the
    /// room's owner wherever it lives.
    fn directory(&self) -> &RoomDirectory;

    /// One operation on one room, answered by the room's owner on the call's port
    /// (use [`Router::ask`]).
    async fn call(&self, room: RoomId, call: RoomCall);

    /// Messages visible to the reader's agent with `seq > after` (default: from now on),
    /// log first then live, in one call the room answers once: `RoomNotFound` for an
    /// unknown room whatever the token, `RoomError::Missing` without a token, else the
    /// token's verdict. `on_lag`: whether a reader that falls behind ends its stream or
    /// resumes from the last seq delivered (see `huddle_rooms::feed`).
    async fn subscribe(&self, req: Subscribe) -> Result<Subscribed, RoomError>;

    /// `room.create`: the room starts on this node.
    async fn create(&self, req: CreateRoom) -> Result<Created, RoomError> {
        self.directory().create(req).await
    }

    /// A page of `room`'s history for `viewer`, a member the room has authorised: a
    /// read of the store, which every node reaches.
    async fn history(
        &self,
        room: RoomId,
        viewer: MemberId,
        page: Page,
    ) -> Result<HistoryPage, RoomError> {
        self.directory().history(room, viewer, page).await
    }

    /// Every room with this (lower-cased) name.
    async fn rooms_named(&self, name: &str) -> Result<Vec<NamedRoom>, RoomError> {
        self.directory().rooms_named(name).await
    }

    /// Which of `rooms` (protected rooms: id and password hash) `password` opens, and the
    /// proof to send that room. Checked by this node's password gate, off the room
    /// actors: bounded hashing, failed attempts throttled per `client` address and per
    /// room. `None`: a wrong password (counted as a failed attempt).
    async fn check_password(
        &self,
        client: Option<IpAddr>,
        password: &str,
        rooms: &[(RoomId, String)],
    ) -> Result<Option<(RoomId, PasswordProof)>, RoomError> {
        let gate = self.directory().passwords();
        gate.open(client, password, rooms).await
    }

    /// The public listing (password-less rooms only).
    async fn list(&self, search: Option<&str>, page: Page) -> Result<RoomPage, RoomError> {
        self.directory().list(search, page).await
    }
}

impl dyn Router {
    /// Runs `op` on `room` and waits for its typed answer.
    pub async fn ask<O: Ask>(&self, room: RoomId, op: O) -> Result<O::Answer, RoomError> {
        let (call, answer) = call::call(op);
        self.call(room, call).await;
        answer.await
    }
}

/// Every room lives on this node.
#[derive(Clone)]
pub struct LocalRouter {
    directory: RoomDirectory,
}

impl LocalRouter {
    pub fn new(directory: RoomDirectory) -> Self {
        Self { directory }
    }
}

#[async_trait]
impl Router for LocalRouter {
    fn directory(&self) -> &RoomDirectory {
        &self.directory
    }

    async fn call(&self, room: RoomId, call: RoomCall) {
        self.directory.dispatch(room, call).await
    }

    async fn subscribe(&self, req: Subscribe) -> Result<Subscribed, RoomError> {
        self.directory.subscribe(req).await
    }
}
