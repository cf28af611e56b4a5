//! Routing room operations to the room's owner.
//!
//! Protocols talk to rooms only through the [`Router`] trait. Today it has one
//! implementation, [`LocalRouter`] (one node, every room local, `Placement::Local` in the
//! architecture's terms). The cluster implementation (Redis leases, rendezvous hashing,
//! the internal node gRPC service) implements the same trait, so gateways do not change.
//!
//! Layout:
//! - [`Router`] and [`LocalRouter`] (this file).
//! - [`resolve`] — room references as clients give them (`id`, `name`, `name:password`)
//!   turned into a room, trying same-name rooms by password (B.3).

pub mod resolve;

use async_trait::async_trait;
use huddle_core::{
    AgentToken, CreateRoom, Created, MemberId, RoomError, RoomId, RoomRequest, RoomResponse, Seq,
};
use huddle_rooms::RoomDirectory;
/// What [`Router::subscribe`] returns, re-exported so gateways need not know `huddle-rooms`.
pub use huddle_rooms::{MessageStream, SubscribeError};
use huddle_store::{NamedRoom, RoomPage};

#[async_trait]
pub trait Router: Send + Sync + 'static {
    /// `room.create`.
    async fn create(&self, req: CreateRoom) -> Result<Created, RoomError>;

    /// One operation on one room, answered by the room's owner.
    async fn call(&self, room: RoomId, req: RoomRequest) -> Result<RoomResponse, RoomError>;

    /// Every room with this (lower-cased) name.
    async fn rooms_named(&self, name: &str) -> Result<Vec<NamedRoom>, RoomError>;

    /// The public listing (password-less rooms only).
    async fn list(
        &self,
        search: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<RoomPage, RoomError>;

    /// Messages visible to the token's agent with `seq > after` (default: from now on),
    /// log first then live. Returns the stream and the subscriber's member id.
    async fn subscribe(
        &self,
        room: RoomId,
        token: AgentToken,
        after: Option<Seq>,
    ) -> Result<(MessageStream, MemberId), RoomError>;
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

    pub fn directory(&self) -> &RoomDirectory {
        &self.directory
    }
}

#[async_trait]
impl Router for LocalRouter {
    async fn create(&self, req: CreateRoom) -> Result<Created, RoomError> {
        self.directory.create(req).await
    }

    async fn call(&self, room: RoomId, req: RoomRequest) -> Result<RoomResponse, RoomError> {
        self.directory.call(room, req).await
    }

    async fn rooms_named(&self, name: &str) -> Result<Vec<NamedRoom>, RoomError> {
        self.directory.rooms_named(name).await
    }

    async fn list(
        &self,
        search: Option<&str>,
        limit: usize,
        offset: usize,
    ) -> Result<RoomPage, RoomError> {
        self.directory.list(search, limit, offset).await
    }

    async fn subscribe(
        &self,
        room: RoomId,
        token: AgentToken,
        after: Option<Seq>,
    ) -> Result<(MessageStream, MemberId), RoomError> {
        self.directory.subscribe(room, token, after).await
    }
}
