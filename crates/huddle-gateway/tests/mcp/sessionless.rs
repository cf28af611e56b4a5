//! The sessionless 2026-07-28 revision, by hand (what a client of that revision sends):
//! `server/discover`, tools with the agent token as an argument, and a room's messages
//! through `subscriptions/listen` on the room's resource.

use std::time::Duration;

use huddle_testkit::Sse;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Node, Posted, WAIT, post_raw};

const MODERN: &str = "2026-07-28";

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "hand-written", "version": "1"},
    })
}

/// One 2026-07-28 request: per-request `_meta`, `MCP-Protocol-Version`, `Mcp-Method`
/// (and `Mcp-Name` where the method names something), and no session.
fn modern_request(
    node: &Node,
    id: u64,
    method: &str,
    mut params: Value,
    name: Option<&str>,
) -> reqwest::RequestBuilder {
    params["_meta"] = meta();
    let mut req = node
        .http
        .post(node.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", method);
    if let Some(name) = name {
        req = req.header("mcp-name", name);
    }
    req.json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
}

async fn modern(node: &Node, id: u64, method: &str, params: Value, name: Option<&str>) -> Value {
    let resp = modern_request(node, id, method, params, name)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers().get("mcp-session-id").is_none(),
        "no sessions in 2026-07-28"
    );
    let raw = resp.text().await.unwrap();
    let posted = Posted {
        status: StatusCode::OK,
        headers: Default::default(),
        messages: raw
            .split("\n\n")
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .filter_map(|d| serde_json::from_str(d).ok())
            .chain(serde_json::from_str::<Value>(&raw).ok())
            .collect(),
        raw,
    };
    posted.response()["result"].clone()
}

/// A `subscriptions/listen` on `uris`, its response open.
async fn listen(node: &Node, id: u64, uris: &[String]) -> reqwest::Response {
    modern_request(
        node,
        id,
        "subscriptions/listen",
        json!({"notifications": {"resourceSubscriptions": uris}}),
        None,
    )
    .send()
    .await
    .unwrap()
}

/// A tool result's data: the JSON under its text line.
fn data_of(result: &Value) -> Value {
    let text = result["content"][0]["text"].as_str().unwrap();
    serde_json::from_str(text.split_once('\n').unwrap().1).unwrap()
}

async fn tool(node: &Node, id: u64, name: &str, args: Value) -> Value {
    modern(
        node,
        id,
        "tools/call",
        json!({"name": name, "arguments": args}),
        Some(name),
    )
    .await
}

