//! The internal `huddle.internal.v1.Node` service a node serves on `--node-listen`, for
//! the other nodes of its cluster only.
//!
//! Every call passes [`check`] first (one interceptor for every method): the cluster
//! secret (compared in constant time; UNAUTHENTICATED otherwise) and the internal
//! protocol version (FAILED_PRECONDITION naming both versions). Request messages are
//! bounded ([`NodeService::routes`]). The caller's trace context becomes the parent of
//! the handling span.
//!
//! - [`call`]   — `Call`: one room operation, answered only by the room's owner.
//! - [`follow`] — `Follow`: a room's events, live, from its owner.

mod call;
pub mod follow;

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use huddle_proto::internal::node_server::{Node, NodeServer};
use huddle_proto::internal::{CallReply, CallRequest, FeedEvent, FollowRequest};
use huddle_rooms::RoomDirectory;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use crate::peers::{VERSION, VERSION_HEADER};
use crate::placement::Placement;

/// The node service over this node's rooms.
#[derive(Clone)]
pub struct NodeService {
    rooms: RoomDirectory,
    placement: Arc<dyn Placement>,
}

impl NodeService {
    pub fn new(rooms: RoomDirectory, placement: Arc<dyn Placement>) -> Self {
        Self { rooms, placement }
    }

    /// The service as axum routes, behind the secret and version check, its request
    /// messages at most `max_message` bytes (an operation's JSON: a message text plus
    /// a little).
    pub fn routes(self, secret: &str, max_message: usize) -> axum::Router {
        let server = NodeServer::new(self).max_decoding_message_size(max_message);
        let guard = Guard {
            secret: format!("Bearer {secret}").into_bytes().into(),
        };
        Routes::new(InterceptedService::new(server, guard))
            .prepare()
            .into_axum_router()
    }
}

type Feed = Pin<Box<dyn Stream<Item = Result<FeedEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Node for NodeService {
    async fn call(&self, request: Request<CallRequest>) -> Result<Response<CallReply>, Status> {
        call::call(&self.rooms, self.placement.as_ref(), request)
            .await
            .map(Response::new)
    }

    type FollowStream = Feed;

    async fn follow(
        &self,
        request: Request<FollowRequest>,
    ) -> Result<Response<Self::FollowStream>, Status> {
        follow::follow(&self.rooms, self.placement.as_ref(), request).await
    }
}

/// The secret and version check in front of every method.
#[derive(Clone)]
struct Guard {
    /// `Bearer <secret>`, as the `authorization` metadata must be.
    secret: Arc<[u8]>,
}

impl tonic::service::Interceptor for Guard {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        check(&self.secret, request.metadata())?;
        Ok(request)
    }
}

/// The caller's credentials and version, or why the call is refused.
fn check(secret: &[u8], metadata: &tonic::metadata::MetadataMap) -> Result<(), Status> {
    let presented = metadata
        .get("authorization")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !constant_time_eq(presented, secret) {
        return Err(Status::unauthenticated(
            "this is a Huddle node's internal service: wrong or missing cluster secret",
        ));
    }
    let version = metadata.get(VERSION_HEADER).and_then(|v| v.to_str().ok());
    match version.map(str::parse::<u32>) {
        Some(Ok(v)) if v == VERSION => Ok(()),
        Some(Ok(v)) => Err(Status::failed_precondition(format!(
            "internal protocol version {v} is not spoken here: this node speaks version {VERSION}"
        ))),
        Some(Err(_)) | None => Err(Status::failed_precondition(format!(
            "missing or unreadable {VERSION_HEADER} (this node speaks version {VERSION})"
        ))),
    }
}

/// Equal bytes, compared in time that depends only on the lengths (a secret's length is
/// not what an attacker needs to learn).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use tonic::metadata::MetadataMap;

    use super::*;

    fn metadata(auth: &str, version: Option<&str>) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", auth.parse().unwrap());
        if let Some(v) = version {
            m.insert(VERSION_HEADER, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn a_call_needs_the_secret_and_the_version() {
        let secret = b"Bearer s3cret";
        assert!(check(secret, &metadata("Bearer s3cret", Some("1"))).is_ok());
        let wrong = check(secret, &metadata("Bearer s3creT", Some("1"))).unwrap_err();
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        let short = check(secret, &metadata("Bearer s3cre", Some("1"))).unwrap_err();
        assert_eq!(short.code(), tonic::Code::Unauthenticated);
        let newer = check(secret, &metadata("Bearer s3cret", Some("2"))).unwrap_err();
        assert_eq!(newer.code(), tonic::Code::FailedPrecondition);
        assert!(newer.message().contains("version 2") && newer.message().contains("version 1"));
        let none = check(secret, &metadata("Bearer s3cret", None)).unwrap_err();
        assert_eq!(none.code(), tonic::Code::FailedPrecondition);
    }
}
