//! Room feeds: a feed *source* authorises a reader and attaches it to the node-local
//! fan-out ([`crate::hub`]) in one step the room answers once, and [`open`] turns that into
//! the one resuming stream every protocol reads (log first, then live).
//!
//! Resumption without gap or duplicate: a source answers with the room's `last_seq` and a
//! [`Live`] attached at a point from which every message after that `last_seq` reaches it
//! (the local room's actor attaches and reads `last_seq` in one step of its mailbox; see
//! [`FeedSource`] for a remote owner). The log `(after, last_seq]` is replayed from the
//! store, then live messages are forwarded, skipping any `seq` already sent.
//!
//! A subscriber that falls behind the fan-out's bound gets [`SubscribeError::Lagged`]:
//! with [`OnLag::End`] its stream ends there (SSE and gRPC clients resume with their
//! last seq, as the protocol documents), with [`OnLag::Resume`] the stream asks the source
//! again and carries on from the last seq it delivered, replaying the log in between —
//! the same no-gap, no-duplicate rule, without the client noticing (MCP delivery).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use futures::Stream;
use huddle_core::{AgentToken, MemberId, RoomError, RoomId, Seq, SharedMessage};
use huddle_store::{LogRange, RoomStore};
use thiserror::Error;
use tokio::sync::OwnedSemaphorePermit;

use crate::hub::{Fanout, Hub, Lagged, Live};

/// Messages replayed from the store per read.
const REPLAY_PAGE: usize = 500;

#[derive(Debug, Error, Clone)]
pub enum SubscribeError {
    #[error("subscriber fell too far behind after seq {0}; resume from it")]
    Lagged(Seq),
    #[error("room closed")]
    Closed,
    /// The subscriber's agent left or was kicked: its stream ends.
    #[error("the agent is no longer a member of the room")]
    Removed,
    #[error("store failure during replay: {0}")]
    Store(String),
    /// A resuming stream asked its source again and was refused (e.g. the node is busy).
    #[error("could not resume the stream: {0}")]
    Resume(RoomError),
}

pub type MessageStream = Pin<Box<dyn Stream<Item = Result<SharedMessage, SubscribeError>> + Send>>;

/// A reader's start, as its room's source answered it.
pub struct Opened {
    pub member: MemberId,
    /// The room's committed last seq when `live` was attached.
    pub last_seq: Seq,
    /// Gets every message published after `last_seq`.
    pub live: Live,
}

/// Where a room's messages come from, for this node's fan-out.
///
/// Today the room's own actor ([`crate::RoomDirectory`]): it authorises the reader, reads
/// `last_seq` and attaches the reader to the fan-out in one step of its mailbox, and it is
/// the room's only publisher. A remote source (the room's owner on another node, streaming
/// over the internal gRPC `Subscribe`) keeps one upstream feed per room with local
/// readers and publishes what it receives into the same fan-out; it attaches the reader
/// *before* asking the owner to authorise it, so the owner's `last_seq` is at least the
/// point the reader was attached at: whatever arrives in between is a duplicate the
/// stream skips, never a gap.
#[async_trait]
pub trait FeedSource: Send + Sync + 'static {
    /// Authorises `reader` for `room` and attaches it to the fan-out, answered once by the
    /// room: `RoomNotFound` for an unknown room (whatever the token), a missing token
    /// (`RoomError::Missing`) for `None`, else the token's verdict.
    async fn open(&self, room: RoomId, reader: Option<AgentToken>) -> Result<Opened, RoomError>;
}

/// A reader's request for a stream of one room's messages.
#[derive(Debug, Clone)]
pub struct Subscribe {
    pub room: RoomId,
    /// The reader's token: a request without one can only be refused.
    pub reader: Option<AgentToken>,
    /// Messages with `seq > after` (default: from now on).
    pub after: Option<Seq>,
    pub on_lag: OnLag,
}

/// What a stream does when its subscriber falls behind the fan-out's bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnLag {
    /// End with [`SubscribeError::Lagged`] naming the last seq delivered: the client
    /// resumes (SSE `Last-Event-ID`, gRPC `from_seq`).
    End,
    /// Ask the source again and carry on from the last seq delivered (log, then live).
    Resume,
}

