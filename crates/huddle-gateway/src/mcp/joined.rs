//! The rooms an MCP session joined, and its delivery position in each.
//!
//! For each room joined through `createRoom`/`joinRoom`: the agent token the other tools
//! use, the room's delivery position (`delivered`, the last `seq` handed to the client on
//! any stream) and the ranges handed out on POST responses (a resumed GET stream skips
//! them). Nothing here buffers messages: a room's messages are read from its log from
//! these positions (see `delivery`).
//!
//! A std mutex, held for a few field updates, never across an `.await`.

use std::sync::Mutex;

use huddle_cluster::{OnLag, Subscribe};
use huddle_core::{AgentToken, RoomId, Seq};

/// Ranges of seqs delivered on POST responses that a resumed GET stream must skip, per
/// room; the oldest is forgotten beyond this (a resume that far back may then repeat a
/// message, never lose one).
const MAX_POSTED_RANGES: usize = 32;

/// One room the session joined.
#[derive(Clone, Debug)]
pub struct JoinedRoom {
    /// Index in join order; part of the GET stream's event ids (`cursor`).
    pub slot: usize,
    pub room_id: RoomId,
    /// What `roomId` may say to pick this room besides its id: the room's name.
    pub name: Option<String>,
    pub token: AgentToken,
    pub agent_name: String,
    /// Last seq handed to the client from this room (GET stream or POST response).
    pub delivered: Seq,
    /// Seq ranges `(from, to]` handed out on POST responses (see [`MAX_POSTED_RANGES`]).
    pub posted: Vec<(Seq, Seq)>,
    /// Bumped when the room is joined again (new token): older subscriptions are stale.
    pub generation: u64,
    /// Recency for the default room (most recently joined wins).
    recency: u64,
    /// Left through `leaveRoom`: no longer chosen, no longer delivered.
    pub left: bool,
}

impl JoinedRoom {
    /// This agent's feed of the room from `after`; a feed that falls behind resumes on
    /// its own from the last message it delivered.
    pub fn feed_after(&self, after: Seq) -> Subscribe {
        Subscribe {
            room: self.room_id,
            reader: Some(self.token.clone()),
            after: Some(after),
            on_lag: OnLag::Resume,
        }
    }

    /// Whether a resumed GET stream must skip `seq` (already sent on a POST response).
    pub fn was_posted(&self, seq: Seq) -> bool {
        self.posted
            .iter()
            .any(|&(from, to)| seq > from && seq <= to)
    }

    fn matches(&self, reference: &str) -> bool {
        let reference = reference.trim();
        self.room_id.to_string().eq_ignore_ascii_case(reference)
            || self
                .name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(reference))
    }
}

/// Why a room-scoped tool has no room to act on.
#[derive(Debug, PartialEq, Eq)]
pub enum NoRoom {
    /// The session joined nothing (yet).
    NotJoined,
    /// `roomId` names none of the session's rooms.
    NotInRoom(String),
}

#[derive(Default)]
struct Rooms {
    list: Vec<JoinedRoom>,
    clock: u64,
}

/// A session's rooms are bounded, and the refusal names the limit.
pub fn too_many_rooms(limit: usize) -> String {
    format!("Too many rooms in this MCP session: the limit is {limit}")
}

/// A session's joined rooms, at most `max_rooms` of them (rooms left keep their slot).
pub struct RoomList {
    max_rooms: usize,
    rooms: Mutex<Rooms>,
}

impl RoomList {
    pub fn new(max_rooms: usize) -> Self {
        Self {
            max_rooms,
            rooms: Mutex::new(Rooms::default()),
        }
    }

    /// In no room: it never joined one, or it left every room it joined.
    pub fn is_anonymous(&self) -> bool {
        let rooms = self.rooms.lock().expect("session poisoned");
        rooms.list.iter().all(|r| r.left)
    }

    /// Most rooms remembered (rooms left keep their slot, and count).
    pub fn limit(&self) -> usize {
        self.max_rooms
    }

