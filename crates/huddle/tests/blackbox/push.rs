//! A2A push (docs/protocol.md, section 'A2A push') to a small axum endpoint run by the test.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use serde_json::Value;
use tokio::net::TcpListener;

use huddle_testkit::*;

/// A request as a sink's [`Answer`] sees it.
pub(crate) struct Request<'a> {
    pub path: &'a str,
    /// Requests to this path before this one.
    pub earlier: usize,
    /// Requests to this path with this same envelope (earlier attempts of this push).
    pub retries: usize,
}

/// How a sink answers: the HTTP status for a request.
type Answer = Arc<dyn Fn(&Request) -> u16 + Send + Sync>;

/// Records every POST it receives as (path, JSON body, answered 2xx) and answers as its
/// [`Answer`] says. A gated sink holds every request until [`Sink::open`].
pub(crate) struct Sink {
    base: String,
    received: Arc<Mutex<Vec<(String, Value, bool)>>>,
    gate: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    pub(crate) async fn start() -> Sink {
        Self::on(TcpListener::bind("127.0.0.1:0").await.unwrap(), 0)
    }

    /// Answers 500 to the first `fail_first` requests to each path, then 200.
    pub(crate) fn on(listener: TcpListener, fail_first: usize) -> Sink {
        Self::answering(
            listener,
            true,
            Arc::new(move |r: &Request| if r.earlier < fail_first { 500 } else { 200 }),
        )
    }

    /// A sink on a fresh port answering with `answer`, open or gated.
    pub(crate) async fn with(open: bool, answer: Answer) -> Sink {
        Self::answering(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            open,
            answer,
        )
    }

    fn answering(listener: TcpListener, open: bool, answer: Answer) -> Sink {
        let base = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let (gate, gate_rx) = tokio::sync::watch::channel(open);
        let store = received.clone();
        let app = Router::new().fallback(move |uri: Uri, body: Bytes| {
            let store = store.clone();
            let answer = answer.clone();
            let mut gate_rx = gate_rx.clone();
            async move {
                let _ = gate_rx.wait_for(|open| *open).await;
                let json: Value = serde_json::from_slice(&body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
                let mut store = store.lock().unwrap();
                let same_path = || store.iter().filter(|(p, _, _)| p == uri.path());
                let request = Request {
                    path: uri.path(),
                    earlier: same_path().count(),
                    retries: same_path().filter(|(_, e, _)| *e == json).count(),
                };
                let status = StatusCode::from_u16(answer(&request)).unwrap();
                store.push((uri.path().to_string(), json, status.is_success()));
                (
                    status,
                    [("content-type", "application/json")],
                    r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
                )
            }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Sink {
            base,
            received,
            gate,
            task,
        }
    }

    /// Lets held and later requests through.
    pub(crate) fn open(&self) {
        self.gate.send_replace(true);
    }

    /// Bodies of every request to `path` (answered or refused), in arrival order.
    pub(crate) fn attempts(&self, path: &str) -> Vec<String> {
        self.at(path).iter().map(|e| body(e).to_string()).collect()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Every envelope posted to `path` (answered or refused), in arrival order.
    pub(crate) fn at(&self, path: &str) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, v, _)| v.clone())
            .collect()
    }

    /// Bodies delivered (answered 200) to `path` by agents (room-bot notices left out).
    pub(crate) fn agent_bodies(&self, path: &str) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, e, ok)| p == path && *ok && meta(e)["from"] != "room-bot")
            .map(|(_, e, _)| body(e).to_string())
            .collect()
    }

    /// Wait until `path` has received an agent message with body `last`.
    pub(crate) async fn wait_for(&self, path: &str, last: &str, within: Duration) -> Vec<String> {
        eventually(
            within,
            &format!("push of {last:?} to {path}"),
            || async move {
                let got = self.agent_bodies(path);
                got.iter().any(|b| b == last).then_some(got)
            },
        )
        .await
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn body(envelope: &Value) -> &str {
    envelope["params"]["message"]["parts"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("push without parts[0].text: {envelope}"))
}

fn meta(envelope: &Value) -> &Value {
    &envelope["params"]["message"]["metadata"]
}

pub(crate) async fn join_with_endpoint(
    s: &Server,
    room: &str,
    name: &str,
    endpoint: &str,
) -> Agent {
    let reply = s
        .act("room.join")
        .ctx(room)
        .meta("agentName", name)
        .meta("agentEndpoint", endpoint)
        .send()
        .await
        .ok();
    Agent::from_reply(&reply, name)
}

#[tokio::test]
async fn push_delivers_every_message_in_order_as_an_a2a_envelope() {
    let sink = Sink::start().await;
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = join_with_endpoint(&s, "lobby", "bob", &sink.url("/bob")).await;

    for i in 0..20 {
        s.say(&alice, &format!("m{i}")).await;
    }
    let got = sink.wait_for("/bob", "m19", Duration::from_secs(10)).await;
    let want: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want, "order kept, each once");

    let history = s.history_all(&alice).await;
    let first = sink
        .at("/bob")
        .into_iter()
        .find(|e| body(e) == "m0")
        .unwrap();
    assert_eq!(first["jsonrpc"], "2.0");
    assert_eq!(first["method"], "SendMessage");
    assert!(first.get("id").is_some_and(|id| !id.is_null()), "{first}");
    let message = &first["params"]["message"];
    assert_eq!(message["role"], "agent");
    assert_eq!(message["contextId"], alice.room_id.as_str());
    assert_eq!(meta(&first)["joincloud"], true);
    assert_eq!(meta(&first)["from"], "alice");
    let m0 = history.iter().find(|m| m["body"] == "m0").unwrap();
    assert_eq!(
        meta(&first)["messageId"],
        m0["id"],
        "messageId is the message's id"
    );

    // Its own messages are not pushed back to it.
    s.say(&bob, "mine").await;
    s.say(&alice, "after-mine").await;
    let got = sink
        .wait_for("/bob", "after-mine", Duration::from_secs(10))
        .await;
    assert!(
        !got.contains(&"mine".to_string()),
        "bob got his own message: {got:?}"
    );

    // A 2xx moved bob's read cursor past what was delivered.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let unread = s.unread_all(&bob).await;
    let alice_unread: Vec<Value> = unread
        .into_iter()
        .filter(|m| m["from"] == "alice")
        .collect();
    assert!(
        alice_unread.is_empty(),
        "delivered pushes are still unread: {:?}",
        bodies(&alice_unread)
    );
}