/// An open stream and who reads it.
pub struct Subscribed {
    /// Messages visible to the reader with `seq > after`: log first, then live.
    pub stream: MessageStream,
    pub member: MemberId,
    /// The room's committed last seq when the stream was opened.
    pub last_seq: Seq,
    /// How far the stream knows the room's log goes (see [`CatchUp`]).
    pub catch_up: CatchUp,
}

/// How far a stream knows the room's log goes: the room's committed last seq when the
/// stream was (re)opened, or `Seq::MAX` while a resuming stream asks its source again.
/// Up to there, messages come from the store and need not wait for anything new to be
/// sent; a reader that wants "what is there now" (an MCP POST flush) waits for them while
/// its last seq is below this, and takes only what is at hand beyond it.
#[derive(Clone, Debug, Default)]
pub struct CatchUp(Arc<AtomicU64>);

impl CatchUp {
    pub fn until(&self) -> Seq {
        Seq::new(self.0.load(Ordering::Acquire))
    }

    fn set(&self, seq: Seq) {
        self.0.store(seq.get(), Ordering::Release);
    }
}

/// Opens the requested stream, holding one of the fan-out's stream places as long as the
/// stream lives. A request without a token takes no place: it can only be refused.
pub async fn open(
    source: Arc<dyn FeedSource>,
    hub: &Hub,
    store: Arc<dyn RoomStore>,
    req: Subscribe,
) -> Result<Subscribed, RoomError> {
    let Subscribe {
        room,
        reader,
        after,
        on_lag,
    } = req;
    let permit = match reader {
        Some(_) => Some(hub.admit()?),
        None => None,
    };
    let opened = source.open(room, reader.clone()).await?;
    let token = reader.ok_or_else(|| RoomError::Missing(vec!["agentToken".into()]))?;
    let (member, last_seq) = (opened.member, opened.last_seq);
    let after = after.unwrap_or(last_seq).min(last_seq);
    let cursor = Cursor::new(store, room, Some(member), after, last_seq, opened.live);
    let catch_up = CatchUp::default();
    catch_up.set(last_seq);
    let feed = Feed {
        source,
        token,
        on_lag,
        cursor,
        catch_up: catch_up.clone(),
        done: false,
        _permit: permit,
    };
    let stream = futures::stream::unfold(feed, |mut f| async move {
        let item = f.next().await?;
        Some((item, f))
    });
    Ok(Subscribed {
        stream: Box::pin(stream),
        member,
        last_seq,
        catch_up,
    })
}

/// A stream's state: where it is, and what it needs to ask its source again.
struct Feed {
    source: Arc<dyn FeedSource>,
    token: AgentToken,
    on_lag: OnLag,
    cursor: Cursor,
    catch_up: CatchUp,
    done: bool,
    /// The stream's place under `max_streams`, kept across resumptions.
    _permit: Option<OwnedSemaphorePermit>,
}

impl Feed {
    async fn next(&mut self) -> Option<Result<SharedMessage, SubscribeError>> {
        if self.done {
            return None;
        }
        loop {
            let reopen = match self.cursor.next().await {
                Ok(Fanout::Message(m)) => return Some(Ok(m)),
                Ok(Fanout::Left(member)) if Some(member) == self.cursor.viewer => {
                    Err(SubscribeError::Removed)
                }
                Ok(Fanout::Left(_)) => continue,
                Ok(Fanout::Reopen) => Ok(()),
                Err(SubscribeError::Lagged(_) | SubscribeError::Closed)
                    if self.on_lag == OnLag::Resume =>
                {
                    Ok(())
                }
                Err(e) => Err(e),
            };
            if let Err(e) = reopen.and(self.reopen().await) {
                self.done = true;
                return Some(Err(e));
            }
        }
    }

