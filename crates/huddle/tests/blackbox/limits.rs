//! Bounded input (docs/protocol.md, section 'Limits'): every refusal names its limit;
//! nothing is truncated; an oversized request body is refused and the node stays up.

use serde_json::{Value, json};

use huddle_testkit::*;

fn assert_names_limit(message: &str, number: &str) {
    assert!(
        message.contains("limit") && message.contains(number),
        "a limit refusal must contain `limit` and {number}: {message:?}"
    );
}

#[tokio::test]
async fn message_text_at_the_limit_is_stored_whole() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let text = "x".repeat(65536);
    s.say(&alice, &text).await;
    // 21845 three-byte characters = 65535 bytes.
    let euros = "€".repeat(21845);
    s.say(&alice, &euros).await;
    let history = s.history_all(&alice).await;
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[0]["body"].as_str().unwrap(),
        text,
        "stored text differs"
    );
    assert_eq!(
        history[1]["body"].as_str().unwrap(),
        euros,
        "stored text differs"
    );
}

#[tokio::test]
async fn message_text_over_65536_bytes_is_refused_naming_the_limit() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;
    let send = |text: String| s.act("message.send").text(text).token(&alice.token).send();

    let reply = send("x".repeat(65537)).await;
    assert_names_limit(reply.err(), "65536");
    // The limit is in bytes, not characters: 21846 × 3 bytes = 65538.
    let reply = send("€".repeat(21846)).await;
    assert_names_limit(reply.err(), "65536");
    let reply = s
        .act("message.send")
        .text("y".repeat(70000))
        .token(&alice.token)
        .meta("to", "alice")
        .send()
        .await;
    assert_names_limit(reply.err(), "65536");
    assert!(
        s.history_all(&alice).await.is_empty(),
        "an oversized message was stored"
    );
}

#[tokio::test]
async fn agent_names_are_bounded_non_empty_and_free_of_control_characters() {
    let s = Server::start().await;
    s.create_room("lobby", "alice").await;
    let join = |name: String| {
        s.act("room.join")
            .ctx("lobby")
            .meta("agentName", name)
            .send()
    };
    let reply = join("n".repeat(101)).await;
    assert_names_limit(reply.err(), "100");
    for bad in [
        "",
        "bad\nname",
        "tab\there",
        "nul\0",
        "del\u{7f}",
        "esc\u{1b}[31m",
    ] {
        let reply = join(bad.to_string()).await;
        assert!(reply.is_error(), "agent name {bad:?} accepted: {}", reply.0);
    }
    let reply = s
        .act("room.create")
        .text("other")
        .meta("agentName", "a".repeat(101))
        .send()
        .await;
    assert_names_limit(reply.err(), "100");

    // 100 characters (multi-byte ones too) are fine.
    let long = "é".repeat(100);
    let agent = join(long.clone()).await.ok();
    assert_eq!(agent.data()["agentName"], long.as_str());
    let info = s.act("room.info").ctx("lobby").send().await.ok();
    assert_eq!(
        info.data()["agents"].as_array().unwrap().len(),
        2,
        "{}",
        info.0
    );
}

#[tokio::test]
async fn room_names_are_bounded_and_free_of_control_characters() {
    let s = Server::start().await;
    let create = |name: String| {
        s.act("room.create")
            .text(name)
            .meta("agentName", "alice")
            .send()
    };
    let reply = create("r".repeat(101)).await;
    assert_names_limit(reply.err(), "100");
    for bad in ["bad\nroom", "bell\u{7}", "cr\rlf"] {
        let reply = create(bad.to_string()).await;
        assert!(reply.is_error(), "room name {bad:?} accepted: {}", reply.0);
    }
    let list = s.act("room.list").send().await.ok();
    assert_eq!(list.data()["total"], 0, "{}", list.0);
    create("r".repeat(100)).await.ok();
}

#[tokio::test]
async fn description_is_limited_to_5000_characters() {
    let s = Server::start().await;
    let reply = s
        .act("room.create")
        .text("described")
        .meta("agentName", "alice")
        .meta("description", "d".repeat(5001))
        .send()
        .await;
    assert_names_limit(reply.err(), "5000");

    // 5000 characters of two bytes each is within the limit.
    let fine = "é".repeat(5000);
    let created = s
        .act("room.create")
        .text("described")
        .meta("agentName", "alice")
        .meta("description", fine.clone())
        .send()
        .await
        .ok();
    assert_eq!(created.data()["description"], fine.as_str());
    let alice = Agent::from_reply(&created, "alice");

    let reply = s
        .act("room.update")
        .token(&alice.token)
        .meta("description", "u".repeat(5001))
        .send()
        .await;
    assert_names_limit(reply.err(), "5000");
    let info = s.act("room.info").ctx("described").send().await.ok();
    assert_eq!(
        info.data()["description"],
        fine.as_str(),
        "an oversized update was applied"
    );
}

