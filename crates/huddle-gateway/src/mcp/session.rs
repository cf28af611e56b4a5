//! MCP sessions: what a session remembers between requests, their expiry, and which one
//! gives way when the table is full.
//!
//! A session (legacy revisions, `Mcp-Session-Id`) remembers the rooms it joined through
//! `createRoom`/`joinRoom`: for each, the agent token the other tools use and the room's
//! delivery position (`delivered`, the last `seq` handed to the client on any stream).
//! Nothing here buffers messages: a room's messages are read from its log through
//! `Router::subscribe` from these positions (see `delivery`).
//!
//! A session in no room (an *anonymous* one: it never joined a room, or left every room
//! it joined) costs a client nothing to lose: any POST without a session makes one, and a
//! POST with a lost id is run in a fresh one (docs/protocol.md, section 'Sessions and
//! recovery'). So anonymous sessions are cheap to end: they expire after a short idle
//! time, and when the table is full a newcomer takes the place of the longest-idle session
//! without an open GET stream, anonymous ones first ([`Sessions::reserve`]). Only when
//! every session has a GET stream open is a newcomer refused. A client whose idle session
//! gave way carries on: its next POST starts a fresh session.
//!
//! Locking: `rooms` and `live` are std mutexes held for a few field updates, never across
//! an `.await`; `flush` is a tokio mutex because draining a subscription awaits. The
//! table's mutex is taken before a session's, never after.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use huddle_core::{AgentToken, RoomId, Seq};
use tokio::sync::{Notify, oneshot};
// tokio's clock, so that idle times can be tested with paused time.
use tokio::time::Instant;

use super::delivery::FlushFeed;

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

/// The session's open GET stream, if any.
struct Live {
    generation: u64,
    /// Tells the stream about rooms joined (or joined again) while it is open.
    joined: Arc<Joined>,
    /// Dropping it ends the stream (a newer GET replaced it, or the session ended).
    _stop: oneshot::Sender<()>,
}

/// The slots joined (or joined again) that a GET stream has yet to (re)open. A set, not
/// a queue: a client joining over and over while it does not read its stream holds one
/// entry per room, not one per call.
#[derive(Default)]
pub struct Joined {
    slots: Mutex<BTreeSet<usize>>,
    notify: Notify,
}

impl Joined {
    fn push(&self, slot: usize) {
        self.slots.lock().expect("session poisoned").insert(slot);
        self.notify.notify_one();
    }

    /// The slots joined since the last call, once there is at least one.
    pub async fn next(&self) -> Vec<usize> {
        loop {
            let slots = std::mem::take(&mut *self.slots.lock().expect("session poisoned"));
            if !slots.is_empty() {
                return slots.into_iter().collect();
            }
            self.notify.notified().await;
        }
    }
}

/// What a new GET stream gets: its generation, the room-joined feed and its stop signal.
pub struct LiveRegistration {
    pub generation: u64,
    pub joined: Arc<Joined>,
    pub stop: oneshot::Receiver<()>,
}

pub struct Session {
    pub id: String,
    /// Most rooms (slots) the session remembers.
    max_rooms: usize,
    last_active: Mutex<Instant>,
    rooms: Mutex<Rooms>,
    live: Mutex<Option<Live>>,
    live_generation: AtomicU64,
    /// POST-path subscriptions by slot.
    pub flush: tokio::sync::Mutex<HashMap<usize, FlushFeed>>,
}

