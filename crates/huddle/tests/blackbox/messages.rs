//! `message.send`, `message.history`, `message.unread` (docs/protocol.md, section
//! 'Actions'), missed messages (section 'Missed messages and the read cursor') and their
//! pages of 100.

use serde_json::Value;

use huddle_testkit::*;

#[tokio::test]
async fn send_stores_a_message_with_id_seq_and_timestamp() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;

    let reply = s.say(&alice, "hello").await;
    assert_eq!(reply.text(), "Message sent");

    let history = s.history_all(&bob).await;
    assert_eq!(bodies(&history), ["bob joined the room", "hello"]);
    assert_eq!(
        seqs(&history),
        [1, 2],
        "seq is gapless from 1 and notices take seqs"
    );
    let hello = &history[1];
    assert_eq!(hello["from"], "alice");
    assert_eq!(hello["roomId"], alice.room_id.as_str());
    assert!(is_uuid_v4(hello["id"].as_str().unwrap()), "{hello}");
    assert!(
        is_rfc3339_utc(hello["timestamp"].as_str().unwrap()),
        "{hello}"
    );
    assert!(
        hello.get("to").is_none(),
        "a broadcast carries no `to`: {hello}"
    );
    assert_ne!(history[0]["id"], history[1]["id"]);
}

#[tokio::test]
async fn dm_carries_its_recipient_in_to() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    let reply = s.dm(&alice, "bob", "psst").await;
    assert_eq!(reply.text(), "Message sent");
    let last = s.history_all(&bob).await.pop().unwrap();
    assert_eq!(last["body"], "psst");
    assert_eq!(last["from"], "alice");
    assert_eq!(last["to"], "bob");
}

#[tokio::test]
async fn send_needs_a_valid_token() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    assert_eq!(
        s.act("message.send").text("x").send().await.err(),
        "agentToken required"
    );
    assert_eq!(
        s.act("message.send")
            .text("x")
            .token("bogus")
            .send()
            .await
            .err(),
        "Invalid agentToken"
    );
    // A token of the right shape but altered is still invalid.
    let mut forged = alice.token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(
        s.act("message.send")
            .text("x")
            .token(&forged)
            .send()
            .await
            .err(),
        "Invalid agentToken"
    );
    assert!(s.history_all(&alice).await.is_empty());
}

#[tokio::test]
async fn history_pages_the_most_recent_messages_oldest_first() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    for i in 1..=110 {
        s.say(&alice, &format!("m{i}")).await;
    }
    let names =
        |from: u32, to: u32| -> Vec<String> { (from..=to).map(|i| format!("m{i}")).collect() };

    let reply = s
        .act("message.history")
        .ctx(&alice.room_id)
        .token(&alice.token)
        .send()
        .await
        .ok();
    assert_eq!(
        bodies(&reply.messages("messages")),
        names(91, 110),
        "default limit 20"
    );
    assert_eq!(reply.data()["total"], 110);
    let text: Value = serde_json::from_str(reply.text()).expect("history text is JSON");
    assert!(text.is_object() || text.is_array());

    let (page, total) = s.history_page(&alice, 5, 5).await;
    assert_eq!(bodies(&page), names(101, 105));
    assert_eq!(total, 110);

    let (page, _) = s.history_page(&alice, 500, 0).await;
    assert_eq!(bodies(&page), names(11, 110), "limit is capped at 100");
    assert_contiguous(&page, 11);

    let (page, _) = s.history_page(&alice, 100, 100).await;
    assert_eq!(bodies(&page), names(1, 10));
}

#[tokio::test]
async fn history_refuses_missing_invalid_and_foreign_tokens() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let other = s.create_room("elsewhere", "olga").await;
    let history = |room: &str, token: Option<&str>| {
        let mut call = s.act("message.history").ctx(room);
        if let Some(token) = token {
            call = call.token(token);
        }
        call.send()
    };
    assert_eq!(
        history(&alice.room_id, None).await.err(),
        "agentToken required"
    );
    assert_eq!(
        history(&alice.room_id, Some("bogus")).await.err(),
        "Invalid agentToken"
    );
    assert_eq!(
        history(&alice.room_id, Some(&other.token)).await.err(),
        "agentToken does not belong to this room"
    );
}