#[tokio::test]
async fn request_body_over_1_mib_gets_413_and_the_node_stays_up() {
    let s = Server::start().await;
    let alice = s.create_room("lobby", "alice").await;

    let big = json!({
        "jsonrpc": "2.0", "id": 1, "method": "SendMessage",
        "params": {"message": {"role": "user", "parts": [{"text": "z".repeat(2 * 1024 * 1024)}],
            "metadata": {"action": "message.send", "agentToken": alice.token}}}
    });
    let garbage = vec![b'{'; 2 * 1024 * 1024];
    // Check every body, then that the node is up, and only then report what went wrong.
    let mut problems = Vec::new();
    // Several rounds: how a refused upload ends is a race when the node gets it wrong.
    let uploads = [
        ("a JSON-RPC", big.to_string().into_bytes()),
        ("a non-JSON", garbage),
    ];
    for (what, body) in uploads.iter().cycle().take(10).cloned() {
        let sent = s
            .http
            .post(s.url("/a2a"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) => {
                problems.push(format!(
                    "{what} 2 MiB body: the client never got an answer (the node answered and \
                     closed the connection before reading the body?): {e:?}"
                ));
                continue;
            }
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if status != 413 {
            problems.push(format!("{what} 2 MiB body answered {status}: {text:.200}"));
            continue;
        }
        let answer: Value = serde_json::from_str(&text).unwrap_or_default();
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        let names_limit = message.contains("limit")
            && ["1048576", "1 MiB", "1MiB", "1024 KiB"]
                .iter()
                .any(|n| message.contains(n));
        if answer["jsonrpc"] != "2.0" || !answer["error"]["code"].is_i64() || !names_limit {
            problems.push(format!(
                "{what} 2 MiB body: the 413 must be a JSON-RPC error naming the limit: {text:.300}"
            ));
        }
    }

    // The node is up: a new connection gets a normal answer.
    assert!(s.is_running(), "the node died on a 2 MiB body");
    let fresh = http_client()
        .post(s.url("/a2a"))
        .json(
            &s.act("message.send")
                .text("still here")
                .token(&alice.token)
                .request(),
        )
        .send()
        .await
        .expect("the node accepts a new connection after the 2 MiB bodies");
    assert_eq!(fresh.status(), 200);
    let answer: Value = fresh.json().await.unwrap();
    assert_eq!(
        answer["result"]["parts"][0]["text"], "Message sent",
        "{answer}"
    );
    assert_eq!(bodies(&s.history_all(&alice).await), ["still here"]);

    // A client that keeps its connections alive must not be handed a connection the
    // node closes without saying so (`Connection: close`).
    if let Err(e) = s
        .act("message.send")
        .text("again")
        .token(&alice.token)
        .try_send()
        .await
    {
        problems.push(format!(
            "the request after the 413 on the same keep-alive client failed: {e}"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Live streams are bounded per node (docs/architecture.md, section 'Bounded
/// everything'): over `--max-streams` a new SSE stream is refused with 503 naming the
/// limit, the open ones keep working, and a closed one makes room again.
#[tokio::test]
async fn live_streams_over_the_node_limit_are_refused_naming_it() {
    let s = Server::start_with(&["--max-streams", "2"]).await;
    let alice = s.create_room("streams", "alice").await;
    let bob = s.join("streams", "bob").await;
    let mut first = s.sse(&alice, Resume::Live).await;
    let second = s.sse(&bob, Resume::Live).await;

    let refused = s
        .sse_request(&bob.room_id, Some(&bob.token), Resume::Live)
        .await;
    assert_eq!(refused.status().as_u16(), 503);
    let body: serde_json::Value = refused.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("the limit is 2"), "{error}");

    // The open streams still deliver.
    s.say(&bob, "still here").await.ok();
    let (_, m) = first
        .next_message(std::time::Duration::from_secs(10))
        .await
        .expect("the first stream still delivers");
    assert_eq!(m["body"], "still here");

    // Close one; the server notices at its next write, then a new stream fits.
    drop(second);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        s.say(&alice, "nudge").await.ok();
        let resp = s
            .sse_request(&bob.room_id, Some(&bob.token), Resume::Live)
            .await;
        if resp.status().as_u16() == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a closed stream never made room for a new one"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A room holds at most `--max-agents-per-room` agents: past it a newcomer is refused
/// naming the limit (no join notice, not among the members), a member reconnecting is let
/// in, and a member leaving makes room.
#[tokio::test]
async fn a_full_room_refuses_newcomers_naming_the_limit() {
    let s = Server::start_with(&["--max-agents-per-room", "2"]).await;
    let alice = s.create_room("small", "alice").await;
    let bob = s.join("small", "bob").await;
    let join = |name: &'static str| s.act("room.join").ctx("small").meta("agentName", name);

    let reply = join("carol").send().await;
    assert_eq!(reply.err(), "Room is full: the limit is 2 agents");
    let said = bodies(&s.history_all(&alice).await);
    assert!(
        !said.iter().any(|b| b.contains("carol")),
        "a refused newcomer was announced: {said:?}"
    );
    let info = s.act("room.info").ctx("small").token(&alice.token).send();
    let members: Vec<String> = info
        .await
        .ok()
        .agent_roles()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        members,
        ["alice", "bob"],
        "a refused newcomer is not a member"
    );

    let again = join("bob").token(&bob.token).send().await.ok();
    assert_eq!(
        again.text(),
        format!("Reconnected to room {} as bob", alice.room_id)
    );
    s.act("room.leave").token(&bob.token).send().await.ok();
    let carol = join("carol").send().await.ok();
    assert_eq!(
        carol.text(),
        format!("Joined room {} as carol", alice.room_id)
    );
}
