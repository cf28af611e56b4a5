//! Session lifecycle: unknown or expired sessions recovered on POST, 404 on
//! GET/DELETE, DELETE ends the session and its subscriptions, idle expiry, Host/Origin.

use std::time::Duration;

use huddle_gateway::mcp::{HostPolicy, McpConfig};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Node, post_raw};

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

#[tokio::test]
async fn a_post_with_an_unknown_session_runs_in_a_fresh_one() {
    let node = Node::start().await;
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "listRooms", "arguments": {}}});
    let posted = post_raw(
        &node.http,
        &node.url(),
        &[("mcp-session-id", "no-such-session")],
        &call,
    )
    .await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.raw);
    let fresh = posted.session_id().expect("the fresh session's id");
    assert_ne!(fresh, "no-such-session");
    assert_eq!(posted.response()["id"], 7);
    assert_eq!(posted.response()["result"]["isError"], false);
    // The fresh session is a real one: it remembers a join.
    let create = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
        "params": {"name": "createRoom", "arguments": {"agentName": "a", "name": unique("fresh")}}});
    let created = post_raw(
        &node.http,
        &node.url(),
        &[("mcp-session-id", &fresh)],
        &create,
    )
    .await;
    assert!(
        created.session_id().is_none(),
        "a known session keeps its id"
    );
    let send = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "sendMessage", "arguments": {"text": "hi"}}});
    let sent = post_raw(
        &node.http,
        &node.url(),
        &[("mcp-session-id", &fresh)],
        &send,
    )
    .await;
    assert_eq!(sent.response()["result"]["isError"], false, "{}", sent.raw);
    // The same lost id again lands in the same fresh session.
    let again = post_raw(
        &node.http,
        &node.url(),
        &[("mcp-session-id", "no-such-session")],
        &send,
    )
    .await;
    assert_eq!(again.session_id().as_deref(), Some(fresh.as_str()));
    assert_eq!(
        again.response()["result"]["isError"],
        false,
        "{}",
        again.raw
    );
    // No session id at all: a fresh session too.
    let none = post_raw(&node.http, &node.url(), &[], &call).await;
    assert!(none.session_id().is_some());
    // A client's notification with a lost session is accepted as well.
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let accepted = post_raw(
        &node.http,
        &node.url(),
        &[("mcp-session-id", "gone")],
        &note,
    )
    .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn get_and_delete_with_an_unknown_session_are_404() {
    let node = Node::start().await;
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let resp = node
            .http
            .request(method.clone(), node.url())
            .header("accept", "text/event-stream")
            .header("mcp-session-id", "no-such-session")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{method}");
        assert!(
            resp.text().await.unwrap().contains("Session not found"),
            "{method}"
        );
    }
}

#[tokio::test]
async fn delete_ends_the_session_its_stream_and_its_subscriptions() {
    let node = Node::start().await;
    let mut alice = node.session().await;
    let mut bob = node.session().await;
    let name = unique("del");
    alice
        .ok("createRoom", json!({"name": name, "agentName": "alice"}))
        .await;
    bob.ok("joinRoom", json!({"roomId": name, "agentName": "bob"}))
        .await;
    let mut live = bob.live(None).await;
    assert_eq!(node.mcp.session_count(), 2);

    let deleted = bob.delete().await;
    assert_eq!(deleted.status(), StatusCode::OK);
    assert!(
        live.ends_within(Duration::from_secs(5)).await,
        "DELETE ends the GET stream"
    );
    assert_eq!(node.mcp.session_count(), 1);
    assert_eq!(bob.delete().await.status(), StatusCode::NOT_FOUND);
    let get = node
        .http
        .get(node.url())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &bob.id)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::NOT_FOUND);

    // The old id on POST: a fresh session that has joined nothing.
    let old = bob.id.clone();
    bob.fails(
        "sendMessage",
        json!({"text": "anyone?"}),
        "Error: Not joined to any room. Call joinRoom first.",
    )
    .await;
    assert_ne!(bob.id, old);
    // The room itself is untouched: bob is still a member (DELETE is not leaveRoom).
    let info = alice.ok("roomInfo", json!({"roomId": name})).await;
    assert!(info.text.contains("\"bob\""));
}