impl Session {
    fn new(id: String, max_rooms: usize) -> Self {
        Self {
            id,
            max_rooms,
            last_active: Mutex::new(Instant::now()),
            rooms: Mutex::new(Rooms::default()),
            live: Mutex::new(None),
            live_generation: AtomicU64::new(0),
            flush: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn touch(&self) {
        *self.last_active.lock().expect("session poisoned") = Instant::now();
    }

    /// How long the session has been idle; an open GET stream is activity.
    fn idle_for(&self) -> Duration {
        if self.live_open() {
            return Duration::ZERO;
        }
        self.last_active.lock().expect("session poisoned").elapsed()
    }

    /// In no room: it never joined one, or it left every room it joined (see the module
    /// docs).
    pub fn is_anonymous(&self) -> bool {
        let rooms = self.rooms.lock().expect("session poisoned");
        rooms.list.iter().all(|r| r.left)
    }

    /// Most rooms the session remembers (rooms it left keep their slot, and count).
    pub fn room_limit(&self) -> usize {
        self.max_rooms
    }

    /// Whether joining the room `reference` names (its id or name; `None`: a new room)
    /// stays within [`Session::room_limit`]: a room the session already has (left
    /// or not) takes its old slot again.
    pub fn may_join(&self, reference: Option<&str>) -> bool {
        let rooms = self.rooms.lock().expect("session poisoned");
        rooms.list.len() < self.max_rooms
            || reference.is_some_and(|r| rooms.list.iter().any(|room| room.matches(r)))
    }

    /// Records a joined (or re-joined) room, delivering from `baseline` on; returns its
    /// slot, or `Err` with the limit when it would be a room beyond [`Session::room_limit`].
    pub fn join(
        &self,
        room_id: RoomId,
        name: Option<String>,
        token: AgentToken,
        agent_name: String,
        baseline: Seq,
    ) -> Result<usize, usize> {
        let slot = {
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
                r.slot
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
                slot
            }
        };
        if let Some(live) = self.live.lock().expect("session poisoned").as_ref() {
            live.joined.push(slot);
        }
        Ok(slot)
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

    /// Registers a new GET stream; an older one of this session ends.
    pub fn open_live(&self) -> LiveRegistration {
        let generation = self.live_generation.fetch_add(1, Ordering::Relaxed) + 1;
        let joined = Arc::new(Joined::default());
        let (stop_tx, stop) = oneshot::channel();
        *self.live.lock().expect("session poisoned") = Some(Live {
            generation,
            joined: joined.clone(),
            _stop: stop_tx,
        });
        self.touch();
        LiveRegistration {
            generation,
            joined,
            stop,
        }
    }

    /// The GET stream of `generation` ended (if it is still the current one).
    pub fn close_live(&self, generation: u64) {
        let mut live = self.live.lock().expect("session poisoned");
        if live.as_ref().is_some_and(|l| l.generation == generation) {
            *live = None;
        }
        drop(live);
        self.touch();
    }

    pub fn live_open(&self) -> bool {
        self.live.lock().expect("session poisoned").is_some()
    }

    /// Ends the session's streams and subscriptions.
    fn end(&self) {
        self.live.lock().expect("session poisoned").take();
        if let Ok(mut flush) = self.flush.try_lock() {
            flush.clear();
        }
        let mut rooms = self.rooms.lock().expect("session poisoned");
        rooms.list.iter_mut().for_each(|r| r.left = true);
    }
}

/// Every live session of this node, by `Mcp-Session-Id`, at most `max` of them.
pub struct Sessions {
    map: Mutex<Table>,
    max: usize,
    /// Most rooms each session remembers.
    max_rooms: usize,
}

#[derive(Default)]
struct Table {
    live: HashMap<String, Arc<Session>>,
    /// Places taken by sessions being created (see [`Sessions::reserve`]).
    starting: usize,
}

impl Table {
    /// The session that gives its place to a newcomer when the table is full: of those
    /// without an open GET stream (a client listening is never cut off), an anonymous
    /// one before one in a room, and the longest idle first. `None`: every session has
    /// a GET stream open. A scan of the table, done only when it is full.
    fn evictable(&self) -> Option<String> {
        self.live
            .values()
            .filter(|s| !s.live_open())
            .max_by_key(|s| (s.is_anonymous(), s.idle_for()))
            .map(|s| s.id.clone())
    }
}

/// A place under the cap for one session being created; given back when dropped unless
/// [`filled`](Place::fill).
pub struct Place<'a> {
    sessions: &'a Sessions,
    filled: bool,
    /// The session that gave its place up for this one (already removed and ended
    /// here; its rmcp side is the caller's to close).
    evicted: Option<String>,
}

impl Place<'_> {
    /// The id of the session evicted to make this place, if the table was full.
    pub fn evicted(&self) -> Option<&str> {
        self.evicted.as_deref()
    }

    /// The session `id` takes the place.
    pub fn fill(mut self, id: &str) -> Arc<Session> {
        let session = Arc::new(Session::new(id.to_string(), self.sessions.max_rooms));
        let mut table = self.sessions.map.lock().expect("sessions poisoned");
        table.starting -= 1;
        table.live.insert(id.to_string(), session.clone());
        self.filled = true;
        session
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if !self.filled {
            self.sessions
                .map
                .lock()
                .expect("sessions poisoned")
                .starting -= 1;
        }
    }
}

