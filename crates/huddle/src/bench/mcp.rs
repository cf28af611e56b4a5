//! The `mcp` scenario: Huddle's MCP endpoint (`/mcp`, Streamable HTTP) under load.
//!
//! One room. --senders MCP sessions call `sendMessage` in closed loops (or, with
//! --mcp-rate, paced to that many calls per second in total); they hold no GET stream,
//! so the room's other messages come to them ahead of their tool results, as they would
//! to a client without one. --mcp-listeners more sessions hold GET streams and time each
//! message from the start of its `sendMessage` call to its `notifications/message`
//! (the send start is stamped in the body). Reports tool calls/s, call latency,
//! notifications delivered/s and their latency, and lost or duplicated deliveries.
//!
//! The MCP client here is deliberately small: JSON-RPC over POST with the session header,
//! SSE bodies split on blank lines.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::BenchArgs;
use super::report::{self, ErrorCount, ErrorTally, Latency, Memory};

/// One MCP session (protocol 2025-06-18).
struct Session {
    http: reqwest::Client,
    url: String,
    id: String,
    next: u64,
    timeout: Duration,
}

/// A tool's answer, and how many room notifications came ahead of it.
struct Answer {
    text: String,
    is_error: bool,
    notes: usize,
}

/// The last SSE event of a body (the whole body when it is not SSE).
fn last_event(body: &str) -> &str {
    let trimmed = body.trim_end();
    match trimmed.rfind("\n\n") {
        Some(i) if !trimmed.trim_start().starts_with('{') => &trimmed[i + 2..],
        _ => trimmed,
    }
}

/// The fields of this run's stamped body (`<prefix><caller> <n> <stamp>`) in an event.
fn stamped(event: &str, prefix: &str) -> Option<(u64, u64, u64)> {
    let start = event.find(prefix)? + prefix.len();
    let rest = &event[start..];
    let rest = &rest[..rest.find('"')?];
    let mut f = rest.split(' ').map(|x| x.parse::<u64>().ok());
    Some((f.next()??, f.next()??, f.next()??))
}

/// The JSON-RPC messages of an SSE body (or of a JSON one).
fn messages(body: &str) -> Vec<Value> {
    if body.trim_start().starts_with('{') {
        return serde_json::from_str(body).into_iter().collect();
    }
    body.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            serde_json::from_str(&data.join("\n")).ok()
        })
        .collect()
}

impl Session {
    async fn open(http: &reqwest::Client, url: &str, timeout: Duration) -> anyhow::Result<Session> {
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "huddle-bench", "version": env!("CARGO_PKG_VERSION")}}});
        let resp = http
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .json(&init)
            .timeout(timeout)
            .send()
            .await
            .context("MCP initialize")?;
        let status = resp.status();
        let id = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.unwrap_or_default();
        let Some(id) = id else {
            bail!("MCP initialize answered {status} without a session: {body}");
        };
        let mut s = Session {
            http: http.clone(),
            url: url.to_string(),
            id,
            next: 1,
            timeout,
        };
        s.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(s)
    }

    async fn post(&mut self, body: Value) -> anyhow::Result<String> {
        let resp = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", "2025-06-18")
            .json(&body)
            .timeout(self.timeout)
            .send()
            .await?;
        if let Some(id) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            // The server started a fresh session (ours had expired).
            self.id = id.to_string();
        }
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("HTTP {status}: {text}");
        }
        Ok(text)
    }

    async fn call(&mut self, tool: &str, args: Value) -> anyhow::Result<Answer> {
        self.next += 1;
        let body = json!({"jsonrpc": "2.0", "id": self.next, "method": "tools/call",
            "params": {"name": tool, "arguments": args}});
        let text = self.post(body).await?;
        // Only the answer is parsed: it is the last event; the notifications ahead of it
        // are counted (the bench's own cost stays small next to the server's).
        let notes = text.matches("\"notifications/message\"").count();
        let result = messages(last_event(&text))
            .into_iter()
            .find(|m| m.get("result").is_some() || m.get("error").is_some())
            .with_context(|| format!("no answer in {text:?}"))?;
        if let Some(e) = result.get("error") {
            bail!("JSON-RPC error {e}");
        }
        Ok(Answer {
            text: result["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            is_error: result["result"]["isError"].as_bool().unwrap_or(false),
            notes,
        })
    }

    /// Opens the session's GET stream; returns once the server's priming event came.
    async fn live(&self) -> anyhow::Result<reqwest::Response> {
        let resp = self
            .http
            .get(&self.url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &self.id)
            .send()
            .await
            .context("opening the GET stream")?;
        if !resp.status().is_success() {
            bail!("GET /mcp answered {}", resp.status());
        }
        Ok(resp)
    }
}

