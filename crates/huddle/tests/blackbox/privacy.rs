//! DM privacy (docs/protocol.md, sections 'DMs are private' and 'A DM to a stranger
//! fails') on the request/response read paths, and protected rooms (section 'Protected
//! rooms stay private'). Streams are covered in `sse` and `push`.

use huddle_testkit::*;

/// alice, bob and carol in "lobby"; bob DMs alice, alice DMs bob, then alice posts
/// "public". carol and bob have read everything before the DMs (bob's own send comes
/// first, so it does not consume alice's DM as missed).
struct Scene {
    s: Server,
    alice: Agent,
    bob: Agent,
    carol: Agent,
}

async fn scene() -> Scene {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    let carol = s.join("lobby", "carol").await;
    s.unread_all(&bob).await;
    s.unread_all(&carol).await;
    s.dm(&bob, "alice", "secret-2").await;
    s.dm(&alice, "bob", "secret-1").await;
    s.say(&alice, "public").await;
    Scene {
        s,
        alice,
        bob,
        carol,
    }
}

fn has(messages: &[serde_json::Value], body: &str) -> bool {
    messages.iter().any(|m| m["body"] == body)
}

#[tokio::test]
async fn dm_is_invisible_to_third_agent_in_history() {
    let Scene {
        s,
        alice,
        bob,
        carol,
    } = scene().await;
    let carol_sees = s.history_all(&carol).await;
    assert!(has(&carol_sees, "public"));
    assert!(
        !has(&carol_sees, "secret-1"),
        "carol sees alice->bob: {carol_sees:?}"
    );
    assert!(
        !has(&carol_sees, "secret-2"),
        "carol sees bob->alice: {carol_sees:?}"
    );
    // Also on a small page that would straddle the DMs.
    let (page, _) = s.history_page(&carol, 2, 0).await;
    assert!(
        !has(&page, "secret-1") && !has(&page, "secret-2"),
        "{page:?}"
    );

    for viewer in [&alice, &bob] {
        let sees = s.history_all(viewer).await;
        assert!(
            has(&sees, "secret-1") && has(&sees, "secret-2"),
            "{}: {sees:?}",
            viewer.name
        );
    }
}

#[tokio::test]
async fn dm_is_invisible_to_third_agent_in_unread() {
    let Scene { s, bob, carol, .. } = scene().await;
    let carol_unread = s.unread_all(&carol).await;
    assert_eq!(bodies(&carol_unread), ["public"]);
    let bob_unread = s.unread_all(&bob).await;
    assert!(has(&bob_unread, "secret-1"), "{bob_unread:?}");
    assert!(has(&bob_unread, "public"), "{bob_unread:?}");
}

#[tokio::test]
async fn dm_is_invisible_to_third_agent_in_missed_messages_on_join() {
    let Scene { s, bob, carol, .. } = scene().await;
    let rejoin = |agent: &Agent| {
        s.act("room.join")
            .ctx("lobby")
            .meta("agentName", agent.name.clone())
            .token(&agent.token)
            .send()
    };
    let reply = rejoin(&carol).await.ok();
    assert_eq!(bodies(&reply.messages("missedMessages")), ["public"]);
    assert_eq!(reply.data()["missedCount"], 1);
    let summary = reply.missed_summary().unwrap_or_default();
    assert!(
        !summary.contains("secret"),
        "summary leaks a DM: {summary:?}"
    );

    let reply = rejoin(&bob).await.ok();
    let missed = reply.messages("missedMessages");
    assert!(has(&missed, "secret-1"), "{missed:?}");
    assert!(
        reply
            .missed_summary()
            .unwrap()
            .contains("[alice -> bob] secret-1"),
        "{}",
        reply.0
    );
}

#[tokio::test]
async fn dm_is_invisible_to_third_agent_in_missed_messages_on_send() {
    let Scene { s, bob, carol, .. } = scene().await;
    let reply = s.say(&carol, "hi").await;
    assert_eq!(bodies(&reply.messages("missedMessages")), ["public"]);
    let summary = reply.missed_summary().unwrap_or_default();
    assert!(
        !summary.contains("secret"),
        "summary leaks a DM: {summary:?}"
    );

    let reply = s.say(&bob, "hi").await;
    assert!(
        has(&reply.messages("missedMessages"), "secret-1"),
        "{}",
        reply.0
    );
}

#[tokio::test]
async fn dm_to_an_agent_not_in_the_room_fails_and_stores_nothing() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    s.create_room("elsewhere", "ghost").await;

    let send = |to: &'static str| {
        s.act("message.send")
            .text("hello?")
            .token(&alice.token)
            .meta("to", to)
            .send()
    };
    assert_eq!(
        send("ghost").await.err(),
        "Agent \"ghost\" not found in room"
    );
    s.act("room.leave").token(&bob.token).send().await.ok();
    assert_eq!(send("bob").await.err(), "Agent \"bob\" not found in room");
    assert!(!has(&s.history_all(&alice).await, "hello?"));
}

