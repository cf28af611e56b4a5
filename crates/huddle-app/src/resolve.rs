//! Room references as clients write them, and the one place where a room password is
//! checked, whatever the protocol.
//!
//! join.cloud identifies rooms by id, by name, or by `name:password`, and the same name
//! may exist once without a password and once per distinct password. Joins and info
//! requests resolve their reference here:
//! - Without a password, the open room of the name is asked first, then the protected
//!   ones (a member's token opens its own room's info).
//! - With a password, when a protected room of the name exists, the password must open
//!   one of them: the node's password gate ([`Router::check_password`]) checks it
//!   against their hashes — never inside a room actor, with bounded hashing and failed
//!   attempts throttled — and the room it opens gets the proof. A mismatch is `Invalid
//!   room password`, never the open room of the same name: an agent that mistyped its
//!   password must not end up talking in public believing it is private. Only when every
//!   room of the name is open does join.cloud's rule apply: an open room takes any
//!   password.
//! - An id names one room; its password hash comes from the room itself.

use std::net::IpAddr;

use huddle_cluster::Router;
use huddle_cluster::call::Ask;
use huddle_core::{GetLock, Lock, PasswordProof, RoomError, RoomId};

/// Splits a `name:password` context into its parts (the password from metadata wins).
pub fn split_context(context: &str, password: Option<String>) -> (String, Option<String>) {
    match context.split_once(':') {
        Some((name, pw)) => (name.to_string(), password.or_else(|| Some(pw.to_string()))),
        None => (context.to_string(), password),
    }
}

/// What a caller presents to open a room.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// The password given, if any (an empty one is none: no room has it).
    pub password: Option<String>,
    /// Where the request came from: failed password attempts are throttled per address.
    pub client: Option<IpAddr>,
    /// The room of the caller's agent token, which the caller may open without the
    /// password where membership is enough (`room.info`; a join needs the password).
    pub member_of: Option<RoomId>,
}

/// The room `reference` names: an id, or every room of that name, the open one first
/// (a reference with a password goes through the password gate instead).
pub async fn candidates(router: &dyn Router, reference: &str) -> Result<Vec<RoomId>, RoomError> {
    if let Ok(id) = reference.parse::<RoomId>() {
        return Ok(vec![id]);
    }
    let mut rooms = router.rooms_named(&reference.to_lowercase()).await?;
    rooms.sort_by_key(|r| r.password_hash.is_some());
    Ok(rooms.into_iter().map(|r| r.id).collect())
}

/// The room a stream URL names: an id, or the open room of a name (a protected room is
/// only reached by its id). `None`: no such room.
pub async fn streamed_room(router: &dyn Router, reference: &str) -> Option<RoomId> {
    if let Ok(id) = reference.parse::<RoomId>() {
        return Some(id);
    }
    let rooms = router.rooms_named(&reference.to_lowercase()).await.ok()?;
    rooms
        .into_iter()
        .find(|r| r.password_hash.is_none())
        .map(|r| r.id)
}

/// Sends the operation built by `request` (given the password proof, if one is
/// needed) to the room `reference` names, by the rules above.
pub async fn call_by_reference<O: Ask>(
    router: &dyn Router,
    reference: &str,
    access: Access,
    request: impl Fn(Option<PasswordProof>) -> O,
) -> Result<(RoomId, O::Answer), RoomError> {
    let Some(password) = access.password.filter(|p| !p.is_empty()) else {
        let ids = candidates(router, reference).await?;
        return call_in_turn(router, reference, ids, &request).await;
    };
    let rooms = locks(router, reference).await?;
    let protected: Vec<(RoomId, String)> = rooms
        .iter()
        .filter_map(|(id, hash)| hash.clone().map(|h| (*id, h)))
        .collect();
    if protected.is_empty() {
        // Every room of the name is open: it takes any password (join.cloud's rule).
        let ids = rooms.into_iter().map(|(id, _)| id).collect();
        return call_in_turn(router, reference, ids, &request).await;
    }
    if let Some(own) = access
        .member_of
        .filter(|own| protected.iter().any(|(id, _)| id == own))
    {
        match router.ask(own, request(None)).await {
            Ok(response) => return Ok((own, response)),
            Err(RoomError::InvalidPassword | RoomError::RoomNotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    match router
        .check_password(access.client, &password, &protected)
        .await?
    {
        Some((id, proof)) => match router.ask(id, request(Some(proof))).await {
            Ok(response) => Ok((id, response)),
            Err(RoomError::RoomNotFound(_)) => Err(RoomError::RoomNotFound(reference.into())),
            Err(e) => Err(e),
        },
        None => Err(RoomError::InvalidPassword),
    }
}

/// The rooms `reference` names, with their password hashes (`None`: open).
async fn locks(
    router: &dyn Router,
    reference: &str,
) -> Result<Vec<(RoomId, Option<String>)>, RoomError> {
    if let Ok(id) = reference.parse::<RoomId>() {
        return match router.ask(id, GetLock).await {
            Ok(Lock(hash)) => Ok(vec![(id, hash)]),
            Err(RoomError::RoomNotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
        };
    }
    let rooms = router.rooms_named(&reference.to_lowercase()).await?;
    Ok(rooms.into_iter().map(|r| (r.id, r.password_hash)).collect())
}

/// Asks each room in turn without a password proof; the first that answers wins.
async fn call_in_turn<O: Ask>(
    router: &dyn Router,
    reference: &str,
    ids: Vec<RoomId>,
    request: &impl Fn(Option<PasswordProof>) -> O,
) -> Result<(RoomId, O::Answer), RoomError> {
    let mut last = RoomError::RoomNotFound(reference.to_string());
    for id in ids {
        match router.ask(id, request(None)).await {
            Ok(response) => return Ok((id, response)),
            Err(RoomError::InvalidPassword) => last = RoomError::InvalidPassword,
            Err(RoomError::RoomNotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_splits_at_the_first_colon() {
        assert_eq!(
            split_context("dev:pa:ss", None),
            ("dev".into(), Some("pa:ss".into()))
        );
        assert_eq!(
            split_context("dev:x", Some("meta".into())),
            ("dev".into(), Some("meta".into()))
        );
        assert_eq!(split_context("dev", None), ("dev".into(), None));
    }
}
