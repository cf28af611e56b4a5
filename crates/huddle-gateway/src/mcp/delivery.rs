//! Room messages to a session as `notifications/message`, on the room's `seq` cursor.
//!
//! Two ways out, never both at once:
//! - [`live`]: the session's GET stream. One `Router::subscribe` per joined room from the
//!   session's position in it (or from the client's `Last-Event-ID`, see `cursor`),
//!   merged; each event's id is the session's whole cursor, so a resumed stream
//!   continues without gap or duplicate.
//! - [`flush`]: with no GET stream open, the messages not yet delivered are drained from
//!   per-room subscriptions the session holds and sent on the POST response, before the
//!   tool result.
//!
//! A subscription that ends early (the room's fan-out dropped a slow reader, or the room
//! closed) is made again from the last delivered seq; one whose agent left or was kicked
//! cannot be made again and is dropped. Nothing is buffered here beyond what the room's
//! bounded fan-out holds.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures::{FutureExt, Stream, StreamExt};
use huddle_app::RoomApi;
use huddle_cluster::Router;
use huddle_core::{AgentToken, Message, RoomError, RoomId, Seq};
use serde::Serialize;
use tokio_stream::StreamMap;

use super::cursor::Cursor;
use super::session::{JoinedRoom, LiveRegistration, Session};

/// One room's messages as one agent sees them (errors only say that the stream ended early).
pub type RoomFeed = Pin<Box<dyn Stream<Item = Result<Arc<Message>, String>> + Send>>;

/// A subscription a session without GET stream holds for one room (POST path).
pub struct FlushFeed {
    /// The room generation (see `JoinedRoom::generation`) it was made for.
    generation: u64,
    feed: RoomFeed,
    /// The room's last seq when it was made: up to there it replays the log (store
    /// reads), so a flush waits for it rather than taking only what is at hand.
    replay_until: Seq,
}

/// How long a POST flush waits for a fresh subscription's replay from the store before
/// answering anyway (it only waits when messages visible to the agent are still to come
/// from the log; the rest is delivered by the next flush).
const REPLAY_WAIT: Duration = Duration::from_millis(250);

/// One SSE event carrying a JSON-RPC message (`event: message`, as MCP clients expect).
pub fn sse_message(id: Option<&str>, message: &str) -> Bytes {
    match id {
        Some(id) => Bytes::from(format!("event: message\nid: {id}\ndata: {message}\n\n")),
        None => Bytes::from(format!("event: message\ndata: {message}\n\n")),
    }
}

/// The wire shape of a room message notification (serialised straight from the message:
/// it is written once per recipient, so no intermediate JSON tree).
#[derive(Serialize)]
struct Note<'a> {
    jsonrpc: &'static str,
    method: &'static str,
    params: NoteParams<'a>,
}

#[derive(Serialize)]
struct NoteParams<'a> {
    level: &'static str,
    logger: String,
    data: NoteData<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NoteData<'a> {
    from: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    body: &'a str,
    timestamp: String,
    seq: Seq,
    message_id: &'a str,
    room_id: String,
}

/// `notifications/message` for one room message (docs/protocol.md, section
/// 'Notifications'), as JSON text:
/// `{level: "info", logger: "room/<roomId>", data: {from, to?, body, timestamp, seq, ...}}`.
pub fn notification(m: &Message) -> String {
    let room_id = m.room_id.to_string();
    let note = Note {
        jsonrpc: "2.0",
        method: "notifications/message",
        params: NoteParams {
            level: "info",
            logger: format!("room/{room_id}"),
            data: NoteData {
                from: &m.from,
                to: m.to.as_deref(),
                body: &m.body,
                timestamp: m.timestamp.rfc3339(),
                seq: m.seq,
                message_id: &m.id,
                room_id,
            },
        },
    };
    serde_json::to_string(&note).expect("a notification serialises")
}

/// Messages of `room` visible to `token`'s agent with `seq > after`, log first then live.
pub async fn subscribe(
    router: &dyn Router,
    room: RoomId,
    token: AgentToken,
    after: Seq,
) -> Result<RoomFeed, RoomError> {
    let (stream, _member) = router.subscribe(room, token, Some(after)).await?;
    Ok(Box::pin(stream.map(|item| item.map_err(|e| e.to_string()))))
}

/// The room's committed `last_seq` as `token`'s agent may learn it.
pub async fn last_seq(
    router: &dyn Router,
    room: RoomId,
    token: AgentToken,
) -> Result<Seq, RoomError> {
    let viewer = RoomApi::new(router).viewer(room, token).await?;
    Ok(viewer.last_seq)
}

