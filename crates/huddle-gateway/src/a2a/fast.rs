//! The common `POST /a2a` body, a `SendMessage` that names an action, read in one pass
//! without building a tree of values: the envelope's objects are read key by key into
//! what the action needs, `metadata` into a list of its entries (a few keys, found by a
//! scan: no map is built), and only the values themselves become values. Reading every
//! body as a tree cost about a tenth of a send's whole work; reading each nesting level
//! again from its raw text cost a fifth of what was left.
//!
//! It decides exactly as the general path does, or not at all. Whatever it cannot read
//! the same way it leaves to the general path, which decides every body:
//! - a body that is not a JSON object, or a `params`, `message`, `metadata` or part that
//!   is not one;
//! - a key written with escapes, or a key repeated in one object;
//! - an object with more than [`MAX_KEYS`] keys (finding a repeated key by a scan is
//!   quadratic: a megabyte of short keys would hold a worker for many seconds);
//! - a `parts` that is not an array;
//! - a body with more than [`MAX_OPENINGS`] brackets (the general path has a nesting limit);
//! - a value it does not use that is not valid for the general path either (a number out
//!   of range, a lone surrogate escape): every value is read as the general path reads
//!   it, the unused ones too;
//! - a request that is not a `SendMessage` naming an action.
//!
//! The fuzz target over `POST /a2a` bodies checks that both paths agree on every body
//! this one reads.

use std::fmt;

use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{Metadata, SendMessage, action_of};
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
    let request: Request = serde_json::from_slice(body).ok()?;
    if request.jsonrpc?.as_str()? != "2.0" || request.method?.as_str()? != "SendMessage" {
        return None;
    }
    let message = request.params?.message?;
    let metadata = message.metadata.unwrap_or_default();
    let string = |v: Option<Value>| match v {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let (action, params) = action_of(SendMessage {
        text: message.text,
        context: string(message.context),
        message_id: string(message.message_id),
        metadata,
    })
    .ok()?;
    Some((request.id.unwrap_or(Value::Null), action, params))
}

/// Objects with more keys than this go to the general path (a map): far over what any
/// object of a send has (under 15).
const MAX_KEYS: usize = 64;

/// The keys met in one object so far: a repeated one, or one past [`MAX_KEYS`], sends the
/// body to the general path.
#[derive(Default)]
struct Seen<'de>(Vec<&'de str>);

impl<'de> Seen<'de> {
    /// Where `key` was met, in order.
    fn position(&self, key: &str) -> Option<usize> {
        self.0.iter().position(|k| *k == key)
    }

    fn first<E: Error>(&mut self, key: &'de str) -> Result<(), E> {
        if self.0.len() == MAX_KEYS {
            return Err(E::custom("more keys than the fast path reads"));
        }
        if self.0.contains(&key) {
            return Err(E::custom("a repeated key"));
        }
        self.0.push(key);
        Ok(())
    }
}

/// An object of the envelope, read key by key into its fields.
trait Fields<'de>: Default {
    /// For errors: what the value should have been.
    const WHAT: &'static str;

    /// Reads the value of `key` if the type uses it, and says whether it did.
    fn field<M: MapAccess<'de>>(&mut self, key: &'de str, map: &mut M) -> Result<bool, M::Error>;

    /// Reads every entry: a key used here into its field, any other key's value as a
    /// value (so it is checked as the general path checks it). A repeated key fails.
    fn read<M: MapAccess<'de>>(mut map: M) -> Result<Self, M::Error> {
        let mut fields = Self::default();
        let mut seen = Seen::default();
        while let Some(key) = map.next_key::<&'de str>()? {
            seen.first(key)?;
            if !fields.field(key, &mut map)? {
                map.next_value::<Value>()?;
            }
        }
        Ok(fields)
    }
}

