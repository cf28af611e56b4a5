//! The A2A client of the tests: JSON-RPC `SendMessage` with `metadata.action` on
//! `POST /a2a`, built by [`Call`], answered as a [`Reply`]; the common steps (create,
//! join, send, history, unread) as one call each; and the room's SSE request.
//!
//! It asserts as it goes (a test wants the failure where it happened), except
//! [`Call::try_send`] and the `*_raw`/`*_request` calls, which hand back what came.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::http_client;
use crate::sse::Sse;

/// A client of one node's A2A endpoint (and its SSE streams), or of several nodes of
/// one cluster ([`A2a::spread`]): then each request goes to the next node in turn.
pub struct A2a {
    /// `http://127.0.0.1:<port>`, no trailing slash: the first node.
    pub base: String,
    pub http: reqwest::Client,
    next_id: AtomicU64,
    /// Every node's base when spread over a cluster (the first is `base`); else empty.
    nodes: Vec<String>,
    /// The node of the next request, when spread.
    next_node: AtomicU64,
}

impl A2a {
    /// A client of the node at `base` (`http://host:port`).
    pub fn new(base: &str) -> A2a {
        Self::spread(&[base])
    }

    /// A client of the nodes at `bases` (one cluster): each request (A2A call, SSE
    /// request) goes to the next node round-robin, so a retry goes to another node.
    pub fn spread(bases: &[&str]) -> A2a {
        assert!(!bases.is_empty(), "a client needs a node");
        let nodes: Vec<String> = bases
            .iter()
            .map(|b| b.trim_end_matches('/').to_string())
            .collect();
        A2a {
            base: nodes[0].clone(),
            http: http_client(),
            next_id: AtomicU64::new(1),
            nodes: if nodes.len() > 1 { nodes } else { Vec::new() },
            next_node: AtomicU64::new(0),
        }
    }

    /// `path` on this client's node (on the next node in turn when spread).
    pub fn url(&self, path: &str) -> String {
        if self.nodes.is_empty() {
            return format!("{}{}", self.base, path);
        }
        let i = self.next_node.fetch_add(1, Ordering::Relaxed) as usize % self.nodes.len();
        format!("{}{}", self.nodes[i], path)
    }

    fn rpc_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// POST a raw body to /a2a; returns status and body text.
    pub async fn post_a2a_raw(&self, body: impl Into<reqwest::Body>) -> (u16, String) {
        self.post_a2a_with(body, &[]).await
    }