    /// Whether joining the room `reference` names (its id or name; `None`: a new room)
    /// stays within [`RoomList::limit`]: a room already here (left or not) takes its old
    /// slot again.
    pub fn may_join(&self, reference: Option<&str>) -> bool {
        let rooms = self.rooms.lock().expect("session poisoned");
        rooms.list.len() < self.max_rooms
            || reference.is_some_and(|r| rooms.list.iter().any(|room| room.matches(r)))
    }

    /// Records a joined (or re-joined) room, delivering from its `baseline` on; returns
    /// its slot, or `Err` with the limit when it would be a room beyond
    /// [`RoomList::limit`].
    pub fn join(&self, joining: Joining) -> Result<usize, usize> {
        let Joining {
            room_id,
            name,
            token,
            agent_name,
            baseline,
        } = joining;
        let mut rooms = self.rooms.lock().expect("session poisoned");
        let known = rooms.list.iter().any(|r| r.room_id == room_id);
        if !known && rooms.list.len() >= self.max_rooms {
            return Err(self.max_rooms);
        }
        rooms.clock += 1;
        let recency = rooms.clock;
        if let Some(r) = rooms.list.iter_mut().find(|r| r.room_id == room_id) {
            if r.token != token || r.left {
                r.generation += 1;
                r.delivered = r.delivered.max(baseline);
            }
            r.token = token;
            r.agent_name = agent_name;
            r.name = name.or(r.name.take());
            r.recency = recency;
            r.left = false;
            Ok(r.slot)
        } else {
            let slot = rooms.list.len();
            rooms.list.push(JoinedRoom {
                slot,
                room_id,
                name,
                token,
                agent_name,
                delivered: baseline,
                posted: Vec::new(),
                generation: 0,
                recency,
                left: false,
            });
            Ok(slot)
        }
    }

    /// Every room counts as left (the session ended).
    pub fn leave_all(&self) {
        let mut rooms = self.rooms.lock().expect("session poisoned");
        rooms.list.iter_mut().for_each(|r| r.left = true);
    }

    /// The room was left; returns its slot.
    pub fn leave(&self, room_id: RoomId) -> Option<usize> {
        let mut rooms = self.rooms.lock().expect("session poisoned");
        let r = rooms.list.iter_mut().find(|r| r.room_id == room_id)?;
        r.left = true;
        Some(r.slot)
    }

    /// The room a tool acts on: the one `reference` names, or the most recently joined.
    pub fn choose(&self, reference: Option<&str>) -> Result<JoinedRoom, NoRoom> {
        let rooms = self.rooms.lock().expect("session poisoned");
        let joined = rooms.list.iter().filter(|r| !r.left);
        let found = match reference.map(str::trim).filter(|r| !r.is_empty()) {
            Some(reference) => joined
                .filter(|r| r.matches(reference))
                .max_by_key(|r| r.recency)
                .ok_or_else(|| NoRoom::NotInRoom(reference.to_string())),
            None => joined.max_by_key(|r| r.recency).ok_or(NoRoom::NotJoined),
        };
        found.cloned()
    }

    /// The session's joined rooms (not those it left), in slot order.
    pub fn rooms(&self) -> Vec<JoinedRoom> {
        let rooms = self.rooms.lock().expect("session poisoned");
        rooms.list.iter().filter(|r| !r.left).cloned().collect()
    }

    pub fn room(&self, slot: usize) -> Option<JoinedRoom> {
        let rooms = self.rooms.lock().expect("session poisoned");
        rooms.list.get(slot).filter(|r| !r.left).cloned()
    }

    /// A message of `slot` went out on the GET stream.
    pub fn delivered(&self, slot: usize, seq: Seq) {
        let mut rooms = self.rooms.lock().expect("session poisoned");
        if let Some(r) = rooms.list.get_mut(slot) {
            r.delivered = r.delivered.max(seq);
        }
    }

    /// Messages `(from, to]` of `slot` went out on a POST response.
    pub fn posted(&self, slot: usize, from: Seq, to: Seq) {
        let mut rooms = self.rooms.lock().expect("session poisoned");
        let Some(r) = rooms.list.get_mut(slot) else {
            return;
        };
        r.delivered = r.delivered.max(to);
        match r.posted.last_mut() {
            Some(last) if last.1 == from => last.1 = to,
            _ => {
                r.posted.push((from, to));
                if r.posted.len() > MAX_POSTED_RANGES {
                    r.posted.remove(0);
                }
            }
        }
    }
}