    /// Asks the source again (re-authorising the reader) and carries on from the last
    /// seq delivered: the log in between from the store, then live.
    async fn reopen(&mut self) -> Result<(), SubscribeError> {
        let sent = self.cursor.sent;
        self.catch_up.set(Seq::MAX);
        let reopened = self
            .source
            .open(self.cursor.room, Some(self.token.clone()))
            .await;
        match reopened {
            Ok(opened) => {
                self.catch_up.set(opened.last_seq);
                let after = sent.min(opened.last_seq);
                let store = self.cursor.store.clone();
                let (room, member) = (self.cursor.room, Some(opened.member));
                self.cursor = Cursor::new(store, room, member, after, opened.last_seq, opened.live);
                Ok(())
            }
            Err(RoomError::InvalidToken | RoomError::TokenNotInRoom) => {
                Err(SubscribeError::Removed)
            }
            Err(e) => Err(SubscribeError::Resume(e)),
        }
    }
}

/// Replay of the log up to where the live feed was attached, then the live feed.
///
/// Every message of the room passes through the fan-out (DMs too: a cursor filters for
/// its viewer), so a live message more than one `seq` past the last one seen means a gap
/// — the room changed publisher on this node, or two overlapped for a moment — and the
/// cursor fills it from the store before going on. Messages it already has are skipped.
pub(crate) struct Cursor {
    store: Arc<dyn RoomStore>,
    room: RoomId,
    /// Whose messages: a reader's member, or every message (`None`: a node following).
    viewer: Option<MemberId>,
    live: Live,
    /// Last seq handed to the subscriber (or skipped as invisible).
    sent: Seq,
    /// End of the replay: the room's committed last seq when the feed was attached, or
    /// the `seq` before a gap.
    replay_until: Seq,
    buffered: VecDeque<SharedMessage>,
    /// The live message that revealed a gap, delivered once the gap is filled.
    held: Option<SharedMessage>,
    /// Nothing more will be published: once the live feed is read out, the cursor ends
    /// with [`SubscribeError::Closed`] instead of waiting.
    closed: bool,
}

impl Cursor {
    pub(crate) fn new(
        store: Arc<dyn RoomStore>,
        room: RoomId,
        viewer: Option<MemberId>,
        after: Seq,
        last_seq: Seq,
        live: Live,
    ) -> Self {
        Self {
            store,
            room,
            viewer,
            live,
            sent: after,
            replay_until: last_seq,
            buffered: VecDeque::new(),
            held: None,
            closed: false,
        }
    }

    /// From now on, end once the live feed is read out (its publisher has stopped).
    pub(crate) fn close(&mut self) {
        self.closed = true;
    }

    /// The next message visible to the viewer, or departure, or [`Fanout::Reopen`].
    pub(crate) async fn next(&mut self) -> Result<Fanout, SubscribeError> {
        loop {
            if let Some(m) = self.buffered.pop_front() {
                self.sent = m.seq;
                return Ok(Fanout::Message(m));
            }
            if self.sent < self.replay_until {
                let page = self
                    .store
                    .messages_after(LogRange {
                        room: self.room,
                        viewer: self.viewer,
                        after: self.sent,
                        limit: REPLAY_PAGE,
                    })
                    .await
                    .map_err(|e| SubscribeError::Store(e.to_string()))?;
                self.buffered.extend(
                    page.into_iter()
                        .filter(|m| m.seq <= self.replay_until)
                        .map(SharedMessage::new),
                );
                if self.buffered.is_empty() {
                    // Nothing left up to replay_until is visible to this viewer.
                    self.sent = self.replay_until;
                }
                continue;
            }
            let item = match self.held.take() {
                Some(m) => Ok(Fanout::Message(m)),
                None if self.closed => match self.live.try_recv() {
                    Some(item) => item,
                    None => return Err(SubscribeError::Closed),
                },
                None => self.live.recv().await,
            };
            match item {
                Ok(Fanout::Message(m)) if m.seq <= self.sent => continue,
                Ok(Fanout::Message(m)) if m.seq > self.sent.next() => {
                    self.replay_until = m.seq.minus(1);
                    self.held = Some(m);
                }
                Ok(Fanout::Message(m)) if !self.viewer.is_none_or(|v| m.visible_to(v)) => {
                    self.sent = m.seq;
                }
                Ok(Fanout::Message(m)) => {
                    self.sent = m.seq;
                    return Ok(Fanout::Message(m));
                }
                Ok(other @ (Fanout::Left(_) | Fanout::Reopen)) => return Ok(other),
                Err(Lagged) => return Err(SubscribeError::Lagged(self.sent)),
            }
        }
    }
}