/// `Deserialize` for [`Fields`] types: from a JSON object only (anything else fails the
/// read).
macro_rules! from_object {
    ($($ty:tt)+) => {
        impl<'de> Deserialize<'de> for $($ty)+ {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Of;
                impl<'de> Visitor<'de> for Of {
                    type Value = $($ty)+;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(<$($ty)+ as Fields<'de>>::WHAT)
                    }

                    fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<$($ty)+, M::Error> {
                        <$($ty)+>::read(map)
                    }
                }
                d.deserialize_map(Of)
            }
        }
    };
}

/// The JSON-RPC envelope.
#[derive(Default)]
struct Request<'de> {
    jsonrpc: Option<Value>,
    method: Option<Value>,
    id: Option<Value>,
    params: Option<RequestParams<'de>>,
}

impl<'de> Fields<'de> for Request<'de> {
    const WHAT: &'static str = "a JSON-RPC request object";

    fn field<M: MapAccess<'de>>(&mut self, key: &'de str, map: &mut M) -> Result<bool, M::Error> {
        match key {
            "jsonrpc" => self.jsonrpc = Some(map.next_value()?),
            "method" => self.method = Some(map.next_value()?),
            "id" => self.id = Some(map.next_value()?),
            "params" => self.params = Some(map.next_value()?),
            _ => return Ok(false),
        }
        Ok(true)
    }
}
from_object!(Request<'de>);

/// `params`: `SendMessage` has one, `message`.
#[derive(Default)]
struct RequestParams<'de> {
    message: Option<Message<'de>>,
}

impl<'de> Fields<'de> for RequestParams<'de> {
    const WHAT: &'static str = "params as an object";

    fn field<M: MapAccess<'de>>(&mut self, key: &'de str, map: &mut M) -> Result<bool, M::Error> {
        if key != "message" {
            return Ok(false);
        }
        self.message = Some(map.next_value()?);
        Ok(true)
    }
}
from_object!(RequestParams<'de>);

/// `params.message`, with the first part's text.
#[derive(Default)]
struct Message<'de> {
    text: Option<String>,
    context: Option<Value>,
    message_id: Option<Value>,
    metadata: Option<Entries<'de>>,
}

impl<'de> Fields<'de> for Message<'de> {
    const WHAT: &'static str = "a message object";

    fn field<M: MapAccess<'de>>(&mut self, key: &'de str, map: &mut M) -> Result<bool, M::Error> {
        match key {
            "parts" => self.text = map.next_value::<Parts>()?.0,
            "contextId" => self.context = Some(map.next_value()?),
            "messageId" => self.message_id = Some(map.next_value()?),
            "metadata" => self.metadata = Some(map.next_value()?),
            _ => return Ok(false),
        }
        Ok(true)
    }
}
from_object!(Message<'de>);

/// `metadata`: its keys as met (a repeated one sends the body to the general path, whose
/// map keeps the last one) and their values in the same order.
#[derive(Default)]
struct Entries<'de> {
    keys: Seen<'de>,
    values: Vec<Value>,
}

impl Metadata for Entries<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.keys.position(key).map(|i| &self.values[i])
    }
}

impl<'de> Deserialize<'de> for Entries<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Of;
        impl<'de> Visitor<'de> for Of {
            type Value = Entries<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("metadata as an object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Entries<'de>, M::Error> {
                let mut entries = Entries::default();
                while let Some(key) = map.next_key::<&'de str>()? {
                    entries.keys.first(key)?;
                    entries.values.push(map.next_value()?);
                }
                Ok(entries)
            }
        }
        d.deserialize_map(Of)
    }
}

/// `parts`, an array: the text of the first part that has one, as the general path finds
/// it. Every part is read (so a bad one is refused as the general path would).
struct Parts(Option<String>);

impl<'de> Deserialize<'de> for Parts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Of;
        impl<'de> Visitor<'de> for Of {
            type Value = Parts;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("parts as an array")
            }

            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Parts, S::Error> {
                let mut text = None;
                while let Some(part) = seq.next_element::<Part>()? {
                    text = text.or(part.0);
                }
                Ok(Parts(text))
            }
        }
        d.deserialize_seq(Of)
    }
}

