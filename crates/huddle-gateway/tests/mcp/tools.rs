//! The twelve tools over real HTTP: their texts on success and on every error a client
//! can trigger (docs/protocol.md, sections 'Actions' and 'MCP'), and what `initialize` /
//! `tools/list` show.

use serde_json::{Value, json};

use crate::harness::{Node, ToolCall, http_client};

/// The bodies of `data.messages` (history, unread): the compact JSON on the last line.
fn message_bodies(call: &ToolCall) -> Vec<String> {
    let (_, data) = call.text.rsplit_once('\n').expect("text, then data");
    let data: Value = serde_json::from_str(data).unwrap();
    data["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_string())
        .collect()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

#[tokio::test]
async fn initialize_shows_huddle_and_the_a2a_help_as_instructions() {
    let node = Node::start().await;
    let mut s = node.session().await;
    let init = crate::harness::post_raw(
        &node.http,
        &node.url(),
        &[],
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await;
    let result = &init.response()["result"];
    assert_eq!(result["protocolVersion"], "2025-11-25");
    assert_eq!(result["serverInfo"]["name"], "Huddle");
    for cap in ["tools", "logging", "resources", "prompts"] {
        assert!(
            result["capabilities"].get(cap).is_some(),
            "capability {cap}"
        );
    }
    // One source: the MCP instructions are the A2A `help` text.
    let help = http_client()
        .post(format!("{}/a2a", node.base))
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": {
            "role": "user", "parts": [{"text": ""}], "metadata": {"action": "help"}}}}),
        )
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(result["instructions"], help["result"]["parts"][0]["text"]);

    for version in ["2025-03-26", "2025-06-18"] {
        let init = crate::harness::post_raw(
            &node.http,
            &node.url(),
            &[],
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
        )
        .await;
        assert_eq!(init.response()["result"]["protocolVersion"], version);
        assert!(init.session_id().is_some());
    }

    let prompts = s.request("prompts/list", json!({})).await;
    assert_eq!(prompts.response()["result"]["prompts"], json!([]));
    let resources = s.request("resources/list", json!({})).await;
    assert_eq!(resources.response()["result"]["resources"], json!([]));
}

#[tokio::test]
async fn tools_list_has_the_twelve_tools_with_schemas_and_annotations() {
    let node = Node::start().await;
    let mut s = node.session().await;
    let listed = s.request("tools/list", json!({})).await;
    let tools = listed.response()["result"]["tools"]
        .as_array()
        .unwrap()
        .clone();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "createRoom",
            "joinRoom",
            "leaveRoom",
            "roomInfo",
            "listRooms",
            "sendMessage",
            "messageHistory",
            "unreadMessages",
            "promoteAgent",
            "demoteAgent",
            "kickAgent",
            "updateRoom"
        ]
    );
    for t in &tools {
        let name = t["name"].as_str().unwrap();
        assert!(t["description"].as_str().unwrap().len() > 20, "{name}");
        assert_eq!(t["inputSchema"]["type"], "object", "{name}");
        assert!(t["inputSchema"]["properties"].is_object(), "{name}");
        for hint in [
            "title",
            "readOnlyHint",
            "destructiveHint",
            "idempotentHint",
            "openWorldHint",
        ] {
            assert!(t["annotations"].get(hint).is_some(), "{name} lacks {hint}");
        }
    }
    let by_name = |n: &str| tools.iter().find(|t| t["name"] == n).unwrap().clone();
    assert_eq!(
        by_name("createRoom")["inputSchema"]["required"],
        json!(["agentName"])
    );
    assert_eq!(
        by_name("joinRoom")["inputSchema"]["required"],
        json!(["roomId", "agentName"])
    );
    assert_eq!(
        by_name("sendMessage")["inputSchema"]["required"],
        json!(["text"])
    );
    // As in join.cloud's schema: these two name their room, with no default.
    for tool in ["messageHistory", "roomInfo"] {
        assert_eq!(
            by_name(tool)["inputSchema"]["required"],
            json!(["roomId"]),
            "{tool}"
        );
    }
    assert_eq!(by_name("listRooms")["annotations"]["readOnlyHint"], true);
    assert_eq!(by_name("kickAgent")["annotations"]["destructiveHint"], true);
    assert_eq!(
        by_name("updateRoom")["inputSchema"]["properties"]["type"]["enum"],
        json!(["group", "channel"])
    );
}

