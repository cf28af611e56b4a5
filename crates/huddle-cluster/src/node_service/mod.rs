//! The internal `huddle.internal.v1.Node` service a node serves on `--node-listen`, for
//! the other nodes of its cluster only.
//!
//! - [`follow`] — `Follow`: a room's events, live, from its owner.

pub mod follow;

use std::pin::Pin;

use futures::Stream;
use huddle_proto::internal::FeedEvent;
use tonic::Status;

/// The stream a `Follow` answers with.
pub type Feed = Pin<Box<dyn Stream<Item = Result<FeedEvent, Status>> + Send>>;
