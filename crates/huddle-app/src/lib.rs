//! The typed room API: one async function per operation, each with its own request and
//! answer types. A2A, MCP and gRPC are thin adapters over it (parse → call → render);
//! what every protocol must agree on lives here once:
//!
//! - which room an operation goes to: a token's own room (tokens are self-routing, see
//!   docs/architecture.md, section 'Self-routing tokens'), or a reference as clients
//!   write it (`id`, `name`, `name:password`: [`resolve`]);
//! - what a room that does not exist means to a token holder (`Invalid agentToken`);
//! - page defaults and bounds ([`Page`]).
//!
//! Layout:
//! - [`RoomApi`] (this file) — the operations.
//! - [`resolve`] — room references, and the one place a room password is checked.

pub mod observe;
pub mod resolve;

use std::net::IpAddr;

use huddle_cluster::Router;
use huddle_core::{
    AgentToken, Authorize, CreateRoom, Created, GetInfo, GetUnread, HistoryPage, JoinRoom, Joined,
    LeaveRoom, Missed, ModerateAgent, Moderated, Moderation, Page, RoomError, RoomId, RoomView,
    SendMessage, Sent, UpdateRoom, Updated, Viewer,
};
/// A page of the listing, re-exported so adapters need not know the store.
pub use huddle_store::RoomPage;

pub use resolve::{Access, split_context};

/// Who joins: the name, the token of an earlier join (a reconnect), the push endpoint.
#[derive(Clone, Debug)]
pub struct JoinAs {
    pub agent_name: String,
    pub token: Option<AgentToken>,
    pub endpoint: Option<String>,
}

/// The room operations, over a [`Router`] (a borrowed view: make one where needed).
#[derive(Clone, Copy)]
pub struct RoomApi<'r> {
    router: &'r dyn Router,
}

impl<'r> RoomApi<'r> {
    pub fn new(router: &'r dyn Router) -> Self {
        Self { router }
    }