#[tokio::test]
async fn every_tool_answers_with_the_contract_texts() {
    let node = Node::start().await;
    let mut alice = node.session().await;
    let mut bob = node.session().await;
    let mut carol = node.session().await;
    let name = unique("lab");

    // Before any join.
    let not_joined = "Error: Not joined to any room. Call joinRoom first.";
    for tool in ["sendMessage", "leaveRoom", "unreadMessages", "updateRoom"] {
        alice
            .fails(tool, json!({"text": "x", "description": "d"}), not_joined)
            .await;
    }
    alice
        .fails("messageHistory", json!({"roomId": "lab-x"}), not_joined)
        .await;
    alice
        .fails("messageHistory", json!({}), "Error: roomId required")
        .await;
    alice
        .fails("promoteAgent", json!({"targetAgent": "x"}), not_joined)
        .await;
    alice
        .fails("createRoom", json!({}), "Error: agentName required")
        .await;
    alice
        .fails(
            "createRoom",
            json!({"name": "mcp", "agentName": "a"}),
            "Error: Room name \"mcp\" is reserved.",
        )
        .await;
    alice
        .fails("joinRoom", json!({}), "Error: roomId, agentName required")
        .await;
    alice
        .fails(
            "joinRoom",
            json!({"roomId": "no-such-room-x", "agentName": "a"}),
            "Error: Room not found: no-such-room-x",
        )
        .await;
    alice
        .fails("roomInfo", json!({}), "Error: roomId required")
        .await;

    // createRoom
    let created = alice
        .ok(
            "createRoom",
            json!({"name": name, "agentName": "alice", "description": "d1"}),
        )
        .await;
    let room = created.data()["roomId"].as_str().unwrap().to_string();
    assert_eq!(
        created.text.split_once('\n').unwrap().0,
        format!("Room created: {room}. Joined as alice (admin).")
    );
    let data = created.data();
    assert_eq!(data["name"], name.as_str());
    assert_eq!(data["agentName"], "alice");
    assert_eq!(data["type"], "group");
    assert_eq!(data["passwordProtected"], false);
    assert!(data["agentToken"].as_str().unwrap().len() > 30);
    alice
        .fails(
            "createRoom",
            json!({"name": name, "agentName": "x"}),
            &format!("Error: Room \"{name}\" already exists."),
        )
        .await;

    // joinRoom (by name), name taken, reconnect with the token
    let joined = bob
        .ok("joinRoom", json!({"roomId": name, "agentName": "bob"}))
        .await;
    assert_eq!(
        joined.text.split_once('\n').unwrap().0,
        format!("Joined room {room} as bob")
    );
    assert_eq!(joined.data()["role"], "member");
    let bob_token = joined.data()["agentToken"].as_str().unwrap().to_string();
    carol
        .fails(
            "joinRoom",
            json!({"roomId": name, "agentName": "bob"}),
            "Error: Agent name \"bob\" is already taken in this room. If you own this name, use your agentToken to reconnect.",
        )
        .await;
    let again = bob
        .ok(
            "joinRoom",
            json!({"roomId": room, "agentName": "bob", "agentToken": bob_token}),
        )
        .await;
    assert!(
        again
            .text
            .starts_with(&format!("Reconnected to room {room} as bob\n")),
        "{}",
        again.text
    );
    carol
        .ok("joinRoom", json!({"roomId": name, "agentName": "carol"}))
        .await;

    // roomInfo
    let info = carol.ok("roomInfo", json!({"roomId": name})).await;
    let (pretty, compact) = info
        .text
        .split_once("\n{\"")
        .map(|(p, c)| (p, format!("{{\"{c}")))
        .unwrap();
    let pretty: Value = serde_json::from_str(pretty).unwrap();
    let compact: Value = serde_json::from_str(&compact).unwrap();
    assert_eq!(
        pretty, compact,
        "roomInfo: the pretty JSON, then the same data compact"
    );
    assert_eq!(compact["roomId"], room.as_str());
    let agents: Vec<&str> = compact["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["alice", "bob", "carol"]);
    carol
        .fails(
            "roomInfo",
            json!({"roomId": "nope-nope-x"}),
            "Error: Room not found: nope-nope-x",
        )
        .await;

    // listRooms
    let list = carol.ok("listRooms", json!({"search": name})).await;
    let listed = list.text.rsplit_once('\n').unwrap().1;
    let listed: Value = serde_json::from_str(listed).unwrap();
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["rooms"][0]["name"], name.as_str());
    assert_eq!(listed["rooms"][0]["agents"], 3);

    // sendMessage (broadcast, DM, errors)
    let sent = alice.ok("sendMessage", json!({"text": "hello all"})).await;
    assert!(sent.text.starts_with("Message sent\n{"), "{}", sent.text);
    assert!(sent.data()["seq"].as_u64().unwrap() > 0);
    alice
        .ok("sendMessage", json!({"text": "psst", "to": "carol"}))
        .await;
    alice
        .fails("sendMessage", json!({}), "Error: text required")
        .await;
    alice
        .fails(
            "sendMessage",
            json!({"text": "x", "to": "nobody"}),
            "Error: Agent \"nobody\" not found in room",
        )
        .await;
    alice
        .fails(
            "sendMessage",
            json!({"text": "x", "roomId": "elsewhere"}),
            "Error: Not joined to room \"elsewhere\". Call joinRoom first.",
        )
        .await;

    // messageHistory: bob does not see the DM to carol
    let history = bob
        .ok("messageHistory", json!({"roomId": room, "limit": 50}))
        .await;
    let seen = message_bodies(&history);
    assert!(
        seen.contains(&"hello all".to_string()) && !seen.contains(&"psst".to_string()),
        "{seen:?}"
    );
    let other = unique("other");
    let mut dave = node.session().await;
    let other_room = dave
        .ok("createRoom", json!({"name": other, "agentName": "dave"}))
        .await
        .data()["roomId"]
        .as_str()
        .unwrap()
        .to_string();
    bob.fails(
        "messageHistory",
        json!({"roomId": other_room}),
        "Error: agentToken does not belong to this room",
    )
    .await;

    // Nor does a room that does not exist: the same answer, so no probing.
    for unknown in [uuid::Uuid::new_v4().to_string(), unique("nowhere")] {
        bob.fails(
            "messageHistory",
            json!({"roomId": unknown}),
            "Error: agentToken does not belong to this room",
        )
        .await;
    }

    // unreadMessages: carol has the broadcast and her DM, then nothing
    let unread = carol.ok("unreadMessages", json!({})).await;
    assert_eq!(message_bodies(&unread), ["hello all", "psst"]);
    let none = carol.ok("unreadMessages", json!({})).await;
    assert!(
        none.text.starts_with("No unread messages\n"),
        "{}",
        none.text
    );

    // promote / demote / kick, and their errors
    bob.fails(
        "promoteAgent",
        json!({"targetAgent": "carol"}),
        "Error: Admin role required",
    )
    .await;
    alice
        .fails("promoteAgent", json!({}), "Error: targetAgent required")
        .await;
    alice
        .fails(
            "promoteAgent",
            json!({"targetAgent": "zed"}),
            "Error: Agent \"zed\" not found in room",
        )
        .await;
    let promoted = alice
        .ok("promoteAgent", json!({"targetAgent": "bob"}))
        .await;
    assert_eq!(promoted.text, "Promoted bob to admin");
    let demoted = bob.ok("demoteAgent", json!({"targetAgent": "alice"})).await;
    assert_eq!(demoted.text, "Demoted alice to member");
    bob.fails(
        "demoteAgent",
        json!({"targetAgent": "bob"}),
        "Error: Cannot demote the last admin",
    )
    .await;
    bob.fails(
        "kickAgent",
        json!({"targetAgent": "bob"}),
        "Error: Cannot kick yourself",
    )
    .await;
    let kicked = bob.ok("kickAgent", json!({"targetAgent": "carol"})).await;
    assert_eq!(kicked.text, "Kicked carol from the room");
    carol
        .fails(
            "sendMessage",
            json!({"text": "still here?"}),
            "Error: Invalid agentToken",
        )
        .await;

    // updateRoom, and channels
    bob.fails(
        "updateRoom",
        json!({}),
        "Error: At least one of description or type must be provided",
    )
    .await;
    alice
        .fails(
            "updateRoom",
            json!({"description": "x"}),
            "Error: Admin role required",
        )
        .await;
    let bad = bob.call("updateRoom", json!({"type": "bogus"})).await;
    assert!(
        bad.is_error && bad.text.starts_with("Error: "),
        "{}",
        bad.text
    );
    let updated = bob
        .ok(
            "updateRoom",
            json!({"description": "new", "type": "channel"}),
        )
        .await;
    assert_eq!(updated.text, "Room updated: description, type to channel");
    alice
        .fails(
            "sendMessage",
            json!({"text": "hi"}),
            "Error: Only admins can post in channels",
        )
        .await;
    bob.ok("sendMessage", json!({"text": "admins only"})).await;

    // leaveRoom
    let left = alice.ok("leaveRoom", json!({})).await;
    assert_eq!(left.text, format!("Left room {room}"));
    alice
        .fails("sendMessage", json!({"text": "x"}), not_joined)
        .await;

    // An unknown tool is a protocol error, not a tool result.
    let unknown = alice
        .request("tools/call", json!({"name": "noSuchTool", "arguments": {}}))
        .await;
    assert!(unknown.response().get("error").is_some(), "{}", unknown.raw);
}