#[tokio::test]
async fn history_of_any_other_room_is_refused_alike_whether_it_exists_or_not() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    s.say(&alice, "mine").await;
    let olga = s.create_room("elsewhere", "olga").await;
    s.say(&olga, "theirs").await;
    let vault = s.create_protected("vault", "s3cret", "vera").await;
    let history = |room: String| {
        s.act("message.history")
            .ctx(room)
            .token(&alice.token)
            .send()
    };
    // The token's own room, by id or by name.
    for own in [alice.room_id.clone(), "LOBBY".to_string()] {
        let reply = history(own).await.ok();
        assert_eq!(bodies(&reply.messages("messages")), ["mine"]);
    }
    // Any other reference gets one answer, so a member learns nothing about which
    // rooms exist: another room's id or name, a protected one, an unknown id or name.
    let unknown_id = uuid::Uuid::new_v4().to_string();
    for other in [
        olga.room_id.clone(),
        "elsewhere".to_string(),
        vault.room_id.clone(),
        "vault".to_string(),
        unknown_id,
        "nosuchroom".to_string(),
    ] {
        let reply = history(other.clone()).await;
        assert_eq!(
            reply.err(),
            "agentToken does not belong to this room",
            "{other}"
        );
        assert!(!reply.0.to_string().contains("theirs"), "{other}");
    }
}

#[tokio::test]
async fn unread_returns_what_came_after_the_cursor_and_moves_it() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    s.unread_all(&bob).await;

    for body in ["a", "b", "c"] {
        s.say(&alice, body).await;
    }
    let reply = s.unread(&bob).await;
    assert_eq!(bodies(&reply.messages("messages")), ["a", "b", "c"]);
    assert_eq!(reply.data()["total"], 3);
    assert_ne!(reply.data()["hasMore"], true);
    serde_json::from_str::<Value>(reply.text()).expect("unread text is JSON");

    let reply = s.unread(&bob).await;
    assert_eq!(reply.text(), "No unread messages");
    assert!(reply.messages("messages").is_empty());

    s.say(&alice, "d").await;
    assert_eq!(bodies(&s.unread(&bob).await.messages("messages")), ["d"]);

    assert_eq!(
        s.act("message.unread").token("bogus").send().await.err(),
        "Invalid agentToken"
    );
}

#[tokio::test]
async fn unread_past_100_comes_in_pages_with_has_more() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    s.unread_all(&bob).await;
    for i in 0..250 {
        s.say(&alice, &format!("m{i}")).await;
    }

    let mut all = Vec::new();
    for (expected, has_more) in [(100, true), (100, true), (50, false)] {
        let reply = s.unread(&bob).await;
        let page = reply.messages("messages");
        assert_eq!(page.len(), expected, "page sizes 100, 100, 50");
        assert_eq!(
            reply.data()["total"],
            expected as u64,
            "total = count returned"
        );
        if has_more {
            assert_eq!(
                reply.data()["hasMore"],
                true,
                "{:?}",
                reply.data().get("hasMore")
            );
        } else {
            assert_ne!(reply.data()["hasMore"], true);
        }
        all.extend(page);
    }
    let want: Vec<String> = (0..250).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies(&all), want);
    let first = all[0]["seq"].as_u64().unwrap();
    assert_contiguous(&all, first);
    assert_eq!(s.unread(&bob).await.text(), "No unread messages");
}

#[tokio::test]
async fn missed_messages_on_send_are_capped_at_100_and_the_rest_stay_unread() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    s.unread_all(&bob).await;
    for i in 0..130 {
        s.say(&alice, &format!("m{i}")).await;
    }
    let reply = s.say(&bob, "catching up").await;
    let missed = reply.messages("missedMessages");
    let want: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies(&missed), want, "the oldest 100 first");
    let rest = s.unread_all(&bob).await;
    let rest: Vec<Value> = rest.into_iter().filter(|m| m["from"] == "alice").collect();
    let want: Vec<String> = (100..130).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies(&rest), want, "the remaining 30 are still unread");
}