#[tokio::test]
async fn an_idle_session_expires_and_its_next_post_recovers() {
    let node = Node::start_with(McpConfig {
        session_idle: Duration::from_millis(300),
        ..McpConfig::default()
    })
    .await;
    let mut alice = node.session().await;
    let mut watcher = node.session().await;
    let name = unique("idle");
    alice
        .ok("createRoom", json!({"name": name, "agentName": "alice"}))
        .await;
    watcher
        .ok("joinRoom", json!({"roomId": name, "agentName": "watcher"}))
        .await;
    // An open GET stream is activity: the watcher's session outlives the idle time.
    let mut live = watcher.live(None).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let old = alice.id.clone();
    alice
        .fails(
            "sendMessage",
            json!({"text": "hello?"}),
            "Error: Not joined to any room. Call joinRoom first.",
        )
        .await;
    assert_ne!(alice.id, old, "the response names the fresh session");
    let get = node
        .http
        .get(node.url())
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &old)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::NOT_FOUND);

    // The watcher is alive and still delivered to.
    let mut other = node.session().await;
    other
        .ok("joinRoom", json!({"roomId": name, "agentName": "other"}))
        .await;
    assert_eq!(live.bodies(1).await, ["other joined the room"]);
    assert!(
        watcher
            .ok("listRooms", json!({}))
            .await
            .posted
            .session_id()
            .is_none()
    );
}

#[tokio::test]
async fn host_and_origin_are_checked_when_configured() {
    let node = Node::start_with(McpConfig {
        allowed_hosts: HostPolicy::parse("huddle.example"),
        allowed_origins: vec!["https://app.example".into()],
        ..McpConfig::default()
    })
    .await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let refused = post_raw(&node.http, &node.url(), &[], &init).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.raw.contains("Host header is not allowed"));
    let ok = post_raw(
        &node.http,
        &node.url(),
        &[("host", "huddle.example")],
        &init,
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.raw);
    let cross = post_raw(
        &node.http,
        &node.url(),
        &[
            ("host", "huddle.example"),
            ("origin", "https://evil.example"),
        ],
        &init,
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let same = post_raw(
        &node.http,
        &node.url(),
        &[
            ("host", "huddle.example"),
            ("origin", "https://app.example"),
        ],
        &init,
    )
    .await;
    assert_eq!(same.status, StatusCode::OK);
}

#[tokio::test]
async fn a_second_port_serves_the_same_sessions() {
    let node = Node::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second = format!("http://{}/mcp", listener.local_addr().unwrap());
    let routes = node.mcp.routes();
    tokio::spawn(async move { axum::serve(listener, routes).await });
    let mut alice = node.session().await;
    alice
        .ok(
            "createRoom",
            json!({"name": unique("port"), "agentName": "alice"}),
        )
        .await;
    let send = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "sendMessage", "arguments": {"text": "via the MCP port"}}});
    let sent = post_raw(&node.http, &second, &[("mcp-session-id", &alice.id)], &send).await;
    assert!(sent.session_id().is_none(), "same session on both ports");
    assert_eq!(sent.response()["result"]["isError"], false, "{}", sent.raw);
}

#[tokio::test]
async fn a_recovered_session_reconnects_with_its_token_and_is_delivered_to() {
    let node = Node::start().await;
    let mut alice = node.session().await;
    let mut carol = node.session().await;
    let name = unique("back");
    alice
        .ok("createRoom", json!({"name": name, "agentName": "alice"}))
        .await;
    let token = carol
        .ok("joinRoom", json!({"roomId": name, "agentName": "carol"}))
        .await
        .data()["agentToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(carol.delete().await.status(), StatusCode::OK);
    carol
        .fails(
            "sendMessage",
            json!({"text": "anyone?"}),
            "Error: Not joined to any room. Call joinRoom first.",
        )
        .await;
    let back = carol
        .ok(
            "joinRoom",
            json!({"roomId": name, "agentName": "carol", "agentToken": token}),
        )
        .await;
    assert!(
        back.text.starts_with("Reconnected to room"),
        "{}",
        back.text
    );
    alice
        .ok("sendMessage", json!({"text": "welcome back"}))
        .await;
    assert_eq!(
        carol.ok("listRooms", json!({})).await.bodies(),
        ["welcome back"]
    );
}

fn initialize(id: u64) -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
}

/// A request refused because the node has `limit` sessions already: 503, a
/// `Retry-After`, and a JSON-RPC error naming the limit, with the request's id.
fn assert_too_many_sessions(posted: &crate::harness::Posted, id: serde_json::Value, limit: usize) {
    assert_eq!(
        posted.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        posted.raw
    );
    assert!(
        posted.headers.get("retry-after").is_some(),
        "{:?}",
        posted.headers
    );
    assert!(posted.session_id().is_none(), "no session was made");
    let error = &posted.response()["error"];
    assert_eq!(
        error["message"],
        format!("Too many MCP sessions: the limit is {limit}"),
        "{}",
        posted.raw
    );
    assert_eq!(posted.response()["id"], id);
}

