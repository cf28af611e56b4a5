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
    RoomError, RoomOp, SendMessage, UpdateRoom,
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

/// Anything that answers every room operation: the node's rooms, or a forwarder.
pub trait Answerer: Sync {
    fn answer<O: Ask>(&self, op: O) -> impl Future<Output = Result<O::Answer, RoomError>> + Send;
}

/// A [`RoomOp`] that travels as a [`RoomCall`].
pub trait Ask: RoomOp {
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
            /// Runs the operation through `by` and sends its answer to the caller.
            pub async fn answer(self, by: &impl Answerer) {
                match self {
                    $(RoomCall::$variant(op, port) => port.send(by.answer(op).await)),*
                }
            }
        }
    };
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
