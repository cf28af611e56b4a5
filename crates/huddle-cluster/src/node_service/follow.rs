//! `Follow`: every event of a room this node owns, for another node's upstream feed (see
//! `huddle_rooms::follow`). Ownership is checked first, as for `Call`: a node that is not
//! the room's owner in its view answers FAILED_PRECONDITION "not owner" and attaches
//! nothing. When the room leaves this node the stream ends the same way, after every
//! event the room published here, so the follower finds the owner again and resumes
//! from its last seq.

use futures::StreamExt;
use huddle_core::{RoomError, RoomId, Seq};
use huddle_proto::internal::{FeedEvent, FollowRequest, feed_event};
use huddle_rooms::{FollowEnd, FollowEvent, RoomDirectory};
use tonic::{Request, Response, Status};

use super::Feed;
use crate::placement::Placement;

/// The status text of a follow refused or ended because the room is not (or no longer)
/// this node's.
pub const NOT_OWNER: &str = "not owner";

pub async fn follow(
    rooms: &RoomDirectory,
    placement: &dyn Placement,
    request: Request<FollowRequest>,
) -> Result<Response<Feed>, Status> {
    let FollowRequest { room_id, after_seq } = request.into_inner();
    let room: RoomId = room_id
        .parse()
        .map_err(|_| Status::invalid_argument(format!("not a room id: {room_id:.64}")))?;
    let view = placement.view();
    if view.owner(room).map(|p| &p.id) != Some(placement.me()) || rooms.ceded(room) {
        return Err(Status::failed_precondition(NOT_OWNER));
    }
    let events = rooms
        .follow(room, Seq::new(after_seq))
        .await
        .map_err(refused)?;
    let feed = events.map(|item| match item {
        Ok(event) => Ok(encode(&event)),
        Err(end) => Err(ended(end)),
    });
    Ok(Response::new(Box::pin(feed)))
}

/// One event as it travels: a message as the core's JSON, a departure as its member.
pub fn encode(event: &FollowEvent) -> FeedEvent {
    let event = match event {
        FollowEvent::Message(m) => {
            // A `Message` is plain data: encoding it cannot fail.
            let json = serde_json::to_vec(m.message()).unwrap_or_default();
            feed_event::Event::Message(json)
        }
        FollowEvent::Removed(member) => feed_event::Event::Removed(member.get()),
    };
    FeedEvent { event: Some(event) }
}

/// The status a follow ends with: the follower resumes from its last seq either way.
fn ended(end: FollowEnd) -> Status {
    match end {
        FollowEnd::Moved => Status::failed_precondition(NOT_OWNER),
        FollowEnd::Lagged(seq) => Status::resource_exhausted(format!(
            "follower fell too far behind after seq {seq}; follow again from it"
        )),
        FollowEnd::Store(e) | FollowEnd::Lost(e) => Status::unavailable(e),
    }
}

/// Why the owner could not start a follow.
fn refused(e: RoomError) -> Status {
    match e {
        RoomError::RoomNotFound(_) => Status::not_found(e.to_string()),
        RoomError::Busy(_) => Status::resource_exhausted(e.to_string()),
        other => Status::unavailable(other.to_string()),
    }
}