impl Sessions {
    /// A table of at most `max` sessions, each remembering at most `max_rooms` rooms.
    pub fn new(max: usize, max_rooms: usize) -> Self {
        Self {
            map: Mutex::new(Table::default()),
            max,
            max_rooms,
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A place for a new session. When the table is full, the session that gives way
    /// (see `Table::evictable`) is removed and ended; `None` when there is none (every
    /// session has a GET stream open, or is still being created).
    pub fn reserve(&self) -> Option<Place<'_>> {
        let (place, evicted) = {
            let mut table = self.map.lock().expect("sessions poisoned");
            let evicted = if table.live.len() + table.starting >= self.max {
                let id = table.evictable()?;
                table.live.remove(&id)
            } else {
                None
            };
            table.starting += 1;
            let place = Place {
                sessions: self,
                filled: false,
                evicted: evicted.as_ref().map(|s| s.id.clone()),
            };
            (place, evicted)
        };
        if let Some(s) = evicted {
            s.end();
        }
        Some(place)
    }

    /// Whether a new session would be refused now: the table is full and no session
    /// can give way.
    pub fn is_full(&self) -> bool {
        let table = self.map.lock().expect("sessions poisoned");
        table.live.len() + table.starting >= self.max && table.evictable().is_none()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.map
            .lock()
            .expect("sessions poisoned")
            .live
            .get(id)
            .cloned()
    }

    /// Removes the session and ends its streams.
    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let session = self.map.lock().expect("sessions poisoned").live.remove(id);
        if let Some(s) = &session {
            s.end();
        }
        session
    }

