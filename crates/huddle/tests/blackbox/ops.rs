//! What operators see: `/metrics` moving with traffic (and on `--metrics-listen`),
//! `/readyz` failing while the store takes no writes and recovering after, logs without
//! colour codes when not on a terminal, `--check-config`, and the spans of a request
//! exported over OTLP under the client's `traceparent`.

use std::sync::Arc;
use std::time::Duration;

use huddle_testkit::otlp::{Collector, attribute, hex};
use huddle_testkit::*;

const WAIT: Duration = Duration::from_secs(15);

pub(crate) async fn get(url: &str) -> (u16, String) {
    let resp = reqwest::get(url).await.expect("GET");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// The value of the sample `series` (name and labels, as rendered) in `text`; 0 when
/// it is not there yet.
pub(crate) fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_counters_and_histograms_move_with_traffic() {
    let s = Server::start().await;
    let (status, before) = get(&s.url("/metrics")).await;
    assert_eq!(status, 200, "{before}");
    let created = r#"huddle_requests_total{protocol="a2a",action="room.create",outcome="ok"}"#;
    let latency = r#"huddle_request_duration_seconds_count{protocol="a2a",action="room.create"}"#;
    let refused = r#"huddle_requests_total{protocol="a2a",action="message.send",outcome="error"}"#;
    let commits = "huddle_store_commit_duration_seconds_count";

    let alice = s.create_room("metered", "alice").await;
    s.say(&alice, "hello").await;
    let bad = s
        .act("message.send")
        .token("not-a-token")
        .text("x")
        .send()
        .await;
    assert!(bad.text().starts_with("Error"), "{}", bad.text());

    let (_, after) = get(&s.url("/metrics")).await;
    assert_eq!(
        sample(&after, created) - sample(&before, created),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, latency) - sample(&before, latency),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, refused) - sample(&before, refused),
        1.0,
        "{after}"
    );
    assert!(
        sample(&after, commits) > sample(&before, commits),
        "{after}"
    );
    assert_eq!(sample(&after, "huddle_rooms_active"), 1.0, "{after}");
}

#[tokio::test]
async fn request_bodies_over_the_limit_are_counted_as_refusals_by_that_limit() {
    let s = Server::start_with(&["--max-body-bytes", "1024"]).await;
    let body_bytes = r#"huddle_limit_refusals_total{limit="body_bytes"}"#;
    let (_, before) = get(&s.url("/metrics")).await;
    let huge = "x".repeat(4096);
    for path in ["/a2a", "/mcp"] {
        let resp = s
            .http
            .post(s.url(path))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(huge.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 413, "{path}");
    }
    let (_, after) = get(&s.url("/metrics")).await;
    assert_eq!(
        sample(&after, body_bytes) - sample(&before, body_bytes),
        2.0,
        "{after}"
    );
}

