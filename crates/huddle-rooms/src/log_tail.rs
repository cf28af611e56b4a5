//! The actor's window on the end of its log.
//!
//! Missed and unread messages are nearly always recent, so the actor keeps the last few
//! hundred messages in memory, plus every message not yet committed (those must never
//! be evicted: the store does not have them yet). Older reads go to the store.

use huddle_core::{Message, Seq, SharedMessage};
use std::collections::VecDeque;

pub struct LogTail {
    messages: VecDeque<SharedMessage>,
    capacity: usize,
}

impl LogTail {
    pub fn new(capacity: usize, recent: Vec<Message>) -> Self {
        Self {
            messages: recent.into_iter().map(SharedMessage::new).collect(),
            capacity,
        }
    }

    pub fn push(&mut self, m: SharedMessage) {
        self.messages.push_back(m);
    }

    /// Drops the oldest messages beyond capacity, never one above `committed`.
    pub fn trim(&mut self, committed: Seq) {
        while self.messages.len() > self.capacity {
            match self.messages.front() {
                Some(m) if m.seq <= committed => {
                    self.messages.pop_front();
                }
                _ => break,
            }
        }
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
