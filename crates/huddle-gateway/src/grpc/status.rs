//! Errors as gRPC statuses: the code tells the kind, the message is the contract's text
//! (docs/protocol.md, sections 'Actions' and 'gRPC', verbatim), and the metadata
//! `huddle-retry-safe` tells whether the same request may be sent again without risk of
//! applying it twice.
//!
//! One exhaustive `match` per error type and no `_` arm: a new [`RoomError`] variant does
//! not compile until gRPC has decided what it means.

use huddle_cluster::SubscribeError;
use huddle_core::RoomError;
use tonic::{Code, Status};

/// Metadata key of the retry hint on every error status.
pub const RETRY_SAFE: &str = "huddle-retry-safe";

/// The code of `e` and whether a retry is safe. Every refusal is decided before anything
/// is written (the room validates, then commits), so a retry of a refused request cannot
/// double-apply it; only `Unavailable` may hide a write that happened.
pub fn classify(e: &RoomError) -> (Code, bool) {
    match e {
        // `agentToken required` is a missing credential; any other missing parameter is
        // a bad request.
        RoomError::Missing(params) if params.iter().any(|p| p == "agentToken") => {
            (Code::Unauthenticated, true)
        }
        RoomError::Missing(_) => (Code::InvalidArgument, true),
        RoomError::ReservedName(_) => (Code::InvalidArgument, true),
        RoomError::ProtectedRoomExists(_) => (Code::AlreadyExists, true),
        RoomError::RoomExists(_) => (Code::AlreadyExists, true),
        RoomError::RoomExistsWithPassword(_) => (Code::AlreadyExists, true),
        RoomError::RoomNotFound(_) => (Code::NotFound, true),
        // The room's password is a key to the resource, not the caller's identity.
        RoomError::InvalidPassword => (Code::PermissionDenied, true),
        RoomError::NameTaken(_) => (Code::AlreadyExists, true),
        RoomError::InvalidToken => (Code::Unauthenticated, true),
        RoomError::TokenNotInRoom => (Code::PermissionDenied, true),
        RoomError::AdminRequired => (Code::PermissionDenied, true),
        RoomError::AgentNotFound(_) => (Code::NotFound, true),
        // Depends on the room's state (another admin may be promoted first).
        RoomError::LastAdmin => (Code::FailedPrecondition, true),
        // Never valid, whatever the state.
        RoomError::KickSelf => (Code::InvalidArgument, true),
        RoomError::NothingToUpdate => (Code::InvalidArgument, true),
        RoomError::ChannelAdminsOnly => (Code::PermissionDenied, true),
        RoomError::InvalidEndpoint => (Code::InvalidArgument, true),
        RoomError::EndpointScheme => (Code::InvalidArgument, true),
        RoomError::EndpointLocalhost => (Code::InvalidArgument, true),
        RoomError::EndpointPrivate => (Code::InvalidArgument, true),
        RoomError::TooLong { .. } => (Code::InvalidArgument, true),
        RoomError::Invalid(_) => (Code::InvalidArgument, true),
        // The key names a message already in the room, with another text.
        RoomError::MessageIdReused => (Code::AlreadyExists, true),
        // Admission control refused it before it reached the room: nothing was applied.
        RoomError::Busy(_) => (Code::ResourceExhausted, true),
        RoomError::TooManyStreams(_) => (Code::ResourceExhausted, true),
        // The store or the actor failed mid-way: the command may have been applied.
        RoomError::Unavailable(_) => (Code::Unavailable, false),
        // Refused before any password was checked: nothing happened.
        RoomError::PasswordAttempts { .. } => (Code::ResourceExhausted, true),
        RoomError::PasswordChecksBusy(_) => (Code::ResourceExhausted, true),
        // A name's room count does not shrink by retrying.
        RoomError::TooManyRoomsNamed { .. } => (Code::ResourceExhausted, true),
        // Until somebody leaves or is kicked.
        RoomError::RoomFull(_) => (Code::ResourceExhausted, true),
    }
}

/// Metadata key of the seconds after which a refused request may succeed (the HTTP
/// `Retry-After` of gRPC), on refusals that know it.
pub const RETRY_AFTER: &str = "retry-after";

