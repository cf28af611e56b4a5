//! What both SQL backends store the same way: roles and room types as text, and the
//! `LIKE` pattern of a listing search.

use huddle_core::{Role, RoomType};

pub(crate) fn role_from(s: &str) -> Role {
    if s == "admin" {
        Role::Admin
    } else {
        Role::Member
    }
}

pub(crate) fn kind_from(s: &str) -> RoomType {
    if s == "channel" {
        RoomType::Channel
    } else {
        RoomType::Group
    }
}

/// `LIKE` pattern (with `ESCAPE '\'`) for a substring search, lower-cased, with the
/// wildcards in `s` escaped so they match only themselves.
pub(crate) fn like_pattern(s: &str) -> String {
    let escaped = s
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}
