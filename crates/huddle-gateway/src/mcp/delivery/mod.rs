//! Room messages to a session as `notifications/message`, on the room's `seq` cursor.
//! [`Delivery`] owns a session's delivery state: which GET stream is current, and the
//! POST-path feeds; the session's rooms and positions are in [`RoomList`].
//!
//! Two ways out, never both at once:
//! - [`live`]: the session's GET stream. One room feed per joined room from the session's
//!   position in it (or from the client's `Last-Event-ID`, see `cursor`), merged; each
//!   event's id is the session's whole cursor, so a resumed stream continues without gap
//!   or duplicate.
//! - [`Delivery::flush`]: with no GET stream open, the messages not yet delivered are
//!   drained from per-room feeds the session holds and sent on the POST response, before
//!   the tool result.
//!
//! Every feed here resumes on its own when the room's fan-out drops it for falling behind
//! (`OnLag::Resume`: from the last seq it delivered, no gap, no duplicate); one whose agent
//! left or was kicked ends and is dropped. Nothing is buffered here beyond what the
//! room's bounded fan-out holds.
//!
//! Layout: this file ([`Delivery`], the GET stream registration), `note` (the wire shape
//! of a notification), `flush` (the POST path), `live` (the GET stream).

mod flush;
mod live;
mod note;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
// tokio's clock, so that idle times can be tested with paused time.
use tokio::time::Instant;

pub use flush::Flushed;
pub use live::live;
pub use note::{notification, sse_message};

use super::joined::RoomList;
use flush::FlushFeed;

/// One session's delivery state. Locking: `listener` and `closed_at` are std mutexes held
/// for a few field updates; `flush` is a tokio mutex because draining a feed awaits.
pub struct Delivery {
    rooms: Arc<RoomList>,
    /// The session's open GET stream, if any.
    listener: Mutex<Option<Listener>>,
    generation: AtomicU64,
    /// When the last GET stream closed: activity, for the session's idle time.
    closed_at: Mutex<Option<Instant>>,
    /// POST-path feeds by slot.
    flush: tokio::sync::Mutex<HashMap<usize, FlushFeed>>,
}

/// The session's open GET stream.
struct Listener {
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

impl Delivery {
    pub fn new(rooms: Arc<RoomList>) -> Self {
        Self {
            rooms,
            listener: Mutex::new(None),
            generation: AtomicU64::new(0),
            closed_at: Mutex::new(None),
            flush: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// `slot` was joined (or joined again): an open GET stream (re)opens it.
    pub fn joined(&self, slot: usize) {
        if let Some(listener) = self.listener.lock().expect("session poisoned").as_ref() {
            listener.joined.push(slot);
        }
    }

    /// Registers a new GET stream; an older one of this session ends.
    pub fn open_live(&self) -> LiveRegistration {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let joined = Arc::new(Joined::default());
        let (stop_tx, stop) = oneshot::channel();
        *self.listener.lock().expect("session poisoned") = Some(Listener {
            generation,
            joined: joined.clone(),
            _stop: stop_tx,
        });
        LiveRegistration {
            generation,
            joined,
            stop,
        }
    }

    /// The GET stream of `generation` ended (if it is still the current one).
    pub fn close_live(&self, generation: u64) {
        let mut listener = self.listener.lock().expect("session poisoned");
        if listener
            .as_ref()
            .is_some_and(|l| l.generation == generation)
        {
            *listener = None;
        }
        drop(listener);
        *self.closed_at.lock().expect("session poisoned") = Some(Instant::now());
    }

    pub fn live_open(&self) -> bool {
        self.listener.lock().expect("session poisoned").is_some()
    }

    /// How long ago delivery last had a GET stream open: zero while one is, `None` if
    /// none ever closed.
    pub fn quiet_for(&self) -> Option<Duration> {
        if self.live_open() {
            return Some(Duration::ZERO);
        }
        self.closed_at
            .lock()
            .expect("session poisoned")
            .map(|at| at.elapsed())
    }

    /// Ends the GET stream and drops the POST-path feeds (the session ended).
    pub fn end(&self) {
        self.listener.lock().expect("session poisoned").take();
        if let Ok(mut flush) = self.flush.try_lock() {
            flush.clear();
        }
    }
}