/// `e` as a status carrying the contract's text.
pub fn to_status(e: &RoomError) -> Status {
    let (code, retry_safe) = classify(e);
    let mut status = with_retry_hint(Status::new(code, e.to_string()), retry_safe);
    if let Some(secs) = e.retry_after_secs() {
        status
            .metadata_mut()
            .insert(RETRY_AFTER, tonic::metadata::MetadataValue::from(secs));
    }
    status
}

/// How a `Subscribe` stream that cannot go on ends. `None`: it ends normally (the agent
/// left or was kicked, so there is nothing more it may see).
pub fn stream_end(e: &SubscribeError) -> Option<Status> {
    let status = match e {
        // The subscriber read too slowly; it resumes from the last seq it received.
        SubscribeError::Lagged(seq) => Status::resource_exhausted(format!(
            "Subscriber fell too far behind after seq {seq}; subscribe again with from_seq {seq}"
        )),
        SubscribeError::Removed => return None,
        SubscribeError::Closed => Status::unavailable("Room closed; subscribe again to resume"),
        SubscribeError::Store(detail) => {
            Status::unavailable(format!("Service unavailable: {detail}"))
        }
        // Only a resuming stream asks again, and Subscribe ends on lag instead; the
        // refusal's own status if it ever happens.
        SubscribeError::Resume(refused) => return Some(to_status(refused)),
    };
    // Resuming reads only: always safe.
    Some(with_retry_hint(status, true))
}

/// How a `Subscribe` stream ends when the node shuts down: UNAVAILABLE, so that the
/// client subscribes again, on another node, from the last seq it received.
pub fn shutting_down() -> Status {
    with_retry_hint(
        Status::unavailable("Server shutting down; subscribe again to resume"),
        true,
    )
}

fn with_retry_hint(mut status: Status, retry_safe: bool) -> Status {
    let value = if retry_safe { "true" } else { "false" };
    status.metadata_mut().insert(
        RETRY_SAFE,
        tonic::metadata::MetadataValue::from_static(value),
    );
    status
}

#[cfg(test)]
mod tests {
    use huddle_core::Seq;

    use super::*;

    #[test]
    fn codes_follow_the_kind_and_messages_are_the_contracts_text() {
        let cases = [
            (RoomError::missing(&["agentName"]), Code::InvalidArgument),
            (RoomError::missing(&["agentToken"]), Code::Unauthenticated),
            (RoomError::RoomNotFound("x".into()), Code::NotFound),
            (RoomError::RoomExists("x".into()), Code::AlreadyExists),
            (RoomError::InvalidToken, Code::Unauthenticated),
            (RoomError::AdminRequired, Code::PermissionDenied),
            (RoomError::LastAdmin, Code::FailedPrecondition),
            (RoomError::Busy(4), Code::ResourceExhausted),
            (RoomError::Unavailable("disk".into()), Code::Unavailable),
        ];
        for (e, code) in cases {
            let s = to_status(&e);
            assert_eq!(s.code(), code, "{e}");
            assert_eq!(s.message(), e.to_string());
        }
    }

    #[test]
    fn only_an_unavailable_store_makes_a_retry_unsafe() {
        let hint = |e: RoomError| {
            to_status(&e)
                .metadata()
                .get(RETRY_SAFE)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(hint(RoomError::Busy(1)).as_deref(), Some("true"));
        assert_eq!(
            hint(RoomError::Unavailable("x".into())).as_deref(),
            Some("false")
        );
    }

    #[test]
    fn a_password_throttle_tells_when_to_retry() {
        let e = RoomError::PasswordAttempts {
            scope: huddle_core::AttemptScope::Room,
            limit: 60,
            retry_after_secs: 2,
        };
        let s = to_status(&e);
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(s.message(), e.to_string());
        assert_eq!(s.metadata().get(RETRY_AFTER).unwrap(), "2");
    }

    #[test]
    fn a_lagging_subscriber_is_told_where_to_resume() {
        let s = stream_end(&SubscribeError::Lagged(Seq::new(41))).unwrap();
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert!(s.message().contains("from_seq 41"), "{}", s.message());
        assert!(stream_end(&SubscribeError::Removed).is_none());
    }

    #[test]
    fn a_shutdown_tells_the_subscriber_to_resume_elsewhere() {
        let s = shutting_down();
        assert_eq!(s.code(), Code::Unavailable);
        assert!(s.message().contains("shutting down"), "{}", s.message());
        assert_eq!(s.metadata().get(RETRY_SAFE).unwrap(), "true");
    }
}