    /// Removes and ends every session idle for longer than `idle`, or than
    /// `anonymous_idle` (when shorter) if it is in no room; returns their ids.
    pub fn expire(&self, idle: Duration, anonymous_idle: Duration) -> Vec<String> {
        let anonymous_idle = anonymous_idle.min(idle);
        let expired: Vec<Arc<Session>> = {
            let mut table = self.map.lock().expect("sessions poisoned");
            let ids: Vec<String> = table
                .live
                .iter()
                .filter(|(_, s)| {
                    let idle_for = s.idle_for();
                    idle_for > idle || (idle_for > anonymous_idle && s.is_anonymous())
                })
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| table.live.remove(id)).collect()
        };
        expired.iter().for_each(|s| s.end());
        expired.into_iter().map(|s| s.id.clone()).collect()
    }

    /// Live sessions (those being created not included).
    pub fn len(&self) -> usize {
        self.map.lock().expect("sessions poisoned").live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(room: RoomId, s: &str) -> AgentToken {
        AgentToken::mint(room, s)
    }

    #[test]
    fn default_room_is_the_most_recently_joined() {
        let s = Session::new("s".into(), 100);
        assert_eq!(s.choose(None).unwrap_err(), NoRoom::NotJoined);
        let (a, b) = (RoomId::new_random(), RoomId::new_random());
        s.join(a, Some("alpha".into()), token(a, "x"), "ann".into(), 0)
            .unwrap();
        s.join(b, Some("beta".into()), token(b, "y"), "ann".into(), 3)
            .unwrap();
        assert_eq!(s.choose(None).unwrap().room_id, b);
        assert_eq!(s.choose(Some("ALPHA")).unwrap().room_id, a);
        assert_eq!(s.choose(Some(&a.to_string())).unwrap().slot, 0);
        assert_eq!(
            s.choose(Some("gamma")).unwrap_err(),
            NoRoom::NotInRoom("gamma".into())
        );
        s.join(a, None, token(a, "x"), "ann".into(), 0).unwrap();
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
        let s = Session::new("s".into(), 100);
        let a = RoomId::new_random();
        let slot = s.join(a, None, token(a, "x"), "ann".into(), 2).unwrap();
        s.posted(slot, 2, 5);
        s.posted(slot, 5, 9);
        s.delivered(slot, 12);
        s.posted(slot, 12, 14);
        let r = s.room(slot).unwrap();
        assert_eq!(r.posted, vec![(2, 9), (12, 14)]);
        assert_eq!(r.delivered, 14);
        assert!(!r.was_posted(2) && r.was_posted(3) && r.was_posted(9));
        assert!(!r.was_posted(10) && r.was_posted(13));
    }

    fn joined(s: &Session) {
        let room = RoomId::new_random();
        s.join(room, None, token(room, "x"), "ann".into(), 0)
            .unwrap();
    }

    fn sorted(mut ids: Vec<String>) -> Vec<String> {
        ids.sort();
        ids
    }

    const HOUR: Duration = Duration::from_secs(3600);
    const SHORT: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn anonymous_sessions_expire_sooner_and_an_open_get_stream_keeps_one_alive() {
        let sessions = Sessions::new(10, 10);
        sessions.reserve().unwrap().fill("anonymous");
        let member = sessions.reserve().unwrap().fill("member");
        joined(&member);
        let gone = sessions.reserve().unwrap().fill("left-all");
        let room = RoomId::new_random();
        gone.join(room, None, token(room, "y"), "ann".into(), 0)
            .unwrap();
        gone.leave(room);
        let listening = sessions.reserve().unwrap().fill("listening");
        let _live = listening.open_live();

        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(sessions.expire(HOUR, SHORT).is_empty());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            sorted(sessions.expire(HOUR, SHORT)),
            ["anonymous", "left-all"],
            "a session in no room is cheap: it goes after the short idle time"
        );
        member.touch();
        tokio::time::advance(HOUR - Duration::from_secs(1)).await;
        assert!(sessions.expire(HOUR, SHORT).is_empty());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(sessions.expire(HOUR, SHORT), ["member"]);
        assert!(
            sessions.get("listening").is_some(),
            "its GET stream is open"
        );
        assert_eq!(sessions.len(), 1);

        // The short idle time never outlasts the general one.
        sessions.reserve().unwrap().fill("brief");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(sessions.expire(Duration::from_secs(10), SHORT), ["brief"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_is_capped_and_places_being_created_count() {
        let sessions = Sessions::new(2, 10);
        let a = sessions.reserve().unwrap();
        let b = sessions.reserve().unwrap();
        // Sessions being created hold their places: none can give way.
        assert!(sessions.is_full() && sessions.reserve().is_none());
        drop(b); // creation failed or was abandoned: the place is given back
        assert!(!sessions.is_full());
        let a = a.fill("a");
        let b = sessions.reserve().unwrap().fill("b");
        assert_eq!(sessions.len(), 2);
        // Full, and every session listening on a GET stream: refused.
        let (_live_a, live_b) = (a.open_live(), b.open_live());
        assert!(sessions.is_full() && sessions.reserve().is_none());
        sessions.remove("a");
        assert!(sessions.reserve().is_some());
        b.close_live(live_b.generation);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(sessions.expire(Duration::ZERO, SHORT), ["b"]);
        assert!(sessions.is_empty() && !sessions.is_full());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_evicts_anonymous_sessions_first_then_the_longest_idle_never_a_listening_one()
     {
        let sessions = Sessions::new(4, 10);
        let step = || tokio::time::advance(Duration::from_secs(1));
        // Oldest first: a listening anonymous session, then members and an anonymous one.
        let listening = sessions.reserve().unwrap().fill("listening");
        let _live = listening.open_live();
        step().await;
        joined(&sessions.reserve().unwrap().fill("member-old"));
        step().await;
        let anonymous = sessions.reserve().unwrap().fill("anonymous");
        step().await;
        joined(&sessions.reserve().unwrap().fill("member-young"));
        step().await;
        assert!(!sessions.is_full(), "idle sessions can give way");

        // An anonymous session goes before any member, even one idle for longer.
        let place = sessions.reserve().unwrap();
        assert_eq!(place.evicted(), Some("anonymous"));
        place.fill("newcomer");
        assert!(sessions.get("anonymous").is_none());
        assert!(!anonymous.live_open() && anonymous.is_anonymous());
        step().await;
        // The newcomer is anonymous too (and the listening one is never cut off).
        let place = sessions.reserve().unwrap();
        assert_eq!(place.evicted(), Some("newcomer"));
        joined(&place.fill("second"));
        step().await;
        // Only members left to give way: the longest idle first.
        let place = sessions.reserve().unwrap();
        assert_eq!(place.evicted(), Some("member-old"));
        let third = place.fill("third");
        joined(&third);
        sessions.get("member-young").unwrap().touch();
        step().await;
        let place = sessions.reserve().unwrap();
        assert_eq!(place.evicted(), Some("second"), "member-young was active");
        drop(place); // an abandoned creation gives the place back
        assert_eq!(sessions.len(), 3);
        let fourth = sessions.reserve().unwrap().fill("fourth");
        // Every session listening: nothing can give way.
        let _streams = [
            third.open_live(),
            fourth.open_live(),
            sessions.get("member-young").unwrap().open_live(),
        ];
        assert!(sessions.is_full() && sessions.reserve().is_none());
        for id in ["listening", "member-young", "third", "fourth"] {
            assert!(sessions.get(id).is_some(), "{id}");
        }
    }

    #[test]
    fn a_session_remembers_a_bounded_number_of_rooms() {
        let s = Session::new("s".into(), 2);
        let (a, b, c) = (
            RoomId::new_random(),
            RoomId::new_random(),
            RoomId::new_random(),
        );
        s.join(a, Some("alpha".into()), token(a, "x"), "ann".into(), 0)
            .unwrap();
        s.join(b, None, token(b, "y"), "ann".into(), 0).unwrap();
        assert!(!s.may_join(None) && !s.may_join(Some("gamma")));
        assert_eq!(s.join(c, None, token(c, "z"), "ann".into(), 0), Err(2));
        // A room it left keeps its slot: joining it again is within the limit.
        assert_eq!(s.leave(a), Some(0));
        assert!(s.may_join(Some("ALPHA")) && s.may_join(Some(&a.to_string())));
        assert_eq!(s.join(a, None, token(a, "x2"), "ann".into(), 0), Ok(0));
        assert_eq!(
            too_many_rooms(2),
            "Too many rooms in this MCP session: the limit is 2"
        );
    }
}