#[tokio::test]
async fn protected_room_info_needs_the_password_or_a_member_token() {
    let s = Server::start().await;
    let created = s
        .act("room.create")
        .text("vault")
        .meta("agentName", "alice")
        .meta("password", "s3cret")
        .meta("description", "the plans")
        .send()
        .await
        .ok();
    let alice = Agent::from_reply(&created, "alice");
    let outsider = s.create_room("lobby", "olga").await;
    let room = alice.room_id.clone();

    let refused = [
        s.act("room.info").ctx(&room).send().await,
        s.act("room.info").ctx("vault").send().await,
        s.act("room.info").ctx("vault:wrong").send().await,
        s.act("room.info")
            .ctx(&room)
            .meta("password", "wrong")
            .send()
            .await,
        s.act("room.info")
            .ctx(&room)
            .token(&outsider.token)
            .send()
            .await,
    ];
    for reply in &refused {
        assert!(
            reply.is_error(),
            "protected room.info answered: {}",
            reply.0
        );
        let text = reply.0.to_string();
        assert!(
            !text.contains("the plans") && !text.contains("alice"),
            "the refusal leaks room details: {text}"
        );
    }

    let allowed = [
        s.act("room.info").ctx("vault:s3cret").send().await,
        s.act("room.info")
            .ctx(&room)
            .meta("password", "s3cret")
            .send()
            .await,
        s.act("room.info")
            .ctx(&room)
            .token(&alice.token)
            .send()
            .await,
    ];
    for reply in allowed {
        let reply = reply.ok();
        assert_eq!(reply.data()["roomId"], room.as_str());
        assert_eq!(reply.data()["description"], "the plans");
    }
}

#[tokio::test]
async fn protected_room_history_needs_a_member_token() {
    let s = Server::start().await;
    let alice = s.create_protected("vault", "s3cret", "alice").await;
    s.say(&alice, "classified").await;
    let outsider = s.create_room("lobby", "olga").await;

    let reply = s
        .act("message.history")
        .ctx(&alice.room_id)
        .token(&outsider.token)
        .send()
        .await;
    assert_eq!(reply.err(), "agentToken does not belong to this room");
    assert!(!reply.0.to_string().contains("classified"));
    let reply = s
        .act("message.history")
        .ctx(&alice.room_id)
        .token(&outsider.token)
        .meta("password", "wrong")
        .send()
        .await;
    assert!(reply.is_error(), "{}", reply.0);
    assert!(!reply.0.to_string().contains("classified"));

    assert!(has(&s.history_all(&alice).await, "classified"));
}

#[tokio::test]
async fn protected_rooms_never_appear_in_room_list() {
    let s = Server::start().await;
    s.create_protected("vault", "s3cret", "alice").await;
    s.create_room("open", "carol").await;
    s.create_protected("open", "pw", "bob").await;

    let reply = s.act("room.list").send().await.ok();
    let rooms = reply.data()["rooms"].as_array().unwrap().clone();
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    assert_eq!(rooms[0]["name"], "open");
    assert_eq!(
        rooms[0]["agents"], 1,
        "the protected room's members are counted"
    );
    assert_eq!(reply.data()["total"], 1);

    let reply = s.act("room.list").meta("search", "vau").send().await.ok();
    assert_eq!(reply.data()["total"], 0, "{}", reply.0);
    assert!(!reply.0.to_string().contains("vault"));
}

/// Neither a room password nor an agent token is written to the data dir in clear.
/// SQLite-only by nature: it reads the embedded store's files.
#[tokio::test]
async fn passwords_and_tokens_are_not_stored_in_plain_text() {
    let s = Server::builder().sqlite_only().start().await;
    let password = "pl41n-t3xt-passw0rd";
    let alice = s.create_protected("vault", password, "alice").await;
    let bob = s.join(&format!("vault:{password}"), "bob").await;
    s.say(&bob, "hello").await;
    s.kill9();

    // The secret part of a self-routing token follows the room id; check both the
    // whole token and its last segment.
    let mut needles = vec![password.to_string()];
    for token in [&alice.token, &bob.token] {
        needles.push(token.clone());
        if let Some((_, secret)) = token.rsplit_once(['.', ':'])
            && secret.len() >= 16
        {
            needles.push(secret.to_string());
        }
    }
    let mut files = Vec::new();
    let mut dirs = vec![s.data_dir.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty(), "nothing in the data dir");
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for needle in &needles {
            let found = bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
            assert!(
                !found,
                "{} holds a secret in clear: {needle:?}",
                file.display()
            );
        }
    }
}
