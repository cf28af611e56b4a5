//! The SSE stream (docs/protocol.md, section 'SSE stream') with `id: <seq>` and resume,
//! the token as `Authorization: Bearer`, DM privacy on it, and the connection around it
//! on the wire (a chunked body, the next requests served after it).

use std::time::Duration;

use serde_json::{Value, json};

use huddle_testkit::*;

const WAIT: Duration = Duration::from_secs(10);

async fn status_and_json(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("SSE error body is not JSON ({e}): {text:?}"));
    (status, body)
}

#[tokio::test]
async fn sse_refusals_have_the_contract_statuses_and_json() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let other = s.create_room("elsewhere", "olga").await;

    let ghost = "3c2b1a09-8f7e-4d6c-9b5a-493827161504";
    let resp = s.sse_request(ghost, Some(&alice.token), Resume::Live).await;
    assert_eq!(
        status_and_json(resp).await,
        (404, json!({"error": "Room not found"}))
    );

    let resp = s.sse_request(&alice.room_id, None, Resume::Live).await;
    assert_eq!(
        status_and_json(resp).await,
        (401, json!({"error": "agentToken query param required"}))
    );

    let resp = s
        .sse_request(&alice.room_id, Some(&other.token), Resume::Live)
        .await;
    assert_eq!(
        status_and_json(resp).await,
        (403, json!({"error": "Invalid token for this room"}))
    );
    let resp = s
        .sse_request(&alice.room_id, Some("bogus"), Resume::Live)
        .await;
    assert_eq!(
        status_and_json(resp).await,
        (403, json!({"error": "Invalid token for this room"}))
    );
}

/// Secrets out of URLs: the token may come as `Authorization: Bearer <token>` instead of
/// the query parameter, with the same refusals.
#[tokio::test]
async fn sse_takes_the_token_from_an_authorization_bearer_header() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    let bearer = |token: &str| format!("Bearer {token}");

    let resp = s
        .sse_request_with(&bob.room_id, None, Resume::Live, Some(&bearer(&bob.token)))
        .await;
    let mut stream = Sse::open(resp);
    s.say(&alice, "by header").await;
    assert_eq!(bodies(&stream.take(1, WAIT).await), ["by header"]);

    let resp = s
        .sse_request_with(&bob.room_id, None, Resume::Live, Some("Bearer bogus"))
        .await;
    assert_eq!(
        status_and_json(resp).await,
        (403, json!({"error": "Invalid token for this room"}))
    );
    // Only the Bearer scheme carries a token.
    let resp = s
        .sse_request_with(
            &bob.room_id,
            None,
            Resume::Live,
            Some("Basic Ym9iOnNlY3JldA=="),
        )
        .await;
    assert_eq!(
        status_and_json(resp).await,
        (401, json!({"error": "agentToken query param required"}))
    );
    // Both given: the query parameter decides, as for join.cloud clients.
    let resp = s
        .sse_request_with(
            &bob.room_id,
            Some(&bob.token),
            Resume::Live,
            Some("Bearer bogus"),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp = s
        .sse_request_with(
            &bob.room_id,
            Some("bogus"),
            Resume::Live,
            Some(&bearer(&bob.token)),
        )
        .await;
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn sse_streams_each_message_with_its_seq_as_event_id() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    let mut stream = s.sse(&bob, Resume::Live).await;

    s.say(&alice, "a").await;
    s.say(&alice, "b").await;
    s.dm(&alice, "bob", "c").await;
    s.join("lobby", "carol").await;

    let got = stream.take(4, WAIT).await;
    assert_eq!(bodies(&got), ["a", "b", "c", "carol joined the room"]);
    assert_contiguous(&got, got[0]["seq"].as_u64().unwrap());
    let history = s.history_all(&bob).await;
    assert_eq!(
        &got[..],
        &history[history.len() - 4..],
        "stream and history disagree"
    );
    assert_eq!(got[0]["from"], "alice");
    assert_eq!(got[0]["roomId"], alice.room_id.as_str());
    assert!(is_uuid_v4(got[0]["id"].as_str().unwrap()));
    assert!(is_rfc3339_utc(got[0]["timestamp"].as_str().unwrap()));
    assert!(got[0].get("to").is_none(), "{}", got[0]);
    assert_eq!(got[2]["to"], "bob");
    assert_eq!(got[3]["from"], "room-bot");
}

