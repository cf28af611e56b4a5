//! Room passwords under attack: a wrong password never lands in the open room of the same
//! name; rooms per name are capped; failed attempts are throttled per client address (on
//! every protocol) and per room, naming the limit with `Retry-After`; a full hashing
//! queue answers `Server busy`; and a flood of wrong passwords does not hold up the
//! members of the room it targets (the room's actor never hashes).
//!
//! Every address in 127.0.0.0/8 is this machine: a client bound to 127.0.0.2 is another
//! address to the server.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use huddle_proto::v1::JoinRoomRequest;
use huddle_proto::v1::room_service_client::RoomServiceClient;
use serde_json::json;

use huddle_testkit::{Agent, Call, Reply, Server, eventually};

const INVALID: &str = "Invalid room password";

/// An HTTP client whose connections come from `ip`.
fn client_from(ip: &str) -> reqwest::Client {
    let _ = huddle_testkit::http_client(); // installs the TLS provider reqwest needs
    reqwest::Client::builder()
        .no_proxy()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("reqwest client")
}

/// Sends `call` over `http`; the A2A reply and the HTTP `Retry-After` header, if any.
async fn send_via(s: &Server, http: &reqwest::Client, call: Call<'_>) -> (Reply, Option<u64>) {
    let resp = http
        .post(s.url("/a2a"))
        .header("content-type", "application/json")
        .body(call.request().to_string())
        .send()
        .await
        .expect("POST /a2a");
    assert_eq!(resp.status().as_u16(), 200);
    let retry_after = resp.headers().get("retry-after").map(|v| {
        v.to_str()
            .unwrap()
            .parse::<u64>()
            .expect("Retry-After seconds")
    });
    (Reply(resp.json().await.expect("JSON answer")), retry_after)
}

/// A node with these limits of failed password attempts per minute, per client address
/// and per room ("0": unlimited), and `extra` flags.
async fn with_attempt_limits(per_address: &str, per_room: &str, extra: &[&str]) -> Server {
    let mut flags = vec![
        "--password-attempts-per-minute",
        per_address,
        "--room-password-attempts-per-minute",
        per_room,
    ];
    flags.extend_from_slice(extra);
    Server::start_with(&flags).await
}

fn join<'a>(s: &'a Server, room: &str, agent: &str) -> Call<'a> {
    s.act("room.join").ctx(room).meta("agentName", agent)
}

/// The seconds a throttle refusal names (`... retry in N s`).
fn named_retry(text: &str) -> u64 {
    let rest = text.rsplit("retry in ").next().unwrap();
    rest.trim_end_matches(" s")
        .parse()
        .unwrap_or_else(|_| panic!("no retry time in {text:?}"))
}

