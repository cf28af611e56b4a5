//! Every `room.*` action (docs/protocol.md, section 'Actions') with its success text and
//! its errors; same-name rooms (section 'Same-name rooms') and `name:password` splitting.

use serde_json::{Value, json};

use huddle_testkit::*;

async fn info(s: &Server, room: &str) -> Reply {
    s.act("room.info").ctx(room).send().await
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

// ---- room.create ----

#[tokio::test]
async fn create_room_answers_id_token_and_joins_creator_as_admin() {
    let s = Server::start().await;
    let reply = s
        .act("room.create")
        .text("Lobby")
        .meta("agentName", "alice")
        .send()
        .await
        .ok();
    let data = reply.data();
    let room = data["roomId"].as_str().expect("roomId").to_string();
    assert!(is_uuid_v4(&room), "room id {room:?} is not a UUID v4");
    assert_eq!(
        reply.text(),
        format!("Room created: {room}. Joined as alice (admin).")
    );
    assert_eq!(reply.context_id(), Some(room.as_str()));
    assert_eq!(data["name"], "lobby", "names are stored lower-cased");
    assert_eq!(data["description"], "");
    assert_eq!(data["type"], "group");
    assert_eq!(data["passwordProtected"], false);
    assert_eq!(data["agentName"], "alice");
    let token = data["agentToken"].as_str().expect("agentToken");
    assert!(token.len() >= 22, "token too short for 128 bits: {token:?}");

    let info = info(&s, &room).await.ok();
    assert_eq!(info.agent_roles(), pairs(&[("alice", "admin")]));

    // The creator joins silently: no bot notice.
    let alice = Agent::from_reply(&reply, "alice");
    let (messages, total) = s.history_page(&alice, 20, 0).await;
    assert!(messages.is_empty(), "create posted {messages:?}");
    assert_eq!(total, 0);
}

#[tokio::test]
async fn create_protected_room_says_password_protected() {
    let s = Server::start().await;
    let reply = s
        .act("room.create")
        .text("vault")
        .meta("agentName", "alice")
        .meta("password", "s3cret")
        .meta("description", "the plans")
        .meta("type", "channel")
        .send()
        .await
        .ok();
    let room = reply.data()["roomId"].as_str().unwrap().to_string();
    assert_eq!(
        reply.text(),
        format!("Room created: {room} (password protected). Joined as alice (admin).")
    );
    assert_eq!(reply.data()["passwordProtected"], true);
    assert_eq!(reply.data()["description"], "the plans");
    assert_eq!(reply.data()["type"], "channel");
    assert!(
        !reply.0.to_string().contains("s3cret"),
        "the password is echoed back: {}",
        reply.0
    );
}

#[tokio::test]
async fn create_room_without_a_name_is_named_by_its_id() {
    let s = Server::start().await;
    let reply = s
        .act("room.create")
        .meta("agentName", "alice")
        .send()
        .await
        .ok();
    let room = reply.data()["roomId"].as_str().unwrap();
    assert_eq!(reply.data()["name"], room);
}

#[tokio::test]
async fn create_room_refuses_reserved_names() {
    let s = Server::start().await;
    for name in ["a2a", "mcp", "docs", "api", "rooms", "healthz", "metrics"] {
        let reply = s
            .act("room.create")
            .text(name)
            .meta("agentName", "alice")
            .send()
            .await;
        assert_eq!(reply.err(), format!("Room name \"{name}\" is reserved."));
    }
    // Names are lower-cased before the check.
    let reply = s
        .act("room.create")
        .text("A2A")
        .meta("agentName", "alice")
        .send()
        .await;
    assert!(reply.err().ends_with("is reserved."), "{}", reply.0);
    let list = s.act("room.list").send().await.ok();
    assert_eq!(
        list.data()["total"],
        0,
        "a reserved room was created: {}",
        list.0
    );
}

#[tokio::test]
async fn create_room_refuses_duplicates_per_name_and_password() {
    let s = Server::start().await;
    s.create_room("dup", "alice").await;
    let reply = s
        .act("room.create")
        .text("dup")
        .meta("agentName", "bob")
        .send()
        .await;
    assert_eq!(reply.err(), "Room \"dup\" already exists.");
    let reply = s
        .act("room.create")
        .text("DUP")
        .meta("agentName", "bob")
        .send()
        .await;
    assert!(reply.err().contains("already exists"), "{}", reply.0);

    s.create_protected("vault", "p1", "alice").await;
    let reply = s
        .act("room.create")
        .text("vault")
        .meta("agentName", "bob")
        .meta("password", "p1")
        .send()
        .await;
    assert_eq!(
        reply.err(),
        "Room \"vault\" already exists with this password."
    );
    let reply = s
        .act("room.create")
        .text("vault")
        .meta("agentName", "bob")
        .send()
        .await;
    assert_eq!(
        reply.err(),
        "Password-protected room \"vault\" already exists. You must provide a password."
    );
    // Another password is another room, and so is a password on a public name.
    let other = s.create_protected("vault", "p2", "bob").await;
    let with_pw = s.create_protected("dup", "x", "carol").await;
    assert_ne!(other.room_id, with_pw.room_id);
}

#[tokio::test]
async fn create_room_validates_type_and_needs_agent_name() {
    let s = Server::start().await;
    let reply = s
        .act("room.create")
        .text("typed")
        .meta("agentName", "alice")
        .meta("type", "forum")
        .send()
        .await;
    assert!(reply.is_error(), "type forum accepted: {}", reply.0);
    let reply = s.act("room.create").text("typed").send().await;
    assert_eq!(reply.err(), "agentName required");
    let list = s.act("room.list").send().await.ok();
    assert_eq!(list.data()["total"], 0, "{}", list.0);
}

// ---- room.join ----

#[tokio::test]
async fn join_by_id_or_name_in_any_case_makes_a_member_and_posts_a_notice() {
    let s = Server::start().await;
    let alice = s.create_room("Lobby", "alice").await;
    let room = alice.room_id.clone();

    let reply = s
        .act("room.join")
        .ctx(&room)
        .meta("agentName", "bob")
        .send()
        .await
        .ok();
    assert_eq!(reply.text(), format!("Joined room {room} as bob"));
    assert_eq!(reply.context_id(), Some(room.as_str()));
    let data = reply.data();
    assert_eq!(data["roomId"], room.as_str());
    assert_eq!(data["agentName"], "bob");
    assert_eq!(data["role"], "member");
    assert_ne!(data["agentToken"], alice.token.as_str());

    let carol = s.join("LOBBY", "carol").await;
    assert_eq!(carol.room_id, room);

    let history = s.history_all(&alice).await;
    assert_eq!(
        bodies(&history),
        ["bob joined the room", "carol joined the room"]
    );
    assert!(
        history.iter().all(|m| m["from"] == "room-bot"),
        "{history:?}"
    );
    assert_eq!(
        info(&s, &room).await.ok().agent_roles(),
        pairs(&[("alice", "admin"), ("bob", "member"), ("carol", "member")])
    );
}

#[tokio::test]
async fn join_unknown_room_is_not_found() {
    let s = Server::start().await;
    let reply = s
        .act("room.join")
        .ctx("nowhere")
        .meta("agentName", "bob")
        .send()
        .await;
    assert_eq!(reply.err(), "Room not found: nowhere");
    let id = "5b0e6a51-4f3c-4d55-9c7e-2f1a2b3c4d5e";
    let reply = s
        .act("room.join")
        .ctx(id)
        .meta("agentName", "bob")
        .send()
        .await;
    assert_eq!(reply.err(), format!("Room not found: {id}"));
}

#[tokio::test]
async fn join_protected_room_needs_the_right_password() {
    let s = Server::start().await;
    let alice = s.create_protected("vault", "s3cret", "alice").await;
    let room = alice.room_id.clone();

    let reply = s
        .act("room.join")
        .ctx("vault:wrong")
        .meta("agentName", "eve")
        .send()
        .await;
    assert_eq!(reply.err(), "Invalid room password");
    let reply = s
        .act("room.join")
        .ctx(&room)
        .meta("agentName", "eve")
        .send()
        .await;
    assert_eq!(reply.err(), "Invalid room password");
    let reply = s
        .act("room.join")
        .ctx(&room)
        .meta("agentName", "eve")
        .meta("password", "wrong")
        .send()
        .await;
    assert_eq!(reply.err(), "Invalid room password");
    let reply = s
        .act("room.join")
        .ctx("vault")
        .meta("agentName", "eve")
        .send()
        .await;
    let err = reply.err();
    assert!(
        err == "Invalid room password" || err == "Room not found: vault",
        "join without password: {err}"
    );

    let bob = s.join("vault:s3cret", "bob").await;
    assert_eq!(bob.room_id, room);
    let carol = s
        .act("room.join")
        .ctx("vault")
        .meta("agentName", "carol")
        .meta("password", "s3cret")
        .send()
        .await
        .ok();
    assert_eq!(carol.data()["roomId"], room.as_str());
    let dave = s
        .act("room.join")
        .ctx(&room)
        .meta("agentName", "dave")
        .meta("password", "s3cret")
        .send()
        .await
        .ok();
    assert_eq!(dave.data()["roomId"], room.as_str());
    let members = info(&s, "vault:s3cret").await.ok().agent_roles();
    assert!(
        !members.iter().any(|(n, _)| n == "eve"),
        "eve got in: {members:?}"
    );
}

#[tokio::test]
async fn join_with_a_taken_name_needs_that_agents_token() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    let taken = "Agent name \"bob\" is already taken in this room. If you own this name, use your agentToken to reconnect.";

    let reply = s
        .act("room.join")
        .ctx("lobby")
        .meta("agentName", "bob")
        .send()
        .await;
    assert_eq!(reply.err(), taken);
    // Another member's token does not own the name.
    let reply = s
        .act("room.join")
        .ctx("lobby")
        .meta("agentName", "bob")
        .token(&alice.token)
        .send()
        .await;
    assert_eq!(reply.err(), taken);
    let reply = s
        .act("room.join")
        .ctx("lobby")
        .meta("agentName", "bob")
        .token("not-a-token")
        .send()
        .await;
    assert_eq!(reply.err(), taken);

    let reply = s
        .act("room.join")
        .ctx("lobby")
        .meta("agentName", "bob")
        .token(&bob.token)
        .send()
        .await
        .ok();
    assert_eq!(
        reply.text(),
        format!("Reconnected to room {} as bob", bob.room_id)
    );
    assert_eq!(reply.data()["agentToken"], bob.token.as_str());
    assert_eq!(reply.data()["role"], "member");
    assert_eq!(reply.data()["roomId"], bob.room_id.as_str());
    // A reconnect is not a new join: no second notice.
    let notices = bodies(&s.history_all(&alice).await);
    assert_eq!(notices, ["bob joined the room"]);
}

