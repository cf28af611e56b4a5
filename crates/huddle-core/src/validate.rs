//! Input validation shared by every protocol (docs/protocol.md, sections 'Name and
//! value errors' and 'Limits').

use crate::error::RoomError;
use crate::limits::Limits;
use crate::model::{ROOM_BOT, RoomType};
use crate::name;

/// Room names a client may not take: join.cloud's reserved words plus the first path
/// segment of every route Huddle serves, so `GET /{name}` can never shadow a route.
pub const RESERVED_NAMES: &[&str] = &[
    "a2a",
    "mcp",
    "docs",
    "api",
    "rooms",
    "healthz",
    "readyz",
    "metrics",
    "css",
    "js",
    "favicon.svg",
    "favicon.ico",
    ".well-known",
    "grpc",
    "static",
];

fn check_name(kind: &str, name: &str, limits: &Limits) -> Result<(), RoomError> {
    if name.trim().is_empty() {
        return Err(RoomError::Invalid(format!("{kind} must not be empty")));
    }
    if name.chars().any(char::is_control) {
        return Err(RoomError::Invalid(format!(
            "{kind} must not contain control characters"
        )));
    }
    if name.chars().any(name::is_format_char) {
        return Err(RoomError::Invalid(format!(
            "{kind} must not contain invisible formatting characters"
        )));
    }
    if name.chars().count() > limits.max_name_chars {
        return Err(RoomError::too_long(
            kind,
            limits.max_name_chars,
            "characters",
        ));
    }
    Ok(())
}

/// Validates and normalises a room name: stored lower-cased.
pub fn room_name(name: &str, limits: &Limits) -> Result<String, RoomError> {
    check_name("Room name", name, limits)?;
    let lower = name.to_lowercase();
    if RESERVED_NAMES.contains(&lower.as_str()) {
        return Err(RoomError::ReservedName(lower));
    }
    if lower.contains('/') || lower.contains(':') {
        return Err(RoomError::Invalid(
            "Room name must not contain '/' or ':'".into(),
        ));
    }
    Ok(lower)
}

/// Checks an agent name. Names that merely look like `room-bot` ([`name::same`]) are
/// refused too, or anyone could post what reads as a server notice.
pub fn agent_name(name: &str, limits: &Limits) -> Result<(), RoomError> {
    check_name("Agent name", name, limits)?;
    if name::fold(name).is_empty() {
        // Only invisible characters that are not format characters (e.g. U+3164).
        return Err(RoomError::Invalid(
            "Agent name must contain a visible character".into(),
        ));
    }
    if name == ROOM_BOT {
        return Err(RoomError::Invalid(format!(
            "Agent name \"{ROOM_BOT}\" is reserved"
        )));
    }
    if name::same(name, ROOM_BOT) {
        return Err(RoomError::Invalid(format!(
            "Agent name \"{name}\" reads as \"{ROOM_BOT}\", which is reserved"
        )));
    }
    Ok(())
}

/// Longest push endpoint URL, in bytes. A real webhook URL fits many times over; the URL
/// is kept with the member and checked again at every delivery.
pub const MAX_ENDPOINT_BYTES: usize = 2048;

/// The size check of a push endpoint URL, made before anything parses it.
pub fn endpoint_length(url: &str) -> Result<(), RoomError> {
    if url.len() > MAX_ENDPOINT_BYTES {
        return Err(RoomError::too_long(
            "Endpoint URL",
            MAX_ENDPOINT_BYTES,
            "bytes",
        ));
    }
    Ok(())
}

pub fn description(text: &str, limits: &Limits) -> Result<(), RoomError> {
    if text.chars().count() > limits.max_description_chars {
        return Err(RoomError::too_long(
            "Description",
            limits.max_description_chars,
            "characters",
        ));
    }
    Ok(())
}

pub fn room_type(text: &str) -> Result<RoomType, RoomError> {
    match text {
        "group" => Ok(RoomType::Group),
        "channel" => Ok(RoomType::Channel),
        other => Err(RoomError::Invalid(format!(
            "Invalid room type \"{other}\": must be \"group\" or \"channel\""
        ))),
    }
}

pub fn message_body(text: &str, limits: &Limits) -> Result<(), RoomError> {
    if text.len() > limits.max_message_bytes {
        return Err(RoomError::too_long(
            "Message text",
            limits.max_message_bytes,
            "bytes",
        ));
    }
    Ok(())
}

/// Longest `messageId` (a send's idempotency key), in bytes: kept with the message.
pub const MAX_MESSAGE_ID_BYTES: usize = 128;

pub fn message_id(key: &str) -> Result<(), RoomError> {
    if key.len() > MAX_MESSAGE_ID_BYTES {
        return Err(RoomError::too_long(
            "messageId",
            MAX_MESSAGE_ID_BYTES,
            "bytes",
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(RoomError::Invalid(
            "messageId must not contain control characters".into(),
        ));
    }
    Ok(())
}

pub fn password(text: &str, limits: &Limits) -> Result<(), RoomError> {
    if text.len() > limits.max_password_bytes {
        return Err(RoomError::too_long(
            "Password",
            limits.max_password_bytes,
            "bytes",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_lowercased_and_checked() {
        let l = Limits::default();
        assert_eq!(room_name("Dev-Team", &l).unwrap(), "dev-team");
        assert_eq!(
            room_name("MCP", &l).unwrap_err().to_string(),
            "Room name \"mcp\" is reserved."
        );
        assert!(room_name("", &l).is_err());
        assert!(room_name("a\nb", &l).is_err());
        let long = "x".repeat(101);
        assert!(
            room_name(&long, &l)
                .unwrap_err()
                .to_string()
                .contains("limit is 100")
        );
    }

    #[test]
    fn room_bot_is_not_an_agent_name() {
        assert!(agent_name(ROOM_BOT, &Limits::default()).is_err());
    }

    #[test]
    fn message_limit_is_named() {
        let l = Limits::default();
        let big = "y".repeat(l.max_message_bytes + 1);
        assert_eq!(
            message_body(&big, &l).unwrap_err().to_string(),
            "Message text is too long: the limit is 65536 bytes"
        );
        assert!(message_body(&"y".repeat(l.max_message_bytes), &l).is_ok());
    }
}