/// What one listener saw.
struct Heard {
    latency: Histogram<u64>,
    unique: u64,
    duplicated: u64,
}

/// Reads a GET stream until `stop`, timing this run's messages.
async fn listen(
    resp: reqwest::Response,
    prefix: String,
    base: Instant,
    mut stop: watch::Receiver<bool>,
) -> Heard {
    let mut heard = Heard {
        latency: report::new_histogram(),
        unique: 0,
        duplicated: 0,
    };
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let body_prefix = format!("\"body\":\"{prefix}");
    let mut chunks = resp.bytes_stream();
    let mut buf = String::new();
    loop {
        let chunk = tokio::select! {
            _ = stop.changed() => break,
            c = chunks.next() => c,
        };
        let Some(Ok(chunk)) = chunk else { break };
        let now = base.elapsed().as_micros() as u64;
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let Some((caller, n, stamp)) = stamped(&event, &body_prefix) else {
                continue;
            };
            if seen.insert((caller, n)) {
                heard.unique += 1;
                report::record_us(&mut heard.latency, now.saturating_sub(stamp));
            } else {
                heard.duplicated += 1;
            }
        }
    }
    heard
}

/// What one caller did.
struct Called {
    latency: Histogram<u64>,
    ok: u64,
    notes: u64,
    errors: ErrorTally,
}

async fn call_loop(
    mut session: Session,
    caller: u64,
    prefix: String,
    base: Instant,
    until: Instant,
    interval: Option<Duration>,
) -> Called {
    let mut done = Called {
        latency: report::new_histogram(),
        ok: 0,
        notes: 0,
        errors: ErrorTally::default(),
    };
    let start = Instant::now();
    let mut n: u64 = 0;
    while Instant::now() < until {
        if let Some(every) = interval {
            // Open loop: the k-th call is due at start + k * interval.
            let due = start + every * (n as u32);
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
            if Instant::now() >= until {
                break;
            }
        }
        n += 1;
        let t0 = Instant::now();
        let stamp = base.elapsed().as_micros();
        let text = format!("{prefix}{caller} {n} {stamp}");
        match session.call("sendMessage", json!({"text": text})).await {
            Ok(a) if !a.is_error => {
                report::record(&mut done.latency, t0.elapsed());
                done.ok += 1;
                done.notes += a.notes as u64;
            }
            Ok(a) => done.errors.add_text(format!("tool error: {}", a.text)),
            Err(e) => done.errors.add_text(format!("request: {e:#}")),
        }
    }
    done
}

#[derive(Serialize)]
struct McpReport {
    scenario: &'static str,
    url: String,
    callers: u32,
    listeners: u32,
    /// Target calls/s in total (0: closed loops).
    rate_target: f64,
    duration_secs: f64,
    calls: u64,
    calls_per_sec: f64,
    call_latency: Latency,
    call_errors: Vec<ErrorCount>,
    /// Notifications that came ahead of the callers' tool results.
    piggybacked: u64,
    deliveries: u64,
    deliveries_per_sec: f64,
    delivery_latency: Latency,
    lost: u64,
    duplicated: u64,
    server_memory: Option<Memory>,
}

