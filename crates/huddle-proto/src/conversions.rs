//! The one place where prost types meet `huddle-core` types: room data going out, enum
//! values coming in. The core never sees a prost type; gateways convert at their edge
//! through these impls and functions.

use huddle_core::api::AgentView;
use huddle_core::{Created, Message, Missed, Role, RoomSummary, RoomType, RoomView, Timestamp};

use crate::v1 as pb;

impl From<&Message> for pb::Message {
    fn from(m: &Message) -> Self {
        pb::Message {
            seq: m.seq.get(),
            id: m.id.clone(),
            room_id: m.room_id.to_string(),
            from: m.from.clone(),
            to: m.to.clone(),
            body: m.body.clone(),
            timestamp: Some(timestamp(m.timestamp)),
        }
    }
}

/// Milliseconds since the epoch as a protobuf `Timestamp` (nanos always in 0..1e9).
pub fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.0.div_euclid(1000),
        nanos: (t.0.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn messages<'a>(ms: impl IntoIterator<Item = &'a Message>) -> Vec<pb::Message> {
    ms.into_iter().map(pb::Message::from).collect()
}

/// Missed messages as the `(missed_messages, missed_has_more)` pair of join and send.
pub fn missed(m: &Missed) -> (Vec<pb::Message>, bool) {
    (messages(m.messages.iter().map(|m| m.message())), m.has_more)
}

impl From<RoomType> for pb::RoomType {
    fn from(t: RoomType) -> Self {
        match t {
            RoomType::Group => pb::RoomType::Group,
            RoomType::Channel => pb::RoomType::Channel,
        }
    }
}

impl From<Role> for pb::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => pb::Role::Admin,
            Role::Member => pb::Role::Member,
        }
    }
}

/// A wire room type as the core's optional type text: `UNSPECIFIED` is "not given". A
/// value this server does not know is passed on as its number, for the core to refuse
/// with its own validation text.
pub fn room_type_param(value: i32) -> Option<String> {
    match pb::RoomType::try_from(value) {
        Ok(pb::RoomType::Unspecified) => None,
        Ok(pb::RoomType::Group) => Some(RoomType::Group.as_str().to_string()),
        Ok(pb::RoomType::Channel) => Some(RoomType::Channel.as_str().to_string()),
        Err(_) => Some(value.to_string()),
    }
}

impl From<Created> for pb::CreateRoomResponse {
    fn from(c: Created) -> Self {
        pb::CreateRoomResponse {
            room_id: c.room_id.to_string(),
            name: c.name,
            description: c.description,
            r#type: pb::RoomType::from(c.kind).into(),
            password_protected: c.password_protected,
            agent_name: c.agent_name,
            agent_token: c.agent_token.as_str().to_string(),
        }
    }
}

impl From<&AgentView> for pb::Agent {
    fn from(a: &AgentView) -> Self {
        pb::Agent {
            name: a.name.clone(),
            role: pb::Role::from(a.role).into(),
            joined_at: Some(timestamp(a.joined_at)),
        }
    }
}

impl From<RoomView> for pb::GetRoomResponse {
    fn from(v: RoomView) -> Self {
        pb::GetRoomResponse {
            room_id: v.room_id.to_string(),
            agents: v.agents.iter().map(pb::Agent::from).collect(),
            name: v.name,
            description: v.description,
            r#type: pb::RoomType::from(v.kind).into(),
            password_protected: v.password_protected,
            created_at: Some(timestamp(v.created_at)),
            last_seq: v.last_seq.get(),
        }
    }
}

impl From<&RoomSummary> for pb::RoomSummary {
    fn from(r: &RoomSummary) -> Self {
        pb::RoomSummary {
            name: r.name.clone(),
            description: r.description.clone(),
            r#type: pb::RoomType::from(r.kind).into(),
            agents: r.agents,
            created_at: Some(timestamp(r.created_at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use huddle_core::{MemberId, RoomId, Seq};

    use super::*;

    #[test]
    fn timestamps_keep_milliseconds_and_stay_normalised_before_1970() {
        let t = timestamp(Timestamp(1_700_000_000_123));
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_000_000));
        let t = timestamp(Timestamp(-1));
        assert_eq!((t.seconds, t.nanos), (-1, 999_000_000));
    }

    #[test]
    fn a_direct_message_keeps_its_recipient_and_seq() {
        let m = Message {
            seq: Seq::new(7),
            id: "m".into(),
            room_id: RoomId::new_random(),
            from: "a".into(),
            from_member: MemberId::new(1),
            to: Some("b".into()),
            to_member: Some(MemberId::new(2)),
            body: "hi".into(),
            timestamp: Timestamp(5),
            key: None,
        };
        let p = pb::Message::from(&m);
        assert_eq!((p.seq, p.to.as_deref()), (7, Some("b")));
        assert_eq!(p.room_id, m.room_id.to_string());
    }

    #[test]
    fn unspecified_type_is_not_given_and_unknown_values_reach_validation() {
        assert_eq!(room_type_param(0), None);
        assert_eq!(room_type_param(2).as_deref(), Some("channel"));
        assert_eq!(room_type_param(9).as_deref(), Some("9"));
    }
}
