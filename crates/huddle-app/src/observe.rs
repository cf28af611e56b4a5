//! What an answer of the room API means to the node's metrics: every protocol adapter
//! records its requests through [`outcome`], so they all group errors alike and count
//! a limit's refusals under the limit's name.

use huddle_core::RoomError;
use huddle_metrics::Outcome;

/// The outcome of a room operation's result.
pub fn outcome<T>(result: &Result<T, RoomError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(e) => error_outcome(e),
    }
}

/// The outcome of a refusal: a limit (named as in `huddle_limit_refusals_total`), the
/// node unable to serve, or the client's error.
pub fn error_outcome(e: &RoomError) -> Outcome {
    match e {
        RoomError::Busy(_) => Outcome::Refused("requests_in_flight"),
        RoomError::TooManyStreams(_) => Outcome::Refused("streams"),
        RoomError::PasswordAttempts { .. } => Outcome::Refused("password_attempts"),
        RoomError::PasswordChecksBusy(_) => Outcome::Refused("password_checks"),
        RoomError::TooManyRoomsNamed { .. } => Outcome::Refused("rooms_per_name"),
        RoomError::RoomFull(_) => Outcome::Refused("agents_per_room"),
        RoomError::TooLong { .. } => Outcome::Refused("value_length"),
        RoomError::Unavailable(_) => Outcome::Unavailable,
        RoomError::Missing(_)
        | RoomError::ReservedName(_)
        | RoomError::ProtectedRoomExists(_)
        | RoomError::RoomExists(_)
        | RoomError::RoomExistsWithPassword(_)
        | RoomError::RoomNotFound(_)
        | RoomError::InvalidPassword
        | RoomError::NameTaken(_)
        | RoomError::InvalidToken
        | RoomError::TokenNotInRoom
        | RoomError::AdminRequired
        | RoomError::AgentNotFound(_)
        | RoomError::LastAdmin
        | RoomError::KickSelf
        | RoomError::NothingToUpdate
        | RoomError::ChannelAdminsOnly
        | RoomError::InvalidEndpoint
        | RoomError::EndpointScheme
        | RoomError::EndpointLocalhost
        | RoomError::EndpointPrivate
        | RoomError::Invalid(_)
        | RoomError::MessageIdReused => Outcome::Error,
    }
}