    /// [`A2a::post_a2a_raw`] with extra request headers.
    async fn post_a2a_with(
        &self,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let mut request = self
            .http
            .post(self.url("/a2a"))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let resp = request.send().await.expect("POST /a2a");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("read /a2a body"))
    }

    /// POST a JSON-RPC request to /a2a; asserts HTTP 200 and returns the JSON answer.
    pub async fn rpc(&self, request: Value) -> Value {
        self.rpc_with(request, &[]).await
    }

    /// [`A2a::rpc`] with extra request headers.
    async fn rpc_with(&self, request: Value, headers: &[(&str, &str)]) -> Value {
        let (status, body) = self.post_a2a_with(request.to_string(), headers).await;
        assert_eq!(status, 200, "POST /a2a {request} answered {status}: {body}");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("POST /a2a answered non-JSON ({e}): {body}"))
    }

    /// A `SendMessage` with `metadata.action = action`.
    pub fn act(&self, action: &str) -> Call<'_> {
        Call {
            action: Some(action.to_string()),
            ..self.no_action()
        }
    }

    /// A `SendMessage` without `metadata.action`.
    pub fn no_action(&self) -> Call<'_> {
        Call {
            client: self,
            action: None,
            text: None,
            context: None,
            message_id: None,
            traceparent: None,
            meta: Map::new(),
        }
    }

    // ---- helpers for the common steps; each asserts success ----

    pub async fn create_room(&self, name: &str, agent: &str) -> Agent {
        let reply = self
            .act("room.create")
            .text(name)
            .meta("agentName", agent)
            .send()
            .await
            .ok();
        Agent::from_reply(&reply, agent)
    }

    pub async fn create_protected(&self, name: &str, password: &str, agent: &str) -> Agent {
        let reply = self
            .act("room.create")
            .text(name)
            .meta("agentName", agent)
            .meta("password", password)
            .send()
            .await
            .ok();
        Agent::from_reply(&reply, agent)
    }

    /// Join by `room` (an id, a name or `name:password`) as `agent`.
    pub async fn join(&self, room: &str, agent: &str) -> Agent {
        let reply = self
            .act("room.join")
            .ctx(room)
            .meta("agentName", agent)
            .send()
            .await
            .ok();
        Agent::from_reply(&reply, agent)
    }

    pub async fn say(&self, agent: &Agent, text: &str) -> Reply {
        self.act("message.send")
            .text(text)
            .token(&agent.token)
            .send()
            .await
            .ok()
    }

    pub async fn dm(&self, agent: &Agent, to: &str, text: &str) -> Reply {
        self.act("message.send")
            .text(text)
            .token(&agent.token)
            .meta("to", to)
            .send()
            .await
            .ok()
    }

    /// One page of `message.history` as the agent sees it.
    pub async fn history_page(&self, agent: &Agent, limit: u64, offset: u64) -> (Vec<Value>, u64) {
        let reply = self
            .act("message.history")
            .ctx(&agent.room_id)
            .token(&agent.token)
            .meta("limit", limit)
            .meta("offset", offset)
            .send()
            .await
            .ok();
        let messages = reply.data()["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("history data has no messages array: {}", reply.0))
            .clone();
        let total = reply.data()["total"]
            .as_u64()
            .unwrap_or_else(|| panic!("history data has no numeric total: {}", reply.0));
        (messages, total)
    }

    /// The agent's whole visible history, oldest first, paging with `offset`.
    pub async fn history_all(&self, agent: &Agent) -> Vec<Value> {
        let mut pages = Vec::new();
        let mut offset = 0;
        loop {
            let (page, total) = self.history_page(agent, 100, offset).await;
            let n = page.len() as u64;
            pages.push(page);
            offset += n;
            if n == 0 || offset >= total {
                break;
            }
        }
        pages.into_iter().rev().flatten().collect()
    }

    pub async fn unread(&self, agent: &Agent) -> Reply {
        self.act("message.unread")
            .token(&agent.token)
            .send()
            .await
            .ok()
    }

    /// Drain `message.unread` until no page says `hasMore`.
    pub async fn unread_all(&self, agent: &Agent) -> Vec<Value> {
        let mut all = Vec::new();
        for _ in 0..1000 {
            let reply = self.unread(agent).await;
            let page = reply.data()["messages"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            all.extend(page);
            if reply.data()["hasMore"] != json!(true) {
                return all;
            }
        }
        panic!("message.unread kept saying hasMore");
    }

    /// Open the SSE stream; asserts 200 and `text/event-stream`.
    pub async fn sse(&self, agent: &Agent, resume: Resume) -> Sse {
        let resp = self
            .sse_request(&agent.room_id, Some(&agent.token), resume)
            .await;
        Sse::open(resp)
    }

    pub async fn sse_request(
        &self,
        room_id: &str,
        token: Option<&str>,
        resume: Resume,
    ) -> reqwest::Response {
        self.sse_request_with(room_id, token, resume, None).await
    }

    /// An SSE request with the token in the query (`token`) and/or an `Authorization`
    /// header (`authorization`, sent as is).
    pub async fn sse_request_with(
        &self,
        room_id: &str,
        token: Option<&str>,
        resume: Resume,
        authorization: Option<&str>,
    ) -> reqwest::Response {
        let req = self.sse_builder(room_id, token, resume, authorization);
        tokio::time::timeout(Duration::from_secs(15), req.send())
            .await
            .expect("SSE response headers within 15 s")
            .expect("GET SSE")
    }

    /// The agent's SSE stream, or why it could not be had (a node gone, a status other
    /// than 200): for clients that go elsewhere when a node fails.
    pub async fn try_sse(&self, agent: &Agent, resume: Resume) -> Result<Sse, String> {
        let req = self.sse_builder(&agent.room_id, Some(&agent.token), resume, None);
        let resp = tokio::time::timeout(Duration::from_secs(15), req.send())
            .await
            .map_err(|_| "no SSE response headers within 15 s".to_string())?
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        if status.as_u16() != 200 {
            return Err(format!(
                "SSE answered {status}: {}",
                resp.text().await.unwrap_or_default()
            ));
        }
        Ok(Sse::from_response(resp))
    }

    fn sse_builder(
        &self,
        room_id: &str,
        token: Option<&str>,
        resume: Resume,
        authorization: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut url = reqwest::Url::parse(&self.url(&format!("/api/messages/{room_id}/sse")))
            .expect("SSE url");
        if let Some(token) = token {
            url.query_pairs_mut().append_pair("agentToken", token);
        }
        if let Resume::After(seq) = resume {
            url.query_pairs_mut().append_pair("after", &seq.to_string());
        }
        let mut req = self
            .http
            .get(url)
            .header("accept", "text/event-stream")
            // A stream stays open: no overall timeout, only for the headers.
            .timeout(Duration::from_secs(3600));
        if let Resume::LastEventId(seq) = resume {
            req = req.header("last-event-id", seq.to_string());
        }
        if let Some(authorization) = authorization {
            req = req.header("authorization", authorization);
        }
        req
    }
}

/// Where an SSE stream starts.
#[derive(Clone, Copy, Debug)]
pub enum Resume {
    Live,
    LastEventId(u64),
    After(u64),
}

/// One `SendMessage` request under construction.
pub struct Call<'a> {
    client: &'a A2a,
    action: Option<String>,
    text: Option<String>,
    context: Option<String>,
    message_id: Option<String>,
    /// The W3C `traceparent` header the request carries.
    traceparent: Option<String>,
    meta: Map<String, Value>,
}