#[tokio::test]
async fn anonymous_posts_cannot_lock_real_clients_out() {
    let node = Node::start_with(McpConfig {
        max_sessions: 50,
        ..McpConfig::default()
    })
    .await;
    // Two real clients first: alice listens on her GET stream, bob only POSTs.
    let mut alice = node.session().await;
    let mut bob = node.session().await;
    let name = unique("flood");
    alice
        .ok("createRoom", json!({"name": name, "agentName": "alice"}))
        .await;
    bob.ok("joinRoom", json!({"roomId": name, "agentName": "bob"}))
        .await;
    let mut live = alice.live(None).await;
    assert_eq!(live.bodies(1).await, ["bob joined the room"]);

    // 120 POSTs that each make a session and never join a room: tool calls without a
    // session or with a made-up one, and handshakes left unfinished.
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "listRooms", "arguments": {}}});
    for i in 0..120 {
        let made_up = format!("made-up-{i}");
        let posted = match i % 3 {
            0 => post_raw(&node.http, &node.url(), &[], &call).await,
            1 => {
                post_raw(
                    &node.http,
                    &node.url(),
                    &[("mcp-session-id", &made_up)],
                    &call,
                )
                .await
            }
            _ => post_raw(&node.http, &node.url(), &[], &initialize(i)).await,
        };
        assert_eq!(posted.status, StatusCode::OK, "POST {i}: {}", posted.raw);
        assert!(posted.session_id().is_some(), "POST {i}");
    }
    assert_eq!(
        node.mcp.session_count(),
        50,
        "the table stays within its cap"
    );

    // A new client initialises and works.
    let mut carol = node.session().await;
    carol
        .ok("joinRoom", json!({"roomId": name, "agentName": "carol"}))
        .await;
    carol.ok("sendMessage", json!({"text": "made it"})).await;
    assert_eq!(live.bodies(2).await, ["carol joined the room", "made it"]);
    // The anonymous sessions gave way, not the members: bob's session is his own still.
    let bob_id = bob.id.clone();
    let listed = bob.ok("listRooms", json!({})).await;
    assert_eq!(listed.bodies(), ["carol joined the room", "made it"]);
    assert_eq!(bob.id, bob_id, "bob's session was not evicted");
    assert_eq!(node.mcp.session_count(), 50);
}

#[tokio::test]
async fn a_full_table_refuses_only_when_every_session_is_listening() {
    let node = Node::start_with(McpConfig {
        max_sessions: 3,
        ..McpConfig::default()
    })
    .await;
    let mut alice = node.session().await;
    let mut bob = node.session().await;
    let mut carol = node.session().await;
    // Listening, even before joining any room: none of them gives way.
    let mut streams = Vec::new();
    for s in [&alice, &bob, &carol] {
        streams.push(s.live(None).await);
    }
    assert_eq!(node.mcp.session_count(), 3);

    // A fourth initialize, again and again: refused, nothing grows.
    for id in 40..45 {
        let refused = post_raw(&node.http, &node.url(), &[], &initialize(id)).await;
        assert_too_many_sessions(&refused, json!(id), 3);
    }
    // So is a request that would start a fresh session (unknown id, or none).
    let call = json!({"jsonrpc": "2.0", "id": "call-1", "method": "tools/call",
        "params": {"name": "listRooms", "arguments": {}}});
    for headers in [&[("mcp-session-id", "no-such-session")][..], &[][..]] {
        let refused = post_raw(&node.http, &node.url(), headers, &call).await;
        assert_too_many_sessions(&refused, json!("call-1"), 3);
    }
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let refused = post_raw(
        &node.http,
        &node.url(),
        &[("mcp-session-id", "gone")],
        &note,
    )
    .await;
    assert_too_many_sessions(&refused, json!(null), 3);
    assert_eq!(node.mcp.session_count(), 3);

    // The three sessions work as before, notifications included.
    let name = unique("cap");
    alice
        .ok("createRoom", json!({"name": name, "agentName": "alice"}))
        .await;
    bob.ok("joinRoom", json!({"roomId": name, "agentName": "bob"}))
        .await;
    carol
        .ok("joinRoom", json!({"roomId": name, "agentName": "carol"}))
        .await;
    alice.ok("sendMessage", json!({"text": "still here"})).await;
    assert_eq!(
        streams[0].bodies(3).await,
        ["bob joined the room", "carol joined the room", "still here"]
    );
    assert_eq!(
        streams[1].bodies(2).await,
        ["carol joined the room", "still here"]
    );
    assert_eq!(streams[2].bodies(1).await, ["still here"]);

    // One ends: a new session is accepted.
    assert_eq!(bob.delete().await.status(), StatusCode::OK);
    assert_eq!(node.mcp.session_count(), 2);
    let mut dave = node.session().await;
    dave.ok("joinRoom", json!({"roomId": name, "agentName": "dave"}))
        .await;
    // Dave does not listen: the next newcomer takes his place instead of a refusal,
    // and his next POST carries on in a fresh session (his token rejoins the room).
    let newcomer = post_raw(&node.http, &node.url(), &[], &initialize(50)).await;
    assert_eq!(newcomer.status, StatusCode::OK, "{}", newcomer.raw);
    assert_eq!(node.mcp.session_count(), 3);
    let evicted = dave.id.clone();
    dave.fails(
        "sendMessage",
        json!({"text": "hello?"}),
        "Error: Not joined to any room. Call joinRoom first.",
    )
    .await;
    assert_ne!(dave.id, evicted, "a fresh session");
    assert_eq!(node.mcp.session_count(), 3);
    // The listeners were never cut off.
    alice.ok("sendMessage", json!({"text": "hello all"})).await;
    for listener in [0, 2] {
        assert_eq!(
            streams[listener].bodies(2).await,
            ["dave joined the room", "hello all"]
        );
    }
}

