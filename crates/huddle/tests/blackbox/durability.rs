//! `kill -9` and restart on the same data dir: every acknowledged room, member, token,
//! read cursor and message is still there (docs/architecture.md, section 'Acknowledged =
//! durable').

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::join_all;
use serde_json::Value;

use crate::push::{Sink, join_with_endpoint};
use huddle_testkit::*;

#[tokio::test]
async fn kill_9_and_restart_keeps_rooms_members_tokens_cursors_and_messages() {
    let dir = tempfile::tempdir().unwrap();

    // ---- before the crash ----
    let s = Server::start_in(dir.path()).await;
    let created = s
        .act("room.create")
        .text("durable")
        .meta("agentName", "alice")
        .meta("description", "keep me")
        .send()
        .await
        .ok();
    let alice = Agent::from_reply(&created, "alice");
    let bob = s.join("durable", "bob").await;
    let carol = s.create_protected("vault", "s3cret", "carol").await;
    let dave = s.join("vault:s3cret", "dave").await;
    s.act("room.promote")
        .token(&alice.token)
        .meta("targetAgent", "bob")
        .send()
        .await
        .ok();
    for i in 1..=20 {
        s.say(&alice, &format!("m{i}")).await;
    }
    s.dm(&alice, "bob", "dm-1").await;
    s.say(&dave, "in the vault").await;
    let read = s.unread_all(&bob).await;
    assert!(bodies(&read).contains(&"m20".to_string()));
    for i in 1..=5 {
        s.say(&alice, &format!("n{i}")).await;
    }
    let history_before = s.history_all(&alice).await;
    let vault_before = s.history_all(&carol).await;
    let info_before = s.act("room.info").ctx("durable").send().await.ok();
    let list_before = s.act("room.list").send().await.ok();
    s.kill9();
    drop(s);

    // ---- after the restart ----
    let s = Server::start_in(dir.path()).await;
    let list_after = s.act("room.list").send().await.ok();
    assert_eq!(list_after.data(), list_before.data(), "room.list changed");
    let info_after = s.act("room.info").ctx("durable").send().await.ok();
    assert_eq!(info_after.data(), info_before.data(), "room.info changed");
    assert_eq!(
        info_after.data()["agents"][1]["role"],
        "admin",
        "bob's promotion was lost"
    );

    let history_after = s.history_all(&alice).await;
    assert_eq!(
        history_after, history_before,
        "history changed across the restart"
    );
    assert_eq!(
        s.history_all(&carol).await,
        vault_before,
        "the vault's history changed"
    );

    // bob's read cursor: exactly what came after his last unread.
    let unread = s.unread_all(&bob).await;
    assert_eq!(
        bodies(&unread),
        ["n1", "n2", "n3", "n4", "n5"],
        "bob's cursor moved"
    );

    // Tokens still work, and seq continues without a gap.
    s.say(&alice, "after restart").await;
    let last = s.history_all(&bob).await.pop().unwrap();
    assert_eq!(last["body"], "after restart");
    assert_eq!(
        last["seq"].as_u64().unwrap(),
        history_before.last().unwrap()["seq"].as_u64().unwrap() + 1
    );
    let reply = s
        .act("room.join")
        .ctx("durable")
        .meta("agentName", "bob")
        .token(&bob.token)
        .send()
        .await
        .ok();
    assert_eq!(
        reply.text(),
        format!("Reconnected to room {} as bob", bob.room_id)
    );
    let reply = s
        .act("room.join")
        .ctx("durable")
        .meta("agentName", "bob")
        .send()
        .await;
    assert!(reply.err().contains("already taken"), "{}", reply.0);
    let reply = s
        .act("room.create")
        .text("durable")
        .meta("agentName", "zed")
        .send()
        .await;
    assert_eq!(reply.err(), "Room \"durable\" already exists.");

    // The protected room keeps its password and its members.
    s.say(&dave, "still in the vault").await;
    let reply = s
        .act("room.join")
        .ctx("vault:wrong")
        .meta("agentName", "eve")
        .send()
        .await;
    assert_eq!(reply.err(), "Invalid room password");
    let erin = s.join("vault:s3cret", "erin").await;
    assert_eq!(erin.room_id, carol.room_id);

    // A stream resumes across the restart.
    let resume_from = history_before[history_before.len() - 3]["seq"]
        .as_u64()
        .unwrap();
    let mut stream = s.sse(&bob, Resume::LastEventId(resume_from)).await;
    let got = stream
        .until_body("after restart", Duration::from_secs(10))
        .await;
    assert_eq!(bodies(&got), ["n4", "n5", "after restart"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_kill_9_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(dir.path()).await;
    let alice = s.create_room("busy", "alice").await;
    let mut senders = Vec::new();
    for i in 0..4 {
        senders.push(s.join("busy", &format!("s{i}")).await);
    }
    let acked: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let count = AtomicUsize::new(0);

    let send_until_dead = join_all(senders.iter().enumerate().map(|(i, agent)| {
        let (s, acked, count) = (&s, &acked, &count);
        async move {
            for j in 0.. {
                let body = format!("s{i}-{j}");
                match s
                    .act("message.send")
                    .text(body.clone())
                    .token(&agent.token)
                    .try_send()
                    .await
                {
                    Ok(reply) if !reply.is_error() => {
                        acked.lock().unwrap().push(body);
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    // The node is gone (or refused while dying): stop.
                    _ => return,
                }
            }
        }
    }));
    let killer = async {
        let count = &count;
        eventually(
            Duration::from_secs(20),
            "200 acknowledged sends",
            || async move { (count.load(Ordering::SeqCst) >= 200).then_some(()) },
        )
        .await;
        s.kill9();
    };
    tokio::join!(send_until_dead, killer);
    let acked = acked.into_inner().unwrap();
    assert!(acked.len() >= 200);
    drop(s);

    let s = Server::start_in(dir.path()).await;
    let history = s.history_all(&alice).await;
    assert_contiguous(&history, 1);
    let stored: HashSet<String> = bodies(&history).into_iter().collect();
    let lost: Vec<&String> = acked.iter().filter(|b| !stored.contains(*b)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages were lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    let ids: HashSet<&str> = history.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), history.len(), "duplicate ids after restart");
    // Each sender's messages are stored in its send order with no holes before its last.
    for i in 0..4 {
        let prefix = format!("s{i}-");
        let mine: Vec<Value> = history
            .iter()
            .filter(|m| m["body"].as_str().unwrap().starts_with(&prefix))
            .cloned()
            .collect();
        let want: Vec<String> = (0..mine.len()).map(|j| format!("s{i}-{j}")).collect();
        assert_eq!(bodies(&mine), want, "sender {i}");
    }
}

/// A room unloaded from memory after `--room-idle-secs` comes back with its seq, read
/// cursors, open streams and push endpoints.
#[tokio::test]
async fn idle_room_unload_keeps_seq_cursors_streams_and_pushes() {
    let sink = Sink::start().await;
    let s = Server::start_with(&["--room-idle-secs", "1"]).await;
    let alice = s.create_room("sleepy", "alice").await;
    let bob = s.join("sleepy", "bob").await;
    join_with_endpoint(&s, "sleepy", "carol", &sink.url("/carol")).await;
    for i in 1..=5 {
        s.say(&alice, &format!("m{i}")).await;
    }
    assert!(bodies(&s.unread_all(&bob).await).contains(&"m5".to_string()));
    sink.wait_for("/carol", "m5", Duration::from_secs(10)).await;
    let last_seq = s.history_all(&alice).await.last().unwrap()["seq"]
        .as_u64()
        .unwrap();
    let mut live = s.sse(&bob, Resume::Live).await;

    // Long enough for an idle sweep to unload the room.
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.say(&alice, "after-nap").await;

    let message = match live.next(Duration::from_secs(10)).await {
        Next::Message(_, m) => m,
        // Ending the stream is allowed: the client resumes.
        Next::Ended => s
            .sse(&bob, Resume::LastEventId(last_seq))
            .await
            .take(1, Duration::from_secs(10))
            .await
            .remove(0),
        Next::Timeout => panic!("the open stream went silent after the room was unloaded"),
    };
    assert_eq!(message["body"], "after-nap");
    assert_eq!(
        message["seq"],
        last_seq + 1,
        "seq restarted or skipped after unload"
    );
    assert_eq!(
        bodies(&s.unread_all(&bob).await),
        ["after-nap"],
        "bob's read cursor was lost"
    );
    let pushed = sink
        .wait_for("/carol", "after-nap", Duration::from_secs(10))
        .await;
    assert_eq!(pushed, ["m1", "m2", "m3", "m4", "m5", "after-nap"]);
}

/// The node the kit starts is on the store `HUDDLE_TEST_STORE` names (so the suite's
/// PostgreSQL pass really is one): the embedded store's file in the data dir on
/// SQLite, none there on PostgreSQL, where the rooms still outlive a `kill -9`.
#[tokio::test]
async fn the_node_is_on_the_store_the_test_run_asks_for() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(dir.path()).await;
    let alice = s.create_room("where", "alice").await;
    s.say(&alice, "stored").await;
    s.kill9();
    drop(s);
    let file = dir.path().join("huddle.db").exists();
    assert_eq!(
        file,
        TestStore::from_env() == TestStore::Sqlite,
        "huddle.db in the data dir on a {:?} run",
        TestStore::from_env()
    );
    let s = Server::start_in(dir.path()).await;
    assert_eq!(bodies(&s.history_all(&alice).await), ["stored"]);
}
