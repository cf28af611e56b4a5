//! The JSON-RPC envelope of `POST /a2a` (docs/protocol.md, section 'A2A envelope'),
//! discovery and documentation (section 'Agent Card and discovery'), and the aliases and
//! "no action" paths of `SendMessage`.

use serde_json::{Value, json};

use huddle_testkit::*;

/// The room actions, as `(group, full name)`.
const ACTIONS: &[(&str, &str)] = &[
    ("room", "room.create"),
    ("room", "room.join"),
    ("room", "room.leave"),
    ("room", "room.info"),
    ("room", "room.list"),
    ("room", "room.promote"),
    ("room", "room.demote"),
    ("room", "room.kick"),
    ("room", "room.update"),
    ("messages", "message.send"),
    ("messages", "message.history"),
    ("messages", "message.unread"),
];

/// Asserts `actions.room` / `actions.messages` document every room action with
/// `{ params, returns, description }` (keyed by full or short name).
fn assert_structured_docs(actions: &Value, context: &str) {
    for (group, action) in ACTIONS {
        let docs = actions[group]
            .as_object()
            .unwrap_or_else(|| panic!("{context}: actions.{group} is not an object: {actions}"));
        let short = action.split('.').nth(1).unwrap();
        let entry = docs
            .get(*action)
            .or_else(|| docs.get(short))
            .unwrap_or_else(|| {
                panic!(
                    "{context}: actions.{group} does not document {action}: keys {:?}",
                    docs.keys().collect::<Vec<_>>()
                )
            });
        for field in ["params", "returns", "description"] {
            assert!(
                entry.get(field).is_some(),
                "{context}: {action} lacks `{field}`: {entry}"
            );
        }
        assert!(
            entry["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{context}: {action} has no description: {entry}"
        );
    }
}

fn assert_rpc_error(answer: &Value, code: i64, id: Value) {
    assert_eq!(answer["jsonrpc"], "2.0", "{answer}");
    assert_eq!(answer["error"]["code"], code, "{answer}");
    assert_eq!(answer["id"], id, "{answer}");
    assert!(
        answer.get("result").is_none(),
        "error with a result: {answer}"
    );
}

#[tokio::test]
async fn body_that_is_not_json_gets_parse_error_32700() {
    let s = Server::start().await;
    for body in ["this is not json", "{\"jsonrpc\":\"2.0\",", ""] {
        let (status, text) = s.post_a2a_raw(body).await;
        assert_eq!(status, 200, "JSON-RPC errors are HTTP 200: {text}");
        let answer: Value = serde_json::from_str(&text).expect("JSON error body");
        assert_rpc_error(&answer, -32700, Value::Null);
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("Parse error: "),
            "message for body {body:?}: {message:?}"
        );
    }
}

#[tokio::test]
async fn wrong_jsonrpc_version_or_missing_method_is_invalid_request_32600() {
    let s = Server::start().await;
    let answer = s
        .rpc(json!({"jsonrpc":"1.0","id":7,"method":"SendMessage","params":{}}))
        .await;
    assert_rpc_error(&answer, -32600, json!(7));
    assert_eq!(answer["error"]["message"], "Invalid request");

    let answer = s.rpc(json!({"jsonrpc":"2.0","id":"abc"})).await;
    assert_rpc_error(&answer, -32600, json!("abc"));
    assert_eq!(answer["error"]["message"], "Invalid request");

    let answer = s.rpc(json!({"method":"SendMessage","id":8})).await;
    assert_rpc_error(&answer, -32600, json!(8));

    // JSON, but not a request object.
    for body in [
        json!([{"jsonrpc":"2.0","id":1,"method":"rpc.discover"}]),
        json!(42),
    ] {
        let answer = s.rpc(body).await;
        assert_rpc_error(&answer, -32600, Value::Null);
    }
}

#[tokio::test]
async fn get_task_is_not_implemented_32601() {
    let s = Server::start().await;
    let answer = s
        .rpc(json!({"jsonrpc":"2.0","id":3,"method":"GetTask","params":{"id":"x"}}))
        .await;
    assert_rpc_error(&answer, -32601, json!(3));
    assert_eq!(answer["error"]["message"], "GetTask not implemented");
}

#[tokio::test]
async fn unknown_method_is_method_not_found_32601_with_a_hint() {
    let s = Server::start().await;
    let answer = s
        .rpc(json!({"jsonrpc":"2.0","id":4,"method":"DoSomething","params":{}}))
        .await;
    assert_rpc_error(&answer, -32601, json!(4));
    assert_eq!(
        answer["error"]["message"],
        "Method not found: DoSomething. Try \"SendMessage\" or \"rpc.discover\""
    );
}