/// Prepares a freshly joined room for POST-path delivery (when no GET stream is open,
/// the GET stream takes it from there otherwise).
pub async fn start_room(router: &dyn Router, session: &Session, slot: usize) {
    if session.live_open() {
        return;
    }
    let Some(room) = session.room(slot) else {
        return;
    };
    // Everything committed up to now that follows the join (e.g. missed messages beyond
    // the join result's page) comes from the log: the next flush waits for that replay.
    let end = last_seq(router, room.room_id, room.token.clone())
        .await
        .unwrap_or(room.delivered);
    if let Ok(feed) = subscribe(router, room.room_id, room.token.clone(), room.delivered).await {
        let feed = FlushFeed {
            generation: room.generation,
            feed,
            replay_until: end,
        };
        session.flush.lock().await.insert(slot, feed);
    }
}

/// Notifications taken for a POST response; they count as delivered once the response
/// is known to carry them ([`Flushed::commit`]).
#[derive(Default)]
pub struct Flushed {
    pub notes: Vec<String>,
    /// `(slot, from, to)`: the seqs of each room these notes cover.
    ranges: Vec<(usize, Seq, Seq)>,
}

impl Flushed {
    pub fn is_empty(&self) -> bool {
        self.notes.is_empty()
    }

    /// The response carries the notes: the session's positions move past them.
    pub fn commit(&self, session: &Session) {
        for &(slot, from, to) in &self.ranges {
            session.posted(slot, from, to);
        }
    }

    /// The response could not carry them: the next flush reads them again from the log.
    pub async fn abandon(self, session: &Session) {
        if !self.ranges.is_empty() {
            session.flush.lock().await.clear();
        }
    }
}

/// The notifications owed to a session without a GET stream, in seq order per room; at
/// most `max` (the rest go with the next responses: a session that was away long does
/// not get one unbounded response).
pub async fn flush(router: &dyn Router, session: &Session, max: usize) -> Flushed {
    let mut flushed = Flushed::default();
    if session.live_open() {
        return flushed;
    }
    let out = &mut flushed.notes;
    let mut feeds = session.flush.lock().await;
    for room in session.rooms() {
        if out.len() >= max {
            break;
        }
        let from = room.delivered;
        let mut last = from;
        // Twice at most: a subscription that ended early is made again once.
        for _ in 0..2 {
            let current = feeds
                .get(&room.slot)
                .is_some_and(|f| f.generation == room.generation);
            if !current {
                feeds.remove(&room.slot);
                let Ok(end) = last_seq(router, room.room_id, room.token.clone()).await else {
                    break;
                };
                let Ok(feed) = subscribe(router, room.room_id, room.token.clone(), last).await
                else {
                    break;
                };
                let feed = FlushFeed {
                    generation: room.generation,
                    feed,
                    replay_until: end,
                };
                feeds.insert(room.slot, feed);
            }
            let feed = feeds.get_mut(&room.slot).expect("inserted above");
            match drain(feed, &mut last, out, max).await {
                Drained::Caught => break,
                Drained::Ended => {
                    feeds.remove(&room.slot);
                }
            }
        }
        if last > from {
            flushed.ranges.push((room.slot, from, last));
        }
    }
    flushed
}

enum Drained {
    /// Everything available now was taken.
    Caught,
    /// The subscription ended (lagged, closed, or the agent is gone).
    Ended,
}

/// Takes what `feed` has now, waiting for its replay of the log first.
async fn drain(feed: &mut FlushFeed, last: &mut Seq, out: &mut Vec<String>, max: usize) -> Drained {
    loop {
        if out.len() >= max {
            return Drained::Caught;
        }
        let item = if *last < feed.replay_until {
            match tokio::time::timeout(REPLAY_WAIT, feed.feed.next()).await {
                Ok(item) => item,
                Err(_) => {
                    // What is left up to there is not for this agent (DMs to others).
                    feed.replay_until = 0;
                    return Drained::Caught;
                }
            }
        } else {
            match feed.feed.next().now_or_never() {
                Some(item) => item,
                None => return Drained::Caught,
            }
        };
        match item {
            Some(Ok(m)) => {
                if m.seq > *last {
                    *last = m.seq;
                    out.push(notification(&m));
                }
            }
            Some(Err(_)) | None => return Drained::Ended,
        }
    }
}

/// Marks the session's GET stream closed when the stream is dropped (client gone,
/// replaced by a newer GET, or session ended).
struct LiveGuard {
    session: Arc<Session>,
    generation: u64,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.session.close_live(self.generation);
    }
}

