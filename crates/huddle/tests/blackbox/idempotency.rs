//! Idempotent sends (docs/room-semantics.md, section 'Idempotent sends'): a client that
//! lost the answer to a send sends it again under the same message id, on A2A or gRPC,
//! and the room holds the message once (past the tail and a restart: `sent_keys`).

use huddle_proto::v1::SendMessageRequest;
use huddle_proto::v1::room_service_client::RoomServiceClient;
use huddle_testkit::*;

async fn send_keyed(s: &Server, agent: &Agent, text: &str, id: &str) -> Reply {
    s.act("message.send")
        .text(text)
        .token(&agent.token)
        .message_id(id)
        .send()
        .await
}

#[tokio::test]
async fn a_retried_a2a_send_answers_the_first_seq_and_is_stored_once() {
    let s = Server::start().await;
    let alice = s.create_room("retries", "alice").await;
    let bob = s.join("retries", "bob").await;

    let first = send_keyed(&s, &alice, "deploy at noon", "msg-1").await.ok();
    s.say(&bob, "ack").await;
    let retry = send_keyed(&s, &alice, "deploy at noon", "msg-1").await.ok();
    assert_eq!(retry.text(), "Message sent");
    assert_eq!(retry.data()["seq"], first.data()["seq"], "{retry:?}");

    let history = s.history_all(&bob).await;
    assert_eq!(
        bodies(&history),
        ["bob joined the room", "deploy at noon", "ack"],
        "the retry stored a second message"
    );
    // Delivered once: bob's unread holds it once.
    let reused = send_keyed(&s, &alice, "deploy at one", "msg-1").await;
    assert_eq!(reused.err(), "messageId already used for another message");
    // The same id from another agent is another message.
    let bobs = send_keyed(&s, &bob, "deploy at noon", "msg-1").await.ok();
    assert_ne!(bobs.data()["seq"], first.data()["seq"]);
    let long = "x".repeat(129);
    let refused = send_keyed(&s, &alice, "hi", &long).await;
    assert_eq!(
        refused.err(),
        "messageId is too long: the limit is 128 bytes"
    );
}

#[tokio::test]
async fn a_retried_grpc_send_with_a_message_id_answers_the_first_seq() {
    let s = Server::start().await;
    let alice = s.create_room("grpc-retries", "alice").await;
    let mut client = RoomServiceClient::connect(s.base.clone()).await.unwrap();
    let request = |text: &str| SendMessageRequest {
        text: text.into(),
        agent_token: Some(alice.token.clone()),
        message_id: Some("g-1".into()),
        ..Default::default()
    };
    let first = client
        .send_message(request("hi"))
        .await
        .unwrap()
        .into_inner();
    let retry = client
        .send_message(request("hi"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry.seq, first.seq);
    let reused = client.send_message(request("bye")).await.unwrap_err();
    assert_eq!(reused.code(), tonic::Code::AlreadyExists);
    assert_eq!(
        reused.message(),
        "messageId already used for another message"
    );
    assert_eq!(bodies(&s.history_all(&alice).await), ["hi"]);
}
