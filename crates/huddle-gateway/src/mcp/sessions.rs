//! Every live MCP session of this node: the table, its cap, expiry, and which session
//! gives way when the table is full.
//!
//! When the table is full a newcomer takes the place of the longest-idle session without
//! an open GET stream, anonymous ones first ([`Sessions::reserve`]). Only when every
//! session has a GET stream open is a newcomer refused. A client whose idle session gave
//! way carries on: its next POST starts a fresh session. The table's mutex is taken
//! before a session's, never after.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::session::Session;

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
    use huddle_core::{AgentToken, RoomId, Seq};

    use crate::mcp::joined::Joining;

    use super::*;

    fn token(room: RoomId, s: &str) -> AgentToken {
        AgentToken::mint(room, s)
    }

    fn joined(s: &Session) {
        let room = RoomId::new_random();
        s.join(Joining {
            room_id: room,
            name: None,
            token: token(room, "x"),
            agent_name: "ann".into(),
            baseline: Seq::ZERO,
        })
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
        gone.join(Joining {
            room_id: room,
            name: None,
            token: token(room, "y"),
            agent_name: "ann".into(),
            baseline: Seq::ZERO,
        })
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
}