#[tokio::test]
async fn metrics_listen_serves_the_metrics_on_their_own_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let s = Server::start_with(&["--metrics-listen", &addr]).await;
    s.create_room("scraped", "alice").await;
    let (status, text) = get(&format!("http://{addr}/metrics")).await;
    assert_eq!(status, 200);
    assert!(text.contains("huddle_requests_total"), "{text}");
    // Only the metrics there: no A2A on the scrape port.
    let (status, _) = get(&format!("http://{addr}/healthz")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn readyz_fails_while_the_store_takes_no_writes_and_recovers() {
    // SQLite-only by nature: another process takes the database file's write lock (the
    // PostgreSQL case: `readyz_fails_while_postgresql_is_gone_and_recovers_when_it_is_back`).
    let s = Server::builder().sqlite_only().start().await;
    assert_eq!(get(&s.url("/readyz")).await, (200, "ready".to_string()));
    // Another process holds the database's write lock: the node's writer cannot commit.
    let db = rusqlite::Connection::open(s.data_dir.join("huddle.db")).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (status, body) = get(&s.url("/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("not ready: store"), "{body}");
    assert_eq!(get(&s.url("/healthz")).await.0, 200, "alive all the same");
    db.execute_batch("ROLLBACK").unwrap();
    // The probe that timed out is still queued behind the lock's wait: ready again once
    // the writer gets through.
    readyz_becomes(&s, 200).await;
    // And writes are taken again.
    s.create_room("after-the-lock", "alice").await;
}

#[tokio::test]
async fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let s = Server::start().await;
    s.create_room("plain", "alice").await;
    let log = s.log_tail();
    assert!(log.contains("huddle configuration"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape in a piped log:\n{log}"
    );
}

fn check_config(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = huddle_command(&["serve", "--check-config", "--data-dir"]);
    cmd.arg(dir.path()).args(args).envs(env.iter().copied());
    let out = cmd.output().expect("run huddle serve --check-config");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn check_config_accepts_a_valid_configuration_and_serves_nothing() {
    let (ok, text) = check_config(
        &["--listen", "127.0.0.1:1", "--metrics-listen", "127.0.0.1:2"],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")],
    );
    assert!(ok, "{text}");
    assert!(text.contains("configuration ok"), "{text}");
}

#[test]
fn check_config_names_every_problem_and_fails() {
    let (ok, text) = check_config(
        &["--listen", "nowhere", "--log-format", "text"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
        ],
    );
    assert!(!ok, "{text}");
    for reason in [
        "--listen \"nowhere\"",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_TRACES_SAMPLER",
    ] {
        assert!(text.contains(reason), "{reason} missing from:\n{text}");
    }
    let (ok, text) = check_config(&["--log-format", "yaml"], &[]);
    assert!(!ok && text.contains("yaml"), "{text}");
}

/// The group commit wait is bounded: a value past it is refused, naming the bound.
#[test]
fn check_config_refuses_a_group_commit_wait_past_its_limit() {
    let (ok, text) = check_config(&["--group-commit-wait-us", "100000"], &[]);
    assert!(ok, "{text}");
    let (ok, text) = check_config(&["--group-commit-wait-us", "100001"], &[]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("--group-commit-wait-us") && text.contains("0..=100000"),
        "{text}"
    );
}

#[test]
fn check_config_fails_when_the_store_cannot_be_opened() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = huddle_command(&["serve", "--check-config", "--data-dir"]);
    cmd.arg(file.path().join("under-a-file"));
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("store: "), "{text}");
}

/// A node exporting its traces to a collector of the test's own (every 100 ms), with the
/// environment `env` besides.
async fn exporting_traces(env: &[(&str, &str)]) -> (Server, Collector) {
    let (addr, collector) = Collector::start().await;
    let endpoint = format!("http://{addr}");
    let mut all = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    all.extend_from_slice(env);
    (Server::start_with_env(&[], &all).await, collector)
}

#[tokio::test]
async fn a_request_is_exported_as_spans_under_its_clients_traceparent() {
    let (s, collector) = exporting_traces(&[("OTEL_SERVICE_NAME", "huddle-under-test")]).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{parent}-01");
    let created = s
        .act("room.create")
        .text("traced")
        .meta("agentName", "alice")
        .meta("password", "hunter2-secret")
        .traceparent(&traceparent)
        .send()
        .await;
    let alice = Agent::from_reply(&created, "alice");
    s.act("message.send")
        .token(&alice.token)
        .text("hello")
        .traceparent(&traceparent)
        .send()
        .await
        .ok();
    // gRPC: the same context in the call's metadata.
    let channel = tonic::transport::Channel::from_shared(s.url(""))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut unread = tonic::Request::new(huddle_proto::v1::GetUnreadRequest {
        agent_token: Some(alice.token.clone()),
    });
    let grpc_parent = "1111111111111111";
    unread.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{grpc_parent}-01").parse().unwrap(),
    );
    huddle_proto::v1::room_service_client::RoomServiceClient::new(channel)
        .get_unread(unread)
        .await
        .expect("GetUnread");

    // The request spans (children of the client's span) and the room command under the send.
    let deadline = tokio::time::Instant::now() + WAIT;
    let (send, command) = loop {
        let spans = collector.spans();
        let send = spans.iter().find(|sp| {
            hex(&sp.trace_id) == trace_id
                && hex(&sp.parent_span_id) == parent
                && attribute(sp, "action").as_deref() == Some("message.send")
        });
        let command = send.and_then(|send| {
            spans
                .iter()
                .find(|sp| sp.name == "room.command" && sp.parent_span_id == send.span_id)
        });
        let grpc = spans.iter().any(|sp| {
            hex(&sp.parent_span_id) == grpc_parent
                && attribute(sp, "protocol").as_deref() == Some("grpc")
                && attribute(sp, "action").as_deref() == Some("GetUnread")
                && attribute(sp, "outcome").as_deref() == Some("ok")
        });
        if let (Some(send), Some(command), true) = (send, command, grpc) {
            break (send.clone(), command.clone());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "spans of trace {trace_id} not exported: {spans:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(send.name, "request");
    assert_eq!(attribute(&send, "protocol").as_deref(), Some("a2a"));
    assert_eq!(attribute(&send, "outcome").as_deref(), Some("ok"));
    assert_eq!(
        attribute(&send, "room.id").as_deref(),
        Some(alice.room_id.as_str())
    );
    assert_eq!(attribute(&command, "command").as_deref(), Some("Send"));
    assert_eq!(
        attribute(&command, "room.id").as_deref(),
        Some(alice.room_id.as_str())
    );
    // Never a password or a token in what is exported.
    let exported = format!("{:?}", collector.spans());
    assert!(
        exported.contains("room.create"),
        "the create was exported too"
    );
    assert!(!exported.contains("hunter2-secret"));
    assert!(!exported.contains(&alice.token));
}

/// The sampler decides when a request arrives, and a request's trace is exported whole
/// or not at all: a client's "not sampled" is honoured (parent-based sampler), its
/// "sampled" too though the ratio is a half, and of many new traces the ratio keeps some,
/// each with its room command, never a room command without its request.
#[tokio::test]
async fn the_sampler_keeps_or_drops_each_requests_trace_whole() {
    let (s, collector) = exporting_traces(&[
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
    ])
    .await;
    let alice = s.create_room("sampled", "alice").await;
    let send = |traceparent: Option<String>, text: &str| {
        let call = s.act("message.send").token(&alice.token).text(text);
        let call = match traceparent {
            Some(tp) => call.traceparent(tp),
            None => call,
        };
        async move { call.send().await.ok() }
    };
    let dropped = "11111111111111111111111111111111";
    let kept = "22222222222222222222222222222222";
    let last = "33333333333333333333333333333333";
    let parent = "00f067aa0ba902b7";
    send(Some(format!("00-{dropped}-{parent}-00")), "not sampled").await;
    send(Some(format!("00-{kept}-{parent}-01")), "sampled").await;
    const ROOTS: usize = 60;
    for i in 0..ROOTS {
        send(None, &format!("root {i}")).await;
    }
    // Spans leave in the order they end: once the last request's room command is in,
    // every earlier one is.
    send(Some(format!("00-{last}-{parent}-01")), "last").await;
    let command_of = |spans: &[huddle_testkit::otlp::Span], trace: &str| {
        spans.iter().any(|sp| {
            sp.name == "room.command"
                && hex(&sp.trace_id) == trace
                && spans.iter().any(|r| {
                    r.span_id == sp.parent_span_id
                        && r.name == "request"
                        && hex(&r.parent_span_id) == parent
                })
        })
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    let spans = loop {
        let spans = collector.spans();
        if command_of(&spans, last) {
            break spans;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the last request's spans were not exported: {spans:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !spans.iter().any(|sp| hex(&sp.trace_id) == dropped),
        "a trace its client did not sample was exported"
    );
    assert!(
        command_of(&spans, kept),
        "a trace its client sampled was not exported whole"
    );
    let roots: Vec<_> = spans
        .iter()
        .filter(|sp| {
            sp.name == "request"
                && sp.parent_span_id.is_empty()
                && attribute(sp, "action").as_deref() == Some("message.send")
        })
        .collect();
    assert!(
        (1..ROOTS).contains(&roots.len()),
        "a ratio of one half kept {} of {ROOTS} new traces",
        roots.len()
    );
    for root in &roots {
        let commands = spans
            .iter()
            .filter(|sp| sp.name == "room.command" && sp.parent_span_id == root.span_id)
            .count();
        assert_eq!(commands, 1, "a kept request without its room command");
    }
    let orphans: Vec<_> = spans
        .iter()
        .filter(|sp| sp.name == "room.command")
        .filter(|sp| !spans.iter().any(|r| r.span_id == sp.parent_span_id))
        .collect();
    assert!(
        orphans.is_empty(),
        "room commands without their request: {orphans:?}"
    );
}

#[tokio::test]
async fn sigterm_under_load_fails_readiness_first_then_drains_losing_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in_with(dir.path(), &["--shutdown-delay-secs", "2"]).await;
    let alice = s.create_room("draining", "alice").await;
    let s = Arc::new(s);
    // Senders keep sending until the node stops answering; each keeps what was acknowledged.
    let senders: Vec<_> = (0..4)
        .map(|n| {
            let (s, alice) = (s.clone(), alice.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for i in 0.. {
                    let text = format!("sender {n} message {i}");
                    match s
                        .act("message.send")
                        .token(&alice.token)
                        .text(&text)
                        .try_send()
                        .await
                    {
                        Ok(reply) if !reply.text().starts_with("Error") => acknowledged.push(text),
                        _ => break,
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.terminate();
    // Readiness fails first, while requests are still answered.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = get(&s.url("/readyz")).await;
        if status == 503 {
            assert_eq!(body, "not ready: draining");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz still {status} after SIGTERM"
        );
    }
    let still = s
        .act("message.send")
        .token(&alice.token)
        .text("after not-ready")
        .try_send()
        .await;
    assert!(
        still.is_ok_and(|r| !r.text().starts_with("Error")),
        "served while not ready"
    );
    // Then the drain, and the exit.
    let status = s
        .wait_exit(Duration::from_secs(60))
        .await
        .expect("exits after the drain");
    assert!(status.success(), "{status}");
    let mut acknowledged = vec!["after not-ready".to_string()];
    for sender in senders {
        acknowledged.extend(sender.await.unwrap());
    }
    assert!(acknowledged.len() > 4, "the load did run: {acknowledged:?}");

    let again = Server::start_in(dir.path()).await;
    let kept: Vec<String> = again
        .history_all(&alice)
        .await
        .iter()
        .filter_map(|m| m["body"].as_str().map(str::to_string))
        .collect();
    for text in &acknowledged {
        assert!(
            kept.contains(text),
            "acknowledged {text:?} lost after the drain"
        );
    }
}

#[tokio::test]
async fn json_logs_carry_the_trace_id_of_the_request() {
    let s = Server::builder()
        .args(&["--log-format", "json"])
        .env(&[("HUDDLE_LOG", "debug,rmcp=warn")])
        .start()
        .await;
    // A request whose client sampled its trace, and one whose client did not (its trace
    // is not kept, but its lines still carry the client's trace id).
    let sampled = "0af7651916cd43dd8448eb211c80319c";
    let unsampled = "1af7651916cd43dd8448eb211c80319c";
    for (trace_id, flags, room) in [(sampled, "01", "logged"), (unsampled, "00", "unkept")] {
        s.act("room.create")
            .text(room)
            .meta("agentName", "alice")
            .traceparent(format!("00-{trace_id}-b7ad6b7169203331-{flags}"))
            .send()
            .await
            .ok();
    }
    for trace_id in [sampled, unsampled] {
        let deadline = tokio::time::Instant::now() + WAIT;
        let line = loop {
            let log = s.log_tail();
            let answered = log
                .lines()
                .find(|l| l.contains("\"answered\"") && l.contains(trace_id));
            if let Some(line) = answered {
                break line.to_string();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no request line of trace {trace_id}:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let json: serde_json::Value = serde_json::from_str(&line).expect(&line);
        assert_eq!(json["span"]["trace_id"], trace_id, "{line}");
        assert_eq!(
            json["span"]["span_id"].as_str().map(str::len),
            Some(16),
            "{line}"
        );
        assert_eq!(json["span"]["action"], "room.create", "{line}");
    }
}

/// Polls `/readyz` until it answers `status`; returns the body.
async fn readyz_becomes(s: &Server, status: u16) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (now, body) = get(&s.url("/readyz")).await;
        if now == status {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz still {now} {body}, not {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn readyz_fails_while_postgresql_is_gone_and_recovers_when_it_is_back() {
    let pg = huddle_store::testing::TestPostgres::start_own();
    let url = pg.database();
    let s = Server::start_with(&["--store", &url]).await;
    readyz_becomes(&s, 200).await;
    pg.stop();
    let body = readyz_becomes(&s, 503).await;
    assert!(body.starts_with("not ready: store"), "{body}");
    pg.restart();
    readyz_becomes(&s, 200).await;
    s.create_room("after-the-outage", "alice").await;
}
