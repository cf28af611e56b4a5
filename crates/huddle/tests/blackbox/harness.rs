//! Start a real `huddle serve` process and talk to it the way an agent would.
//!
//! - [`Server`] owns the child process (killed on drop) and its data dir.
//! - [`Call`] builds one `SendMessage` request; [`Reply`] reads the A2A answer.
//! - [`Agent`] is what a successful create/join hands back (room id, name, token).
//! - [`Sse`] reads `GET /api/messages/{roomId}/sse` with a real SSE parser.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use serde_json::{Map, Value, json};

/// How long a fresh node may take to print its listening line (debug build, busy machine).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of server output kept for the failure report.
const LOG_LINES: usize = 300;

const LISTENING_PREFIX: &str = "huddle listening on ";

static CRYPTO: Once = Once::new();

/// reqwest is built with `rustls-no-provider`: install one before building a client.
fn install_crypto_provider() {
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub fn http_client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build reqwest client")
}

/// A running `huddle serve`.
pub struct Server {
    /// A mutex so `kill9` works while requests borrow the server.
    child: Mutex<Option<Child>>,
    /// `http://127.0.0.1:<port>`, as printed by the server.
    pub base: String,
    pub data_dir: PathBuf,
    /// Kept alive as long as the server when the server made its own dir.
    _tempdir: Option<tempfile::TempDir>,
    pub http: reqwest::Client,
    log: Arc<Mutex<VecDeque<String>>>,
    next_id: AtomicU64,
}

impl Server {
    /// A node in a fresh data dir, private push endpoints allowed (the tests' endpoints
    /// live on 127.0.0.1).
    pub async fn start() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Self::spawn(dir.path(), true, &[]).await;
        server._tempdir = Some(dir);
        server
    }

    /// A node in a fresh data dir *without* `--allow-private-endpoints`.
    pub async fn start_strict() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Self::spawn(dir.path(), false, &[]).await;
        server._tempdir = Some(dir);
        server
    }

    /// A node on a data dir the caller owns (for restarts).
    pub async fn start_in(dir: &Path) -> Server {
        Self::spawn(dir, true, &[]).await
    }

    /// A node on a data dir the caller owns, with extra `huddle serve` flags.
    pub async fn start_in_with(dir: &Path, extra: &[&str]) -> Server {
        Self::spawn(dir, true, extra).await
    }

    /// A node in a fresh data dir with extra `huddle serve` flags.
    pub async fn start_with(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Self::spawn(dir.path(), true, extra).await;
        server._tempdir = Some(dir);
        server
    }

    /// A node in a fresh data dir with extra flags and environment variables.
    pub async fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Self::spawn_env(dir.path(), true, extra, env).await;
        server._tempdir = Some(dir);
        server
    }

    async fn spawn(dir: &Path, allow_private: bool, extra: &[&str]) -> Server {
        Self::spawn_env(dir, allow_private, extra, &[]).await
    }

    async fn spawn_env(
        dir: &Path,
        allow_private: bool,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_huddle"));
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir);
        if allow_private {
            cmd.arg("--allow-private-endpoints");
        }
        cmd.args(extra);
        // The environment must not override our flags.
        for (key, _) in std::env::vars() {
            if key.starts_with("HUDDLE_") || key == "PORT" {
                cmd.env_remove(key);
            }
        }
        cmd.envs(env.iter().copied());
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn huddle serve");

        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        // Plain threads: they outlive any test runtime and keep both pipes drained.
        {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                drain_lines(stdout, &log, |line| {
                    if let Some(rest) = line.strip_prefix(LISTENING_PREFIX)
                        && let Some(tx) = tx.take()
                    {
                        let _ = tx.send(rest.trim().to_string());
                    }
                });
            });
        }
        {
            let log = log.clone();
            std::thread::spawn(move || drain_lines(stderr, &log, |_| {}));
        }

        let mut server = Server {
            child: Mutex::new(Some(child)),
            base: String::new(),
            data_dir: dir.to_path_buf(),
            _tempdir: None,
            http: http_client(),
            log,
            next_id: AtomicU64::new(1),
        };
        match tokio::time::timeout(STARTUP_TIMEOUT, rx).await {
            Ok(Ok(base)) => {
                assert!(
                    base.starts_with("http://127.0.0.1:"),
                    "listening line names an unexpected address: {base}"
                );
                server.base = base.trim_end_matches('/').to_string();
                server
            }
            Ok(Err(_)) => {
                // stdout closed without the line: the process died.
                std::thread::sleep(Duration::from_millis(200));
                let status = server
                    .child
                    .lock()
                    .unwrap()
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                panic!(
                    "huddle serve exited before printing `{LISTENING_PREFIX}...` (status {status:?}); output:\n{}",
                    server.log_tail()
                );
            }
            Err(_) => panic!(
                "huddle serve did not print `{LISTENING_PREFIX}...` within {STARTUP_TIMEOUT:?}; output:\n{}",
                server.log_tail()
            ),
        }
    }

    /// `kill -9` the node (SIGKILL) and reap it.
    pub fn kill9(&self) {
        let child = self.child.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut child) = child {
            child.kill().expect("SIGKILL huddle");
            let _ = child.wait();
        }
    }

    /// Is the process still running?
    pub fn is_running(&self) -> bool {
        match self.child.lock().unwrap().as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn pid(&self) -> u32 {
        self.child
            .lock()
            .unwrap()
            .as_ref()
            .map(Child::id)
            .expect("the node is running")
    }

    /// The node's resident memory in kB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kb(&self) -> u64 {
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status:\n{status}"))
    }

    /// `kill -TERM` the node (what an orchestrator sends to stop it).
    pub fn terminate(&self) {
        let pid = self.pid();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid}: {status}");
    }

    /// Waits up to `within` for the process to exit and reaps it; `None`: still running.
    pub async fn wait_exit(&self, within: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            {
                let mut child = self.child.lock().unwrap();
                let exited = match child.as_mut() {
                    Some(c) => c.try_wait().expect("wait for huddle"),
                    None => panic!("the node was already reaped"),
                };
                if exited.is_some() {
                    child.take();
                    return exited;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The rest of the first output line that starts with `prefix`.
    pub fn printed(&self, prefix: &str) -> Option<String> {
        let log = self.log.lock().unwrap();
        log.iter().find_map(|line| {
            line.strip_prefix(prefix)
                .map(|rest| rest.trim().to_string())
        })
    }

    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn rpc_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// POST a raw body to /a2a; returns status and body text.
    pub async fn post_a2a_raw(&self, body: impl Into<reqwest::Body>) -> (u16, String) {
        let resp = self
            .http
            .post(self.url("/a2a"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST /a2a");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("read /a2a body"))
    }

    /// POST a JSON-RPC request to /a2a; asserts HTTP 200 and returns the JSON answer.
    pub async fn rpc(&self, request: Value) -> Value {
        let (status, body) = self.post_a2a_raw(request.to_string()).await;
        assert_eq!(status, 200, "POST /a2a {request} answered {status}: {body}");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("POST /a2a answered non-JSON ({e}): {body}"))
    }

    /// A `SendMessage` with `metadata.action = action`.
    pub fn act(&self, action: &str) -> Call<'_> {
        Call {
            server: self,
            action: Some(action.to_string()),
            text: None,
            context: None,
            meta: Map::new(),
        }
    }

    /// A `SendMessage` without `metadata.action`.
    pub fn no_action(&self) -> Call<'_> {
        Call {
            server: self,
            action: None,
            text: None,
            context: None,
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
        tokio::time::timeout(Duration::from_secs(15), req.send())
            .await
            .expect("SSE response headers within 15 s")
            .expect("GET SSE")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- huddle server output ({}) ----\n{}\n---- end of server output ----",
                self.base,
                self.log_tail()
            );
        }
        self.kill9();
    }
}

