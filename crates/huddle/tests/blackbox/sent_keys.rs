//! A send's idempotency key is kept with its message in the store: a retry finds the
//! first send after the room's in-memory tail has moved on, and after a restart
//! (docs/room-semantics.md, section 'Idempotent sends').

use huddle_testkit::*;

#[tokio::test]
async fn a_retry_long_after_the_first_send_answers_its_seq_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(dir.path()).await;
    let alice = s.create_room("keys", "alice").await;
    let send = |text: &'static str| {
        s.act("message.send")
            .text(text)
            .token(&alice.token)
            .message_id("retry-me")
    };
    let first = send("hello").send().await.ok();
    let seq = first.data()["seq"].as_u64().unwrap();
    // More than the room keeps in memory.
    for i in 0..300 {
        s.say(&alice, &format!("filler {i}")).await;
    }
    let total = s.history_page(&alice, 1, 0).await.1;
    let again = send("hello").send().await.ok();
    assert_eq!(again.data()["seq"].as_u64(), Some(seq), "{}", again.0);
    assert_eq!(
        s.history_page(&alice, 1, 0).await.1,
        total,
        "nothing new stored"
    );

    s.kill9();
    drop(s);
    let s = Server::start_in(dir.path()).await;
    let again = s
        .act("message.send")
        .text("hello")
        .token(&alice.token)
        .message_id("retry-me")
        .send()
        .await
        .ok();
    assert_eq!(again.data()["seq"].as_u64(), Some(seq), "after a restart");
    let other = s
        .act("message.send")
        .text("another text")
        .token(&alice.token)
        .message_id("retry-me")
        .send()
        .await;
    assert!(
        other.err().contains("messageId already used"),
        "{}",
        other.0
    );
    assert_eq!(s.history_page(&alice, 1, 0).await.1, total);
}
