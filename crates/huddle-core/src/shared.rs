//! A message as the node hands it out once it is in a room's log: one allocation shared
//! by the room's log tail, every answer that lists it (missed, unread) and every stream
//! that carries it, and rendered to its wire JSON at most once for all of them.
//!
//! With many agents in a room each message is read many times: a busy room's sends each
//! carry the dozen messages their sender missed, and every stream of the room delivers
//! it. Rendering per reader made the same JSON over and over (docs/architecture.md,
//! section 'Render once per message').

use std::borrow::{Borrow, Cow};
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::model::Message;

/// Renderings longer than this are made again for each use instead of kept. A message's
/// JSON can be six times its body (a control character is written `\u0001`), and a room
/// keeps its last few hundred messages in memory: a kept rendering must stay a small
/// addition to that. Agents' messages are far shorter.
pub const KEEP_RENDERING_BYTES: usize = 16 * 1024;

/// A shared, immutable [`Message`] with its renderings made by its first reader (kept
/// up to [`KEEP_RENDERING_BYTES`]). Cloning it is a reference count.
#[derive(Clone, Debug)]
pub struct SharedMessage(Arc<Rendered>);

#[derive(Debug)]
struct Rendered {
    message: Message,
    /// The wire shape ([`Message::wire`]), compact JSON; `None`: too long to keep.
    json: OnceLock<Option<Box<RawValue>>>,
    /// One adapter's own rendering (an MCP notification); `None`: too long to keep.
    note: OnceLock<Option<String>>,
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

    /// About the memory this message holds: its text fields, the two renderings that may
    /// be kept with it (only while about that size is at most [`KEEP_RENDERING_BYTES`]),
    /// and the allocations around them. What the node's memory budgets count.
    pub fn held_bytes(&self) -> usize {
        const OVERHEAD: usize = 256;
        let m = &self.0.message;
        let text = m.body.len()
            + m.id.len()
            + m.from.len()
            + m.to.as_ref().map_or(0, String::len)
            + m.key.as_ref().map_or(0, String::len);
        let renderings = if text <= KEEP_RENDERING_BYTES {
            2 * text
        } else {
            0
        };
        OVERHEAD + text + renderings
    }

    /// The message's wire JSON (`{body, from, id, roomId, seq, timestamp, to?}`, compact,
    /// one line), computed once (or each time, past [`KEEP_RENDERING_BYTES`]).
    pub fn json(&self) -> Cow<'_, str> {
        match self.raw_json() {
            Cow::Borrowed(raw) => Cow::Borrowed(raw.get()),
            Cow::Owned(raw) => Cow::Owned(raw.get().to_owned()),
        }
    }

    /// [`Self::json`] as a value a `serde_json` serializer writes as it is (the list of
    /// missed messages in an answer splices it in instead of rendering the message again).
    pub fn raw_json(&self) -> Cow<'_, RawValue> {
        kept(
            &self.0.json,
            || {
                serde_json::value::to_raw_value(&self.0.message.wire())
                    .expect("a message is plain JSON")
            },
            |raw: &RawValue| raw.get().len(),
        )
    }

    /// The message as rendered by `render` the first time this is called; later calls get
    /// that text whatever their `render` (past [`KEEP_RENDERING_BYTES`], `render` runs
    /// each time). One adapter uses it (MCP notifications).
    pub fn note(&self, render: impl Fn(&Message) -> String) -> Cow<'_, str> {
        kept(&self.0.note, || render(&self.0.message), str::len)
    }
}

/// The rendering kept in `slot`, made by `render` on first use; one longer than
/// [`KEEP_RENDERING_BYTES`] is not kept, and made again by every later use.
fn kept<'a, T: ?Sized + ToOwned>(
    slot: &'a OnceLock<Option<T::Owned>>,
    render: impl Fn() -> T::Owned,
    len: impl Fn(&T) -> usize,
) -> Cow<'a, T> {
    let mut long = None;
    let kept = slot.get_or_init(|| {
        let made = render();
        if len(made.borrow()) <= KEEP_RENDERING_BYTES {
            return Some(made);
        }
        long = Some(made);
        None
    });
    match kept {
        Some(kept) => Cow::Borrowed(kept.borrow()),
        None => Cow::Owned(long.unwrap_or_else(render)),
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
        assert!(matches!(shared.raw_json(), Cow::Borrowed(_)), "kept");
        let spliced = serde_json::to_string(&[shared.raw_json(), shared.raw_json()]).unwrap();
        let rendered = serde_json::to_string(&[m.wire(), m.wire()]).unwrap();
        assert_eq!(spliced, rendered);
    }

    /// A rendering past the bound is made for each use and never kept: a room's tail of
    /// such messages holds their text once, not their JSON as well.
    #[test]
    fn a_long_rendering_is_not_kept() {
        let mut m = message();
        // Control characters: six bytes of JSON each.
        m.body = "\u{1}".repeat(KEEP_RENDERING_BYTES / 6 + 1);
        let shared = SharedMessage::new(m.clone());
        let json = shared.raw_json();
        assert!(json.get().len() > KEEP_RENDERING_BYTES);
        assert!(matches!(json, Cow::Owned(_)), "not kept");
        assert_eq!(shared.json(), serde_json::to_string(&m.wire()).unwrap());
        assert!(matches!(shared.raw_json(), Cow::Owned(_)), "still not kept");
        assert!(shared.0.json.get().is_some_and(Option::is_none));
        let note = shared.note(|m| "n".repeat(m.body.len() * 6));
        assert!(matches!(note, Cow::Owned(_)));
        assert!(matches!(shared.note(|_| "short".into()), Cow::Owned(ref n) if n == "short"));
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
