//! `Follow`: a room's events, live, from its owner (not served yet: UNIMPLEMENTED, so a
//! caller falls back as for an older node).

use huddle_proto::internal::FollowRequest;
use huddle_rooms::RoomDirectory;
use tonic::{Request, Response, Status};

use super::Feed;

pub(super) async fn follow(
    _rooms: &RoomDirectory,
    _request: Request<FollowRequest>,
) -> Result<Response<Feed>, Status> {
    Err(Status::unimplemented("Follow is not served by this node"))
}