fn drain_lines(pipe: impl Read, log: &Arc<Mutex<VecDeque<String>>>, mut on_line: impl FnMut(&str)) {
    let reader = BufReader::new(pipe);
    for line in reader.lines() {
        let Ok(line) = line else { break };
        on_line(&line);
        let mut log = log.lock().unwrap();
        if log.len() == LOG_LINES {
            log.pop_front();
        }
        log.push_back(line);
    }
}

/// What an SSE stream did next.
#[derive(Debug)]
pub enum Next {
    Message(u64, Value),
    Ended,
    Timeout,
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
    server: &'a Server,
    action: Option<String>,
    text: Option<String>,
    context: Option<String>,
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
        json!({
            "jsonrpc": "2.0",
            "id": self.server.rpc_id(),
            "method": "SendMessage",
            "params": { "message": message },
        })
    }

    /// Like `send` but returns an error instead of panicking when the node is gone or
    /// answers anything but a 200 JSON-RPC result.
    pub async fn try_send(self) -> Result<Reply, String> {
        let request = self.request();
        let resp = self
            .server
            .http
            .post(self.server.url("/a2a"))
            .header("content-type", "application/json")
            .body(request.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
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
        let answer = self.server.rpc(request.clone()).await;
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

/// An open SSE stream.
pub struct Sse {
    events: Pin<Box<dyn Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send>>,
}

impl Sse {
    /// The stream of an SSE response; asserts 200 and `text/event-stream`.
    pub fn open(resp: reqwest::Response) -> Sse {
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert_eq!(status, 200, "SSE answered {status}");
        assert!(
            ctype.starts_with("text/event-stream"),
            "SSE content-type is {ctype:?}"
        );
        Sse::from_response(resp)
    }

    /// Any `text/event-stream` response (an MCP POST answered with SSE, too).
    pub fn from_response(resp: reqwest::Response) -> Sse {
        Sse {
            events: Box::pin(resp.bytes_stream().eventsource()),
        }
    }

    /// The next event with data, as JSON, within `within`; `None` on timeout or end.
    pub async fn next_data(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.next()).await;
            match event {
                Ok(Some(Ok(e))) if e.data.is_empty() => {}
                Ok(Some(Ok(e))) => {
                    return Some(serde_json::from_str(&e.data).unwrap_or_else(|err| {
                        panic!("SSE data is not JSON ({err}): {:?}", e.data)
                    }));
                }
                _ => return None,
            }
        }
    }

    /// The next room message (skipping pings) within `within`, as (`id:` seq, data JSON).
    /// Asserts the event id equals the message's `seq`. `None` on timeout or end.
    pub async fn next_message(&mut self, within: Duration) -> Option<(u64, Value)> {
        match self.next(within).await {
            Next::Message(seq, data) => Some((seq, data)),
            Next::Ended | Next::Timeout => None,
        }
    }

    /// Like `next_message`, but tells a stream the server ended from a silent one.
    pub async fn next(&mut self, within: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.events.next()).await;
            let event = match next {
                Err(_) => return Next::Timeout,
                Ok(None) => return Next::Ended,
                // A transport error ends the stream as far as a client can tell.
                Ok(Some(Err(_))) => return Next::Ended,
                Ok(Some(Ok(event))) => event,
            };
            if event.event == "ping" || event.data.is_empty() {
                continue;
            }
            let data: Value = serde_json::from_str(&event.data)
                .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {:?}", event.data));
            let id: u64 = event
                .id
                .parse()
                .unwrap_or_else(|_| panic!("SSE event id is not a seq: {:?} ({})", event.id, data));
            assert_eq!(
                data["seq"].as_u64(),
                Some(id),
                "SSE `id:` must be the message's seq: {data:.300}"
            );
            return Next::Message(id, data);
        }
    }

    /// Reads (and drops) events until the server ends the stream: `Ok` when it ended
    /// cleanly, `Err` when the connection broke or the stream was still open after `within`.
    pub async fn end(&mut self, within: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.events.next()).await {
                Err(_) => return Err(format!("still open after {within:?}")),
                Ok(None) => return Ok(()),
                Ok(Some(Err(e))) => return Err(format!("broken, not ended: {e}")),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Read until `n` messages arrived; panics on timeout.
    pub async fn take(&mut self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_message(left).await {
                Some((_, data)) => out.push(data),
                None => panic!(
                    "SSE: got {} of {n} messages within {within:?}: {:?}",
                    out.len(),
                    bodies(&out)
                ),
            }
        }
        out
    }

    /// Read until a message with body `body` arrives; returns everything read, that one included.
    pub async fn until_body(&mut self, body: &str, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_message(left).await {
                Some((_, data)) => {
                    let done = data["body"] == body;
                    out.push(data);
                    if done {
                        return out;
                    }
                }
                None => panic!(
                    "SSE: {body:?} did not arrive within {within:?}; got {:?}",
                    bodies(&out)
                ),
            }
        }
    }
}