#[tokio::test]
async fn protected_rooms_need_their_password() {
    let node = Node::start().await;
    let mut alice = node.session().await;
    let mut bob = node.session().await;
    let name = unique("vault");
    let created = alice
        .ok(
            "createRoom",
            json!({"name": name, "agentName": "alice", "password": "s3cret"}),
        )
        .await;
    let room = created.data()["roomId"].as_str().unwrap().to_string();
    assert!(created.text.starts_with(&format!(
        "Room created: {room} (password protected). Joined as alice (admin)."
    )));
    bob.fails(
        "joinRoom",
        json!({"roomId": format!("{name}:wrong"), "agentName": "bob"}),
        "Error: Invalid room password",
    )
    .await;
    bob.ok(
        "joinRoom",
        json!({"roomId": format!("{name}:s3cret"), "agentName": "bob"}),
    )
    .await;
    // A member's session opens the protected room's info by its name.
    let info = bob.ok("roomInfo", json!({"roomId": name})).await;
    assert!(info.text.contains(&room));
    assert!(
        !alice
            .ok("listRooms", json!({"search": name}))
            .await
            .text
            .contains(&name)
    );
}

#[tokio::test]
async fn message_history_and_room_info_need_a_room_id_even_in_a_joined_session() {
    let node = Node::start().await;
    let mut alice = node.session().await;
    let name = unique("hist");
    let created = alice
        .ok("createRoom", json!({"name": name, "agentName": "alice"}))
        .await;
    let token = created.data()["agentToken"].as_str().unwrap().to_string();
    alice.ok("sendMessage", json!({"text": "hello"})).await;
    // No silent default to the session's room: missing, null, blank or not a string.
    for args in [
        json!({}),
        json!({"roomId": null, "limit": 5}),
        json!({"roomId": "  "}),
        json!({"roomId": 7}),
        json!({"agentToken": token}),
    ] {
        for tool in ["messageHistory", "roomInfo"] {
            alice
                .fails(tool, args.clone(), "Error: roomId required")
                .await;
        }
    }
    // Named, by id or by the name it was joined by, both answer.
    for room in [created.data()["roomId"].as_str().unwrap(), name.as_str()] {
        let history = alice.ok("messageHistory", json!({"roomId": room})).await;
        assert_eq!(message_bodies(&history), ["hello"]);
        alice.ok("roomInfo", json!({"roomId": room})).await;
    }
}

#[tokio::test]
async fn send_message_with_a_message_id_is_stored_once_however_often_it_is_sent() {
    let node = Node::start().await;
    let mut alice = node.session().await;
    let room = unique("retry");
    alice
        .ok("createRoom", json!({"name": room, "agentName": "alice"}))
        .await;
    let args = json!({"text": "once", "messageId": "mcp-1"});
    let first = alice.ok("sendMessage", args.clone()).await.data()["seq"].clone();
    let again = alice.ok("sendMessage", args).await.data()["seq"].clone();
    assert_eq!(
        again, first,
        "a retry under the same messageId is the same message"
    );
    alice
        .fails(
            "sendMessage",
            json!({"text": "twice", "messageId": "mcp-1"}),
            "Error: messageId already used for another message",
        )
        .await;
    let history = alice
        .ok("messageHistory", json!({"roomId": room, "limit": 50}))
        .await;
    let copies = message_bodies(&history)
        .iter()
        .filter(|b| *b == "once")
        .count();
    assert_eq!(copies, 1);
}