impl Call<'_> {
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    pub fn ctx(mut self, context_id: impl Into<String>) -> Self {
        self.context = Some(context_id.into());
        self
    }

    pub fn meta(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.meta.insert(key.to_string(), value.into());
        self
    }

    pub fn token(self, token: &str) -> Self {
        self.meta("agentToken", token)
    }

    /// The A2A `message.messageId` (a send's idempotency key).
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// Sends the request under the client's trace: a W3C `traceparent` header
    /// (`00-<trace id>-<parent span id>-<flags>`).
    pub fn traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.traceparent = Some(traceparent.into());
        self
    }

    /// The HTTP headers the request carries besides its content type.
    fn headers(&self) -> Vec<(&str, &str)> {
        self.traceparent
            .iter()
            .map(|tp| ("traceparent", tp.as_str()))
            .collect()
    }

    pub fn request(&self) -> Value {
        let mut meta = self.meta.clone();
        if let Some(action) = &self.action {
            meta.insert("action".into(), json!(action));
        }
        let parts = match &self.text {
            Some(text) => json!([{ "text": text }]),
            None => json!([]),
        };
        let mut message = json!({ "role": "user", "parts": parts, "metadata": meta });
        if let Some(context) = &self.context {
            message["contextId"] = json!(context);
        }
        if let Some(id) = &self.message_id {
            message["messageId"] = json!(id);
        }
        json!({
            "jsonrpc": "2.0",
            "id": self.client.rpc_id(),
            "method": "SendMessage",
            "params": { "message": message },
        })
    }

    /// Like `send` but returns an error instead of panicking when the node is gone or
    /// answers anything but a 200 JSON-RPC result.
    pub async fn try_send(self) -> Result<Reply, String> {
        let request = self.request();
        let mut post = self
            .client
            .http
            .post(self.client.url("/a2a"))
            .header("content-type", "application/json")
            .body(request.to_string());
        for (name, value) in self.headers() {
            post = post.header(name, value);
        }
        let resp = post.send().await.map_err(|e| e.to_string())?;
        if resp.status().as_u16() != 200 {
            return Err(format!("status {}", resp.status()));
        }
        let answer: Value = resp.json().await.map_err(|e| e.to_string())?;
        if !answer["result"].is_object() {
            return Err(format!("no result: {answer}"));
        }
        Ok(Reply(answer))
    }

    pub async fn send(self) -> Reply {
        let request = self.request();
        let answer = self.client.rpc_with(request.clone(), &self.headers()).await;
        assert_eq!(answer["jsonrpc"], "2.0", "answer to {request}: {answer}");
        assert_eq!(answer["id"], request["id"], "id not echoed: {answer}");
        assert!(
            answer.get("error").is_none() && answer["result"].is_object(),
            "a SendMessage must answer with a result, request {request}, answer {answer}"
        );
        Reply(answer)
    }
}

