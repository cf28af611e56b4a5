//! What a store failure means to a client.

use huddle_core::RoomError;
use huddle_store::StoreError;

/// A full read queue is load: `Server busy ... (limit N)`, safe to retry, naming the
/// store's limit. Anything else is the store failing: `Service unavailable`.
pub(crate) fn room_error(e: StoreError) -> RoomError {
    match e {
        StoreError::Busy(limit) => RoomError::Busy(limit),
        e @ (StoreError::Fenced(..) | StoreError::NoSuchRoom(_) | StoreError::Backend(_)) => {
            RoomError::Unavailable(e.to_string())
        }
    }
}
