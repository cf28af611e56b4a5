//! Room references as clients write them.
//!
//! join.cloud identifies rooms by id, by name, or by `name:password`, and the same name
//! may exist once without a password and once per distinct password. A reference is
//! resolved by asking each candidate room in turn: the password check happens in the
//! room itself (invariant 6), so a candidate that answers `Invalid room password` is
//! skipped and the next one tried. With a password, protected rooms are tried first;
//! without, the open room first.

use huddle_core::{RoomError, RoomId, RoomRequest, RoomResponse};

use crate::Router;

/// Splits a `name:password` context into its parts (the password from metadata wins).
pub fn split_context(context: &str, password: Option<String>) -> (String, Option<String>) {
    match context.split_once(':') {
        Some((name, pw)) => (name.to_string(), password.or_else(|| Some(pw.to_string()))),
        None => (context.to_string(), password),
    }
}

/// The room `reference` names: an id, or every room of that name.
pub async fn candidates(
    router: &dyn Router,
    reference: &str,
    password: Option<&str>,
) -> Result<Vec<RoomId>, RoomError> {
    if let Ok(id) = reference.parse::<RoomId>() {
        return Ok(vec![id]);
    }
    let mut rooms = router.rooms_named(&reference.to_lowercase()).await?;
    // Protected-first when a password is given, open-first otherwise.
    rooms.sort_by_key(|r| r.password_hash.is_some() != password.is_some());
    Ok(rooms.into_iter().map(|r| r.id).collect())
}

/// Sends the request built by `request` to the room `reference` names, trying same-name
/// rooms in turn while they refuse the password.
pub async fn call_by_reference(
    router: &dyn Router,
    reference: &str,
    password: Option<String>,
    request: impl Fn(Option<String>) -> RoomRequest,
) -> Result<(RoomId, RoomResponse), RoomError> {
    let not_found = || RoomError::RoomNotFound(reference.to_string());
    let ids = candidates(router, reference, password.as_deref()).await?;
    let mut last = not_found();
    for id in ids {
        match router.call(id, request(password.clone())).await {
            Ok(r) => return Ok((id, r)),
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