    fn rooms(&self) -> &'r dyn Router {
        self.router
    }

    /// `room.create`.
    pub async fn create(&self, req: CreateRoom) -> Result<Created, RoomError> {
        self.rooms().create(req).await
    }

    /// `room.join`: the room `reference` names (same-name rooms told apart by password).
    pub async fn join(
        &self,
        reference: &str,
        access: Access,
        who: JoinAs,
    ) -> Result<Joined, RoomError> {
        let (_, joined) =
            resolve::call_by_reference(self.rooms(), reference, access, |proof| JoinRoom {
                agent_name: who.agent_name.clone(),
                proof,
                token: who.token.clone(),
                endpoint: who.endpoint.clone(),
            })
            .await?;
        Ok(joined)
    }

    /// `room.leave`: answers the room left.
    pub async fn leave(&self, token: AgentToken) -> Result<RoomId, RoomError> {
        let room = room_of(&token)?;
        self.on_token_room(room, LeaveRoom { token }).await?;
        Ok(room)
    }

    /// `room.info`: a protected room needs its password or a member's `token`.
    pub async fn info(
        &self,
        reference: &str,
        password: Option<String>,
        client: Option<IpAddr>,
        token: Option<AgentToken>,
    ) -> Result<RoomView, RoomError> {
        let access = Access {
            password,
            client,
            member_of: token.as_ref().and_then(AgentToken::room_id),
        };
        let (_, view) =
            resolve::call_by_reference(self.rooms(), reference, access, |proof| GetInfo {
                proof,
                token: token.clone(),
            })
            .await?;
        Ok(view)
    }

    /// `room.list`: the public listing (open rooms only).
    pub async fn list(&self, search: Option<&str>, page: Page) -> Result<RoomPage, RoomError> {
        let search = search.filter(|s| !s.is_empty());
        self.rooms().list(search, page).await
    }

    /// `room.promote`, `room.demote`, `room.kick`.
    pub async fn moderate(
        &self,
        token: AgentToken,
        target: String,
        action: Moderation,
    ) -> Result<(RoomId, Moderated), RoomError> {
        let room = room_of(&token)?;
        let op = ModerateAgent {
            token,
            target,
            action,
        };
        Ok((room, self.on_token_room(room, op).await?))
    }

    /// `room.update` (the type as the client wrote it: the room checks it after the
    /// caller's role). Nothing to update is said before a missing token.
    pub async fn update(
        &self,
        token: Option<AgentToken>,
        description: Option<String>,
        kind: Option<String>,
    ) -> Result<(RoomId, Updated), RoomError> {
        if description.is_none() && kind.is_none() {
            return Err(RoomError::NothingToUpdate);
        }
        let token = token.ok_or_else(|| RoomError::missing(&["agentToken"]))?;
        let room = room_of(&token)?;
        let op = UpdateRoom {
            token,
            description,
            kind,
        };
        Ok((room, self.on_token_room(room, op).await?))
    }

    /// `message.send`: to everyone, or to the member named `to` only. `key`, the
    /// client's message id, makes a retry safe: the same key again is answered with the
    /// first send's `seq`, and stores nothing new.
    pub async fn send(
        &self,
        token: AgentToken,
        body: String,
        to: Option<String>,
        key: Option<String>,
    ) -> Result<(RoomId, Sent), RoomError> {
        let room = room_of(&token)?;
        let op = SendMessage {
            token,
            body,
            to: to.filter(|t| !t.is_empty()),
            key: key.filter(|k| !k.is_empty()),
        };
        Ok((room, self.on_token_room(room, op).await?))
    }

    /// `message.unread`: what the agent has not seen, a page at a time.
    pub async fn unread(&self, token: AgentToken) -> Result<(RoomId, Missed), RoomError> {
        let room = room_of(&token)?;
        Ok((room, self.on_token_room(room, GetUnread { token }).await?))
    }

    /// `message.history` of the token's room, which `reference` (optional) must name.
    pub async fn history(
        &self,
        token: AgentToken,
        reference: Option<&str>,
        page: Page,
    ) -> Result<(RoomId, HistoryPage), RoomError> {
        let room = self.reading_room(&token, reference).await?;
        let viewer = self.viewer(room, token).await?;
        let page = self.rooms().history(room, viewer.member, page).await;
        Ok((room, for_token(page)?))
    }

    /// The member `token` belongs to in `room`, as a reader.
    pub async fn viewer(&self, room: RoomId, token: AgentToken) -> Result<Viewer, RoomError> {
        self.on_token_room(room, Authorize { token }).await
    }

    /// The room an agent reads (history, gRPC `Subscribe`): its token's room, which
    /// `reference` (an id or a name, optional) must name. Any other reference —
    /// another room's id or name, or one that names no room at all — is
    /// `agentToken does not belong to this room` once the token is known to be valid:
    /// the answer is the same whether that room exists, so a member cannot probe for
    /// room ids or names. An id is compared with the token's room without a lookup.
    pub async fn reading_room(
        &self,
        token: &AgentToken,
        reference: Option<&str>,
    ) -> Result<RoomId, RoomError> {
        let own = room_of(token)?;
        let Some(reference) = reference.map(str::trim).filter(|r| !r.is_empty()) else {
            return Ok(own);
        };
        let named = match reference.parse::<RoomId>() {
            Ok(id) => id == own,
            // A name: does it name the token's room (same-name rooms included)?
            Err(_) => resolve::candidates(self.rooms(), reference)
                .await?
                .contains(&own),
        };
        if named {
            return Ok(own);
        }
        // Is it a token at all? Then it is the wrong room for it.
        self.viewer(own, token.clone()).await?;
        Err(RoomError::TokenNotInRoom)
    }

    /// An operation on the room a token routes to: a room that does not exist means,
    /// to the token's holder, a bad token.
    async fn on_token_room<O: huddle_cluster::call::Ask>(
        &self,
        room: RoomId,
        op: O,
    ) -> Result<O::Answer, RoomError> {
        for_token(self.rooms().ask(room, op).await)
    }
}

/// The room a token routes to; a token that names no room is invalid.
pub fn room_of(token: &AgentToken) -> Result<RoomId, RoomError> {
    token.room_id().ok_or(RoomError::InvalidToken)
}

/// An answer from a token's room: the room not existing means the token is bad.
pub fn for_token<T>(result: Result<T, RoomError>) -> Result<T, RoomError> {
    match result {
        Err(RoomError::RoomNotFound(_)) => Err(RoomError::InvalidToken),
        other => other,
    }
}
