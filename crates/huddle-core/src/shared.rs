//! A message as the node hands it out once it is in a room's log: one allocation shared
//! by the room's log tail, every answer that lists it (missed, unread) and every stream
//! that carries it, and rendered to its wire JSON at most once for all of them.
//!
//! With many agents in a room each message is read many times: a busy room's sends each
//! carry the dozen messages their sender missed, and every stream of the room delivers
//! it. Rendering per reader made the same JSON over and over (docs/architecture.md,
//! section 'Render once per message').

use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::model::Message;

/// A shared, immutable [`Message`] with its renderings made by its first reader. Cloning
/// it is a reference count.
#[derive(Clone, Debug)]
pub struct SharedMessage(Arc<Rendered>);

#[derive(Debug)]
struct Rendered {
    message: Message,
    /// The wire shape ([`Message::wire`]), compact JSON.
    json: OnceLock<Box<RawValue>>,
    /// One adapter's own rendering (an MCP notification).
    note: OnceLock<Box<str>>,
}

impl SharedMessage {
    pub fn new(message: Message) -> Self {
        Self(Arc::new(Rendered {
            message,
            json: OnceLock::new(),
            note: OnceLock::new(),
        }))
    }

    /// Whether `a` and `b` are the one shared message (not two equal copies).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    pub fn message(&self) -> &Message {
        &self.0.message
    }

    /// The message's wire JSON (`{body, from, id, roomId, seq, timestamp, to?}`, compact,
    /// one line), computed once.
    pub fn json(&self) -> &str {
        self.raw_json().get()
    }

    /// [`Self::json`] as a value a `serde_json` serializer writes as it is (the list of
    /// missed messages in an answer splices it in instead of rendering the message again).
    pub fn raw_json(&self) -> &RawValue {
        self.0.json.get_or_init(|| {
            serde_json::value::to_raw_value(&self.0.message.wire())
                .expect("a message is plain JSON")
        })
    }

    /// The message as rendered by `render` the first time this is called; later calls get
    /// that text whatever their `render`. One adapter uses it (MCP notifications).
    pub fn note(&self, render: impl FnOnce(&Message) -> String) -> &str {
        self.0.note.get_or_init(|| render(&self.0.message).into())
    }
}

impl From<Message> for SharedMessage {
    fn from(message: Message) -> Self {
        Self::new(message)
    }
}

impl Deref for SharedMessage {
    type Target = Message;

    fn deref(&self) -> &Message {
        &self.0.message
    }
}

/// Equal when the messages are (renderings are derived from them).
impl PartialEq for SharedMessage {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.message == other.0.message
    }
}

impl Eq for SharedMessage {}

/// As the message itself: the renderings are not data.
impl Serialize for SharedMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.message.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Message::deserialize(d).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{MemberId, RoomId, Seq};
    use crate::time::Timestamp;

    fn message() -> Message {
        Message {
            seq: Seq::new(3),
            id: "m-3".into(),
            room_id: RoomId::new_random(),
            from: "alice".into(),
            from_member: MemberId::new(1),
            to: None,
            to_member: None,
            body: "a \"quoted\"\nline".into(),
            timestamp: Timestamp(1_700_000_000_000),
            key: Some("k".into()),
        }
    }

    /// The cached rendering is the wire shape's own bytes, and a list that splices it in
    /// reads the same as one that renders each message.
    #[test]
    fn the_shared_rendering_is_the_wire_shape() {
        let m = message();
        let shared = SharedMessage::new(m.clone());
        assert_eq!(shared.json(), serde_json::to_string(&m.wire()).unwrap());
        let spliced = serde_json::to_string(&[shared.raw_json(), shared.raw_json()]).unwrap();
        let rendered = serde_json::to_string(&[m.wire(), m.wire()]).unwrap();
        assert_eq!(spliced, rendered);
    }

    /// Between nodes a shared message travels as the message it is, key included.
    #[test]
    fn it_serializes_as_its_message() {
        let m = message();
        let shared = SharedMessage::new(m.clone());
        let json = serde_json::to_string(&shared).unwrap();
        assert_eq!(json, serde_json::to_string(&m).unwrap());
        let back: SharedMessage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, shared);
        assert_eq!(back.key.as_deref(), Some("k"));
    }
}
