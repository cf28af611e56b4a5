//! Runtime settings of the room layer.

use std::time::Duration;

use huddle_core::Limits;

#[derive(Clone, Debug)]
pub struct RoomsConfig {
    pub limits: Limits,
    /// An active room with no request for this long is passivated (its actor stops;
    /// the next request loads it again from the store).
    pub idle_timeout: Duration,
    /// Rooms loaded (an actor running) on this node before the least recently asked-for
    /// ones are unloaded early, idle timeout or not. A loaded room costs ~13 kB, and
    /// anyone may create and join rooms: without this bound, a flood of joins would keep
    /// each of its rooms in memory for the idle timeout. Not a refusal: a room busy with
    /// work stays, and an unloaded room loads again on its next request.
    pub max_loaded_rooms: usize,
    /// Bytes the loaded rooms' log tails (their last few hundred messages, kept for
    /// fast reads of what a caller missed) may hold together. A tail is a cache of the
    /// store and its messages may each be as large as the message size limit: past the
    /// budget, a room that commits keeps only what is not committed yet, and reads of
    /// the rest go to the store.
    pub max_tail_bytes: usize,
    /// Bytes the node's fan-out may hold for streams that have not read it yet, all
    /// rooms together. A client may stop reading its stream, and its room's messages
    /// then wait for it: past the budget, the rooms holding most drop their oldest
    /// pending messages, and their slowest streams resume from the store.
    pub max_stream_backlog_bytes: usize,
    /// Longest wait for a room's answer before the caller gets "Service unavailable".
    pub call_timeout: Duration,
    /// Requests in flight across all rooms; beyond it callers get `Server busy`. This is
    /// the admission control in front of ractor's unbounded mailboxes.
    pub max_in_flight: usize,
    /// Live streams (subscriptions of every protocol) held open on this node at once;
    /// beyond it a new one is refused with `Too many live streams ... the limit is N`.
    pub max_streams: usize,
    /// Messages a live subscriber may fall behind before it is dropped (it resumes from
    /// its last `seq`, losing nothing).
    pub subscriber_buffer: usize,
    /// Allow push endpoints on addresses that are not global unicast (loopback,
    /// private, link-local...).
    pub allow_private_endpoints: bool,
    pub push: PushConfig,
    /// Most rooms of one name (`room.create` refuses more): a password given with a
    /// name is checked against each protected room of that name.
    pub max_rooms_per_name: usize,
    pub passwords: PasswordsConfig,
    /// Longest a room's commit waits for the callers its last commit answered, when it
    /// answered several (they are most likely sending their next request): bigger
    /// batches, fewer commits. A lone caller never waits; zero turns the wait off.
    pub group_commit_wait: Duration,
}

/// Limits of the password gate (`crate::passwords`), node-wide.
#[derive(Clone, Debug)]
pub struct PasswordsConfig {
    /// argon2 runs at once (each holds a core and ~19 MiB for tens of milliseconds).
    pub hash_threads: usize,
    /// Password checks waiting for a hashing thread; beyond it `Server busy`.
    pub hash_queue: usize,
    /// Failed password attempts one client address may make per minute (a burst of
    /// this many, refilled at this rate); 0: unlimited.
    pub attempts_per_address: u32,
    /// Failed password attempts on one room per minute, from all clients together;
    /// 0: unlimited.
    pub attempts_per_room: u32,
}

#[derive(Clone, Debug)]
pub struct PushConfig {
    /// Per-request timeout (join.cloud: 5 s).
    pub timeout: Duration,
    /// Attempts per message before it is given up (the agent still gets it via unread).
    pub attempts: u32,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Messages waiting per agent; beyond it a new push is dropped (with a warning; the
    /// agent still gets the message from `message.unread`).
    pub queue: usize,
    /// Pushes queued or being delivered on the whole node (every agent of every room);
    /// beyond it a new push is dropped like one over `queue`. Each holds its message, so
    /// this bounds what endpoints that stopped answering can make the node keep.
    pub max_queued: usize,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            idle_timeout: Duration::from_secs(300),
            max_loaded_rooms: 20_000,
            max_tail_bytes: 256 << 20,
            max_stream_backlog_bytes: 256 << 20,
            call_timeout: Duration::from_secs(10),
            max_in_flight: 4096,
            max_streams: 50_000,
            subscriber_buffer: 4096,
            allow_private_endpoints: false,
            push: PushConfig::default(),
            max_rooms_per_name: 16,
            passwords: PasswordsConfig::default(),
            group_commit_wait: Duration::from_millis(2),
        }
    }
}

impl Default for PasswordsConfig {
    fn default() -> Self {
        Self {
            hash_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            hash_queue: 32,
            attempts_per_address: 10,
            attempts_per_room: 60,
        }
    }
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            attempts: 8,
            backoff_initial: Duration::from_millis(250),
            backoff_max: Duration::from_secs(15),
            queue: 1000,
            max_queued: 10_000,
        }
    }
}