pub async fn run(args: &BenchArgs, run_id: &str) -> anyhow::Result<()> {
    let url = format!("{}/mcp", args.url.trim_end_matches('/'));
    let timeout = Duration::from_secs_f64(args.request_timeout_secs);
    let http = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .context("building the HTTP client")?;
    let callers = args.senders;
    let listeners = args.mcp_listeners;
    let room = format!("mcp-bench-{run_id}");
    let prefix = format!("mcpb {run_id} ");

    let mut sessions = Vec::new();
    for i in 0..callers {
        let mut s = Session::open(&http, &url, timeout).await?;
        let (tool, args) = if i == 0 {
            ("createRoom", json!({"name": room, "agentName": "c0"}))
        } else {
            (
                "joinRoom",
                json!({"roomId": room, "agentName": format!("c{i}")}),
            )
        };
        let a = s
            .call(tool, args)
            .await
            .with_context(|| format!("{tool} {room}"))?;
        if a.is_error {
            bail!("{tool} {room}: {}", a.text);
        }
        sessions.push(s);
    }
    let base = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut heard = Vec::new();
    for j in 0..listeners {
        let mut s = Session::open(&http, &url, timeout).await?;
        let a = s
            .call(
                "joinRoom",
                json!({"roomId": room, "agentName": format!("l{j}")}),
            )
            .await?;
        if a.is_error {
            bail!("joinRoom {room}: {}", a.text);
        }
        let resp = s.live().await?;
        heard.push(tokio::spawn(listen(
            resp,
            prefix.clone(),
            base,
            stop_rx.clone(),
        )));
    }
    // Let the streams settle (their first events are the joins of the others).
    tokio::time::sleep(Duration::from_millis(300)).await;

    let interval =
        (args.mcp_rate > 0.0).then(|| Duration::from_secs_f64(f64::from(callers) / args.mcp_rate));
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(args.duration_secs);
    let tasks: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            tokio::spawn(call_loop(
                s,
                i as u64,
                prefix.clone(),
                base,
                until,
                interval,
            ))
        })
        .collect();
    let mut calls = 0;
    let mut piggybacked = 0;
    let mut call_latency = report::new_histogram();
    let mut errors = ErrorTally::default();
    for t in tasks {
        let c = t.await.context("a caller panicked")?;
        calls += c.ok;
        piggybacked += c.notes;
        call_latency.add(&c.latency).ok();
        errors.merge(c.errors);
    }
    let elapsed = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(args.grace_ms)).await;
    let _ = stop_tx.send(true);
    let mut deliveries = 0;
    let mut duplicated = 0;
    let mut lost = 0;
    let mut delivery_latency = report::new_histogram();
    for h in heard {
        let h = h.await.context("a listener panicked")?;
        deliveries += h.unique;
        duplicated += h.duplicated;
        lost += calls.saturating_sub(h.unique);
        delivery_latency.add(&h.latency).ok();
    }
    let r = McpReport {
        scenario: "mcp",
        url: url.clone(),
        callers,
        listeners,
        rate_target: args.mcp_rate,
        duration_secs: (elapsed * 100.0).round() / 100.0,
        calls,
        calls_per_sec: report::rate(calls, elapsed),
        call_latency: Latency::of(&call_latency),
        call_errors: errors.entries(),
        piggybacked,
        deliveries,
        deliveries_per_sec: report::rate(deliveries, elapsed),
        delivery_latency: Latency::of(&delivery_latency),
        lost,
        duplicated,
        server_memory: args.server_pid.and_then(Memory::of_pid),
    };
    if args.json {
        report::print_json(&r)?;
    } else {
        println!(
            "MCP bench against {url}: {callers} callers, {listeners} listeners, {:.1} s",
            r.duration_secs
        );
        if r.rate_target > 0.0 {
            println!("  target rate      {} calls/s", r.rate_target);
        }
        println!("  tool calls       {} ({} /s)", r.calls, r.calls_per_sec);
        println!("  call latency     {}", r.call_latency.human());
        println!("  ahead of results {} notifications", r.piggybacked);
        println!(
            "  GET deliveries   {} ({} /s)",
            r.deliveries, r.deliveries_per_sec
        );
        println!("  delivery latency {}", r.delivery_latency.human());
        println!("  lost {}  duplicated {}", r.lost, r.duplicated);
        for e in &r.call_errors {
            println!("  error x{}: {}", e.count, e.error);
        }
        if let Some(m) = r.server_memory {
            println!("  server           {}", m.human());
        }
    }
    anyhow::ensure!(
        errors.total() == 0 && lost == 0 && duplicated == 0,
        "{} failed call(s), {lost} lost and {duplicated} duplicated deliveries",
        errors.total()
    );
    Ok(())
}