/// A room a session joins: the agent it is there, and where delivery starts (the
/// agent's cursor after the join).
#[derive(Clone, Debug)]
pub struct Joining {
    pub room_id: RoomId,
    /// The room's name, when the client may use it again as `roomId`.
    pub name: Option<String>,
    pub token: AgentToken,
    pub agent_name: String,
    pub baseline: Seq,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(room: RoomId, s: &str) -> AgentToken {
        AgentToken::mint(room, s)
    }

    /// `ann` joins `room` (named `name`) with token `secret`, delivering after `baseline`.
    fn ann(room: RoomId, name: Option<&str>, secret: &str, baseline: Seq) -> Joining {
        Joining {
            room_id: room,
            name: name.map(str::to_string),
            token: token(room, secret),
            agent_name: "ann".into(),
            baseline,
        }
    }

    #[test]
    fn default_room_is_the_most_recently_joined() {
        let s = RoomList::new(100);
        assert_eq!(s.choose(None).unwrap_err(), NoRoom::NotJoined);
        let (a, b) = (RoomId::new_random(), RoomId::new_random());
        s.join(ann(a, Some("alpha"), "x", Seq::ZERO)).unwrap();
        s.join(ann(b, Some("beta"), "y", Seq::new(3))).unwrap();
        assert_eq!(s.choose(None).unwrap().room_id, b);
        assert_eq!(s.choose(Some("ALPHA")).unwrap().room_id, a);
        assert_eq!(s.choose(Some(&a.to_string())).unwrap().slot, 0);
        assert_eq!(
            s.choose(Some("gamma")).unwrap_err(),
            NoRoom::NotInRoom("gamma".into())
        );
        s.join(ann(a, None, "x", Seq::ZERO)).unwrap();
        assert_eq!(
            s.choose(None).unwrap().room_id,
            a,
            "joining again makes it the default"
        );
        s.leave(a);
        assert_eq!(s.choose(None).unwrap().room_id, b);
        assert!(matches!(s.choose(Some("alpha")), Err(NoRoom::NotInRoom(_))));
    }

    #[test]
    fn posted_ranges_merge_and_are_skipped() {
        let s = RoomList::new(100);
        let a = RoomId::new_random();
        let slot = s.join(ann(a, None, "x", Seq::new(2))).unwrap();
        s.posted(slot, Seq::new(2), Seq::new(5));
        s.posted(slot, Seq::new(5), Seq::new(9));
        s.delivered(slot, Seq::new(12));
        s.posted(slot, Seq::new(12), Seq::new(14));
        let r = s.room(slot).unwrap();
        assert_eq!(
            r.posted,
            [(2, 9), (12, 14)].map(|(a, b)| (Seq::new(a), Seq::new(b)))
        );
        assert_eq!(r.delivered, 14);
        assert!(
            !r.was_posted(Seq::new(2)) && r.was_posted(Seq::new(3)) && r.was_posted(Seq::new(9))
        );
        assert!(!r.was_posted(Seq::new(10)) && r.was_posted(Seq::new(13)));
    }

    #[test]
    fn a_session_remembers_a_bounded_number_of_rooms() {
        let s = RoomList::new(2);
        let (a, b, c) = (
            RoomId::new_random(),
            RoomId::new_random(),
            RoomId::new_random(),
        );
        s.join(ann(a, Some("alpha"), "x", Seq::ZERO)).unwrap();
        s.join(ann(b, None, "y", Seq::ZERO)).unwrap();
        assert!(!s.may_join(None) && !s.may_join(Some("gamma")));
        assert_eq!(s.join(ann(c, None, "z", Seq::ZERO)), Err(2));
        // A room it left keeps its slot: joining it again is within the limit.
        assert_eq!(s.leave(a), Some(0));
        assert!(s.may_join(Some("ALPHA")) && s.may_join(Some(&a.to_string())));
        assert_eq!(s.join(ann(a, None, "x2", Seq::ZERO)), Ok(0));
        assert_eq!(
            too_many_rooms(2),
            "Too many rooms in this MCP session: the limit is 2"
        );
    }
}