#[tokio::test]
async fn dm_is_pushed_only_to_its_recipient() {
    let sink = Sink::start().await;
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    join_with_endpoint(&s, "lobby", "bob", &sink.url("/bob")).await;
    join_with_endpoint(&s, "lobby", "carol", &sink.url("/carol")).await;

    s.dm(&alice, "bob", "secret").await;
    s.say(&alice, "public").await;

    let carol_got = sink
        .wait_for("/carol", "public", Duration::from_secs(10))
        .await;
    let bob_got = sink
        .wait_for("/bob", "public", Duration::from_secs(10))
        .await;
    assert_eq!(carol_got, ["public"], "the DM was pushed to a third agent");
    assert_eq!(bob_got, ["secret", "public"]);
    let secret = sink
        .at("/bob")
        .into_iter()
        .find(|e| body(e) == "secret")
        .unwrap();
    assert_eq!(meta(&secret)["to"], "bob");
    assert_eq!(meta(&secret)["from"], "alice");
}

#[tokio::test]
async fn reconnect_moves_pushes_to_the_new_endpoint() {
    let sink = Sink::start().await;
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = join_with_endpoint(&s, "lobby", "bob", &sink.url("/old")).await;
    s.act("room.join")
        .ctx("lobby")
        .meta("agentName", "bob")
        .token(&bob.token)
        .meta("agentEndpoint", sink.url("/new"))
        .send()
        .await
        .ok();
    s.say(&alice, "where?").await;
    sink.wait_for("/new", "where?", Duration::from_secs(10))
        .await;
    assert!(
        !sink.agent_bodies("/old").contains(&"where?".to_string()),
        "pushed to the old endpoint too"
    );
}