#[tokio::test]
async fn rpc_discover_names_huddle_and_lists_methods_actions_and_endpoints() {
    let s = Server::start().await;
    let answer = s
        .rpc(json!({"jsonrpc":"2.0","id":1,"method":"rpc.discover"}))
        .await;
    assert_eq!(answer["id"], 1);
    let result = &answer["result"];
    assert_eq!(result["name"], "Huddle", "discovery names Huddle: {result}");
    assert!(result["version"].as_str().is_some_and(|v| !v.is_empty()));
    assert!(
        result["description"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    let methods = result["methods"].as_array().expect("methods array");
    for method in methods {
        assert!(
            method["name"].is_string() && method["description"].is_string(),
            "{method}"
        );
    }
    assert!(
        methods.iter().any(|m| m["name"] == "SendMessage"),
        "SendMessage is not among the methods: {methods:?}"
    );
    assert_structured_docs(&result["actions"], "rpc.discover");
    assert_eq!(
        result["endpoints"],
        json!({
            "a2a": "POST /a2a",
            "mcp": "POST /mcp",
            "agentCard": "GET /.well-known/agent-card.json",
            "sse": "GET /api/messages/:roomId/sse",
        })
    );
    let text = answer.to_string().to_lowercase();
    assert!(
        !text.contains("join.cloud"),
        "discovery names Join.cloud, not Huddle: {result}"
    );
}

#[tokio::test]
async fn agent_card_names_huddle_with_a2a_url_and_capabilities() {
    let s = Server::start().await;
    let resp = s
        .http
        .get(s.url("/.well-known/agent-card.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let card: Value = resp.json().await.expect("agent card is JSON");
    assert_eq!(card["name"], "Huddle", "{card}");
    let url = card["url"].as_str().expect("url");
    assert!(url.ends_with("/a2a"), "card url {url:?} must end in /a2a");
    // No public URL configured: the card points where the client reached the node.
    assert_eq!(url, format!("{}/a2a", s.base), "card url");
    assert!(card["description"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(card["version"].is_string(), "{card}");
    assert!(card["documentationUrl"].is_string(), "{card}");
    assert!(card["provider"]["name"].is_string(), "{card}");
    assert_eq!(card["capabilities"]["streaming"], true, "{card}");
    assert_eq!(card["capabilities"]["pushNotifications"], true, "{card}");
    let skills = card["skills"].as_array().expect("skills");
    for skill in skills {
        for field in ["id", "name", "description"] {
            assert!(skill[field].is_string(), "skill without {field}: {skill}");
        }
    }
    let ids: Vec<&str> = skills.iter().filter_map(|s| s["id"].as_str()).collect();
    for action in ["room.create", "room.join", "message.send"] {
        assert!(ids.contains(&action), "no skill {action}: {ids:?}");
    }
    assert!(
        !card.to_string().contains("Join.cloud"),
        "the card names Join.cloud, not Huddle: {card}"
    );
}

#[tokio::test]
async fn help_action_returns_text_and_structured_docs_for_every_action() {
    let s = Server::start().await;
    let reply = s.act("help").send().await.ok();
    assert!(
        reply.text().len() > 100,
        "help text too short: {:?}",
        reply.text()
    );
    assert_structured_docs(&reply.data()["documentation"]["actions"], "help");
}

#[tokio::test]
async fn unknown_action_points_to_help() {
    let s = Server::start().await;
    let reply = s.act("room.dance").send().await;
    assert_eq!(
        reply.text(),
        "Error: Unknown action: room.dance. Send metadata.action: \"help\" for full documentation."
    );
}

#[tokio::test]
async fn no_action_and_no_token_returns_the_documentation() {
    let s = Server::start().await;
    let reply = s.no_action().text("hello?").send().await.ok();
    assert!(
        reply.text().len() > 50,
        "doc reply too short: {:?}",
        reply.text()
    );
    // A context without a token is still only a question, not a send.
    let reply = s
        .no_action()
        .text("hello?")
        .ctx("someroom")
        .send()
        .await
        .ok();
    assert!(
        reply.text().len() > 50,
        "doc reply too short: {:?}",
        reply.text()
    );
}

#[tokio::test]
async fn no_action_with_context_and_token_sends_a_message_or_a_dm() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    let carol = s.join("lobby", "carol").await;

    let reply = s
        .no_action()
        .text("hi all")
        .ctx(&alice.room_id)
        .token(&alice.token)
        .send()
        .await
        .ok();
    assert_eq!(reply.text(), "Message sent");
    let reply = s
        .no_action()
        .text("just you")
        .ctx(&alice.room_id)
        .token(&alice.token)
        .meta("to", "bob")
        .send()
        .await
        .ok();
    assert_eq!(reply.text(), "Message sent");

    let bob_sees = from_agents(&s.history_all(&bob).await);
    assert_eq!(bodies(&bob_sees), ["hi all", "just you"]);
    assert_eq!(bob_sees[0]["from"], "alice");
    assert_eq!(bob_sees[1]["to"], "bob");
    let carol_sees = from_agents(&s.history_all(&carol).await);
    assert_eq!(bodies(&carol_sees), ["hi all"], "the DM leaked to carol");
}

#[tokio::test]
async fn short_action_aliases_run_the_full_actions() {
    let s = Server::start().await;
    let created = s
        .act("create")
        .text("aliases")
        .meta("agentName", "alice")
        .send()
        .await
        .ok();
    let alice = Agent::from_reply(&created, "alice");
    let room = alice.room_id.clone();
    assert!(
        created.text().starts_with("Room created: "),
        "{}",
        created.text()
    );

    let joined = s
        .act("join")
        .ctx("aliases")
        .meta("agentName", "bob")
        .send()
        .await
        .ok();
    assert_eq!(joined.text(), format!("Joined room {room} as bob"));
    let bob = Agent::from_reply(&joined, "bob");
    let carol = s.join("aliases", "carol").await;

    let sent = s
        .act("send")
        .text("via alias")
        .token(&alice.token)
        .send()
        .await
        .ok();
    assert_eq!(sent.text(), "Message sent");

    let history = s
        .act("history")
        .ctx(&room)
        .token(&bob.token)
        .send()
        .await
        .ok();
    assert!(bodies(&history.messages("messages")).contains(&"via alias".to_string()));

    let unread = s.act("unread").token(&carol.token).send().await.ok();
    assert!(
        bodies(&unread.messages("messages")).contains(&"via alias".to_string()),
        "{}",
        unread.0
    );

    let info = s.act("info").ctx(&room).send().await.ok();
    assert_eq!(info.data()["roomId"], room.as_str());

    let list = s.act("list").send().await.ok();
    assert_eq!(list.data()["rooms"][0]["name"], "aliases");

    let promoted = s
        .act("promote")
        .token(&alice.token)
        .meta("targetAgent", "bob")
        .send()
        .await
        .ok();
    assert_eq!(promoted.text(), "Promoted bob to admin");
    let demoted = s
        .act("demote")
        .token(&alice.token)
        .meta("targetAgent", "bob")
        .send()
        .await
        .ok();
    assert_eq!(demoted.text(), "Demoted bob to member");
    let updated = s
        .act("update")
        .token(&alice.token)
        .meta("description", "aliased")
        .send()
        .await
        .ok();
    assert_eq!(updated.text(), "Room updated: description");
    let kicked = s
        .act("kick")
        .token(&alice.token)
        .meta("targetAgent", "carol")
        .send()
        .await
        .ok();
    assert_eq!(kicked.text(), "Kicked carol from the room");
    let left = s.act("leave").token(&bob.token).send().await.ok();
    assert_eq!(left.text(), format!("Left room {room}"));
}

#[tokio::test]
async fn missing_required_parameters_are_named() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;

    let reply = s.act("room.create").text("x").send().await;
    assert_eq!(reply.err(), "agentName required");
    let reply = s.act("room.join").ctx("lobby").send().await;
    assert_eq!(reply.err(), "agentName required");
    let reply = s.act("room.join").meta("agentName", "bob").send().await;
    assert_eq!(reply.err(), "roomId required");
    let reply = s.act("room.info").send().await;
    assert_eq!(reply.err(), "roomId required");
    let reply = s.act("room.leave").send().await;
    assert_eq!(reply.err(), "agentToken required");
    let reply = s.act("message.send").text("hi").send().await;
    assert_eq!(reply.err(), "agentToken required");
    let reply = s.act("message.send").token(&alice.token).send().await;
    assert_eq!(reply.err(), "text required");
    let reply = s.act("message.history").ctx(&alice.room_id).send().await;
    assert_eq!(reply.err(), "agentToken required");
    let reply = s.act("message.unread").send().await;
    assert_eq!(reply.err(), "agentToken required");
    let reply = s
        .act("room.promote")
        .meta("targetAgent", "alice")
        .send()
        .await;
    assert_eq!(reply.err(), "agentToken required");
}

#[tokio::test]
async fn get_a2a_serves_plain_text_to_agents_and_html_to_browsers() {
    let s = Server::start().await;
    let resp = s.http.get(s.url("/a2a")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/plain"), "agent got {ctype}");
    assert!(resp.text().await.unwrap().len() > 50);

    let resp = s
        .http
        .get(s.url("/a2a"))
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/html"), "browser got {ctype}");
}

#[tokio::test]
async fn text_comes_from_the_first_part_that_has_one() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let answer = s
        .rpc(json!({
            "jsonrpc": "2.0", "id": "t1", "method": "SendMessage",
            "params": {"message": {"role": "user",
                "parts": [{"data": {"x": 1}}, {"text": "first text"}, {"text": "second text"}],
                "metadata": {"action": "message.send", "agentToken": alice.token}}}
        }))
        .await;
    assert_eq!(answer["id"], "t1");
    assert_eq!(
        answer["result"]["parts"][0]["text"], "Message sent",
        "{answer}"
    );
    assert_eq!(bodies(&s.history_all(&alice).await), ["first text"]);
}
