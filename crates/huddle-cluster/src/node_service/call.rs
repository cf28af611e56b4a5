//! `Call`: one room operation from another node. Ownership is checked before anything
//! is decoded or applied: a node that does not hold the room answers `NotOwner` (naming
//! the owner of its view), and so does one whose room actor stepped down (fenced) while
//! answering, since nothing of the call was applied then.

use std::sync::atomic::{AtomicBool, Ordering};

use huddle_core::{RoomError, RoomId};
use huddle_proto::internal::{CallReply, CallRequest, NotOwner, call_reply};
use huddle_rooms::call::{Answerer, Ask, WireError, answer_json};
use huddle_rooms::{NotOwner as NotHere, RoomDirectory};
use tonic::{Request, Status};
use tracing::Instrument;

use crate::placement::Placement;
use crate::trace;

pub(super) async fn call(
    rooms: &RoomDirectory,
    placement: &dyn Placement,
    request: Request<CallRequest>,
) -> Result<CallReply, Status> {
    // Traced when the caller's trace is (see `trace`): the sampler ran where it began.
    macro_rules! call_span {
        ($target:expr) => {
            tracing::info_span!(
                target: $target,
                "node.call",
                room.id = tracing::field::Empty,
                command = tracing::field::Empty,
                node = %placement.me(),
            )
        };
    }
    let span = if trace::caller_sampled(request.metadata()) {
        let span = call_span!(trace::TRACED);
        trace::adopt(&span, request.metadata());
        span
    } else {
        call_span!(trace::UNTRACED)
    };
    let req = request.into_inner();
    async move {
        let room: RoomId = req
            .room_id
            .parse()
            .map_err(|_| Status::invalid_argument("room_id is not a room id"))?;
        let span = tracing::Span::current();
        span.record("room.id", tracing::field::display(room));
        span.record(
            "command",
            req.op.chars().take(32).collect::<String>().as_str(),
        );
        if !rooms.may_hold(room) {
            // The caller's view says this node owns the room and this node's does not:
            // one of them is stale. Read the membership again before saying so, so views
            // converge at the pace of calls rather than of renewals.
            placement.refresh().await;
            if !rooms.may_hold(room) {
                return Ok(not_owner(placement, room));
            }
        }
        let by = OnOwner {
            rooms,
            stepped_down: AtomicBool::new(false),
        };
        match answer_json(&req.op, room, &req.payload, &by).await {
            Ok(_) if by.stepped_down.load(Ordering::Acquire) => Ok(not_owner(placement, room)),
            Ok(answer) => Ok(CallReply {
                result: Some(call_reply::Result::Answer(answer)),
            }),
            Err(e @ WireError::UnknownOp(_)) => Err(Status::unimplemented(e.to_string())),
            Err(e @ WireError::Payload(_)) => Err(Status::invalid_argument(e.to_string())),
            Err(e @ WireError::Encode(_)) => Err(Status::internal(e.to_string())),
        }
    }
    .instrument(span)
    .await
}

fn not_owner(placement: &dyn Placement, room: RoomId) -> CallReply {
    let owner = placement
        .view()
        .owner(room)
        .map(|p| p.id.to_string())
        .unwrap_or_default();
    CallReply {
        result: Some(call_reply::Result::NotOwner(NotOwner { owner })),
    }
}

/// The local rooms answering a forwarded call; notes a step-down instead of answering.
struct OnOwner<'a> {
    rooms: &'a RoomDirectory,
    stepped_down: AtomicBool,
}

impl Answerer for OnOwner<'_> {
    async fn answer<O: Ask>(&self, room: RoomId, op: O) -> Result<O::Answer, RoomError> {
        match self.rooms.ask_owned(room, op).await {
            Ok(answer) => answer,
            Err(e @ NotHere(_)) => {
                self.stepped_down.store(true, Ordering::Release);
                Err(e.into())
            }
        }
    }
}