#[tokio::test]
async fn push_retries_until_the_endpoint_comes_back() {
    // A port with nothing listening on it (yet).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    join_with_endpoint(&s, "lobby", "bob", &format!("http://127.0.0.1:{port}/hook")).await;
    for body in ["r1", "r2", "r3"] {
        s.say(&alice, body).await;
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let sink = Sink::on(
        TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("rebind the endpoint's port"),
        0,
    );
    let got = sink.wait_for("/hook", "r3", Duration::from_secs(30)).await;
    assert_eq!(
        got,
        ["r1", "r2", "r3"],
        "order kept across retries, each once"
    );

    // Live again: new messages flow without waiting for a retry timer.
    s.say(&alice, "r4").await;
    let got = sink.wait_for("/hook", "r4", Duration::from_secs(10)).await;
    assert_eq!(got, ["r1", "r2", "r3", "r4"]);
}

/// Without `--allow-private-endpoints`, nothing is ever pushed to a loopback
/// address, whether the URL names it literally (refused at join) or through a host name
/// that only resolves to it (refused at delivery).
#[tokio::test]
async fn strict_node_never_pushes_to_loopback_however_spelled() {
    let sink = Sink::start().await;
    let port = sink.base.rsplit(':').next().unwrap().to_string();
    let s = Server::start_strict().await;
    let alice = s.create_room("lobby", "alice").await;

    let mut hosts = vec![
        "127.0.0.1".to_string(),
        "127.1".to_string(),
        "2130706433".to_string(),
        "0x7f000001".to_string(),
        "[::ffff:127.0.0.1]".to_string(),
    ];
    // This machine's own name, when it resolves to loopback (as in most containers):
    // only a check after DNS resolution catches it.
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let name = name.trim().to_string();
        let loopback = std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), 80))
            .map(|mut addrs| addrs.all(|a| a.ip().is_loopback()))
            .unwrap_or(false);
        if !name.is_empty() && loopback {
            hosts.push(name);
        }
    }
    let mut accepted = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let path = format!("/h{i}");
        let reply = s
            .act("room.join")
            .ctx("lobby")
            .meta("agentName", format!("agent{i}"))
            .meta("agentEndpoint", format!("http://{host}:{port}{path}"))
            .send()
            .await;
        if !reply.is_error() {
            accepted.push((host.clone(), path));
        }
    }
    eprintln!("endpoints accepted at join (checked at delivery): {accepted:?}");
    s.say(&alice, "anyone home?").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (host, path) in &accepted {
        assert!(
            sink.at(path).is_empty(),
            "a strict node pushed to loopback via {host}: {:?}",
            sink.at(path)
        );
    }
    assert!(
        sink.received.lock().unwrap().is_empty(),
        "a strict node pushed to loopback"
    );
}

#[tokio::test]
async fn push_retries_after_error_answers_and_keeps_order() {
    // Refuses the first three POSTs with a 500.
    let sink = Sink::on(TcpListener::bind("127.0.0.1:0").await.unwrap(), 3);
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = join_with_endpoint(&s, "lobby", "bob", &sink.url("/bob")).await;
    for body in ["e1", "e2", "e3"] {
        s.say(&alice, body).await;
    }
    let got = sink.wait_for("/bob", "e3", Duration::from_secs(30)).await;
    assert_eq!(
        got,
        ["e1", "e2", "e3"],
        "order kept across retries, each delivered once"
    );
    let attempts = sink.at("/bob");
    let refused: Vec<&str> = attempts[..3].iter().map(body).collect();
    assert!(
        refused.iter().all(|b| *b == refused[0]),
        "a later message overtook one that was being retried: {refused:?}"
    );
    // Only what was answered 2xx moved the cursor: nothing from alice is unread now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let unread = s.unread_all(&bob).await;
    assert!(
        !unread.iter().any(|m| m["from"] == "alice"),
        "delivered pushes are still unread: {:?}",
        bodies(&unread)
    );
}