#[tokio::test]
async fn a_sessionless_client_discovers_calls_tools_and_listens_to_a_room() {
    let node = Node::start().await;

    let discovered = modern(&node, 1, "server/discover", json!({}), None).await;
    let versions: Vec<&str> = discovered["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for v in [MODERN, "2025-11-25", "2025-06-18", "2025-03-26"] {
        assert!(versions.contains(&v), "{v} in {versions:?}");
    }
    assert_eq!(discovered["capabilities"]["resources"]["subscribe"], true);
    assert!(
        discovered["instructions"]
            .as_str()
            .unwrap()
            .contains("room.join")
    );
    let tools = modern(&node, 2, "tools/list", json!({}), None).await;
    assert_eq!(tools["tools"].as_array().unwrap().len(), 12);

    // createRoom: the result links the room's resource (with the agent's token).
    let name = format!("modern-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let created = tool(
        &node,
        3,
        "createRoom",
        json!({"name": name, "agentName": "alice"}),
    )
    .await;
    let content = created["content"].as_array().unwrap();
    let alice_token = data_of(&created)["agentToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(content[1]["type"], "resource_link");
    let alice_uri = content[1]["uri"].as_str().unwrap().to_string();
    assert!(alice_uri.starts_with("huddle://rooms/") && alice_uri.contains(&alice_token));

    // Without a session, an agent's tools need its token.
    let anonymous = tool(&node, 4, "sendMessage", json!({"text": "who am I?"})).await;
    assert_eq!(anonymous["isError"], true);
    assert_eq!(
        anonymous["content"][0]["text"],
        "Error: agentToken required"
    );

    let joined = tool(
        &node,
        5,
        "joinRoom",
        json!({"roomId": name, "agentName": "bob"}),
    )
    .await;
    let bob_token = data_of(&joined)["agentToken"].as_str().unwrap().to_string();
    tool(
        &node,
        6,
        "joinRoom",
        json!({"roomId": name, "agentName": "carol"}),
    )
    .await;

    // alice listens to her room resource.
    let listen = modern_request(
        &node,
        7,
        "subscriptions/listen",
        json!({"notifications": {"resourceSubscriptions": [alice_uri]}}),
        None,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(listen.status(), StatusCode::OK);
    let mut events = Sse::from_response(listen);
    let mut next = async || -> Value { events.next_data(WAIT).await.expect("listen event") };
    let ack = next().await;
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(
        ack["params"]["notifications"]["resourceSubscriptions"],
        json!([alice_uri])
    );

    let sent = tool(
        &node,
        8,
        "sendMessage",
        json!({"text": "hello alice", "agentToken": bob_token}),
    )
    .await;
    assert_eq!(sent["isError"], false, "{sent}");
    tool(
        &node,
        9,
        "sendMessage",
        json!({"text": "for carol", "to": "carol", "agentToken": bob_token}),
    )
    .await;
    tool(
        &node,
        10,
        "sendMessage",
        json!({"text": "for all", "agentToken": bob_token}),
    )
    .await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let update = next().await;
        assert_eq!(update["method"], "notifications/resources/updated");
        assert_eq!(update["params"]["uri"], alice_uri.as_str());
        assert_eq!(
            update["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
            7
        );
        let message = &update["params"]["_meta"]["huddle/message"];
        assert_eq!(message["from"], "bob");
        got.push(message["body"].as_str().unwrap().to_string());
    }
    // The DM to carol is not in alice's view.
    assert_eq!(got, ["hello alice", "for all"]);

    // Reading the resource gives the messages.
    let read = modern(
        &node,
        11,
        "resources/read",
        json!({"uri": alice_uri}),
        Some(&alice_uri),
    )
    .await;
    let messages: Value =
        serde_json::from_str(read["contents"][0]["text"].as_str().unwrap()).unwrap();
    let bodies: Vec<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies.last(), Some(&"for all"));
    assert!(!bodies.contains(&"for carol"));

    // alice answers with her token; her listen stream shows her own message too.
    tool(
        &node,
        12,
        "sendMessage",
        json!({"text": "thanks", "agentToken": alice_token}),
    )
    .await;
    let own = next().await;
    assert_eq!(own["params"]["_meta"]["huddle/message"]["body"], "thanks");
    drop(events);
    tokio::time::sleep(Duration::from_millis(50)).await;

    // A GET stream needs a session.
    let get = node
        .http
        .get(node.url())
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    let _ = post_raw;
}

#[tokio::test]
async fn one_listen_follows_a_bounded_number_of_rooms() {
    let node = Node::start_with(huddle_gateway::mcp::McpConfig {
        max_session_rooms: 2,
        ..Default::default()
    })
    .await;
    let uris: Vec<String> = (0..3)
        .map(|_| format!("huddle://rooms/{}/messages", uuid::Uuid::new_v4()))
        .collect();
    let listen = listen(&node, 1, &uris).await;
    let raw = tokio::time::timeout(WAIT, listen.text())
        .await
        .expect("the refusal ends the stream")
        .unwrap();
    let error = raw
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|m| m.get("error").is_some())
        .unwrap_or_else(|| panic!("no error in {raw}"));
    assert_eq!(error["id"], 1);
    assert_eq!(
        error["error"]["message"],
        "Too many rooms in one subscriptions/listen: the limit is 2"
    );
}

/// A listen follows its rooms from the moment it is acknowledged: a message sent as soon
/// as the client reads the acknowledgement reaches it, even in the last of many rooms
/// (the node opens the rooms' feeds one after the other, and rmcp acknowledges first).
#[tokio::test]
async fn a_message_sent_as_soon_as_a_listen_is_acknowledged_reaches_it() {
    const ROOMS: usize = 100;
    let node = Node::start().await;
    let mut uris = Vec::new();
    let mut names = Vec::new();
    for i in 0..ROOMS {
        let name = format!(
            "ack-{i}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let created = tool(
            &node,
            i as u64,
            "createRoom",
            json!({"name": name, "agentName": "alice"}),
        )
        .await;
        uris.push(created["content"][1]["uri"].as_str().unwrap().to_string());
        names.push(name);
    }
    let joined = tool(
        &node,
        1000,
        "joinRoom",
        json!({"roomId": names[ROOMS - 1], "agentName": "bob"}),
    )
    .await;
    let bob = data_of(&joined)["agentToken"].as_str().unwrap().to_string();

    let listen = listen(&node, 1001, &uris).await;
    let mut events = Sse::from_response(listen);
    let ack = events.next_data(WAIT).await.expect("the acknowledgement");
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    let sent = tool(
        &node,
        1002,
        "sendMessage",
        json!({"text": "right after the ack", "agentToken": bob}),
    )
    .await;
    assert_eq!(sent["isError"], false, "{sent}");
    let update = events
        .next_data(WAIT)
        .await
        .expect("the message sent right after the acknowledgement");
    assert_eq!(update["params"]["uri"], uris[ROOMS - 1].as_str());
    assert_eq!(
        update["params"]["_meta"]["huddle/message"]["body"],
        "right after the ack"
    );
}