#[tokio::test]
async fn reconnect_returns_missed_messages_once() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    s.say(&alice, "m1").await;
    s.say(&alice, "m2").await;

    let reconnect = || {
        s.act("room.join")
            .ctx("lobby")
            .meta("agentName", "bob")
            .token(&bob.token)
            .send()
    };
    let reply = reconnect().await.ok();
    assert_eq!(bodies(&reply.messages("missedMessages")), ["m1", "m2"]);
    assert_eq!(reply.data()["missedCount"], 2);
    let summary = reply.missed_summary().expect("a missed-messages text part");
    assert!(
        summary.contains("--- 2 missed message(s) ---"),
        "{summary:?}"
    );
    assert!(summary.contains("[alice] m1\n"), "{summary:?}");
    assert!(summary.contains("[alice] m2"), "{summary:?}");

    let reply = reconnect().await.ok();
    assert!(
        reply.messages("missedMessages").is_empty(),
        "missed messages returned twice: {}",
        reply.0
    );
    assert!(reply.missed_summary().is_none(), "{}", reply.0);
}

#[tokio::test]
async fn join_refuses_bad_push_endpoints() {
    let s = Server::start_strict().await;
    s.create_room("lobby", "alice").await;
    let cases = [
        ("not a url", "Invalid endpoint URL"),
        (
            "ftp://example.com/hook",
            "Endpoint URL must use http or https",
        ),
        (
            "http://localhost:9/hook",
            "Endpoint URL must not point to localhost",
        ),
        (
            "http://10.1.2.3/hook",
            "Endpoint URL must not point to a private IP address",
        ),
        (
            "http://192.168.1.20:8080/hook",
            "Endpoint URL must not point to a private IP address",
        ),
    ];
    for (i, (endpoint, error)) in cases.iter().enumerate() {
        let reply = s
            .act("room.join")
            .ctx("lobby")
            .meta("agentName", format!("agent{i}"))
            .meta("agentEndpoint", *endpoint)
            .send()
            .await;
        assert_eq!(reply.err(), *error, "endpoint {endpoint:?}");
    }
    let info = info(&s, "lobby").await.ok();
    assert_eq!(
        info.agent_roles().len(),
        1,
        "a refused join got in: {}",
        info.0
    );
}