/// Sends m1..m10, reads m1..m5 live, disconnects, sends m11..m15 while away, reconnects
/// with `resume(last seen seq)` and sends m16..m20: the second stream must carry exactly
/// m6..m20, contiguous.
async fn resume_after_disconnect(resume: fn(u64) -> Resume) {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    let mut first = s.sse(&bob, Resume::Live).await;
    for i in 1..=10 {
        s.say(&alice, &format!("m{i}")).await;
    }
    let seen = first.take(5, WAIT).await;
    assert_eq!(bodies(&seen), ["m1", "m2", "m3", "m4", "m5"]);
    let last_seen = seen[4]["seq"].as_u64().unwrap();
    drop(first);

    for i in 11..=15 {
        s.say(&alice, &format!("m{i}")).await;
    }
    let mut second = s.sse(&bob, resume(last_seen)).await;
    for i in 16..=20 {
        s.say(&alice, &format!("m{i}")).await;
    }
    let got = second.until_body("m20", WAIT).await;
    let want: Vec<String> = (6..=20).map(|i| format!("m{i}")).collect();
    assert_eq!(
        bodies(&got),
        want,
        "resume must give the tail then live, once each"
    );
    assert_contiguous(&got, last_seen + 1);
    // Nothing after it.
    assert!(
        second
            .next_message(Duration::from_millis(300))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn sse_resume_with_last_event_id_has_no_gap_or_duplicate() {
    resume_after_disconnect(Resume::LastEventId).await;
}

#[tokio::test]
async fn sse_resume_with_after_query_has_no_gap_or_duplicate() {
    resume_after_disconnect(Resume::After).await;
}

#[tokio::test]
async fn sse_resume_from_zero_while_sends_continue_loses_nothing() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    const N: usize = 200;

    let sender = async {
        for i in 0..N {
            s.say(&alice, &format!("m{i}")).await;
        }
    };
    let reader = async {
        // Connect while the sender is part-way through.
        loop {
            let (_, total) = s.history_page(&bob, 1, 0).await;
            if total >= 50 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut stream = s.sse(&bob, Resume::After(0)).await;
        stream
            .until_body(&format!("m{}", N - 1), Duration::from_secs(30))
            .await
    };
    let ((), got) = tokio::join!(sender, reader);
    assert_contiguous(&got, 1);
    let history = s.history_all(&bob).await;
    assert_eq!(got, history, "the resumed stream must equal the log");
}

#[tokio::test]
async fn dm_is_invisible_to_third_agent_on_sse() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    let carol = s.join("lobby", "carol").await;
    let mut carol_live = s.sse(&carol, Resume::Live).await;
    let mut bob_live = s.sse(&bob, Resume::Live).await;

    s.dm(&alice, "bob", "secret").await;
    s.say(&alice, "public").await;

    let carol_got = carol_live.until_body("public", WAIT).await;
    assert_eq!(bodies(&carol_got), ["public"], "carol's live stream");
    let bob_got = bob_live.until_body("public", WAIT).await;
    assert_eq!(bodies(&bob_got), ["secret", "public"], "bob's live stream");

    // The replay path filters too.
    let mut carol_replay = s.sse(&carol, Resume::After(0)).await;
    let replayed = carol_replay.until_body("public", WAIT).await;
    assert!(
        !bodies(&replayed).contains(&"secret".to_string()),
        "{replayed:?}"
    );
    let mut bob_replay = s.sse(&bob, Resume::LastEventId(0)).await;
    let replayed = bob_replay.until_body("public", WAIT).await;
    assert!(
        bodies(&replayed).contains(&"secret".to_string()),
        "{replayed:?}"
    );
}

/// A reader that stops reading while 12 MB of messages pile up: whatever it receives is
/// contiguous, and if the node ends its stream, a resume with `Last-Event-ID` brings the
/// rest. A node may drop a slow reader; it may not skip messages on it.
#[tokio::test]
async fn slow_sse_reader_gets_no_gap_and_can_resume() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    let mut stream = s.sse(&bob, Resume::Live).await;
    const N: usize = 200;
    let filler = "x".repeat(60_000);
    for i in 0..N {
        s.say(&alice, &format!("{i}:{filler}")).await;
    }
    let index = |m: &Value| -> usize {
        let body = m["body"].as_str().unwrap();
        body[..body.find(':').unwrap()].parse().unwrap()
    };

    let mut got: Vec<(u64, usize)> = Vec::new();
    let mut resumed = 0;
    while got.last().map(|(_, i)| *i) != Some(N - 1) {
        match stream.next(Duration::from_secs(10)).await {
            Next::Message(seq, m) => got.push((seq, index(&m))),
            Next::Ended => {
                resumed += 1;
                assert!(resumed <= 20, "the stream keeps ending");
                let last = got.last().map(|(seq, _)| *seq).unwrap_or(0);
                stream = s.sse(&bob, Resume::LastEventId(last)).await;
            }
            Next::Timeout => panic!(
                "the stream went silent after {} of {N} messages without ending",
                got.len()
            ),
        }
    }
    eprintln!(
        "slow reader: {} messages, stream resumed {resumed} times",
        got.len()
    );
    let indexes: Vec<usize> = got.iter().map(|(_, i)| *i).collect();
    assert_eq!(
        indexes,
        (0..N).collect::<Vec<_>>(),
        "gap or duplicate (resumed {resumed}×)"
    );
    let first = got[0].0;
    let seqs: Vec<u64> = got.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (first..first + N as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn kicked_or_departed_agent_streams_get_nothing_after() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    let carol = s.join("lobby", "carol").await;
    let mut bob_live = s.sse(&bob, Resume::Live).await;
    let mut carol_live = s.sse(&carol, Resume::Live).await;

    s.act("room.kick")
        .token(&alice.token)
        .meta("targetAgent", "bob")
        .send()
        .await
        .ok();
    s.act("room.leave").token(&carol.token).send().await.ok();
    s.say(&alice, "after they went").await;

    for (name, stream) in [("bob", &mut bob_live), ("carol", &mut carol_live)] {
        let mut seen = Vec::new();
        while let Some((_, m)) = stream.next_message(Duration::from_millis(1500)).await {
            seen.push(m);
        }
        assert!(
            !bodies(&seen).contains(&"after they went".to_string()),
            "{name}'s stream kept delivering after {name} was out: {:?}",
            bodies(&seen)
        );
    }
    // And a new stream is refused.
    let resp = s
        .sse_request(&bob.room_id, Some(&bob.token), Resume::Live)
        .await;
    assert_eq!(resp.status(), 403);
}

/// An idle stream gets `event: ping` with empty data (interval shortened for the
/// test; the default is join.cloud's 15 s).
#[tokio::test]
async fn idle_sse_stream_gets_ping_keep_alives() {
    use futures::StreamExt;
    let s = Server::start_with(&["--sse-keep-alive-secs", "1"]).await;
    let alice = s.create_room("pings", "alice").await;
    let resp = s
        .sse_request(&alice.room_id, Some(&alice.token), Resume::Live)
        .await;
    assert_eq!(resp.status().as_u16(), 200);
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.matches("event: ping\ndata: \n\n").count() >= 2 {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(found, "no two pings within 10 s; got {seen:?}");
}

/// Reads from `tcp` into `got` until `got` contains `what` `times` times.
async fn read_until(tcp: &mut tokio::net::TcpStream, got: &mut Vec<u8>, what: &str, times: usize) {
    use tokio::io::AsyncReadExt;
    while String::from_utf8_lossy(got).matches(what).count() < times {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{what:?} not read {times}x within {WAIT:?}; got {:?}",
                    String::from_utf8_lossy(got)
                )
            })
            .expect("read");
        assert!(
            n > 0,
            "connection closed before {what:?}: got {:?}",
            String::from_utf8_lossy(got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// A chunked body (after its head) up to its last chunk, and what follows it; panics on
/// bad framing.
fn dechunk(mut body: &[u8]) -> (Vec<u8>, &[u8]) {
    let mut data = Vec::new();
    loop {
        let line = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size = std::str::from_utf8(&body[..line]).expect("ASCII chunk size");
        let size = usize::from_str_radix(size, 16).expect("hex chunk size");
        body = &body[line + 2..];
        assert_eq!(&body[size..size + 2], b"\r\n", "a chunk not ended by CRLF");
        if size == 0 {
            return (data, &body[2..]);
        }
        data.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// An SSE response on the wire is a chunked body of events on a connection kept alive:
/// when the stream ends (its agent left), the body ends and the same connection answers
/// the requests the client sent meanwhile, then new ones.
#[tokio::test]
async fn sse_connection_serves_the_next_requests_after_the_stream_ends() {
    use tokio::io::AsyncWriteExt;
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let bob = s.join("lobby", "bob").await;
    let host = s.base.trim_start_matches("http://").to_string();
    let healthz = format!("GET /healthz HTTP/1.1\r\nhost: {host}\r\n\r\n");
    let answered = "\r\n\r\nok";
    let mut tcp = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connect");
    // A request sent ahead, right behind the stream's.
    let opening = format!(
        "GET /api/messages/{}/sse?agentToken={} HTTP/1.1\r\nhost: {host}\r\n\r\n{healthz}",
        bob.room_id, bob.token
    );
    tcp.write_all(opening.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    read_until(&mut tcp, &mut got, "\r\n\r\n", 1).await;
    let head = String::from_utf8_lossy(&got).to_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(
        head.contains("\r\ntransfer-encoding: chunked\r\n"),
        "{head}"
    );
    assert!(
        head.contains("\r\ncontent-type: text/event-stream\r\n"),
        "{head}"
    );
    let body_at = head.find("\r\n\r\n").expect("end of head") + 4;

    s.say(&alice, "hello bob").await;
    read_until(&mut tcp, &mut got, "hello bob", 1).await;
    // Another request while the stream is live.
    tcp.write_all(healthz.as_bytes()).await.expect("write");
    s.act("room.leave").token(&bob.token).send().await.ok();
    read_until(&mut tcp, &mut got, answered, 2).await;
    let (events, rest) = dechunk(&got[body_at..]);
    let events = String::from_utf8_lossy(&events).to_string();
    assert!(
        events.starts_with("id: ") && events.contains("\ndata: {") && events.contains("hello bob"),
        "{events:?}"
    );
    let rest = String::from_utf8_lossy(rest).to_string();
    assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "{rest:?}");
    assert_eq!(rest.matches(answered).count(), 2, "{rest:?}");

    // And a request after that.
    tcp.write_all(healthz.as_bytes()).await.expect("write");
    let mut next = Vec::new();
    read_until(&mut tcp, &mut next, answered, 1).await;
    assert!(String::from_utf8_lossy(&next).starts_with("HTTP/1.1 200 OK\r\n"));
}
