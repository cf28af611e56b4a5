//! `huddle.v1.RoomService`: each RPC parses its request into a call of the typed room
//! API (`huddle-app`, the same calls the A2A/MCP actions make), and renders the typed
//! answer through `huddle_proto::conversions`. Errors go through [`super::status`].

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use huddle_app::{Access, JoinAs, RoomApi, split_context};
use huddle_cluster::{OnLag, Router, Subscribe};
use huddle_core::{AgentToken, CreateRoom, Moderation, Page, RoomError, Seq};
use huddle_metrics::streams::{OpenStream, StreamKind};
use huddle_proto::conversions::{self, room_type_param};
use huddle_proto::v1 as pb;
use huddle_proto::v1::room_service_server::RoomService;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::status::{shutting_down, stream_end, to_status};
use crate::params::required;

/// The room service over a [`Router`].
#[derive(Clone)]
pub struct RoomGrpc {
    router: Arc<dyn Router>,
    /// The node's shutdown: open `Subscribe` streams end with UNAVAILABLE when it fires.
    shutdown: CancellationToken,
}

impl RoomGrpc {
    pub fn new(router: Arc<dyn Router>, shutdown: CancellationToken) -> Self {
        Self { router, shutdown }
    }

    fn router(&self) -> &dyn Router {
        self.router.as_ref()
    }

    fn api(&self) -> RoomApi<'_> {
        RoomApi::new(self.router())
    }
}

type GrpcResult<T> = Result<Response<T>, Status>;

/// Runs `f` and turns its [`RoomError`] into the status of the contract's text.
fn answer<T>(r: Result<T, RoomError>) -> GrpcResult<T> {
    r.map(Response::new).map_err(|e| to_status(&e))
}

/// The agent token of a request: the request's field when non-empty, else the
/// `authorization: Bearer <token>` metadata.
fn presented_token(field: Option<&str>, metadata: &MetadataMap) -> Option<AgentToken> {
    if let Some(t) = field.filter(|t| !t.is_empty()) {
        return Some(AgentToken::from_wire(t));
    }
    let value = metadata.get("authorization")?.to_str().ok()?;
    crate::bearer::token(value).map(AgentToken::from_wire)
}

/// The caller's address: the HTTP listener's peer (gRPC on the main port), or tonic's
/// own when it serves the connection.
fn client_ip<T>(request: &Request<T>) -> Option<std::net::IpAddr> {
    crate::peer::ip(request.extensions()).or(request.remote_addr().map(|a| a.ip()))
}

fn required_token(field: Option<&str>, metadata: &MetadataMap) -> Result<AgentToken, RoomError> {
    presented_token(field, metadata).ok_or_else(|| RoomError::missing(&["agentToken"]))
}

/// A page from the request's values: proto3's 0 is "not given".
fn page(limit: u32, offset: u32) -> Page {
    Page::new(
        Some(limit).filter(|l| *l > 0).map(i64::from),
        Some(i64::from(offset)),
    )
}

/// Promote, demote and kick share their checks (an admin's token and a target);
/// answers the target's name as it joined.
async fn moderate(
    api: RoomApi<'_>,
    metadata: &MetadataMap,
    agent_token: Option<String>,
    target: String,
    action: Moderation,
) -> Result<String, RoomError> {
    let token = presented_token(agent_token.as_deref(), metadata);
    required(&[
        ("agentToken", token.is_some()),
        ("targetAgent", !target.is_empty()),
    ])?;
    let token = token.expect("checked above");
    let (_, moderated) = api.moderate(token, target, action).await?;
    Ok(moderated.target)
}

