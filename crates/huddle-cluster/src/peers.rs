//! Calling other nodes: one tonic channel per peer address (connected on first use,
//! reconnected by tonic), with bounded connect and request times, and the metadata every
//! internal call carries: the cluster secret, the internal protocol version and the
//! caller's trace context.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use huddle_core::RoomId;
use huddle_proto::internal::node_client::NodeClient;
use huddle_proto::internal::{CallReply, CallRequest, call_reply};
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::placement::{Peer, View};
use crate::trace;

/// The internal protocol version this node speaks (and registers in the membership).
pub const VERSION: u32 = crate::placement::INTERNAL_VERSION;
/// The metadata key carrying the caller's internal protocol version.
pub const VERSION_HEADER: &str = "huddle-internal-version";

/// How long a peer may take: to accept a connection, and to answer one call.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(15),
        }
    }
}

/// The cluster secret is not usable as a header value (not visible ASCII).
#[derive(Debug, thiserror::Error)]
#[error("the cluster secret must be visible ASCII (no spaces or control characters)")]
pub struct BadSecret;

/// The channels to the other nodes.
#[derive(Clone)]
pub struct Peers {
    inner: Arc<Inner>,
}

struct Inner {
    /// By address; only addresses of the current view are kept (see [`Peers::retain`]).
    channels: Mutex<HashMap<Arc<str>, Channel>>,
    authorization: MetadataValue<Ascii>,
    timeouts: Timeouts,
}

/// What a forwarded call came back with.
#[derive(Debug)]
pub enum Reply {
    /// The JSON of `Result<Answer, RoomError>`.
    Answer(Vec<u8>),
    /// The peer does not own the room; it names who it thinks does ("" if nobody).
    NotOwner(String),
}

/// Why a forwarded call has no reply.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No connection to the peer could be made: the call was never sent.
    #[error("node {peer} unreachable: {reason}")]
    Unreachable { peer: String, reason: String },
    /// The call was sent and its answer lost (connection broken, timeout): it may or may
    /// not have been applied.
    #[error("node {peer} did not answer: {reason}")]
    Lost { peer: String, reason: String },
    /// The peer refused the call itself (secret, version, unknown operation, bad
    /// payload): not applied, and asking again will not help.
    #[error("node {peer} refused the call: {status}")]
    Refused { peer: String, status: tonic::Status },
}

impl Peers {
    pub fn new(secret: &str, timeouts: Timeouts) -> Result<Self, BadSecret> {
        let authorization = MetadataValue::try_from(format!("Bearer {secret}"))
            .ok()
            .filter(|_| !secret.is_empty() && secret.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or(BadSecret)?;
        Ok(Self {
            inner: Arc::new(Inner {
                channels: Mutex::new(HashMap::new()),
                authorization,
                timeouts,
            }),
        })
    }

    /// `msg` as a request with the internal metadata: secret, version, trace context.
    pub fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(msg);
        request.set_timeout(self.inner.timeouts.request);
        let metadata = request.metadata_mut();
        metadata.insert("authorization", self.inner.authorization.clone());
        metadata.insert(VERSION_HEADER, MetadataValue::from(VERSION));
        trace::inject(&mut trace::Metadata(metadata));
        request
    }

    /// A client of the peer's node service (its channel made on first use).
    pub fn client(&self, peer: &Peer) -> NodeClient<Channel> {
        NodeClient::new(self.channel(&peer.addr))
    }

    fn channel(&self, addr: &Arc<str>) -> Channel {
        let mut channels = self.inner.channels.lock().expect("peer channels poisoned");
        if let Some(c) = channels.get(addr) {
            return c.clone();
        }
        let t = self.inner.timeouts;
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap_or_else(|_| Endpoint::from_static("http://invalid.invalid"))
            .connect_timeout(t.connect)
            .timeout(t.request)
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(addr.clone(), channel.clone());
        channel
    }

    /// Drops the channels of nodes no longer in `view` (the map stays as small as the
    /// cluster).
    pub fn retain(&self, view: &View) {
        let mut channels = self.inner.channels.lock().expect("peer channels poisoned");
        channels.retain(|addr, _| view.nodes().iter().any(|p| &p.addr == addr));
    }

    /// Sends one room operation (its name and JSON) to `peer`.
    pub async fn call(
        &self,
        peer: &Peer,
        room: RoomId,
        op: &str,
        payload: Vec<u8>,
    ) -> Result<Reply, CallError> {
        let request = self.request(CallRequest {
            room_id: room.to_string(),
            op: op.to_string(),
            payload,
        });
        let who = || peer.id.to_string();
        match self.client(peer).call(request).await {
            Ok(reply) => match reply.into_inner() {
                CallReply {
                    result: Some(call_reply::Result::Answer(answer)),
                } => Ok(Reply::Answer(answer)),
                CallReply {
                    result: Some(call_reply::Result::NotOwner(n)),
                } => Ok(Reply::NotOwner(n.owner)),
                CallReply { result: None } => Err(CallError::Lost {
                    peer: who(),
                    reason: "an empty reply".into(),
                }),
            },
            Err(status) => Err(classify(who(), status)),
        }
    }
}

/// Sorts a failed call: refused by the peer, never sent, or sent and unanswered.
fn classify(peer: String, status: tonic::Status) -> CallError {
    match status.code() {
        Code::Unauthenticated
        | Code::FailedPrecondition
        | Code::Unimplemented
        | Code::InvalidArgument
        | Code::PermissionDenied
        | Code::ResourceExhausted
        | Code::OutOfRange => CallError::Refused { peer, status },
        Code::Unavailable if never_connected(&status) => CallError::Unreachable {
            peer,
            reason: status.message().to_string(),
        },
        Code::Ok
        | Code::Cancelled
        | Code::Unknown
        | Code::DeadlineExceeded
        | Code::NotFound
        | Code::AlreadyExists
        | Code::Aborted
        | Code::Internal
        | Code::Unavailable
        | Code::DataLoss => CallError::Lost {
            peer,
            reason: format!("{}: {}", status.code(), status.message()),
        },
    }
}

/// Whether the call failed while connecting (refused, unreachable, connect timeout):
/// then nothing was sent. Anything else is treated as possibly delivered.
fn never_connected(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
                    | std::io::ErrorKind::AddrNotAvailable
            )
        {
            return true;
        }
        // hyper-util's connector says so in its text (`tcp connect error`), tonic's
        // connect timeout too.
        let text = e.to_string();
        if text.contains("connect error") || text.contains("connect timed out") {
            return true;
        }
        source = e.source();
    }
    false
}