// ---- room.leave ----

#[tokio::test]
async fn leave_posts_a_notice_and_revokes_the_token() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;

    let reply = s.act("room.leave").token(&bob.token).send().await.ok();
    assert_eq!(reply.text(), format!("Left room {}", bob.room_id));
    let history = s.history_all(&alice).await;
    assert_eq!(bodies(&history).last().unwrap(), "bob left the room");
    assert_eq!(history.last().unwrap()["from"], "room-bot");

    let reply = s
        .act("message.send")
        .text("still here?")
        .token(&bob.token)
        .send()
        .await;
    assert_eq!(reply.err(), "Invalid agentToken");
    let reply = s.act("room.leave").token(&bob.token).send().await;
    assert_eq!(reply.err(), "Invalid agentToken");
    let reply = s.act("room.leave").send().await;
    assert_eq!(reply.err(), "agentToken required");
    assert_eq!(
        info(&s, "lobby").await.ok().agent_roles(),
        pairs(&[("alice", "admin")])
    );
    // The name is free again.
    let again = s.join("lobby", "bob").await;
    assert_ne!(again.token, bob.token);
}

// ---- room.info ----

#[tokio::test]
async fn room_info_shows_room_and_members_as_pretty_json() {
    let s = Server::start().await;
    let created = s
        .act("room.create")
        .text("Lobby")
        .meta("agentName", "alice")
        .meta("description", "a place")
        .send()
        .await
        .ok();
    let alice = Agent::from_reply(&created, "alice");
    s.join("lobby", "bob").await;

    let reply = info(&s, &alice.room_id).await.ok();
    let data = reply.data();
    assert_eq!(data["roomId"], alice.room_id.as_str());
    assert_eq!(data["name"], "lobby");
    assert_eq!(data["description"], "a place");
    assert_eq!(data["type"], "group");
    assert_eq!(
        reply.agent_roles(),
        pairs(&[("alice", "admin"), ("bob", "member")])
    );
    for agent in data["agents"].as_array().unwrap() {
        let joined = agent["joinedAt"].as_str().expect("joinedAt");
        assert!(is_rfc3339_utc(joined), "joinedAt {joined:?}");
    }
    let text: Value = serde_json::from_str(reply.text()).expect("info text is JSON");
    assert_eq!(&text, data, "info text is not the data");
    assert!(
        reply.text().contains('\n'),
        "info text is not pretty-printed"
    );
    assert!(
        !reply.0.to_string().contains(&alice.token),
        "info leaks a token"
    );

    let by_name = info(&s, "LOBBY").await.ok();
    assert_eq!(by_name.data()["roomId"], alice.room_id.as_str());

    assert_eq!(s.act("room.info").send().await.err(), "roomId required");
    assert_eq!(info(&s, "nowhere").await.err(), "Room not found: nowhere");
}

