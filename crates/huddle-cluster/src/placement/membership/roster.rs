//! The one Redis round trip of membership: the Lua script that renews (or only reads)
//! and answers the live nodes, and the bounded decoding of its answer.
//!
//! Why a script: a renewal must stamp its expiry with Redis's own clock (`TIME`), so
//! every node compares expiries against one clock whatever their own clocks say, and one
//! call both renews this node and brings back the view (cost per node per renewal: one
//! round trip, whatever the number of rooms).

use std::sync::Arc;

use redis::{Script, Value};

use super::{ADDR_KEY, MAX_ADDR_LEN, MAX_NODE_ID_LEN, MAX_NODES, NODES_KEY};
use crate::placement::{NodeId, Peer};

/// `KEYS`: the nodes sorted set (member: node id, score: expiry in Redis milliseconds)
/// and the address hash (node id → `addr|version`). `ARGV`: the mode (`renew` or
/// `read`), this node's id, its `addr|version`, the lease TTL in ms, the most members
/// to answer, the longest id and entry to answer.
///
/// It also removes a few expired members per call, so nodes that died (pods with fresh
/// names, say) do not pile up in Redis. It answers `{live count, id, entry, id, entry,
/// …}` with at most the cap of pairs; an over-long or address-less member is answered
/// as a pair of nils (counted as malformed by the reader, never as a node).
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == 'renew' then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
end
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 64)
if #dead > 0 then
  redis.call('ZREM', KEYS[1], unpack(dead))
  redis.call('HDEL', KEYS[2], unpack(dead))
end
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'LIMIT', 0, tonumber(ARGV[5]))
local out = { redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf') }
if #live > 0 then
  local entries = redis.call('HMGET', KEYS[2], unpack(live))
  for i = 1, #live do
    local id, entry = live[i], entries[i]
    if #id <= tonumber(ARGV[6]) and entry and #entry <= tonumber(ARGV[7]) then
      out[#out + 1] = id
      out[#out + 1] = entry
    else
      out[#out + 1] = false
      out[#out + 1] = false
    end
  end
end
return out
";

/// What a call does besides reading.
#[derive(Clone, Copy, Debug)]
pub(super) enum Mode {
    /// Upsert this node with a fresh expiry (registers it again after Redis lost it).
    Renew,
    /// Only read (and prune the expired).
    Read,
}

/// The live members as Redis answered them, already bounded.
#[derive(Debug, Default)]
pub(super) struct Roster {
    pub peers: Vec<Peer>,
    /// How many live members Redis holds (may exceed [`MAX_NODES`]).
    pub live: u64,
    /// Members answered but refused: no address, over-long, or an entry that is not
    /// `addr|version`.
    pub malformed: usize,
}

impl Roster {
    /// Whether Redis holds more live members than this node accepts.
    pub fn over_cap(&self) -> bool {
        self.live > MAX_NODES as u64
    }
}

pub(super) fn script() -> Script {
    Script::new(SCRIPT)
}

/// The script call for `mode`, ready to invoke.
pub(super) fn invocation<'a>(
    script: &'a Script,
    mode: Mode,
    me: &NodeId,
    entry: &str,
    ttl_ms: u64,
) -> redis::ScriptInvocation<'a> {
    let mode = match mode {
        Mode::Renew => "renew",
        Mode::Read => "read",
    };
    let mut call = script.prepare_invoke();
    call.key(NODES_KEY)
        .key(ADDR_KEY)
        .arg(mode)
        .arg(me.as_str())
        .arg(entry)
        .arg(ttl_ms)
        .arg(MAX_NODES)
        .arg(MAX_NODE_ID_LEN)
        .arg(MAX_ADDR_LEN + 11);
    call
}

/// The entry a node registers: `addr|version`.
pub(super) fn entry(addr: &str, version: u32) -> String {
    format!("{addr}|{version}")
}

/// Decodes the script's answer. `Err` names what is wrong when the answer is not the
/// script's shape at all (a Redis that answers garbage); members that are merely
/// malformed are counted and left out.
pub(super) fn decode(value: Value) -> Result<Roster, String> {
    let Value::Array(items) = value else {
        return Err(format!("expected an array, got {}", kind(&value)));
    };
    let mut items = items.into_iter();
    let live = match items.next() {
        Some(Value::Int(n)) => u64::try_from(n).map_err(|_| format!("a live count of {n}"))?,
        Some(other) => return Err(format!("a live count that is {}", kind(&other))),
        None => return Err("an empty array".into()),
    };
    let rest = items.as_slice();
    if rest.len() % 2 != 0 || rest.len() > 2 * MAX_NODES {
        return Err(format!("{} member fields", rest.len()));
    }
    let mut roster = Roster {
        live,
        ..Roster::default()
    };
    while let (Some(id), Some(entry)) = (items.next(), items.next()) {
        match peer(id, entry) {
            Some(p) => roster.peers.push(p),
            None => roster.malformed += 1,
        }
    }
    Ok(roster)
}

fn peer(id: Value, entry: Value) -> Option<Peer> {
    let (Value::BulkString(id), Value::BulkString(entry)) = (id, entry) else {
        return None;
    };
    let id = String::from_utf8(id).ok()?;
    let entry = std::str::from_utf8(&entry).ok()?;
    let (addr, version) = entry.rsplit_once('|')?;
    if !super::valid_node_id(&id) || !super::valid_addr(addr) {
        return None;
    }
    Some(Peer {
        id: NodeId::new(id),
        addr: Arc::from(addr),
        version: version.parse().ok()?,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Int(_) => "an integer",
        Value::BulkString(_) | Value::SimpleString(_) | Value::VerbatimString { .. } => "a string",
        Value::Array(_) | Value::Set(_) => "an array",
        Value::Okay => "OK",
        Value::Map(_) => "a map",
        Value::Attribute { .. } => "an attribute",
        Value::Double(_) => "a double",
        Value::Boolean(_) => "a boolean",
        _ => "another kind of value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::BulkString(x.as_bytes().to_vec())
    }

    #[test]
    fn members_without_an_address_or_a_version_are_counted_not_kept() {
        let answer = Value::Array(vec![
            Value::Int(4),
            s("a"),
            s("10.0.0.1:7000|1"),
            Value::Nil,
            Value::Nil,
            s("b"),
            s("10.0.0.2:7000"),
            s("c d"),
            s("10.0.0.3:7000|1"),
        ]);
        let roster = decode(answer).unwrap();
        assert_eq!(roster.peers.len(), 1);
        assert_eq!(roster.peers[0].id.as_str(), "a");
        assert_eq!(&*roster.peers[0].addr, "10.0.0.1:7000");
        assert_eq!(roster.malformed, 3);
        assert_eq!(roster.live, 4);
    }

    #[test]
    fn an_answer_not_of_the_scripts_shape_is_an_error() {
        assert!(decode(Value::Okay).is_err());
        assert!(decode(Value::Array(vec![])).is_err());
        assert!(decode(Value::Array(vec![Value::Int(-1)])).is_err());
        assert!(decode(Value::Array(vec![Value::Int(1), s("a")])).is_err());
        let huge = std::iter::once(Value::Int(1))
            .chain(std::iter::repeat_n(s("a"), 2 * MAX_NODES + 2))
            .collect();
        assert!(decode(Value::Array(huge)).is_err());
    }
}