// ---- small assertions on message lists ----

pub fn bodies(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m["body"].as_str().unwrap_or("<no body>").to_string())
        .collect()
}

pub fn seqs(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| {
            m["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("message without a numeric seq: {m}"))
        })
        .collect()
}

/// Asserts the seqs are exactly `first, first+1, ...` (no gap, no duplicate, ascending).
pub fn assert_contiguous(messages: &[Value], first: u64) {
    let got = seqs(messages);
    let want: Vec<u64> = (first..first + got.len() as u64).collect();
    assert_eq!(got, want, "seqs are not contiguous from {first}");
}

/// Messages from anyone but room-bot.
pub fn from_agents(messages: &[Value]) -> Vec<Value> {
    messages
        .iter()
        .filter(|m| m["from"] != "room-bot")
        .cloned()
        .collect()
}

pub fn is_uuid_v4(s: &str) -> bool {
    uuid::Uuid::parse_str(s)
        .map(|u| u.get_version_num() == 4)
        .unwrap_or(false)
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` (or `+00:00`): RFC 3339 in UTC.
pub fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    let shape = b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':';
    shape && (s.ends_with('Z') || s.ends_with("+00:00"))
}

/// Poll `check` every 50 ms until it returns `Some`, or panic after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub const SECOND: Duration = Duration::from_secs(1);