struct Live {
    router: Arc<dyn Router>,
    session: Arc<Session>,
    registration: LiveRegistration,
    feeds: StreamMap<usize, RoomFeed>,
    /// What this stream has delivered (or skipped), per slot: its event ids.
    cursor: Cursor,
    /// Where the client said it was (`Last-Event-ID`), per slot, for rooms not yet opened.
    resume: Option<Cursor>,
    /// Rooms opened by this stream, with the POST-delivered ranges to skip.
    open: Vec<Option<JoinedRoom>>,
    /// Slots to (re)subscribe before waiting again.
    pending: Vec<usize>,
    /// A comment line this often keeps proxies and clients from timing the stream out.
    keep_alive: Duration,
    _guard: LiveGuard,
}

impl Live {
    async fn open_room(&mut self, slot: usize) {
        let Some(room) = self.session.room(slot) else {
            self.feeds.remove(&slot);
            return;
        };
        let known = self.open.get(slot).is_some_and(Option::is_some);
        let after = if known {
            self.cursor.get(slot).unwrap_or(room.delivered)
        } else {
            match self.resume.as_ref().and_then(|r| r.get(slot)) {
                // A client cannot have seen more than was delivered.
                Some(seq) => seq.min(room.delivered),
                None => room.delivered,
            }
        };
        let stale = self
            .open
            .get(slot)
            .and_then(Option::as_ref)
            .is_some_and(|r| r.generation != room.generation);
        let after = if stale {
            after.max(room.delivered)
        } else {
            after
        };
        if self.open.len() <= slot {
            self.open.resize(slot + 1, None);
        }
        self.cursor.set(slot, after);
        match subscribe(
            self.router.as_ref(),
            room.room_id,
            room.token.clone(),
            after,
        )
        .await
        {
            Ok(feed) => {
                self.feeds.insert(slot, feed);
                self.open[slot] = Some(room);
            }
            Err(e) => {
                tracing::debug!(session = %self.session.id, slot, error = %e, "room dropped from the GET stream");
                self.feeds.remove(&slot);
            }
        }
    }

    async fn next_event(&mut self) -> Option<Bytes> {
        let ping = tokio::time::sleep(self.keep_alive);
        tokio::pin!(ping);
        loop {
            while let Some(slot) = self.pending.pop() {
                self.open_room(slot).await;
            }
            tokio::select! {
                _ = &mut self.registration.stop => return None,
                _ = &mut ping => return Some(Bytes::from_static(b": ping\n\n")),
                slots = self.registration.joined.next() => self.pending.extend(slots),
                Some((slot, item)) = self.feeds.next(), if !self.feeds.is_empty() => match item {
                    Ok(m) => {
                        if m.seq <= self.cursor.get(slot).unwrap_or(0) {
                            continue;
                        }
                        self.cursor.set(slot, m.seq);
                        let posted = self.open[slot].as_ref().is_some_and(|r| r.was_posted(m.seq));
                        if posted {
                            continue;
                        }
                        self.session.delivered(slot, m.seq);
                        return Some(sse_message(Some(&self.cursor.encode()), &notification(&m)));
                    }
                    Err(e) => {
                        tracing::debug!(session = %self.session.id, slot, error = %e, "resubscribing");
                        self.pending.push(slot);
                    }
                },
            }
        }
    }
}

/// The session's GET stream, as SSE bytes: a priming event carrying the starting cursor,
/// then one event per room message (and a comment every `keep_alive`). Opening it ends
/// an older GET stream of the same session.
pub fn live(
    router: Arc<dyn Router>,
    session: Arc<Session>,
    resume: Option<Cursor>,
    keep_alive: Duration,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    let registration = session.open_live();
    let guard = LiveGuard {
        session: session.clone(),
        generation: registration.generation,
    };
    let rooms = session.rooms();
    let mut live = Live {
        router,
        session,
        registration,
        feeds: StreamMap::new(),
        cursor: Cursor::default(),
        resume,
        open: Vec::new(),
        pending: rooms.iter().rev().map(|r| r.slot).collect(),
        keep_alive,
        _guard: guard,
    };
    let start = async move {
        // The POST-path subscriptions would only fall behind while this stream is open.
        live.session.flush.lock().await.clear();
        while let Some(slot) = live.pending.pop() {
            live.open_room(slot).await;
        }
        // With an empty `data:` line, or SSE parsers would not dispatch it (and clients
        // would not learn the id); clients skip events without data.
        let priming = match live.cursor.encode() {
            id if id.is_empty() => Bytes::from_static(b"retry: 3000\ndata:\n\n"),
            id => Bytes::from(format!("id: {id}\nretry: 3000\ndata:\n\n")),
        };
        (priming, live)
    };
    futures::stream::once(start).flat_map(|(priming, live)| {
        let rest = futures::stream::unfold(live, |mut live| async move {
            live.next_event().await.map(|e| (e, live))
        });
        futures::stream::once(async move { priming })
            .chain(rest)
            .map(Ok::<_, Infallible>)
    })
}