/// One part, read as any JSON value: its `text` when it is an object with a string
/// there; a part that is not an object has none (and is read as a value).
struct Part(Option<String>);

#[derive(Default)]
struct PartFields(Option<String>);

impl<'de> Fields<'de> for PartFields {
    const WHAT: &'static str = "a part object";

    fn field<M: MapAccess<'de>>(&mut self, key: &'de str, map: &mut M) -> Result<bool, M::Error> {
        if key != "text" {
            return Ok(false);
        }
        if let Value::String(s) = map.next_value()? {
            self.0 = Some(s);
        }
        Ok(true)
    }
}

impl<'de> Deserialize<'de> for Part {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Part;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a part")
            }

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Part, M::Error> {
                Ok(Part(PartFields::read(map)?.0))
            }

            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Part, S::Error> {
                while seq.next_element::<Value>()?.is_some() {}
                Ok(Part(None))
            }

            fn visit_bool<E: Error>(self, _: bool) -> Result<Part, E> {
                Ok(Part(None))
            }

            fn visit_i64<E: Error>(self, _: i64) -> Result<Part, E> {
                Ok(Part(None))
            }

            fn visit_u64<E: Error>(self, _: u64) -> Result<Part, E> {
                Ok(Part(None))
            }

            fn visit_f64<E: Error>(self, _: f64) -> Result<Part, E> {
                Ok(Part(None))
            }

            fn visit_str<E: Error>(self, _: &str) -> Result<Part, E> {
                Ok(Part(None))
            }

            fn visit_unit<E: Error>(self) -> Result<Part, E> {
                Ok(Part(None))
            }
        }
        d.deserialize_any(Any)
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
            r#"{"jsonrpc":"2.0","id":2,"method":"SendMessage","params":{"message":{"parts":[{"text":"x"}],"metadata":{"action":"message.history","roomId":7,"agentToken":["t"],"limit":" 12 ","offset":"x","extra":{"deep":[1,2]}}}}}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"SendMessage","params":{"message":{"parts":[{"text":"x"}],"contextId":"r","metadata":{"agentToken":"t","action":null}}}}"#,
        ];
        for body in bodies {
            let (fast, general) = decisions(body);
            assert_eq!(fast.as_deref(), Some(general.as_str()), "{body}");
        }
    }

    /// An object of as many keys as this path reads is read here, and decided alike.
    #[test]
    fn objects_up_to_the_key_limit_are_read_here() {
        let extra: String = (1..MAX_KEYS).map(|i| format!(r#","k{i}":"v""#)).collect();
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{{"message":{{"parts":[{{"text":"hi"}}],"metadata":{{"action":"message.send"{extra}}}}}}}}}"#
        );
        let (fast, general) = decisions(&body);
        assert_eq!(fast.as_deref(), Some(general.as_str()));
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
        let many = |n: usize| (0..n).map(|i| format!(r#","k{i}":0"#)).collect::<String>();
        let with_metadata = |m: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{{"message":{{"parts":[{{"text":"hi"}}],"metadata":{m}}}}}}}"#
            )
        };
        let bodies = [
            send(r#","big":1e999"#),
            send(r#","s":"\ud800""#),
            send(r#","\u0070arts":[{"text":"other"}]"#),
            send(r#","parts":[{"text":"again"}]"#),
            send(&deep),
            send(&many(MAX_KEYS)),
            with_metadata(&format!(r#"{{"action":"message.send"{}}}"#, many(MAX_KEYS))),
            with_metadata(r#"{"action":"room.list","action":"help"}"#),
            with_metadata(r#""message.send""#),
            with_metadata("null"),
            r#"["2.0","SendMessage",1,{"message":{}}]"#.to_string(),
            r#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"parts":[["hi"]],"metadata":{"action":"nope"}}}}"#.to_string(),
        ];
        for body in &bodies {
            let (fast, general) = decisions(body);
            assert_eq!(fast, None, "{body} (general path: {general})");
        }
    }
}