#[tokio::test]
async fn sessions_in_no_room_expire_after_the_short_idle_time() {
    let node = Node::start_with(McpConfig {
        anonymous_idle: Duration::from_millis(200),
        ..McpConfig::default()
    })
    .await;
    let anonymous = node.session().await;
    let mut member = node.session().await;
    member
        .ok(
            "createRoom",
            json!({"name": unique("short"), "agentName": "m"}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(node.mcp.session_count(), 1, "the anonymous session expired");
    assert_eq!(anonymous.delete().await.status(), StatusCode::NOT_FOUND);
    let id = member.id.clone();
    member.ok("sendMessage", json!({"text": "still in"})).await;
    assert_eq!(
        member.id, id,
        "a session in a room keeps the long idle time"
    );
}

#[tokio::test]
async fn a_session_remembers_a_bounded_number_of_rooms() {
    let node = Node::start_with(McpConfig {
        max_session_rooms: 2,
        ..McpConfig::default()
    })
    .await;
    let mut alice = node.session().await;
    let mut other = node.session().await;
    let (a, b, c, d) = (unique("ra"), unique("rb"), unique("rc"), unique("rd"));
    other
        .ok("createRoom", json!({"name": d, "agentName": "other"}))
        .await;
    alice
        .ok("createRoom", json!({"name": a, "agentName": "alice"}))
        .await;
    alice
        .ok("createRoom", json!({"name": b, "agentName": "alice"}))
        .await;
    let limit = "Error: Too many rooms in this MCP session: the limit is 2";
    alice
        .fails(
            "createRoom",
            json!({"name": c, "agentName": "alice"}),
            limit,
        )
        .await;
    alice
        .fails(
            "joinRoom",
            json!({"roomId": d, "agentName": "alice"}),
            limit,
        )
        .await;
    // Refused before the action: the room was not made, nobody joined.
    let info = other.ok("roomInfo", json!({"roomId": d})).await;
    assert!(!info.text.contains("\"alice\""), "{}", info.text);
    other
        .fails(
            "joinRoom",
            json!({"roomId": c, "agentName": "other"}),
            &format!("Error: Room not found: {c}"),
        )
        .await;
    // A room left still holds its place; joining it again takes the place back.
    alice.ok("leaveRoom", json!({"roomId": a})).await;
    alice
        .fails(
            "createRoom",
            json!({"name": c, "agentName": "alice"}),
            limit,
        )
        .await;
    alice
        .ok("joinRoom", json!({"roomId": a, "agentName": "alice"}))
        .await;
    alice
        .ok("sendMessage", json!({"roomId": a, "text": "back in a"}))
        .await;
    alice
        .ok("sendMessage", json!({"roomId": b, "text": "still in b"}))
        .await;
}
