//! Exact order (docs/protocol.md, section 'Order is exact'): concurrent senders get one
//! gapless `seq` sequence, and history, unread and SSE all agree on it.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use serde_json::Value;

use huddle_testkit::*;

const SENDERS: usize = 8;
const PER_SENDER: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_senders_get_gapless_ordered_seq() {
    let s = Server::start().await;
    let owner = s.create_room("race", "owner").await;
    let watcher = s.join("race", "watcher").await;
    let mut senders = Vec::new();
    for i in 0..SENDERS {
        senders.push(s.join("race", &format!("s{i}")).await);
    }
    s.unread_all(&watcher).await;
    let before = s.history_all(&owner).await.len() as u64;
    let mut live = s.sse(&watcher, Resume::Live).await;

    join_all(senders.iter().enumerate().map(|(i, agent)| {
        let s = &s;
        async move {
            for j in 0..PER_SENDER {
                s.say(agent, &format!("s{i}-{j}")).await;
            }
        }
    }))
    .await;

    let total = SENDERS * PER_SENDER;
    let history = s.history_all(&owner).await;
    assert_eq!(history.len() as u64, before + total as u64);
    assert_contiguous(&history, 1);
    let sent = &history[before as usize..];
    let ids: HashSet<&str> = sent.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), total, "duplicate message ids");
    for i in 0..SENDERS {
        let from = format!("s{i}");
        let mine: Vec<String> = sent
            .iter()
            .filter(|m| m["from"] == from.as_str())
            .map(|m| m["body"].as_str().unwrap().to_string())
            .collect();
        let want: Vec<String> = (0..PER_SENDER).map(|j| format!("s{i}-{j}")).collect();
        assert_eq!(
            mine, want,
            "sender {i}'s messages are out of its send order"
        );
    }

    // unread walks the same order.
    let unread = s.unread_all(&watcher).await;
    assert_eq!(unread, sent, "unread order differs from history");

    // So does the live stream.
    let streamed = live.take(total, Duration::from_secs(20)).await;
    assert_eq!(streamed, sent, "SSE order differs from history");

    let replayed: Vec<Value> = s
        .sse(&watcher, Resume::After(before))
        .await
        .take(total, Duration::from_secs(20))
        .await;
    assert_eq!(replayed, sent, "replayed SSE differs from history");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_name_make_one_room() {
    let s = Server::start().await;
    let replies = join_all((0..8).map(|i| {
        s.act("room.create")
            .text("contested")
            .meta("agentName", format!("a{i}"))
            .send()
    }))
    .await;
    let winners: Vec<&Reply> = replies.iter().filter(|r| !r.is_error()).collect();
    assert_eq!(winners.len(), 1, "at most one password-less room per name");
    for reply in replies.iter().filter(|r| r.is_error()) {
        assert_eq!(reply.err(), "Room \"contested\" already exists.");
    }
    let list = s.act("room.list").send().await.ok();
    assert_eq!(list.data()["total"], 1, "{}", list.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_name_and_password_make_one_room() {
    let s = Server::start().await;
    // Each creation matches and hashes its password before it locks the name; the
    // rooms created meanwhile are matched under the lock.
    let replies = join_all((0..8).map(|i| {
        s.act("room.create")
            .text("vault")
            .meta("agentName", format!("a{i}"))
            .meta("password", "same")
            .send()
    }))
    .await;
    let winners = replies.iter().filter(|r| !r.is_error()).count();
    assert_eq!(winners, 1, "one room per name and password");
    for reply in replies.iter().filter(|r| r.is_error()) {
        assert_eq!(
            reply.err(),
            "Room \"vault\" already exists with this password."
        );
    }
    // A different password makes a room of its own.
    s.create_protected("vault", "other", "b").await;
    s.join("vault:same", "c").await;
    s.join("vault:other", "d").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_with_one_name_admit_one_agent() {
    let s = Server::start().await;
    s.create_room("lobby", "alice").await;
    let replies = join_all((0..8).map(|_| {
        s.act("room.join")
            .ctx("lobby")
            .meta("agentName", "bob")
            .send()
    }))
    .await;
    let winners = replies.iter().filter(|r| !r.is_error()).count();
    assert_eq!(winners, 1, "a display name is unique in its room");
    let info = s.act("room.info").ctx("lobby").send().await.ok();
    assert_eq!(
        info.data()["agents"].as_array().unwrap().len(),
        2,
        "{}",
        info.0
    );
}
