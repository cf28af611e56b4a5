//! What both SQL backends store the same way: roles and room types as text, and the
//! `LIKE` pattern of a listing search.

use huddle_core::{MemberId, Role, RoomType, Seq};

/// A stored `seq` column as the seq it was written from.
pub(crate) fn seq_from(n: i64) -> Seq {
    Seq::new(n as u64)
}

/// A stored member column as the member id it was written from.
pub(crate) fn member_from(n: i64) -> MemberId {
    MemberId::new(n as u64)
}

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
