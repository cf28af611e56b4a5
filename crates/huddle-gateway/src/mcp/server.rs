//! The MCP server proper, on rmcp's [`ServerHandler`]: server info and instructions, the
//! tools, the room resources and `subscriptions/listen`.
//!
//! rmcp makes one [`RoomServer`] per legacy session (and one per sessionless request);
//! what a session remembers lives in [`Sessions`], found through the request's
//! `Mcp-Session-Id` header, so the HTTP layer (`http`) and the tools see the same state.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use huddle_cluster::Router;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, InitializeRequestParams,
    InitializeResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    ResourceTemplate, ServerConfig, SubscriptionFilter,
};
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::call;
use super::resources::{self, RoomUri};
use super::session::{Session, Sessions};
use super::tools;

/// The header a legacy session's requests carry.
pub const SESSION_HEADER: &str = "mcp-session-id";

/// Protocol revisions served: three with sessions, and the sessionless 2026-07-28.
pub const PROTOCOL_VERSIONS: &[ProtocolVersion] = &[
    ProtocolVersion::V_2026_07_28,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_03_26,
];

/// What every per-session handler shares.
pub struct Shared {
    pub router: Arc<dyn Router>,
    pub sessions: Arc<Sessions>,
    /// Most rooms one `subscriptions/listen` follows (`McpConfig::max_session_rooms`).
    pub max_listen_rooms: usize,
    /// The node's shutdown: live streams (GET, `subscriptions/listen`) end when it fires.
    pub shutdown: CancellationToken,
}

#[derive(Clone)]
pub struct RoomServer {
    shared: Arc<Shared>,
}

impl RoomServer {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The legacy session this request belongs to; `None` for a sessionless request.
    fn session(&self, context: &RequestContext<RoleServer>) -> Option<Arc<Session>> {
        let parts = context.extensions.get::<axum::http::request::Parts>()?;
        let id = parts.headers.get(SESSION_HEADER)?.to_str().ok()?;
        self.shared.sessions.get(id)
    }
}

/// Server info, capabilities and instructions (the A2A `help` text: one source).
fn info() -> ServerConfig {
    static INFO: OnceLock<ServerConfig> = OnceLock::new();
    INFO.get_or_init(|| {
        serde_json::from_value(json!({
            "protocolVersion": ProtocolVersion::V_2025_11_25.as_str(),
            "capabilities": {
                "tools": {},
                "logging": {},
                // `subscribe` is for `subscriptions/listen` (2026-07-28); sessions are told
                // about room messages through `notifications/message` instead.
                "resources": { "subscribe": true },
                "prompts": {},
            },
            "serverInfo": {
                "name": "Huddle",
                "title": "Huddle",
                "version": env!("CARGO_PKG_VERSION"),
            },
            "instructions": crate::docs::text(),
        }))
        .expect("server info is valid")
    })
    .clone()
}

fn tool_result(answer: call::ToolAnswer, sessionless: bool) -> CallToolResult {
    let mut content = vec![ContentBlock::text(answer.text)];
    // Without a session the client must know where to listen: link the room resource.
    if let (true, Some((room, token))) = (sessionless, answer.joined) {
        let link: Result<ContentBlock, _> = serde_json::from_value(json!({
            "type": "resource_link",
            "uri": RoomUri::format(room, Some(&token)),
            "name": format!("room/{room}"),
            "description": "This room's messages: subscribe with subscriptions/listen.",
            "mimeType": "application/json",
        }));
        if let Ok(link) = link {
            content.push(link);
        }
    }
    if answer.is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    }
}

impl ServerHandler for RoomServer {
    fn get_info(&self) -> ServerConfig {
        info()
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(PROTOCOL_VERSIONS)
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        context.peer.set_peer_info(request.clone());
        let mut result = self.negotiate_initialize(&request)?;
        // A session has no resource subscriptions: room messages come as notifications.
        if let Some(resources) = result.capabilities.resources.as_mut() {
            resources.subscribe = None;
        }
        Ok(result)
    }

    // `logging/setLevel` is deprecated from 2026-07-28 on, but Huddle's sessions advertise
    // `logging` and deliver room messages as log notifications.
    #[allow(deprecated)]
    async fn set_level(
        &self,
        _request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        // Room messages are `info`; they are what the session joined for, at any level.
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(
            tools::catalogue().as_ref().clone(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let Some(spec) = tools::find(&request.name) else {
            return Err(McpError::invalid_params(
                format!("Unknown tool: {}", request.name),
                None,
            ));
        };
        let session = self.session(&context);
        let args = Value::Object(request.arguments.unwrap_or_default());
        let client = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| crate::peer::ip(&parts.extensions));
        let answer = call::run(
            self.shared.router.as_ref(),
            session.as_ref(),
            spec,
            &args,
            client,
        )
        .await;
        Ok(tool_result(answer, session.is_none()).into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let session = self.session(&context);
        Ok(ListResourcesResult::with_all_items(resources::list(
            session.as_ref(),
        )))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let template: Result<ResourceTemplate, _> = serde_json::from_value(json!({
            "uriTemplate": "huddle://rooms/{roomId}/messages?agentToken={agentToken}",
            "name": "room-messages",
            "title": "Room messages",
            "description": "The messages of a room you joined, as your agent sees them (add &after=<seq> for only later ones).",
            "mimeType": "application/json",
        }));
        Ok(ListResourceTemplatesResult::with_all_items(
            template.into_iter().collect(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let session = self.session(&context);
        resources::read(self.shared.router.as_ref(), session.as_ref(), &request.uri)
            .await
            .map(Into::into)
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let uris = requested
            .resource_subscriptions
            .as_deref()
            .unwrap_or_default();
        Some(
            SubscriptionFilter::builder()
                .resource_subscriptions(resources::acceptable(uris))
                .build(),
        )
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let session = self.session(context.request_context());
        let listen = resources::listen(
            self.shared.router.clone(),
            session,
            context,
            self.shared.max_listen_rooms,
        );
        tokio::select! {
            ended = listen => ended,
            // The node shuts down: the stream completes (the protocol's graceful server
            // teardown) and the client listens again, with `after=<seq>`, elsewhere.
            () = self.shared.shutdown.cancelled() => Ok(()),
        }
    }
}