/// gRPC `JoinRoom` over a connection from `ip`.
async fn grpc_join(
    s: &Server,
    ip: &str,
    room: &str,
    agent: &str,
) -> Result<huddle_proto::v1::JoinRoomResponse, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(s.base.clone())
        .unwrap()
        .local_address(Some(ip.parse().unwrap()))
        .connect()
        .await
        .expect("gRPC connect");
    RoomServiceClient::new(channel)
        .join_room(JoinRoomRequest {
            room: room.to_string(),
            agent_name: agent.to_string(),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_wrong_password_never_joins_the_open_room_of_the_same_name() {
    let s = Server::start().await;
    // The open room first: an open room cannot be made where a protected one exists.
    let public = s.create_room("ops", "bob").await;
    let private = s.create_protected("ops", "secret", "alice").await;

    let reply = join(&s, "ops:wrongpw", "eve").send().await;
    assert_eq!(
        reply.err(),
        INVALID,
        "a mistyped password must not land in public"
    );
    let reply = join(&s, "ops", "eve")
        .meta("password", "wrongpw")
        .send()
        .await;
    assert_eq!(reply.err(), INVALID);
    let reply = s.act("room.info").ctx("ops:wrongpw").send().await;
    assert_eq!(reply.err(), INVALID);

    assert_eq!(s.join("ops:secret", "carol").await.room_id, private.room_id);
    assert_eq!(s.join("ops", "dave").await.room_id, public.room_id);
    // An empty password is no password: the open room.
    assert_eq!(s.join("ops:", "erin").await.room_id, public.room_id);

    // Where every room of the name is open, any password opens it (join.cloud's rule).
    let lobby = s.create_room("lobby", "frank").await;
    assert_eq!(
        s.join("lobby:whatever", "gina").await.room_id,
        lobby.room_id
    );
}

#[tokio::test]
async fn rooms_per_name_are_capped_naming_the_limit() {
    let s = Server::start_with(&["--max-rooms-per-name", "3"]).await;
    s.create_room("crowd", "a").await;
    s.create_protected("crowd", "one", "b").await;
    s.create_protected("crowd", "two", "c").await;
    let reply = s
        .act("room.create")
        .text("crowd")
        .meta("agentName", "d")
        .meta("password", "three")
        .send()
        .await;
    assert_eq!(
        reply.err(),
        "Too many rooms named \"crowd\": the limit is 3"
    );
    // Other names are not affected, and the rooms there still open by password.
    s.create_protected("quiet", "three", "e").await;
    s.join("crowd:two", "f").await;
}

#[tokio::test]
async fn failed_password_attempts_are_throttled_per_client_address() {
    let s = with_attempt_limits("3", "0", &[]).await;
    s.create_protected("vault-a", "right", "alice").await;
    s.create_protected("vault-b", "right", "bob").await;
    let here = client_from("127.0.0.1");

    // Right passwords do not count.
    for i in 0..4 {
        let (reply, _) = send_via(&s, &here, join(&s, "vault-a:right", &format!("ok{i}"))).await;
        reply.ok();
    }
    // Three failures, on two rooms, from one address...
    for room in ["vault-a:no", "vault-a:nope", "vault-b:no"] {
        let (reply, retry) = send_via(&s, &here, join(&s, room, "eve")).await;
        assert_eq!(reply.err(), INVALID);
        assert_eq!(retry, None);
    }
    // ...and the next attempt from it is refused before any check, even a right one.
    let (reply, retry) = send_via(&s, &here, join(&s, "vault-b:right", "eve")).await;
    let text = reply.err().to_string();
    assert!(
        text.starts_with(
            "Too many failed password attempts from your address: the limit is 3 per minute; retry in "
        ),
        "{text}"
    );
    assert_eq!(
        retry,
        Some(named_retry(&text)),
        "Retry-After matches the text"
    );
    assert!((1..=20).contains(&named_retry(&text)), "{text}");
    // room.info with a password counts the same.
    let (reply, _) = send_via(&s, &here, s.act("room.info").ctx("vault-a:no")).await;
    assert!(
        reply.err().starts_with("Too many failed password attempts"),
        "{}",
        reply.0
    );

    // Another address is not affected.
    let there = client_from("127.0.0.2");
    let (reply, _) = send_via(&s, &there, join(&s, "vault-b:no", "mallory")).await;
    assert_eq!(reply.err(), INVALID);
    let (reply, _) = send_via(&s, &there, join(&s, "vault-b:right", "mallory")).await;
    reply.ok();
}

#[tokio::test]
async fn failed_password_attempts_are_throttled_per_room() {
    let s = with_attempt_limits("0", "2", &[]).await;
    let alice = s.create_protected("vault-a", "right", "alice").await;
    s.create_protected("vault-b", "right", "bob").await;
    let (one, two) = (client_from("127.0.0.1"), client_from("127.0.0.3"));

    let (reply, _) = send_via(&s, &one, join(&s, "vault-a:no", "eve")).await;
    assert_eq!(reply.err(), INVALID);
    let (reply, _) = send_via(
        &s,
        &two,
        join(&s, &alice.room_id, "eve").meta("password", "no"),
    )
    .await;
    assert_eq!(reply.err(), INVALID);
    // Two failures from two addresses: the room is at its limit, for everyone.
    let (reply, retry) = send_via(&s, &two, join(&s, "vault-a:right", "carol")).await;
    let text = reply.err().to_string();
    assert!(
        text.starts_with(
            "Too many failed password attempts on this room: the limit is 2 per minute; retry in "
        ),
        "{text}"
    );
    assert_eq!(retry, Some(named_retry(&text)));

    // Another room is not affected, and the members inside carry on.
    let (reply, _) = send_via(&s, &one, join(&s, "vault-b:no", "eve")).await;
    assert_eq!(reply.err(), INVALID);
    s.join("vault-b:right", "dave").await;
    s.say(&alice, "still here").await;
}

#[tokio::test]
async fn the_client_address_reaches_the_throttle_over_mcp_and_grpc() {
    let s = with_attempt_limits("1", "0", &[]).await;
    s.create_protected("vault", "right", "alice").await;
    let throttled = "Too many failed password attempts from your address";

    // One failure over MCP from 127.0.0.4 uses that address's only attempt...
    let here = client_from("127.0.0.4");
    let text = s
        .mcp_tool(
            &here,
            "joinRoom",
            json!({"roomId": "vault:no", "agentName": "eve"}),
        )
        .await;
    assert_eq!(text, format!("Error: {INVALID}"));
    // ...so gRPC and A2A from it are refused, naming the limit.
    let status = grpc_join(&s, "127.0.0.4", "vault:no", "eve")
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().starts_with(throttled), "{status:?}");
    let retry = status
        .metadata()
        .get("retry-after")
        .expect("retry-after metadata");
    assert!(retry.to_str().unwrap().parse::<u64>().unwrap() >= 1);
    let (reply, retry) = send_via(&s, &here, join(&s, "vault:right", "eve")).await;
    assert!(reply.err().starts_with(throttled), "{}", reply.0);
    assert!(retry.is_some());

    // From 127.0.0.5 the other way round: a gRPC failure counts, MCP is then refused.
    let status = grpc_join(&s, "127.0.0.5", "vault:no", "eve")
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert_eq!(status.message(), INVALID);
    let there = client_from("127.0.0.5");
    let text = s
        .mcp_tool(&there, "roomInfo", json!({"roomId": "vault:no"}))
        .await;
    assert!(text.starts_with(&format!("Error: {throttled}")), "{text}");
}

#[tokio::test]
async fn a_full_password_check_queue_answers_server_busy() {
    let flags = ["--password-hash-threads", "1", "--password-hash-queue", "0"];
    let s = with_attempt_limits("0", "0", &flags).await;
    s.create_protected("vault", "right", "alice").await;
    let busy = "Server busy: too many password checks waiting (limit 0); retry shortly";
    // One check at a time and none waiting: of many at once, some are turned away.
    let mut seen_busy = false;
    for round in 0..5 {
        let attempts = (0..16).map(|i| {
            let call = join(&s, "vault:no", &format!("eve{round}-{i}"));
            send_via(&s, &s.http, call)
        });
        for (reply, retry) in futures::future::join_all(attempts).await {
            let text = reply.err().to_string();
            if text == busy {
                assert_eq!(retry, Some(1), "busy answers carry Retry-After");
                seen_busy = true;
            } else {
                assert_eq!(text, INVALID);
            }
        }
        if seen_busy {
            break;
        }
    }
    assert!(
        seen_busy,
        "16 concurrent checks never found the single place taken"
    );
    // The queue frees up: a right password gets in.
    s.join("vault:right", "carol").await;
}

/// Wrong passwords flooding a protected room ("flooded", with alice as its member), on
/// a node with one hashing thread, a long queue and no throttle: a flood that takes a
/// while to work through, all of it waiting on password checks.
struct Flood {
    s: Arc<Server>,
    alice: Agent,
    answered: Arc<AtomicUsize>,
    attempts: Vec<tokio::task::JoinHandle<String>>,
}

impl Flood {
    const ATTEMPTS: usize = 32;

    /// Starts the flood and returns once its first answer is in (the rest are queued
    /// behind it).
    async fn start() -> Self {
        let flags = [
            "--password-hash-threads",
            "1",
            "--password-hash-queue",
            "1000",
        ];
        let s = Arc::new(with_attempt_limits("0", "0", &flags).await);
        let alice = s.create_protected("flooded", "right", "alice").await;
        let answered = Arc::new(AtomicUsize::new(0));
        let attempts = (0..Self::ATTEMPTS)
            .map(|i| {
                let (s, answered) = (s.clone(), answered.clone());
                tokio::spawn(async move {
                    let reply = join(&s, "flooded:wrong", &format!("eve{i}")).send().await;
                    answered.fetch_add(1, Ordering::SeqCst);
                    reply.err().to_string()
                })
            })
            .collect();
        let flood = Self {
            s,
            alice,
            answered,
            attempts,
        };
        flood.answered_past(0, "the first flood answer").await;
        flood
    }

    /// Attempts answered so far.
    fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    /// Waits until more than `n` attempts are answered, and returns how many are.
    async fn answered_past(&self, n: usize, what: &str) -> usize {
        eventually(Duration::from_secs(60), what, || {
            let done = self.answered();
            async move { (done > n).then_some(done) }
        })
        .await
    }

    /// Every attempt was refused as a wrong password.
    async fn all_refused(self) {
        for attempt in self.attempts {
            assert_eq!(attempt.await.unwrap(), INVALID);
        }
    }
}

#[tokio::test]
async fn a_members_send_is_not_queued_behind_a_password_flood() {
    let flood = Flood::start().await;
    flood
        .s
        .say(&flood.alice, "members are not kept waiting")
        .await;
    let done_at_send = flood.answered();
    assert!(
        done_at_send < Flood::ATTEMPTS,
        "the member's send waited for the whole flood ({done_at_send} of {} answered first): \
         the room checked passwords itself",
        Flood::ATTEMPTS
    );
    flood.all_refused().await;
}

#[tokio::test]
async fn a_creation_waiting_for_its_password_hash_does_not_hold_up_its_name() {
    let flood = Flood::start().await;
    let s = flood.s.clone();
    let started = flood.answered();
    // A protected creation of "contested": its hash queues behind the flood. Two more
    // flood answers (two hashes' time) let it get as far as it goes.
    let protected = {
        let s = s.clone();
        tokio::spawn(async move {
            s.act("room.create")
                .text("contested")
                .meta("agentName", "bob")
                .meta("password", "bobs")
                .send()
                .await
        })
    };
    flood
        .answered_past(started + 1, "two more flood answers")
        .await;
    // An open creation of the same name does not wait for that hash.
    let open = s
        .act("room.create")
        .text("contested")
        .meta("agentName", "carol")
        .send()
        .await;
    let done_at_open = flood.answered();
    assert!(
        done_at_open < Flood::ATTEMPTS,
        "the open creation waited for the whole flood ({done_at_open} of {} answered \
         first): the protected one held the name while its password was hashed",
        Flood::ATTEMPTS
    );
    assert!(!open.is_error(), "{}", open.0);
    let protected = protected.await.unwrap();
    assert!(!protected.is_error(), "{}", protected.0);
    flood.all_refused().await;
    // Both rooms are there: the protected one by its password, the open one listed.
    s.join("contested:bobs", "dave").await;
    let listed = s.act("room.list").send().await.ok();
    assert_eq!(listed.data()["total"], 1, "{}", listed.0);
}
