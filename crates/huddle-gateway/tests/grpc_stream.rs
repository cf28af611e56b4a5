//! `Subscribe` flow control end to end: the node served on a socket (embedded store,
//! a tiny subscriber buffer) and the generated tonic client, which, unlike the Python
//! client, reads from the connection only when the test asks for a message. A subscriber
//! that stops reading must be dropped with RESOURCE_EXHAUSTED naming the last seq it got
//! (memory stays bounded), and resuming from that seq must lose and repeat nothing.

use huddle_proto::v1::room_service_client::RoomServiceClient;
use huddle_proto::v1::{
    CreateRoomRequest, JoinRoomRequest, SendMessageRequest, SubscribeRequest, SubscribeResponse,
};
use huddle_testkit::TestNode;
use tonic::transport::Channel;
use tonic::{Code, Request, Streaming};

/// Messages a subscriber may fall behind (the server's default is 4096).
const BUFFER: usize = 8;
/// Far more than the HTTP/2 windows and send buffers hold at this body size, so the
/// server must stop polling the stream and the subscriber must lag.
const MESSAGES: usize = 800;
const BODY_BYTES: usize = 8000;

/// The whole node in-process with a tiny subscriber buffer.
async fn serve() -> TestNode {
    TestNode::start_with(|c| c.rooms.subscriber_buffer = BUFFER).await
}

fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

async fn subscribe(
    client: &mut RoomServiceClient<Channel>,
    token: &str,
    from_seq: u64,
) -> Streaming<SubscribeResponse> {
    let req = SubscribeRequest {
        from_seq: Some(from_seq),
        ..Default::default()
    };
    client
        .subscribe(bearer(req, token))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_is_dropped_and_resumes_without_loss() {
    let node = serve().await;
    let url = node.base.clone();
    let mut client = RoomServiceClient::connect(url.clone()).await.unwrap();
    let alice = client
        .create_room(CreateRoomRequest {
            name: "flow".into(),
            agent_name: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .agent_token;
    let bob = client
        .join_room(JoinRoomRequest {
            room: "flow".into(),
            agent_name: "bob".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .agent_token;

    // Bob subscribes on a connection of his own and then reads nothing for a while.
    let mut bob_client = RoomServiceClient::connect(url.clone()).await.unwrap();
    let mut stream = subscribe(&mut bob_client, &bob, 0).await;

    let body = "x".repeat(BODY_BYTES);
    let mut last_sent = 0;
    for _ in 0..MESSAGES {
        let req = SendMessageRequest {
            text: body.clone(),
            ..Default::default()
        };
        last_sent = client
            .send_message(bearer(req, &alice))
            .await
            .unwrap()
            .into_inner()
            .seq;
    }

    // Reading again: what was in flight arrives, then the stream ends with the resume point.
    let mut seqs = Vec::new();
    let status = loop {
        match stream.message().await {
            Ok(Some(r)) => seqs.push(r.message.unwrap().seq),
            Ok(None) => panic!("the stream ended cleanly after {} messages", seqs.len()),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let resume = *seqs.last().expect("some messages arrived before the drop");
    assert!(
        status.message().contains(&format!("from_seq {resume}")),
        "{status:?} should name seq {resume}"
    );
    assert!(
        (resume as usize) < MESSAGES,
        "the subscriber was never dropped (got {resume} of {last_sent})"
    );

    let mut resumed = subscribe(&mut bob_client, &bob, resume).await;
    while *seqs.last().unwrap() < last_sent {
        let r = resumed.message().await.unwrap().expect("stream open");
        seqs.push(r.message.unwrap().seq);
    }
    // seq 1 is bob's join notice; alice's messages follow it.
    let expected: Vec<u64> = (1..=last_sent).collect();
    assert_eq!(seqs, expected, "no gap, no duplicate across the drop");
}
