//! `huddle store copy` then `huddle serve --store postgres://...`: a node's data moved
//! from its embedded store into PostgreSQL is served identically (docs/architecture.md,
//! section 'The stores').

use std::process::Command;
use std::time::Duration;

use huddle_store::testing::TestPostgres;

use huddle_testkit::*;

#[tokio::test]
async fn a_data_dir_copied_to_postgres_is_served_identically() {
    let dir = tempfile::tempdir().unwrap();
    // SQLite-only by nature: the copy starts from the embedded store's data dir.
    let s = Server::builder()
        .dir(dir.path())
        .sqlite_only()
        .start()
        .await;
    let alice = s.create_room("durable", "alice").await;
    let bob = s.join("durable", "bob").await;
    let carol = s.create_protected("vault", "s3cret", "carol").await;
    for i in 1..=20 {
        s.say(&alice, &format!("m{i}")).await;
    }
    s.dm(&alice, "bob", "dm-1").await;
    s.say(&carol, "in the vault").await;
    s.unread_all(&bob).await;
    for i in 1..=5 {
        s.say(&alice, &format!("n{i}")).await;
    }
    let history = s.history_all(&alice).await;
    let bobs_history = s.history_all(&bob).await;
    let vault = s.history_all(&carol).await;
    let list = s.act("room.list").send().await.ok();
    let info = s.act("room.info").ctx("durable").send().await.ok();
    let last_seq = history.last().unwrap()["seq"].as_u64().unwrap();
    s.terminate();
    assert!(
        s.wait_exit(Duration::from_secs(20)).await.is_some(),
        "the node stops"
    );
    drop(s);

    let pg = TestPostgres::start();
    let url = pg.database();
    let copy = |what: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_huddle"))
            .args(["store", "copy", "--from"])
            .arg(format!("sqlite:{}", dir.path().display()))
            .args(["--to", &url])
            .output()
            .expect("run huddle store copy");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{what}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let printed = copy("the copy");
    assert!(printed.contains("copied and verified 2 rooms"), "{printed}");
    let durable = format!("(durable): {last_seq} messages, last seq {last_seq}, 2 members");
    assert!(printed.contains(&durable), "{printed}");
    let again = copy("the rerun");
    assert_eq!(
        again.matches("already copied, verified").count(),
        2,
        "{again}"
    );

    let fresh = tempfile::tempdir().unwrap();
    let s = Server::start_in_with(fresh.path(), &["--store", &url, "--store-pool", "4"]).await;
    assert_eq!(s.act("room.list").send().await.ok().data(), list.data());
    let info_after = s.act("room.info").ctx("durable").send().await.ok();
    assert_eq!(info_after.data(), info.data());
    assert_eq!(s.history_all(&alice).await, history);
    assert_eq!(s.history_all(&bob).await, bobs_history);
    assert_eq!(s.history_all(&carol).await, vault);
    let unread = s.unread_all(&bob).await;
    assert_eq!(
        bodies(&unread),
        ["n1", "n2", "n3", "n4", "n5"],
        "bob's cursor"
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
    s.say(&alice, "after the move").await;
    let last = s.history_all(&bob).await.pop().unwrap();
    assert_eq!(
        (last["body"].as_str(), last["seq"].as_u64()),
        (Some("after the move"), Some(last_seq + 1))
    );
    let reply = s
        .act("room.create")
        .text("durable")
        .meta("agentName", "zed")
        .send()
        .await;
    assert_eq!(reply.err(), "Room \"durable\" already exists.");
}
