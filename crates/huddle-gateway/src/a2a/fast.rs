//! The common `POST /a2a` body, a `SendMessage` that names an action, read without
//! building a tree of values: each object is read as its keys and their values' raw
//! JSON text, and only what the action needs is decoded into owned values. Reading
//! every body as a tree cost about a tenth of a send's whole work.
//!
//! It decides exactly as the general path does, or not at all. Whatever it cannot read
//! the same way it leaves to the general path, which decides every body:
//! - a body that is not a JSON object, or a `params`, `message` or part that is not one;
//! - a key written with escapes, or a key repeated in one object;
//! - a `parts` that is not an array;
//! - a body with more than [`MAX_OPENINGS`] brackets (the general path has a nesting limit);
//! - a value it would skip that is not valid for the general path either (a number out of
//!   range, a lone surrogate escape): every value is decoded once, the unused ones too;
//! - a request that is not a `SendMessage` naming an action.
//!
//! The fuzz target over `POST /a2a` bodies checks that both paths agree on every body
//! this one reads.

use std::fmt;

use serde::de::{Deserialize, Deserializer, Error, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{SendMessage, action_of};
use crate::ops::{Action, Params};

/// Bodies with more opening brackets than this go to the general path: far under
/// serde_json's nesting limit (128), far over a send's (5).
const MAX_OPENINGS: usize = 64;

/// `SendMessage`'s id, action and parameters; `None`: left to the general path.
pub(crate) fn send_message(body: &[u8]) -> Option<(Value, Action, Params)> {
    let openings = body.iter().filter(|b| matches!(b, b'{' | b'[')).count();
    if openings > MAX_OPENINGS {
        return None;
    }
    let request: Object = serde_json::from_slice(body).ok()?;
    request.check_others(&["jsonrpc", "method", "id", "params"])?;
    if string(request.get("jsonrpc")?)?? != "2.0"
        || string(request.get("method")?)?? != "SendMessage"
    {
        return None;
    }
    let id = match request.get("id") {
        Some(raw) => decode(raw)?,
        None => Value::Null,
    };
    let params: Object = decode(request.get("params")?)?;
    params.check_others(&["message"])?;
    let message: Object = decode(params.get("message")?)?;
    message.check_others(&["parts", "contextId", "messageId", "metadata"])?;
    let text = match message.get("parts") {
        Some(parts) => first_text(decode(parts)?)?,
        None => None,
    };
    let metadata = match message.get("metadata") {
        Some(raw) => decode(raw)?,
        None => Value::Null,
    };
    let optional = |key: &str| message.get(key).map_or(Some(None), string);
    let (action, params) = action_of(SendMessage {
        text,
        context: optional("contextId")?,
        message_id: optional("messageId")?,
        metadata: &metadata,
    })
    .ok()?;
    Some((id, action, params))
}

fn decode<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Option<T> {
    serde_json::from_str(raw.get()).ok()
}

/// `Some(None)` for a value that is not a string (as `Value::as_str`); `None` when it is
/// one the general path would refuse.
fn string(raw: &RawValue) -> Option<Option<String>> {
    if raw.get().starts_with('"') {
        decode(raw).map(Some)
    } else {
        decode::<Value>(raw).map(|_| None)
    }
}

/// The text of the first part that has one, as the general path finds it.
fn first_text(parts: Vec<&RawValue>) -> Option<Option<String>> {
    let mut text = None;
    for part in parts {
        if !part.get().starts_with('{') {
            decode::<Value>(part)?;
            continue;
        }
        let part: Object = decode(part)?;
        part.check_others(&["text"])?;
        // Every part's text is decoded (so a bad one is refused as the general path
        // would); the first string is the one kept.
        if let Some(raw) = part.get("text") {
            let found = string(raw)?;
            text = text.or(found);
        }
    }
    Some(text)
}

/// A JSON object as its keys and their values' raw text, in order.
struct Object<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'a> Object<'a> {
    fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// `Some` when every value but those of `used` (decoded where they are used) is one
    /// the general path accepts.
    fn check_others(&self, used: &[&str]) -> Option<()> {
        for (key, raw) in &self.0 {
            if !used.contains(key) {
                decode::<Value>(raw)?;
            }
        }
        Some(())
    }
}

impl<'de> Deserialize<'de> for Object<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Object<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Object<'de>, M::Error> {
                let mut fields: Vec<(&'de str, &'de RawValue)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<&'de str, &'de RawValue>()? {
                    if fields.iter().any(|(k, _)| *k == key) {
                        return Err(M::Error::custom("a repeated key"));
                    }
                    fields.push((key, value));
                }
                Ok(Object(fields))
            }
        }
        d.deserialize_map(Fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::a2a::{Envelope, general_envelope};

    /// Both paths' decision on `body`, for comparing.
    fn decisions(body: &str) -> (Option<String>, String) {
        let fast = send_message(body.as_bytes()).map(|(id, action, params)| {
            format!(
                "{:?}",
                Envelope::Run {
                    id,
                    action,
                    params: Box::new(params)
                }
            )
        });
        let general = match general_envelope(body.as_bytes()) {
            run @ Envelope::Run { .. } => format!("{run:?}"),
            Envelope::Answer(answer) => format!("answer: {}", answer["error"]),
        };
        (fast, general)
    }

    /// What clients send (the A2A SDKs, join.cloud's clients, the CLI, the bench) takes
    /// this path and decides as the general one.
    #[test]
    fn the_sends_clients_make_are_read_here_and_decided_alike() {
        let bodies = [
            r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"role":"user","parts":[{"kind":"text","text":"hi \"all\" \u00e9"}],"messageId":"m-1","metadata":{"action":"message.send","roomId":"r","agentToken":"t","to":"bob"}}}}"#,
            r#"{"jsonrpc":"2.0","id":"x","method":"SendMessage","params":{"message":{"role":"user","parts":[{"kind":"data"},{"kind":"text","text":"hello"}],"contextId":"r","metadata":{"agentToken":"t"}}}}"#,
            r#" { "method" : "SendMessage", "params": {"message": {"metadata": {"action": "room.list", "limit": 5.0}}}, "jsonrpc": "2.0" } "#,
        ];
        for body in bodies {
            let (fast, general) = decisions(body);
            assert_eq!(fast.as_deref(), Some(general.as_str()), "{body}");
        }
    }

    /// Bodies this path cannot read as the general path does are left to it.
    #[test]
    fn what_it_cannot_read_alike_is_left_to_the_general_path() {
        let send = |extra: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{{"message":{{"parts":[{{"text":"hi"}}],"metadata":{{"action":"message.send"}}{extra}}}}}}}"#
            )
        };
        let deep = format!(r#","x":{}1{}"#, "[".repeat(130), "]".repeat(130));
        let bodies = [
            send(r#","big":1e999"#),
            send(r#","s":"\ud800""#),
            send(r#","\u0070arts":[{"text":"other"}]"#),
            send(r#","parts":[{"text":"again"}]"#),
            send(&deep),
            r#"["2.0","SendMessage",1,{"message":{}}]"#.to_string(),
            r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"parts":[["hi"]],"metadata":{"action":"nope"}}}}"#.to_string(),
        ];
        for body in &bodies {
            let (fast, general) = decisions(body);
            assert_eq!(fast, None, "{body} (general path: {general})");
        }
    }
}
