//! The GET stream's event ids: the session's whole delivery position, one `seq` per room.
//!
//! A session may be in several rooms, each with its own gapless `seq`. An SSE event id
//! must let a reconnecting client say "everything after this" for all of them at once, so
//! the id is the vector of per-room positions in join order (the room's *slot* in the
//! session): `"12.0.7"` means slot 0 up to seq 12, slot 1 nothing yet, slot 2 up to 7.
//! Slots never move (a room the session left keeps its slot), so an id stays meaningful
//! for the life of the session. The ids are derived from the rooms' logs, not from a
//! buffer: resuming replays from each room's log.

use huddle_core::Seq;

/// Per-slot positions, `positions[slot]` = last seq delivered from that room.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    positions: Vec<Seq>,
}

impl Cursor {
    pub fn new(positions: Vec<Seq>) -> Self {
        Self { positions }
    }

    /// Parses a `Last-Event-ID`; anything that is not a dot-separated list of numbers is
    /// not one of ours (or is corrupt) and is ignored.
    pub fn parse(id: &str) -> Option<Cursor> {
        let id = id.trim();
        if id.is_empty() {
            return None;
        }
        id.split('.')
            .map(|p| p.parse::<Seq>().ok())
            .collect::<Option<Vec<_>>>()
            .map(Cursor::new)
    }

    /// The position of `slot`, if this cursor knew that room.
    pub fn get(&self, slot: usize) -> Option<Seq> {
        self.positions.get(slot).copied()
    }

    pub fn set(&mut self, slot: usize, seq: Seq) {
        if self.positions.len() <= slot {
            self.positions.resize(slot + 1, Seq::ZERO);
        }
        self.positions[slot] = seq;
    }

    /// The SSE event id.
    pub fn encode(&self) -> String {
        let parts: Vec<String> = self.positions.iter().map(Seq::to_string).collect();
        parts.join(".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_id_round_trips() {
        let mut c = Cursor::default();
        c.set(2, Seq::new(7));
        c.set(0, Seq::new(12));
        assert_eq!(c.encode(), "12.0.7");
        assert_eq!(Cursor::parse("12.0.7"), Some(c.clone()));
        assert_eq!(c.get(1), Some(Seq::ZERO));
        assert_eq!(c.get(3), None);
    }

    #[test]
    fn foreign_event_ids_are_ignored() {
        assert_eq!(Cursor::parse(""), None);
        assert_eq!(Cursor::parse("0/3"), None);
        assert_eq!(Cursor::parse("a.b"), None);
        assert_eq!(Cursor::parse("5"), Some(Cursor::new(vec![Seq::new(5)])));
    }
}