// ---- room.list ----

#[tokio::test]
async fn room_list_shows_public_rooms_by_name_with_member_counts() {
    let s = Server::start().await;
    s.create_room("bravo", "alice").await;
    s.join("bravo", "bob").await;
    s.create_room("alpha", "carol").await;
    s.create_protected("charlie", "pw", "dave").await;

    let reply = s.act("room.list").send().await.ok();
    let data = reply.data();
    assert_eq!(data["total"], 2, "{data}");
    let rooms = data["rooms"].as_array().unwrap();
    let names: Vec<&str> = rooms.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "bravo"]);
    assert_eq!(rooms[0]["agents"], 1);
    assert_eq!(rooms[1]["agents"], 2);
    for room in rooms {
        assert_eq!(room["type"], "group");
        assert_eq!(room["description"], "");
        assert!(
            is_rfc3339_utc(room["createdAt"].as_str().unwrap()),
            "{room}"
        );
        assert!(
            room.get("roomId").is_none() && room.get("id").is_none(),
            "room ids are not listed: {room}"
        );
    }
    serde_json::from_str::<Value>(reply.text()).expect("list text is JSON");

    let reply = s.act("room.list").meta("search", "rav").send().await.ok();
    assert_eq!(reply.data()["total"], 1);
    assert_eq!(reply.data()["rooms"][0]["name"], "bravo");

    let reply = s
        .act("room.list")
        .meta("limit", 1)
        .meta("offset", 1)
        .send()
        .await
        .ok();
    let rooms = reply.data()["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0]["name"], "bravo");
    assert_eq!(reply.data()["total"], 2);

    // limit is clamped to 1..100.
    let reply = s.act("room.list").meta("limit", 0).send().await.ok();
    assert_eq!(reply.data()["rooms"].as_array().unwrap().len(), 1);
    let reply = s.act("room.list").meta("limit", 1000).send().await.ok();
    assert_eq!(reply.data()["rooms"].as_array().unwrap().len(), 2);
}