#[tonic::async_trait]
impl RoomService for RoomGrpc {
    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "CreateRoom"))]
    async fn create_room(
        &self,
        request: Request<pb::CreateRoomRequest>,
    ) -> GrpcResult<pb::CreateRoomResponse> {
        let r = request.into_inner();
        answer(
            async {
                required(&[("agentName", !r.agent_name.is_empty())])?;
                let created = self
                    .api()
                    .create(CreateRoom {
                        name: Some(r.name).filter(|n| !n.trim().is_empty()),
                        agent_name: r.agent_name,
                        password: r.password,
                        description: r.description,
                        kind: room_type_param(r.r#type),
                        endpoint: r.agent_endpoint.filter(|e| !e.is_empty()),
                    })
                    .await?;
                Ok(pb::CreateRoomResponse::from(created))
            }
            .await,
        )
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "JoinRoom"))]
    async fn join_room(
        &self,
        request: Request<pb::JoinRoomRequest>,
    ) -> GrpcResult<pb::JoinRoomResponse> {
        let token = presented_token(request.get_ref().agent_token.as_deref(), request.metadata());
        let client = client_ip(&request);
        let r = request.into_inner();
        answer(
            async {
                required(&[
                    ("roomId", !r.room.is_empty()),
                    ("agentName", !r.agent_name.is_empty()),
                ])?;
                let (reference, password) = split_context(&r.room, r.password);
                let access = Access {
                    password,
                    client,
                    member_of: None,
                };
                let who = JoinAs {
                    agent_name: r.agent_name,
                    token,
                    endpoint: r.agent_endpoint.filter(|e| !e.is_empty()),
                };
                let joined = self.api().join(&reference, access, who).await?;
                let (missed_messages, missed_has_more) = conversions::missed(&joined.missed);
                Ok(pb::JoinRoomResponse {
                    room_id: joined.room_id.to_string(),
                    agent_name: joined.agent_name,
                    agent_token: joined.agent_token.as_str().to_string(),
                    role: pb::Role::from(joined.role).into(),
                    reconnected: joined.reconnected,
                    missed_messages,
                    missed_has_more,
                })
            }
            .await,
        )
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "LeaveRoom"))]
    async fn leave_room(
        &self,
        request: Request<pb::LeaveRoomRequest>,
    ) -> GrpcResult<pb::LeaveRoomResponse> {
        answer(
            async {
                let token =
                    required_token(request.get_ref().agent_token.as_deref(), request.metadata())?;
                let room = self.api().leave(token).await?;
                Ok(pb::LeaveRoomResponse {
                    room_id: room.to_string(),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "GetRoom"))]
    async fn get_room(
        &self,
        request: Request<pb::GetRoomRequest>,
    ) -> GrpcResult<pb::GetRoomResponse> {
        let token = presented_token(request.get_ref().agent_token.as_deref(), request.metadata());
        let client = client_ip(&request);
        let r = request.into_inner();
        answer(
            async {
                required(&[("roomId", !r.room.is_empty())])?;
                let (reference, password) = split_context(&r.room, r.password);
                let view = self.api().info(&reference, password, client, token).await?;
                Ok(pb::GetRoomResponse::from(view))
            }
            .await,
        )
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "ListRooms"))]
    async fn list_rooms(
        &self,
        request: Request<pb::ListRoomsRequest>,
    ) -> GrpcResult<pb::ListRoomsResponse> {
        let r = request.into_inner();
        answer(
            async {
                let search = Some(r.search.as_str()).filter(|s| !s.is_empty());
                let page = self.api().list(search, page(r.limit, r.offset)).await?;
                Ok(pb::ListRoomsResponse {
                    rooms: page.rooms.iter().map(pb::RoomSummary::from).collect(),
                    total: page.total,
                })
            }
            .await,
        )
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "SendMessage"))]
    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> GrpcResult<pb::SendMessageResponse> {
        let token = presented_token(request.get_ref().agent_token.as_deref(), request.metadata());
        let r = request.into_inner();
        answer(
            async {
                required(&[
                    ("text", !r.text.is_empty()),
                    ("agentToken", token.is_some()),
                ])?;
                let token = token.expect("checked above");
                let (_, sent) = self.api().send(token, r.text, r.to, r.message_id).await?;
                let (missed_messages, missed_has_more) = conversions::missed(&sent.missed);
                Ok(pb::SendMessageResponse {
                    seq: sent.seq.get(),
                    missed_messages,
                    missed_has_more,
                })
            }
            .await,
        )
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "GetHistory"))]
    async fn get_history(
        &self,
        request: Request<pb::GetHistoryRequest>,
    ) -> GrpcResult<pb::GetHistoryResponse> {
        answer(
            async {
                let token =
                    required_token(request.get_ref().agent_token.as_deref(), request.metadata())?;
                let r = request.get_ref();
                let (_, history) = self
                    .api()
                    .history(token, Some(r.room_id.as_str()), page(r.limit, r.offset))
                    .await?;
                Ok(pb::GetHistoryResponse {
                    messages: conversions::messages(&history.messages),
                    total: history.total,
                })
            }
            .await,
        )
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "GetUnread"))]
    async fn get_unread(
        &self,
        request: Request<pb::GetUnreadRequest>,
    ) -> GrpcResult<pb::GetUnreadResponse> {
        answer(
            async {
                let token =
                    required_token(request.get_ref().agent_token.as_deref(), request.metadata())?;
                let (_, page) = self.api().unread(token).await?;
                let (messages, has_more) = conversions::missed(&page);
                Ok(pb::GetUnreadResponse { messages, has_more })
            }
            .await,
        )
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "Promote"))]
    async fn promote(
        &self,
        request: Request<pb::PromoteRequest>,
    ) -> GrpcResult<pb::PromoteResponse> {
        let (md, _, r) = request.into_parts();
        let (token, target) = (r.agent_token, r.target_agent);
        let done = moderate(self.api(), &md, token, target, Moderation::Promote).await;
        answer(done.map(|target_agent| pb::PromoteResponse { target_agent }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "Demote"))]
    async fn demote(&self, request: Request<pb::DemoteRequest>) -> GrpcResult<pb::DemoteResponse> {
        let (md, _, r) = request.into_parts();
        let (token, target) = (r.agent_token, r.target_agent);
        let done = moderate(self.api(), &md, token, target, Moderation::Demote).await;
        answer(done.map(|target_agent| pb::DemoteResponse { target_agent }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "Kick"))]
    async fn kick(&self, request: Request<pb::KickRequest>) -> GrpcResult<pb::KickResponse> {
        let (md, _, r) = request.into_parts();
        let (token, target) = (r.agent_token, r.target_agent);
        let done = moderate(self.api(), &md, token, target, Moderation::Kick).await;
        answer(done.map(|target_agent| pb::KickResponse { target_agent }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "UpdateRoom"))]
    async fn update_room(
        &self,
        request: Request<pb::UpdateRoomRequest>,
    ) -> GrpcResult<pb::UpdateRoomResponse> {
        let token = presented_token(request.get_ref().agent_token.as_deref(), request.metadata());
        let r = request.into_inner();
        answer(
            async {
                let kind = room_type_param(r.r#type);
                let (_, updated) = self.api().update(token, r.description, kind).await?;
                Ok(pb::UpdateRoomResponse {
                    changes: updated.changes,
                })
            }
            .await,
        )
    }

    type SubscribeStream =
        Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send + 'static>>;

    #[tracing::instrument(level = "debug", skip_all, fields(rpc.method = "Subscribe"))]
    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> GrpcResult<Self::SubscribeStream> {
        let opened = async {
            let token =
                required_token(request.get_ref().agent_token.as_deref(), request.metadata())?;
            let r = request.get_ref();
            let room = self
                .api()
                .reading_room(&token, Some(r.room_id.as_str()))
                .await?;
            // The client resumes with `from_seq` (RESOURCE_EXHAUSTED names it): `OnLag::End`.
            let request = Subscribe {
                room,
                reader: Some(token),
                after: r.from_seq.map(Seq::new),
                on_lag: OnLag::End,
            };
            let opened = self.router().subscribe(request).await;
            huddle_app::for_token(opened).map(|subscribed| subscribed.stream)
        }
        .await;
        let messages = opened.map_err(|e| to_status(&e))?;
        // Each message as a response; the first error ends the stream, with a status or
        // (the agent left) cleanly.
        let stream = messages
            .scan(false, |ended, item| {
                let out = match item {
                    _ if *ended => None,
                    Ok(m) => Some(Some(Ok(pb::SubscribeResponse {
                        message: Some(pb::Message::from(m.message())),
                    }))),
                    Err(e) => {
                        *ended = true;
                        tracing::debug!(error = %e, "grpc subscription ends");
                        Some(stream_end(&e).map(Err))
                    }
                };
                futures::future::ready(out)
            })
            .filter_map(futures::future::ready);
        // The node shuts down: the stream ends with UNAVAILABLE (resume elsewhere).
        let shutdown = self.shutdown.clone();
        let end = futures::stream::once(async move { shutdown.is_cancelled() })
            .filter_map(|cut| futures::future::ready(cut.then(|| Err(shutting_down()))));
        let open_stream = OpenStream::new(StreamKind::GrpcSubscribe);
        let stream = stream
            .take_until(self.shutdown.clone().cancelled_owned())
            .chain(end)
            .inspect(move |_| {
                let _counted = &open_stream;
            });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use tonic::metadata::MetadataValue;

    use super::*;

    #[test]
    fn the_field_wins_over_bearer_metadata() {
        let mut md = MetadataMap::new();
        md.insert(
            "authorization",
            MetadataValue::from_static("Bearer meta.tok"),
        );
        assert_eq!(
            presented_token(Some("field.tok"), &md).unwrap().as_str(),
            "field.tok"
        );
        assert_eq!(presented_token(None, &md).unwrap().as_str(), "meta.tok");
        assert_eq!(presented_token(Some(""), &md).unwrap().as_str(), "meta.tok");
    }

    #[test]
    fn only_a_bearer_scheme_is_a_token() {
        let mut md = MetadataMap::new();
        md.insert("authorization", MetadataValue::from_static("Basic abc"));
        assert!(presented_token(None, &md).is_none());
        md.insert("authorization", MetadataValue::from_static("bearer   x.y "));
        assert_eq!(presented_token(None, &md).unwrap().as_str(), "x.y");
        assert!(presented_token(None, &MetadataMap::new()).is_none());
    }

    #[test]
    fn page_sizes_default_to_20_and_stop_at_100() {
        let limits = [page(0, 0), page(5, 0), page(1000, 0)].map(|p| p.limit);
        assert_eq!(limits, [20, 5, 100]);
    }
}
