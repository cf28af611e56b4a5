//! A room operation on its way to the room, with the typed port its answer goes back
//! on.
//!
//! Each [`RoomOp`] has one [`RoomCall`] variant holding the operation and a
//! [`Port`] of exactly its answer type, so an answer can only go to a caller that asked
//! for that answer: nothing pairs requests and answers at run time. [`RoomCall`] is what
//! crosses an object-safe seam (the cluster's `Router`); [`call`] makes one and the
//! future of its answer, and [`RoomCall::answer`] runs one through anything that can
//! answer every operation (the local directory, or a forwarder to another node).

use std::future::Future;

use huddle_core::{
    Acknowledge, Authorize, GetInfo, GetLock, GetUnread, JoinRoom, LeaveRoom, ModerateAgent,
    RoomError, RoomId, RoomOp, SendMessage, UpdateRoom,
};
use tokio::sync::oneshot;

/// Where one operation's answer goes.
#[derive(Debug)]
pub struct Port<T>(oneshot::Sender<Result<T, RoomError>>);

impl<T> Port<T> {
    /// Answers the caller; a caller that gave up is gone, and the answer with it.
    pub fn send(self, result: Result<T, RoomError>) {
        let _ = self.0.send(result);
    }
}

/// Anything that answers every operation on every room: the node's rooms, or a
/// forwarder.
pub trait Answerer: Sync {
    fn answer<O: Ask>(
        &self,
        room: RoomId,
        op: O,
    ) -> impl Future<Output = Result<O::Answer, RoomError>> + Send;
}

/// A [`RoomOp`] that travels as a [`RoomCall`].
pub trait Ask: RoomOp + Replayable {
    /// The operation's name, for traces.
    const NAME: &'static str;
    fn into_call(self, port: Port<Self::Answer>) -> RoomCall;
}

macro_rules! room_calls {
    ($($variant:ident($op:ty)),* $(,)?) => {
        /// One room operation and the port of its answer.
        #[derive(Debug)]
        pub enum RoomCall {
            $($variant($op, Port<<$op as RoomOp>::Answer>)),*
        }

        $(impl Ask for $op {
            const NAME: &'static str = stringify!($variant);
            fn into_call(self, port: Port<Self::Answer>) -> RoomCall {
                RoomCall::$variant(self, port)
            }
        })*

        impl RoomCall {
            /// Runs the operation on `room` through `by` and sends its answer to the
            /// caller.
            pub async fn answer(self, room: RoomId, by: &impl Answerer) {
                match self {
                    $(RoomCall::$variant(op, port) => port.send(by.answer(room, op).await)),*
                }
            }
        }

        /// Runs the operation called `name` (its [`Ask::NAME`]), given as the JSON of
        /// the operation, on `room` through `by`, and returns the JSON of its answer
        /// (`Result<Answer, RoomError>`): the owner's side of a call forwarded from
        /// another node, from the same table as [`RoomCall`], so no operation can be
        /// callable locally and unknown over the wire.
        pub async fn answer_json(
            name: &str,
            room: RoomId,
            payload: &[u8],
            by: &impl Answerer,
        ) -> Result<Vec<u8>, WireError> {
            $(if name == <$op as Ask>::NAME {
                let op: $op = serde_json::from_slice(payload).map_err(WireError::Payload)?;
                return serde_json::to_vec(&by.answer(room, op).await).map_err(WireError::Encode);
            })*
            Err(WireError::UnknownOp(name.chars().take(64).collect()))
        }
    };
}

/// Why a forwarded operation could not be run.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// No operation has this name (a newer node's operation, or garbage); shortened
    /// to 64 characters.
    #[error("unknown room operation {0:?}")]
    UnknownOp(String),
    /// The payload is not the JSON of the named operation.
    #[error("malformed operation: {0}")]
    Payload(serde_json::Error),
    /// The answer could not be encoded.
    #[error("answer not encodable: {0}")]
    Encode(serde_json::Error),
}

/// Whether an operation may be sent again when its answer was lost on the way back
/// (a forwarded call whose connection broke after it was sent): only when running it
/// twice does what running it once did.
pub trait Replayable {
    fn replayable(&self) -> bool;
}

/// Reads: running them again changes nothing.
macro_rules! reads {
    ($($op:ty),*) => {$(
        impl Replayable for $op {
            fn replayable(&self) -> bool {
                true
            }
        }
    )*};
}

/// Writes whose repetition is not the same as one run: a join again is refused as a
/// name taken (and loses the token of the first), a leave or kick again is refused, an
/// update posts a second notice, an unread again skips the page the first one read.
macro_rules! writes {
    ($($op:ty),*) => {$(
        impl Replayable for $op {
            fn replayable(&self) -> bool {
                false
            }
        }
    )*};
}

// An acknowledgement names the cursor it moves from: a repeat is a no-op.
reads!(GetInfo, GetLock, Authorize, Acknowledge);
writes!(JoinRoom, LeaveRoom, ModerateAgent, UpdateRoom, GetUnread);

/// A send with an idempotency key answers a repeat with the first answer (same `seq`);
/// without a key a repeat is a second message.
impl Replayable for SendMessage {
    fn replayable(&self) -> bool {
        self.key.is_some()
    }
}

room_calls! {
    Join(JoinRoom),
    Leave(LeaveRoom),
    Moderate(ModerateAgent),
    Update(UpdateRoom),
    Send(SendMessage),
    Unread(GetUnread),
    Info(GetInfo),
    Lock(GetLock),
    Authorize(Authorize),
    Acknowledge(Acknowledge),
}

/// `op` as a call, and the future of its answer (`Unavailable` if whoever took the call
/// dropped it unanswered).
pub fn call<O: Ask>(
    op: O,
) -> (
    RoomCall,
    impl Future<Output = Result<O::Answer, RoomError>> + Send,
) {
    let (tx, rx) = oneshot::channel();
    let answer = async move {
        rx.await.unwrap_or_else(|_| {
            Err(RoomError::Unavailable(
                "the room dropped the request; retry".into(),
            ))
        })
    };
    (op.into_call(Port(tx)), answer)
}

/// A port and the receiver of its answer, for the room's actor to be handed a call
/// directly (the directory's side).
pub(crate) fn port<T>() -> (Port<T>, oneshot::Receiver<Result<T, RoomError>>) {
    let (tx, rx) = oneshot::channel();
    (Port(tx), rx)
}