// ---- room.promote / demote / kick ----

#[tokio::test]
async fn promote_demote_and_kick_change_roles_and_post_notices() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    let carol = s.join("lobby", "carol").await;

    let admin_act = |action: &'static str, who: &Agent, target: &'static str| {
        s.act(action)
            .token(&who.token)
            .meta("targetAgent", target)
            .send()
    };
    let reply = admin_act("room.promote", &alice, "bob").await.ok();
    assert_eq!(reply.text(), "Promoted bob to admin");
    let reply = admin_act("room.demote", &bob, "alice").await.ok();
    assert_eq!(reply.text(), "Demoted alice to member");
    let reply = admin_act("room.kick", &bob, "carol").await.ok();
    assert_eq!(reply.text(), "Kicked carol from the room");

    assert_eq!(
        info(&s, "lobby").await.ok().agent_roles(),
        pairs(&[("alice", "member"), ("bob", "admin")])
    );
    let history = s.history_all(&bob).await;
    let notices: Vec<String> = bodies(&history).into_iter().skip(2).collect();
    assert_eq!(
        notices,
        [
            "alice promoted bob to admin",
            "bob demoted alice to member",
            "bob kicked carol from the room"
        ]
    );
    // A kicked agent's token is no longer a member's.
    let reply = s
        .act("message.send")
        .text("hey")
        .token(&carol.token)
        .send()
        .await;
    assert_eq!(reply.err(), "Invalid agentToken");
    // alice is a member now.
    let reply = admin_act("room.promote", &alice, "alice").await;
    assert_eq!(reply.err(), "Admin role required");
}

#[tokio::test]
async fn admin_actions_refuse_non_admins_strangers_and_the_last_admin() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;

    let act = |action: &'static str, token: &str, target: &'static str| {
        s.act(action)
            .token(token)
            .meta("targetAgent", target)
            .send()
    };
    for action in ["room.promote", "room.demote", "room.kick"] {
        assert_eq!(
            act(action, &bob.token, "alice").await.err(),
            "Admin role required"
        );
        assert_eq!(
            act(action, &alice.token, "zed").await.err(),
            "Agent \"zed\" not found in room"
        );
        assert_eq!(
            act(action, "bogus", "bob").await.err(),
            "Invalid agentToken"
        );
    }
    assert_eq!(
        act("room.demote", &alice.token, "alice").await.err(),
        "Cannot demote the last admin"
    );
    assert_eq!(
        act("room.kick", &alice.token, "alice").await.err(),
        "Cannot kick yourself"
    );
    assert_eq!(
        info(&s, "lobby").await.ok().agent_roles(),
        pairs(&[("alice", "admin"), ("bob", "member")])
    );
}