/// A JSON-RPC answer whose `result` is an A2A Message.
#[derive(Clone, Debug)]
pub struct Reply(pub Value);

impl Reply {
    pub fn result(&self) -> &Value {
        &self.0["result"]
    }

    pub fn parts(&self) -> &Vec<Value> {
        self.result()["parts"]
            .as_array()
            .unwrap_or_else(|| panic!("result has no parts array: {}", self.0))
    }

    /// The first part's text.
    pub fn text(&self) -> &str {
        self.parts()
            .first()
            .and_then(|p| p["text"].as_str())
            .unwrap_or_else(|| panic!("first part has no text: {}", self.0))
    }

    /// The data part, or `Null`.
    pub fn data(&self) -> &Value {
        static NULL: Value = Value::Null;
        self.parts()
            .iter()
            .find(|p| p.get("data").is_some())
            .map(|p| &p["data"])
            .unwrap_or(&NULL)
    }

    /// `room.info`'s members as (name, role), in the order the room lists them.
    pub fn agent_roles(&self) -> Vec<(String, String)> {
        self.data()["agents"]
            .as_array()
            .unwrap_or_else(|| panic!("room.info data has no agents: {}", self.0))
            .iter()
            .map(|a| {
                (
                    a["name"].as_str().unwrap().to_string(),
                    a["role"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The missed-messages summary (the text part after the data part).
    pub fn missed_summary(&self) -> Option<&str> {
        let parts = self.parts();
        let data_at = parts.iter().position(|p| p.get("data").is_some())?;
        parts[data_at + 1..].iter().find_map(|p| p["text"].as_str())
    }

    pub fn context_id(&self) -> Option<&str> {
        self.result()["contextId"].as_str()
    }

    pub fn is_error(&self) -> bool {
        self.text().starts_with("Error: ")
    }

    /// Asserts success (A2A role agent, no `Error:`) and returns self.
    pub fn ok(self) -> Self {
        assert!(!self.is_error(), "expected success, got {}", self.0);
        assert_eq!(self.result()["role"], "agent", "result role: {}", self.0);
        self
    }

    /// Asserts a failing action (`Error: <message>`) and returns the message.
    pub fn err(&self) -> &str {
        assert!(
            self.is_error(),
            "expected an `Error: ...` result, got {}",
            self.0
        );
        assert_eq!(self.result()["role"], "agent", "result role: {}", self.0);
        &self.text()["Error: ".len()..]
    }

    /// The messages of a history/unread/missed data payload under `key`.
    pub fn messages(&self, key: &str) -> Vec<Value> {
        self.data()[key].as_array().cloned().unwrap_or_default()
    }
}

/// A member's identity, from a create/join reply.
#[derive(Clone, Debug)]
pub struct Agent {
    pub room_id: String,
    pub name: String,
    pub token: String,
}

impl Agent {
    pub fn from_reply(reply: &Reply, name: &str) -> Agent {
        let data = reply.data();
        Agent {
            room_id: data["roomId"]
                .as_str()
                .unwrap_or_else(|| panic!("no data.roomId in {}", reply.0))
                .to_string(),
            name: name.to_string(),
            token: data["agentToken"]
                .as_str()
                .unwrap_or_else(|| panic!("no data.agentToken in {}", reply.0))
                .to_string(),
        }
    }
}
