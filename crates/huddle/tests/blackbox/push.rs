//! A2A push (PROTOCOL.md A.8, B.1, B.9) to a small axum endpoint run by the test.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::harness::*;

/// Records every POST it receives as (path, JSON body, answered 2xx) and answers 200,
/// or 500 to the first `fail_first` requests.
pub(crate) struct Sink {
    base: String,
    received: Arc<Mutex<Vec<(String, Value, bool)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    pub(crate) async fn start() -> Sink {
        Self::on(TcpListener::bind("127.0.0.1:0").await.unwrap(), 0)
    }

    pub(crate) fn on(listener: TcpListener, fail_first: usize) -> Sink {
        let base = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        let app = Router::new().fallback(move |uri: Uri, body: Bytes| {
            let store = store.clone();
            async move {
                let json: Value = serde_json::from_slice(&body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
                let mut store = store.lock().unwrap();
                let ok = store.len() >= fail_first;
                store.push((uri.path().to_string(), json, ok));
                let status = if ok {
                    StatusCode::OK
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
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
            task,
        }
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

/// B.9: without `--allow-private-endpoints`, nothing is ever pushed to a loopback
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