// ---- room.update ----

#[tokio::test]
async fn update_room_reports_what_changed_and_posts_a_notice() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let update = |meta: Value| {
        let mut call = s.act("room.update").token(&alice.token);
        for (k, v) in meta.as_object().unwrap() {
            call = call.meta(k, v.clone());
        }
        call.send()
    };
    let reply = update(json!({"description": "new words"})).await.ok();
    assert_eq!(reply.text(), "Room updated: description");
    let reply = update(json!({"type": "channel"})).await.ok();
    assert_eq!(reply.text(), "Room updated: type to channel");
    let reply = update(json!({"description": "newer", "type": "group"}))
        .await
        .ok();
    assert_eq!(reply.text(), "Room updated: description, type to group");

    assert_eq!(
        bodies(&s.history_all(&alice).await),
        [
            "alice updated room description",
            "alice updated room type to channel",
            "alice updated room description and type to group"
        ]
    );
    let info = info(&s, "lobby").await.ok();
    assert_eq!(info.data()["description"], "newer");
    assert_eq!(info.data()["type"], "group");
}

#[tokio::test]
async fn update_room_errors_check_fields_first_then_admin_then_values() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;

    let reply = s.act("room.update").token(&bob.token).send().await;
    assert_eq!(
        reply.err(),
        "At least one of description or type must be provided"
    );
    let reply = s
        .act("room.update")
        .token(&bob.token)
        .meta("description", "mine now")
        .send()
        .await;
    assert_eq!(reply.err(), "Admin role required");
    let reply = s
        .act("room.update")
        .token(&alice.token)
        .meta("type", "forum")
        .send()
        .await;
    assert!(reply.is_error(), "type forum accepted: {}", reply.0);
    let reply = s
        .act("room.update")
        .token("bogus")
        .meta("type", "channel")
        .send()
        .await;
    assert_eq!(reply.err(), "Invalid agentToken");

    let info = info(&s, "lobby").await.ok();
    assert_eq!(info.data()["description"], "");
    assert_eq!(info.data()["type"], "group");
}

#[tokio::test]
async fn channel_rooms_let_only_admins_post() {
    let s = Server::start().await;
    let created = s
        .act("room.create")
        .text("news")
        .meta("agentName", "alice")
        .meta("type", "channel")
        .send()
        .await
        .ok();
    let alice = Agent::from_reply(&created, "alice");
    let bob = s.join("news", "bob").await;

    let reply = s
        .act("message.send")
        .text("me too")
        .token(&bob.token)
        .send()
        .await;
    assert_eq!(reply.err(), "Only admins can post in channels");
    let reply = s
        .act("message.send")
        .text("psst")
        .token(&bob.token)
        .meta("to", "alice")
        .send()
        .await;
    assert_eq!(reply.err(), "Only admins can post in channels");
    s.say(&alice, "headline").await;

    assert_eq!(
        bodies(&from_agents(&s.history_all(&bob).await)),
        ["headline"]
    );
}

// ---- Same-name rooms and contextId splitting ----