#[tokio::test]
async fn kicked_agent_gets_no_more_pushes() {
    let sink = Sink::start().await;
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    join_with_endpoint(&s, "lobby", "bob", &sink.url("/bob")).await;
    join_with_endpoint(&s, "lobby", "carol", &sink.url("/carol")).await;
    s.say(&alice, "before").await;
    sink.wait_for("/bob", "before", Duration::from_secs(10))
        .await;
    s.act("room.kick")
        .token(&alice.token)
        .meta("targetAgent", "bob")
        .send()
        .await
        .ok();
    s.say(&alice, "after").await;
    sink.wait_for("/carol", "after", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !sink.at("/bob").iter().any(|e| body(e) == "after"),
        "a kicked agent still gets pushes"
    );
}

/// A URL this long would be kept with the member and carried by every queued push.
#[tokio::test]
async fn endpoint_over_2048_bytes_is_refused_naming_the_limit() {
    let sink = Sink::start().await;
    let s = Server::start().await;
    let huge = sink.url(&format!("/{}", "a".repeat(100 * 1024)));
    let too_long = "Endpoint URL is too long: the limit is 2048 bytes";
    let create = s.act("room.create").text("lobby");
    let reply = create
        .meta("agentName", "alice")
        .meta("agentEndpoint", huge.as_str())
        .send()
        .await;
    assert_eq!(reply.err(), too_long, "at room.create");
    let alice = s.create_room("lobby", "alice").await;
    let join = s.act("room.join").ctx("lobby");
    let reply = join
        .meta("agentName", "bob")
        .meta("agentEndpoint", huge.as_str())
        .send()
        .await;
    assert_eq!(reply.err(), too_long, "at room.join");

    // A URL of exactly 2048 bytes is taken and used.
    let path = format!("/{}", "b".repeat(2048 - sink.url("/").len()));
    assert_eq!(sink.url(&path).len(), 2048);
    join_with_endpoint(&s, "lobby", "carol", &sink.url(&path)).await;
    let info = s.act("room.info").ctx("lobby").send().await.ok();
    let names: Vec<&str> = info.data()["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "carol"], "a refused join left a member");
    s.say(&alice, "fits").await;
    sink.wait_for(&path, "fits", Duration::from_secs(10)).await;
}

/// A 404 will not change on retry: the push ends after one attempt, and the message
/// stays unread.
#[tokio::test]
async fn push_answered_404_is_attempted_once_and_stays_unread() {
    let sink = Sink::with(true, Arc::new(|_: &Request| 404)).await;
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = join_with_endpoint(&s, "lobby", "bob", &sink.url("/bob")).await;
    s.say(&alice, "n1").await;
    s.say(&alice, "n2").await;
    // One ordered queue per agent: n2 is tried only once n1 is given up.
    let attempts = eventually(Duration::from_secs(20), "an attempt to push n2", || async {
        let attempts = sink.attempts("/bob");
        attempts.contains(&"n2".to_string()).then_some(attempts)
    })
    .await;
    assert_eq!(attempts, ["n1", "n2"], "a push answered 404 was retried");
    let unread = s.unread_all(&bob).await;
    let from_alice: Vec<Value> = unread
        .into_iter()
        .filter(|m| m["from"] == "alice")
        .collect();
    assert_eq!(bodies(&from_alice), ["n1", "n2"]);
}

/// 408, 429 and 5xx are passing troubles: the push is retried until accepted.
#[tokio::test]
async fn push_answered_408_429_or_503_is_retried_until_accepted() {
    // Each path refuses the first two attempts of every push with the status it is
    // named after.
    let sink = Sink::with(
        true,
        Arc::new(|r: &Request| {
            if r.retries < 2 {
                r.path[1..].parse().unwrap()
            } else {
                200
            }
        }),
    )
    .await;
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let codes = ["408", "429", "503"];
    for code in codes {
        let name = format!("agent{code}");
        join_with_endpoint(&s, "lobby", &name, &sink.url(&format!("/{code}"))).await;
    }
    s.say(&alice, "again").await;
    for code in codes {
        let path = format!("/{code}");
        sink.wait_for(&path, "again", Duration::from_secs(30)).await;
        let attempts: Vec<String> = sink
            .attempts(&path)
            .into_iter()
            .filter(|b| b == "again")
            .collect();
        assert_eq!(
            attempts,
            ["again", "again", "again"],
            "HTTP {code}: two refusals, then delivered"
        );
    }
}

/// `--max-queued-pushes` bounds pushes queued or in delivery on the node: beyond it a
/// push is dropped (and logged), and the agent's cursor stays before it, so the
/// message is still unread.
#[tokio::test]
async fn queued_pushes_are_bounded_node_wide_and_dropped_ones_stay_unread() {
    // Holds every request until opened.
    let sink = Sink::with(false, Arc::new(|_: &Request| 200)).await;
    let s = Server::start_with(&["--max-queued-pushes", "2"]).await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = join_with_endpoint(&s, "lobby", "bob", &sink.url("/bob")).await;
    for body in ["q1", "q2", "q3", "q4", "q5"] {
        s.say(&alice, body).await;
    }
    // q1 is in delivery and q2 waits behind it, both held at the closed gate: the node
    // is full and q3..q5 were dropped. A room handles one request at a time, so once
    // this send is answered q5's push was decided.
    s.say(&alice, "fence").await;
    sink.open();
    sink.wait_for("/bob", "q2", Duration::from_secs(20)).await;
    // Room for pushes again. Pushes to one agent keep their order, so when q6 arrives
    // every earlier push that was queued has arrived.
    s.say(&alice, "q6").await;
    let got = sink.wait_for("/bob", "q6", Duration::from_secs(20)).await;
    for body in ["q1", "q2"] {
        assert!(got.contains(&body.to_string()), "{body} missing: {got:?}");
    }
    for body in ["q3", "q4", "q5"] {
        assert!(
            !got.contains(&body.to_string()),
            "{body} was pushed past the node's limit: {got:?}"
        );
    }
    let unread = s.unread_all(&bob).await;
    let from_alice: Vec<Value> = unread
        .into_iter()
        .filter(|m| m["from"] == "alice")
        .collect();
    assert_eq!(
        bodies(&from_alice)[..3],
        ["q3", "q4", "q5"],
        "dropped pushes must stay unread"
    );
    eventually(
        Duration::from_secs(10),
        "a log line about the drop",
        || async { s.log_tail().contains("push dropped").then_some(()) },
    )
    .await;
}

/// A proxy from the environment would connect to the endpoint on the node's behalf,
/// past the address checks: pushes go direct.
#[tokio::test]
async fn pushes_ignore_proxy_settings_from_the_environment() {
    let proxy = Sink::start().await;
    let sink = Sink::start().await;
    let env: Vec<(&str, &str)> = ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
        .into_iter()
        .map(|key| (key, proxy.base.as_str()))
        .chain([("no_proxy", ""), ("NO_PROXY", "")])
        .collect();
    let s = Server::start_with_env(&[], &env).await;
    let alice = s.create_room("lobby", "alice").await;
    join_with_endpoint(&s, "lobby", "bob", &sink.url("/bob")).await;
    s.say(&alice, "direct").await;
    sink.wait_for("/bob", "direct", Duration::from_secs(10))
        .await;
    assert!(
        proxy.received.lock().unwrap().is_empty(),
        "a push went through the proxy: {:?}",
        proxy.received.lock().unwrap()
    );
}

/// Literal addresses a list of private ranges let through; an allow-list of global
/// unicast addresses refuses them at join.
#[tokio::test]
async fn strict_node_refuses_special_purpose_literal_addresses_at_join() {
    let s = Server::start_strict().await;
    s.create_room("lobby", "alice").await;
    for (i, host) in [
        "[64:ff9b::a00:1]",
        "[2002:a00:1::1]",
        "[::a00:1]",
        "[fec0::1]",
        "192.0.0.1",
        "198.18.0.1",
        "240.0.0.1",
        "[2001:db8::1]",
        "[2001::1]",
        "203.0.113.9",
        "224.0.0.1",
    ]
    .into_iter()
    .enumerate()
    {
        let reply = s
            .act("room.join")
            .ctx("lobby")
            .meta("agentName", format!("agent{i}"))
            .meta("agentEndpoint", format!("http://{host}/hook"))
            .send()
            .await;
        assert_eq!(
            reply.err(),
            "Endpoint URL must not point to a private IP address",
            "{host}"
        );
    }
}
