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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_read_queue_is_server_busy_naming_the_limit() {
        assert_eq!(
            room_error(StoreError::Busy(4098)).to_string(),
            "Server busy: too many requests in flight (limit 4098); retry shortly"
        );
        assert!(matches!(
            room_error(StoreError::Backend("disk".into())),
            RoomError::Unavailable(_)
        ));
    }
}