#[tokio::test]
async fn same_name_rooms_with_different_passwords_are_different_rooms() {
    let s = Server::start().await;
    let a = s.create_protected("team", "alpha", "ann").await;
    let b = s.create_protected("team", "bravo", "ben").await;
    assert_ne!(a.room_id, b.room_id);

    assert_eq!(s.join("team:alpha", "x1").await.room_id, a.room_id);
    assert_eq!(s.join("team:bravo", "x2").await.room_id, b.room_id);
    let reply = s
        .act("room.join")
        .ctx("team")
        .meta("agentName", "x3")
        .meta("password", "bravo")
        .send()
        .await
        .ok();
    assert_eq!(reply.data()["roomId"], b.room_id.as_str());
    let reply = s
        .act("room.join")
        .ctx("team:charlie")
        .meta("agentName", "x4")
        .send()
        .await;
    assert_eq!(reply.err(), "Invalid room password");

    let info_a = info(&s, "team:alpha").await.ok();
    assert_eq!(info_a.data()["roomId"], a.room_id.as_str());
    let info_b = info(&s, "team:bravo").await.ok();
    assert_eq!(info_b.data()["roomId"], b.room_id.as_str());

    // Messages stay in their own room.
    s.say(&a, "for alpha").await;
    assert!(from_agents(&s.history_all(&b).await).is_empty());
}

#[tokio::test]
async fn context_id_splits_name_and_password_at_the_first_colon() {
    let s = Server::start().await;
    let alice = s.create_protected("vault", "a:b", "alice").await;
    assert_eq!(s.join("vault:a:b", "bob").await.room_id, alice.room_id);
    assert_eq!(
        info(&s, "vault:a:b").await.ok().data()["roomId"],
        alice.room_id.as_str()
    );
    let reply = s
        .act("room.join")
        .ctx("vault:a")
        .meta("agentName", "carol")
        .send()
        .await;
    assert_eq!(reply.err(), "Invalid room password");
}

#[tokio::test]
async fn metadata_password_wins_over_the_context_id_password() {
    let s = Server::start().await;
    s.create_protected("team", "one", "ann").await;
    let two = s.create_protected("team", "two", "ben").await;
    let reply = s
        .act("room.join")
        .ctx("team:one")
        .meta("agentName", "carl")
        .meta("password", "two")
        .send()
        .await
        .ok();
    assert_eq!(reply.data()["roomId"], two.room_id.as_str());
}

#[tokio::test]
async fn room_keeps_an_admin_when_its_only_admin_leaves() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    s.join("lobby", "bob").await;
    s.join("lobby", "carol").await;
    let reply = s.act("room.leave").token(&alice.token).send().await;
    let info = info(&s, "lobby").await.ok();
    let roles = info.agent_roles();
    assert!(
        roles.iter().any(|(_, role)| role == "admin"),
        "a room always keeps at least one admin; after {:?} the members are {roles:?}",
        reply.text()
    );
}

/// Names that read as `room-bot` would let anyone post what looks like a server notice;
/// names that read as a member's would let anyone impersonate that member.
#[tokio::test]
async fn look_alike_agent_names_are_refused() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let join = |name: &str| {
        s.act("room.join")
            .ctx("lobby")
            .meta("agentName", name)
            .send()
    };
    for name in ["Room-Bot", "ROOM-BOT", "room\u{2010}bot"] {
        let reply = join(name).await;
        assert_eq!(
            reply.err(),
            format!("Agent name \"{name}\" reads as \"room-bot\", which is reserved")
        );
    }
    let reply = join("room-bot\u{200B}").await;
    assert_eq!(
        reply.err(),
        "Agent name must not contain invisible formatting characters"
    );
    for name in ["Alice", "\u{0430}lice"] {
        let reply = join(name).await;
        assert!(
            reply.err().starts_with(&format!(
                "Agent name \"{name}\" is already taken in this room."
            )),
            "{}",
            reply.0
        );
    }
    let members: Vec<String> = info(&s, "lobby")
        .await
        .ok()
        .agent_roles()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(members, ["alice"]);

    // Lookups by name use the same fold: a DM to "ALICE" reaches alice, named as she
    // joined.
    let bob = s.join("lobby", "Bob").await;
    s.dm(&bob, "ALICE", "psst").await;
    let unread = s.unread_all(&alice).await;
    let dm = unread.iter().find(|m| m["body"] == "psst").expect("the DM");
    assert_eq!(dm["to"], "alice");
    assert_eq!(dm["from"], "Bob", "names are shown as given");
}