#[tokio::test]
async fn missed_messages_on_join_are_capped_at_100_and_the_rest_stay_unread() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    s.unread_all(&bob).await;
    for i in 0..130 {
        s.say(&alice, &format!("m{i}")).await;
    }
    let reply = s
        .act("room.join")
        .ctx("lobby")
        .meta("agentName", "bob")
        .token(&bob.token)
        .send()
        .await
        .ok();
    let missed = reply.messages("missedMessages");
    let want: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies(&missed), want);
    let rest = s.unread_all(&bob).await;
    let want: Vec<String> = (100..130).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies(&from_agents(&rest)), want);
}

#[tokio::test]
async fn missed_summary_lists_one_line_per_message() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    s.unread_all(&bob).await;
    s.say(&alice, "one").await;
    s.dm(&alice, "bob", "two").await;

    let reply = s.say(&bob, "back").await;
    assert_eq!(bodies(&reply.messages("missedMessages")), ["one", "two"]);
    assert_eq!(reply.data()["missedCount"], 2);
    let summary = reply.missed_summary().expect("summary part");
    assert!(
        summary.starts_with("\n--- 2 missed message(s) ---\n"),
        "{summary:?}"
    );
    let lines: Vec<&str> = summary.trim().lines().skip(1).collect();
    assert_eq!(lines, ["[alice] one", "[alice -> bob] two"]);

    // Nothing missed since: no summary, no missed messages.
    let reply = s.say(&bob, "again").await;
    assert!(reply.messages("missedMessages").is_empty(), "{}", reply.0);
    assert!(reply.missed_summary().is_none(), "{}", reply.0);
}

#[tokio::test]
async fn new_agent_misses_nothing_from_before_it_joined() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    s.say(&alice, "before-1").await;
    s.say(&alice, "before-2").await;
    let reply = s
        .act("room.join")
        .ctx("lobby")
        .meta("agentName", "bob")
        .send()
        .await
        .ok();
    assert!(
        reply.messages("missedMessages").is_empty(),
        "a new agent got old messages as missed: {}",
        reply.0
    );
    let bob = Agent::from_reply(&reply, "bob");
    let unread = s.unread_all(&bob).await;
    assert!(
        !bodies(&unread).iter().any(|b| b.starts_with("before")),
        "a new agent has old messages unread: {unread:?}"
    );
    // History is not cursor-bound: it shows them.
    assert!(bodies(&s.history_all(&bob).await).contains(&"before-1".to_string()));
}

#[tokio::test]
async fn history_and_listing_are_served_by_one_store_reader_without_a_queue() {
    let s = Server::start_with(&["--store-readers", "1", "--store-read-queue", "0"]).await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    let carol = s.join("lobby", "carol").await;
    for i in 0..5 {
        s.say(&alice, &format!("hi-{i}")).await;
        s.dm(&alice, "bob", &format!("psst-{i}")).await;
    }
    // Bob sees 2 notices, 5 broadcasts and 5 DMs; carol not the DMs.
    let (page, total) = s.history_page(&bob, 3, 2).await;
    assert_eq!(
        (bodies(&page), total),
        (
            vec!["psst-2".to_string(), "hi-3".into(), "psst-3".into()],
            12
        )
    );
    let (page, total) = s.history_page(&carol, 2, 1).await;
    assert_eq!(
        (bodies(&page), total),
        (vec!["hi-2".to_string(), "hi-3".into()], 7)
    );
    let agents = |reply: Reply| reply.data()["rooms"][0]["agents"].clone();
    assert_eq!(agents(s.act("room.list").send().await.ok()), 3);
    s.act("room.kick")
        .token(&alice.token)
        .meta("targetAgent", "carol")
        .send()
        .await
        .ok();
    assert_eq!(agents(s.act("room.list").send().await.ok()), 2);
    s.act("room.leave").token(&bob.token).send().await.ok();
    assert_eq!(agents(s.act("room.list").send().await.ok()), 1);
}
