//! The actor's window on the end of its log, and the node's budget for all of them.
//!
//! Missed and unread messages are nearly always recent, so the actor keeps the last few
//! hundred messages in memory, plus every message not yet committed (those must never
//! be evicted: the store does not have them yet). Older reads go to the store.
//!
//! A tail is a cache, and its messages can be large (up to the message size limit each),
//! so the node bounds what all its rooms' tails hold together (one [`Budget`],
//! `RoomsConfig::max_tail_bytes`): anyone may create rooms and send into them, and 256
//! messages of 64 KiB in each of many rooms would otherwise be gigabytes. Past the
//! budget, a room that commits keeps only its uncommitted messages: the rooms that are
//! writing pay, first of all the ones filling the budget, and reads of what left the
//! tail go to the store (nothing is lost, a read costs a store query).

use std::collections::VecDeque;
use std::sync::Arc;

use huddle_core::{Message, Seq, SharedMessage};

use crate::budget::Budget;

pub struct LogTail {
    messages: VecDeque<SharedMessage>,
    capacity: usize,
    /// What this tail holds ([`SharedMessage::held_bytes`]), also counted in `budget`.
    bytes: usize,
    budget: Arc<Budget>,
}

impl LogTail {
    /// A tail of `recent` (committed messages), trimmed at once if the node's budget is
    /// spent.
    pub fn new(capacity: usize, recent: Vec<Message>, budget: Arc<Budget>) -> Self {
        let mut tail = Self {
            messages: VecDeque::with_capacity(recent.len()),
            capacity,
            bytes: 0,
            budget,
        };
        let last = recent.last().map_or(Seq::ZERO, |m| m.seq);
        for m in recent {
            tail.push(SharedMessage::new(m));
        }
        tail.trim(last);
        tail
    }

    pub fn push(&mut self, m: SharedMessage) {
        let held = m.held_bytes();
        self.bytes += held;
        self.budget.take(held);
        self.messages.push_back(m);
    }

    /// Drops the oldest messages beyond capacity, or all that it may while the node's
    /// tails hold more than their budget; never one above `committed`.
    pub fn trim(&mut self, committed: Seq) {
        while self.messages.len() > self.capacity || (self.bytes > 0 && self.budget.over()) {
            match self.messages.front() {
                Some(m) if m.seq <= committed => {
                    let held = m.held_bytes();
                    self.messages.pop_front();
                    self.release(held);
                }
                _ => break,
            }
        }
    }

    fn release(&mut self, held: usize) {
        self.bytes -= held;
        self.budget.give_back(held);
    }

    /// Whether every message with `seq > after` is in the tail.
    pub fn covers(&self, after: Seq, last_seq: Seq) -> bool {
        match self.messages.front() {
            Some(first) => first.seq <= after.next(),
            None => after >= last_seq,
        }
    }

    pub fn iter_after(&self, after: Seq) -> impl DoubleEndedIterator<Item = &SharedMessage> {
        let start = self.messages.partition_point(|m| m.seq <= after);
        self.messages.range(start..)
    }

    /// The uncommitted messages, i.e. those with `seq > committed`.
    pub fn newer_than(&self, committed: Seq) -> Vec<SharedMessage> {
        self.iter_after(committed).cloned().collect()
    }
}

impl Drop for LogTail {
    /// A stopped room gives its share of the budget back.
    fn drop(&mut self) {
        let held = self.bytes;
        self.release(held);
    }
}

#[cfg(test)]
mod tests {
    use huddle_core::{MemberId, RoomId, Timestamp};

    use super::*;

    fn message(seq: u64, body_bytes: usize) -> Message {
        Message {
            seq: Seq::new(seq),
            id: format!("m{seq}"),
            room_id: RoomId::new_random(),
            from: "a".into(),
            from_member: MemberId::new(1),
            to: None,
            to_member: None,
            body: "x".repeat(body_bytes),
            timestamp: Timestamp(0),
            key: None,
        }
    }

    fn seqs(tail: &LogTail) -> Vec<u64> {
        tail.iter_after(Seq::ZERO).map(|m| m.seq.get()).collect()
    }

    #[test]
    fn past_the_budget_a_committing_tail_keeps_only_what_is_not_committed() {
        let one = SharedMessage::new(message(1, 1000)).held_bytes();
        let budget = Arc::new(Budget::new(5 * one));
        let mut quiet = LogTail::new(
            256,
            (1..=4).map(|s| message(s, 1000)).collect(),
            budget.clone(),
        );
        assert_eq!(
            seqs(&quiet),
            [1, 2, 3, 4],
            "under the budget, a tail keeps its messages"
        );

        let mut busy = LogTail::new(256, Vec::new(), budget.clone());
        for s in 1..=3 {
            busy.push(SharedMessage::new(message(s, 1000)));
        }
        busy.trim(Seq::new(2));
        assert_eq!(
            seqs(&busy),
            [3],
            "over the budget: only the uncommitted message stays"
        );
        assert_eq!(budget.used(), 5 * one);

        // The budget is back under its bound: a tail keeps what it gets again.
        busy.trim(Seq::new(3));
        assert_eq!(seqs(&busy), [3]);
        quiet.push(SharedMessage::new(message(5, 1000)));
        quiet.trim(Seq::new(5));
        assert_eq!(
            seqs(&quiet),
            [2, 3, 4, 5],
            "one over: the oldest committed goes"
        );

        drop(quiet);
        drop(busy);
        assert_eq!(budget.used(), 0, "stopped rooms give their share back");
    }

    #[test]
    fn a_tail_loaded_past_the_budget_starts_empty() {
        let budget = Arc::new(Budget::new(0));
        let tail = LogTail::new(
            256,
            (1..=3).map(|s| message(s, 10)).collect(),
            budget.clone(),
        );
        assert_eq!(seqs(&tail), Vec::<u64>::new());
        assert!(
            !tail.covers(Seq::ZERO, Seq::new(3)),
            "reads go to the store"
        );
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn under_the_budget_the_tail_is_bounded_by_count() {
        let budget = Arc::new(Budget::new(usize::MAX));
        let mut tail = LogTail::new(3, Vec::new(), budget);
        for s in 1..=5 {
            tail.push(SharedMessage::new(message(s, 10)));
        }
        tail.trim(Seq::new(4));
        assert_eq!(seqs(&tail), [3, 4, 5]);
    }
}
