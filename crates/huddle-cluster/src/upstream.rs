//! Room feeds of a cluster node: today every stream is opened on this node's rooms (the
//! local feed source).

use huddle_core::{AgentToken, RoomError, RoomId, Seq};
use huddle_rooms::RoomDirectory;

use crate::{OnLag, Subscribed};

/// A reader's stream of `room` (see [`crate::Router::subscribe`]).
pub(crate) async fn subscribe(
    rooms: &RoomDirectory,
    room: RoomId,
    reader: Option<AgentToken>,
    after: Option<Seq>,
    on_lag: OnLag,
) -> Result<Subscribed, RoomError> {
    rooms.subscribe(room, reader, after, on_lag).await
}
