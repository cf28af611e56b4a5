//! Room messages reach sessions as `notifications/message`: live on the GET stream, or
//! ahead of the next tool result; DMs only to their two ends; several rooms per session;
//! GET streams resumed with `Last-Event-ID` without gap or duplicate.

use std::time::Duration;

use huddle_gateway::mcp::McpConfig;
use huddle_rooms::RoomsConfig;
use serde_json::json;

use crate::harness::{Node, Session, bodies};

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// alice creates a room, bob joins it; returns the room id.
async fn pair(alice: &mut Session, bob: &mut Session) -> String {
    let name = unique("pair");
    let created = alice
        .ok("createRoom", json!({"name": name, "agentName": "alice"}))
        .await;
    bob.ok("joinRoom", json!({"roomId": name, "agentName": "bob"}))
        .await;
    created.data()["roomId"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn messages_each_way_arrive_on_the_get_stream_and_ahead_of_the_next_result() {
    let node = Node::start().await;
    let mut alice = node.session().await;
    let mut bob = node.session().await;
    let room = pair(&mut alice, &mut bob).await;
    let mut bob_live = bob.live(None).await;

    // alice → bob, on bob's GET stream, as a `notifications/message`. alice has no GET
    // stream: what she was owed when she called (bob's arrival) comes ahead of her result.
    let sent = alice.ok("sendMessage", json!({"text": "hello bob"})).await;
    assert_eq!(sent.bodies(), ["bob joined the room"]);
    let note = bob_live.next().await;
    assert_eq!(note["params"]["level"], "info");
    assert_eq!(note["params"]["logger"], format!("room/{room}"));
    let data = &note["params"]["data"];
    assert_eq!(data["from"], "alice");
    assert_eq!(data["body"], "hello bob");
    assert!(data["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(data.get("to").is_none());

    // bob → alice: at the head of her next tool result, after her own message.
    bob.ok("sendMessage", json!({"text": "hi alice"})).await;
    let call = alice.ok("listRooms", json!({})).await;
    assert_eq!(call.bodies(), ["hello bob", "hi alice"]);
    let notes = call.posted.notes();
    assert_eq!(notes[1]["params"]["data"]["from"], "bob");
    assert_eq!(notes[1]["params"]["logger"], format!("room/{room}"));
    // Delivered once: the next result carries nothing old.
    assert!(alice.ok("listRooms", json!({})).await.bodies().is_empty());
    // bob's GET stream had his own message too, and nothing arrives twice.
    assert_eq!(bob_live.bodies(1).await, ["hi alice"]);
    assert!(
        bob_live
            .next_within(Duration::from_millis(200))
            .await
            .is_none()
    );
    // With a GET stream open, tool results carry no notifications.
    alice.ok("sendMessage", json!({"text": "third"})).await;
    assert!(bob.ok("listRooms", json!({})).await.bodies().is_empty());
    assert_eq!(bob_live.bodies(1).await, ["third"]);
}

#[tokio::test]
async fn a_dm_reaches_its_recipient_only() {
    let node = Node::start().await;
    let mut alice = node.session().await;
    let mut bob = node.session().await;
    let mut carol = node.session().await;
    let name = unique("dm");
    alice
        .ok("createRoom", json!({"name": name, "agentName": "alice"}))
        .await;
    bob.ok("joinRoom", json!({"roomId": name, "agentName": "bob"}))
        .await;
    carol
        .ok("joinRoom", json!({"roomId": name, "agentName": "carol"}))
        .await;
    let mut bob_live = bob.live(None).await;

    alice
        .ok(
            "sendMessage",
            json!({"text": "for carol only", "to": "carol"}),
        )
        .await;
    alice
        .ok("sendMessage", json!({"text": "for everyone"}))
        .await;
    // bob's stream skips the DM.
    assert_eq!(
        bob_live.bodies(2).await,
        ["carol joined the room", "for everyone"]
    );
    // carol (no GET stream) gets both, the DM marked with `to`.
    let call = carol.ok("listRooms", json!({})).await;
    assert_eq!(call.bodies(), ["for carol only", "for everyone"]);
    assert_eq!(call.posted.notes()[0]["params"]["data"]["to"], "carol");
    // and bob's piggy-back path never shows it either.
    let mut bob2 = node.session().await;
    bob2.ok("joinRoom", json!({"roomId": name, "agentName": "bob2"}))
        .await;
    alice
        .ok(
            "sendMessage",
            json!({"text": "again for carol", "to": "carol"}),
        )
        .await;
    alice
        .ok("sendMessage", json!({"text": "again for all"}))
        .await;
    assert_eq!(
        bob2.ok("listRooms", json!({})).await.bodies(),
        ["again for all"]
    );
}

#[tokio::test]
async fn a_session_in_two_rooms_sends_to_each_by_room_id() {
    let node = Node::start().await;
    let mut multi = node.session().await;
    let mut one = node.session().await;
    let mut two = node.session().await;
    let (n1, n2) = (unique("one"), unique("two"));
    let r1 = one
        .ok("createRoom", json!({"name": n1, "agentName": "one"}))
        .await
        .data()["roomId"]
        .as_str()
        .unwrap()
        .to_string();
    two.ok("createRoom", json!({"name": n2, "agentName": "two"}))
        .await;
    multi
        .ok("joinRoom", json!({"roomId": n1, "agentName": "multi"}))
        .await;
    multi
        .ok("joinRoom", json!({"roomId": n2, "agentName": "multi"}))
        .await;
    let mut one_live = one.live(None).await;
    let mut two_live = two.live(None).await;
    let mut multi_live = multi.live(None).await;

    multi
        .ok("sendMessage", json!({"text": "to one by id", "roomId": r1}))
        .await;
    multi
        .ok(
            "sendMessage",
            json!({"text": "to two by name", "roomId": n2}),
        )
        .await;
    multi
        .ok("sendMessage", json!({"text": "default is the latest join"}))
        .await;
    assert_eq!(
        one_live.bodies(2).await,
        ["multi joined the room", "to one by id"]
    );
    assert_eq!(
        two_live.bodies(3).await,
        [
            "multi joined the room",
            "to two by name",
            "default is the latest join"
        ]
    );
    assert!(
        one_live
            .next_within(Duration::from_millis(200))
            .await
            .is_none()
    );

    // Both rooms reach the one session, each with its logger.
    one.ok("sendMessage", json!({"text": "from room one"}))
        .await;
    two.ok("sendMessage", json!({"text": "from room two"}))
        .await;
    let mut got = Vec::new();
    for _ in 0..5 {
        let n = multi_live.next().await;
        got.push((
            n["params"]["logger"].as_str().unwrap().to_string(),
            n["params"]["data"]["body"].as_str().unwrap().to_string(),
        ));
    }
    assert!(
        got.contains(&(format!("room/{r1}"), "from room one".to_string())),
        "{got:?}"
    );
    assert!(got.iter().any(|(_, b)| b == "from room two"), "{got:?}");

    // resources/list shows the session's rooms.
    let listed = multi.request("resources/list", json!({})).await;
    let uris: Vec<String> = listed.response()["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(uris.len(), 2);
    assert!(uris[0].contains(&r1));

    // Leaving one room: the default is the other, and that room's messages stop.
    multi.ok("leaveRoom", json!({"roomId": n1})).await;
    assert_eq!(
        one_live.bodies(2).await,
        ["from room one", "multi left the room"]
    );
    multi
        .ok("sendMessage", json!({"text": "still in two"}))
        .await;
    assert_eq!(two_live.bodies(2).await, ["from room two", "still in two"]);
    one.ok("sendMessage", json!({"text": "after leaving"}))
        .await;
    let mut rest = Vec::new();
    while let Some(n) = multi_live.next_within(Duration::from_millis(300)).await {
        rest.extend(bodies(&[n]));
    }
    assert!(rest.contains(&"still in two".to_string()), "{rest:?}");
    assert!(!rest.contains(&"after leaving".to_string()), "{rest:?}");
}

#[tokio::test]
async fn a_resumed_get_stream_continues_without_gap_or_duplicate() {
    let node = Node::start().await;
    let mut alice = node.session().await;
    let mut bob = node.session().await;
    pair(&mut alice, &mut bob).await;
    let mut live = bob.live(None).await;
    for i in 1..=3 {
        alice
            .ok("sendMessage", json!({"text": format!("m{i}")}))
            .await;
    }
    assert_eq!(live.bodies(2).await, ["m1", "m2"]);
    let resume_at = live.last_id.clone().unwrap();
    drop(live);
    for i in 4..=6 {
        alice
            .ok("sendMessage", json!({"text": format!("m{i}")}))
            .await;
    }
    // m3 was sent on the old stream but the client never read it: it comes again.
    let mut live = bob.live(Some(&resume_at)).await;
    assert_eq!(live.bodies(4).await, ["m3", "m4", "m5", "m6"]);
    alice.ok("sendMessage", json!({"text": "m7"})).await;
    assert_eq!(live.bodies(1).await, ["m7"]);
    assert!(live.next_within(Duration::from_millis(200)).await.is_none());

    // Resuming from the newest id gives nothing old.
    let newest = live.last_id.clone().unwrap();
    drop(live);
    let mut live = bob.live(Some(&newest)).await;
    assert!(live.next_within(Duration::from_millis(200)).await.is_none());
    alice.ok("sendMessage", json!({"text": "m8"})).await;
    assert_eq!(live.bodies(1).await, ["m8"]);
}

#[tokio::test]
async fn messages_given_on_a_post_response_are_not_repeated_by_a_resumed_get_stream() {
    let node = Node::start().await;
    let mut alice = node.session().await;
    let mut bob = node.session().await;
    pair(&mut alice, &mut bob).await;
    let mut live = bob.live(None).await;
    alice
        .ok("sendMessage", json!({"text": "on the stream"}))
        .await;
    assert_eq!(live.bodies(1).await, ["on the stream"]);
    let resume_at = live.last_id.clone().unwrap();
    drop(live);
    // Wait until the server noticed the stream is gone, then go POST-only for a while.
    let mut posted = Vec::new();
    let mut sent_away = 0;
    for _ in 0..50 {
        alice.ok("sendMessage", json!({"text": "while away"})).await;
        sent_away += 1;
        posted.extend(bob.ok("listRooms", json!({})).await.bodies());
        if !posted.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !posted.is_empty(),
        "the POST path takes over once the GET stream is gone"
    );
    alice.ok("sendMessage", json!({"text": "after"})).await;
    let mut live = bob.live(Some(&resume_at)).await;
    // Some "while away" were on the stream no one read (sent again), the rest came on
    // POST responses (not sent again); "after" follows, once.
    let mut resumed = Vec::new();
    while let Some(n) = live.next_within(Duration::from_millis(300)).await {
        resumed.extend(bodies(&[n]));
    }
    assert_eq!(
        resumed.last().map(String::as_str),
        Some("after"),
        "{resumed:?}"
    );
    let resumed_away = resumed.iter().filter(|b| *b == "while away").count();
    assert_eq!(
        resumed_away + posted.len(),
        sent_away,
        "posted {posted:?}, resumed {resumed:?}"
    );
    assert_eq!(resumed.len(), resumed_away + 1);
}

#[tokio::test]
async fn a_session_away_for_long_catches_up_in_bounded_responses_without_loss() {
    // A tiny fan-out buffer: bob's held subscription falls behind and is made again
    // from his position, replaying the log.
    const MAX: usize = 20;
    let node = Node::start_with_rooms(
        McpConfig {
            max_notes: MAX,
            ..McpConfig::default()
        },
        RoomsConfig {
            subscriber_buffer: 4,
            ..RoomsConfig::default()
        },
    )
    .await;
    let mut alice = node.session().await;
    let mut bob = node.session().await;
    pair(&mut alice, &mut bob).await;
    let total = MAX + 15;
    for i in 0..total {
        alice
            .ok("sendMessage", json!({"text": format!("n{i}")}))
            .await;
    }
    let first = bob.ok("listRooms", json!({})).await.bodies();
    assert_eq!(first.len(), MAX, "one response carries at most {MAX}");
    let second = bob.ok("listRooms", json!({})).await.bodies();
    let all: Vec<String> = first.into_iter().chain(second).collect();
    let expected: Vec<String> = (0..total).map(|i| format!("n{i}")).collect();
    assert_eq!(all, expected);
    assert!(bob.ok("listRooms", json!({})).await.bodies().is_empty());
}

/// A reconnect that is handed only the first 100 missed messages must get the rest as
/// notifications: delivery carries on from the agent's cursor after the join, not from
/// the room's end.
#[tokio::test]
async fn a_reconnect_with_more_missed_than_a_page_gets_the_rest_as_notifications() {
    let node = Node::start().await;
    let mut alice = node.session().await;
    let mut bob = node.session().await;
    let room = pair(&mut alice, &mut bob).await;
    // carol joins in a session of her own and goes away with her token.
    let token = {
        let mut carol = node.session().await;
        let joined = carol
            .ok("joinRoom", json!({"roomId": room, "agentName": "carol"}))
            .await;
        joined.data()["agentToken"].as_str().unwrap().to_string()
    };
    for i in 0..150 {
        alice
            .ok("sendMessage", json!({"text": format!("m{i}")}))
            .await;
    }
    // carol comes back in a new session with her token: 100 missed in the result...
    let mut again = node.session().await;
    let joined = again
        .ok(
            "joinRoom",
            json!({"roomId": room, "agentName": "carol", "agentToken": token}),
        )
        .await;
    let data = joined.data();
    assert_eq!(data["missedCount"], 100);
    assert_eq!(data["missedMessages"][99]["body"], "m99");
    // ...and the other 50, in order, as notifications ahead of her next result.
    let call = again.ok("listRooms", json!({})).await;
    let expected: Vec<String> = (100..150).map(|i| format!("m{i}")).collect();
    assert_eq!(call.bodies(), expected);
}
