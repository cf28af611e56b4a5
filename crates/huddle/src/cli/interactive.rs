//! `huddle join ROOM --name AGENT`: a chat session in the terminal.
//!
//! - Joining reconnects with the stored token when there is one ("Reconnected to room
//!   ..."), prints what the agent missed, then the recent history as context.
//! - Live messages come from the room's SSE stream, read by a task ([`feed`]) that
//!   reconnects on its own with `Last-Event-ID: <last seq printed>`, so a dropped
//!   connection or a restarted server loses nothing and repeats nothing (Huddle replays
//!   from its log; a server without `seq` just resumes live).
//! - Lines typed on stdin are read by a plain thread (a blocked read must not hold up
//!   the runtime's shutdown) and handled in order: text is sent, `/dm AGENT TEXT` sends
//!   a direct message, `/history [N]` prints recent messages, `/quit` (or end of input)
//!   ends the session. The agent stays a member; `huddle leave` leaves.
//!
//! Messages go to stdout (`[from] body`, or JSON lines with `--json`); notices about
//! the session go to stderr.

use std::io::BufRead;
use std::time::Duration;

use anyhow::{Result, bail};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::args::MemberArgs;
use super::commands::{JoinReply, Session, messages};
use super::output::{json_line, line, message_line, message_value_line, note};
use crate::client::{A2aClient, ClientError, RoomMessage};

/// Messages of recent history shown after joining, and by a bare `/history`.
const CONTEXT_MESSAGES: u32 = 10;
const HISTORY_MESSAGES: u32 = 20;
/// Reconnect backoff: first wait, doubling up to the cap.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Pages of `message.unread` read when the missed messages of a join were cut short.
const MAX_MISSED_PAGES: usize = 100;

const HELP: &str = "\
Type a line to send it to the room. Commands:
  /dm AGENT TEXT   send a direct message (only AGENT and you see it)
  /history [N]     show the N most recent messages (default 20)
  /help            this text
  /quit            end the session (you stay a member; `huddle leave` leaves)
  //TEXT           send a line that starts with /";

/// What the stream task reports.
enum Feed {
    /// The stream is (again) in place.
    Connected,
    Message(RoomMessage),
    /// The stream broke; the task retries.
    Lost(String),
    /// The server refuses the stream (not a member any more, room gone): final.
    Refused(String),
}

pub async fn join(args: MemberArgs) -> Result<()> {
    let s = Session::new(&args.opts)?;
    let name = args.agent.name.as_str();
    let token = match &args.agent.token {
        Some(t) => Some(t.clone()),
        None => s
            .store
            .lookup(&s.server, &args.room, name)?
            .map(|e| e.token),
    };
    let joined = s.join(&args.room, name, token.as_deref()).await?;
    let mut view = View {
        json: s.json,
        last_seq: None,
    };
    view.joined(&joined);

    // What the agent missed (the join reply holds a page; unread reads the rest) ...
    let mut missed = joined.missed();
    if joined.missed_has_more() {
        for _ in 0..MAX_MISSED_PAGES {
            let reply = s
                .client
                .action(
                    "message.unread",
                    None,
                    None,
                    json!({ "agentToken": joined.token }),
                )
                .await?;
            let data = reply.data.unwrap_or(Value::Null);
            missed.extend(messages(&data, "messages"));
            if !data["hasMore"].as_bool().unwrap_or(false) {
                break;
            }
        }
    }
    if !missed.is_empty() {
        view.banner(format!("--- {} missed message(s) ---", missed.len()));
        for m in &missed {
            view.message_value(m);
        }
    }
    // ... then recent history: context after a fresh join, and whatever arrived between
    // the join and now otherwise. It also fixes the seq the stream resumes after.
    let recent = history(&s.client, &joined, CONTEXT_MESSAGES).await?;
    let recent: Vec<Value> = match view.last_seq {
        Some(last) => recent
            .into_iter()
            .filter(|m| m["seq"].as_u64().is_some_and(|seq| seq > last))
            .collect(),
        None if missed.is_empty() => recent,
        None => Vec::new(), // no seqs to tell old from new
    };
    if !recent.is_empty() && missed.is_empty() {
        view.banner("--- recent messages ---");
    }
    for m in &recent {
        view.message_value(m);
    }
    if view.last_seq.is_none() && missed.is_empty() && recent.is_empty() {
        // An empty room: replay from its start, whatever comes before the stream is up.
        view.last_seq = Some(0);
    }

    let (feed_tx, mut feed_rx) = mpsc::channel(256);
    let feeder = tokio::spawn(feed(
        s.client.clone(),
        joined.room_id.clone(),
        joined.token.clone(),
        view.last_seq,
        feed_tx,
    ));
    let _abort_feed = AbortOnDrop(feeder);
    let mut lines = stdin_lines();

    let mut connected_once = false;
    let mut lost = false;
    loop {
        tokio::select! {
            feed = feed_rx.recv() => match feed {
                Some(Feed::Message(m)) => view.message(&m),
                Some(Feed::Connected) if !connected_once => {
                    connected_once = true;
                    note(format!(
                        "Connected to room {} as {name} ({}). Type a message, or /help.",
                        joined.room_id,
                        joined.role()
                    ));
                }
                Some(Feed::Connected) => {
                    if lost {
                        note("Reconnected.");
                    }
                    lost = false;
                }
                Some(Feed::Lost(reason)) => {
                    if !lost {
                        note(format!("Connection lost ({reason}); reconnecting..."));
                    }
                    lost = true;
                }
                Some(Feed::Refused(reason)) => {
                    s.store.forget(&s.server, &joined.token)?;
                    bail!("the room's stream refused {name} ({reason}): kicked, left, or the room is gone");
                }
                None => bail!("the room's stream ended"),
            },
            typed = lines.recv() => match typed {
                Some(text) => {
                    if !handle_line(&s, &joined, &mut view, &text).await {
                        break;
                    }
                }
                None => break, // end of input
            },
        }
    }
    Ok(())
}

/// Handles one typed line; false ends the session.
async fn handle_line(s: &Session, joined: &JoinReply, view: &mut View, text: &str) -> bool {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return true;
    }
    let result = if let Some(literal) = trimmed.strip_prefix("//") {
        send(s, joined, &format!("/{literal}"), None).await
    } else if let Some(command) = trimmed.strip_prefix('/') {
        let (verb, rest) = command
            .split_once(char::is_whitespace)
            .map_or((command, ""), |(v, r)| (v, r.trim()));
        match verb {
            "quit" | "exit" | "q" => return false,
            "help" | "?" => {
                note(HELP);
                Ok(())
            }
            "dm" | "msg" => match rest.split_once(char::is_whitespace) {
                Some((to, body)) if !body.trim().is_empty() => {
                    send(s, joined, body.trim(), Some(to)).await
                }
                _ => {
                    note("usage: /dm AGENT TEXT");
                    Ok(())
                }
            },
            "history" => match rest {
                "" => show_history(s, joined, view, HISTORY_MESSAGES).await,
                n => match n.parse::<u32>() {
                    Ok(n) => show_history(s, joined, view, n).await,
                    Err(_) => {
                        note("usage: /history [N]");
                        Ok(())
                    }
                },
            },
            other => {
                note(format!("Unknown command /{other}; /help lists them."));
                Ok(())
            }
        }
    } else {
        send(s, joined, text.trim_end_matches(['\r', '\n']), None).await
    };
    if let Err(e) = result {
        note(format!("error: {e:#}"));
    }
    true
}

/// Sends a line; the message shows up through the stream like everyone else's.
async fn send(s: &Session, joined: &JoinReply, text: &str, to: Option<&str>) -> Result<()> {
    s.client
        .send_message_retrying(&joined.token, text, to)
        .await?;
    Ok(())
}

async fn show_history(s: &Session, joined: &JoinReply, view: &View, limit: u32) -> Result<()> {
    let list = history(&s.client, joined, limit).await?;
    if view.json {
        json_line(&json!({ "event": "history", "messages": list }));
        return Ok(());
    }
    note(format!("--- last {} message(s) ---", list.len()));
    for m in &list {
        line(message_value_line(m));
    }
    note("--- end of history ---");
    Ok(())
}

async fn history(client: &A2aClient, joined: &JoinReply, limit: u32) -> Result<Vec<Value>> {
    let reply = client
        .action(
            "message.history",
            None,
            Some(&joined.room_id),
            json!({ "agentToken": joined.token, "limit": limit }),
        )
        .await?;
    Ok(messages(
        reply.data.as_ref().unwrap_or(&Value::Null),
        "messages",
    ))
}

/// The session's output: prints messages once each, in seq order, and remembers the
/// last seq printed.
struct View {
    json: bool,
    last_seq: Option<u64>,
}

impl View {
    fn joined(&self, joined: &JoinReply) {
        if self.json {
            let mut data = joined.data.clone();
            if let Some(map) = data.as_object_mut() {
                map.remove("missedMessages");
                map.remove("missedCount");
                map.remove("missedHasMore");
                map.insert("event".into(), json!("joined"));
                map.insert("reconnected".into(), json!(joined.reconnected()));
            }
            json_line(&data);
        } else {
            note(&joined.text);
        }
    }

    fn banner(&self, text: impl AsRef<str>) {
        if !self.json {
            note(text);
        }
    }

    /// A message given as JSON (missed, history); skipped when already printed.
    fn message_value(&mut self, m: &Value) {
        let seq = m["seq"].as_u64();
        if !self.advance(seq) {
            return;
        }
        if self.json {
            let mut m = m.clone();
            if let Some(map) = m.as_object_mut() {
                map.insert("event".into(), json!("message"));
            }
            json_line(&m);
        } else {
            line(message_value_line(m));
        }
    }

    /// A live message; skipped when already printed.
    fn message(&mut self, m: &RoomMessage) {
        if !self.advance(m.seq) {
            return;
        }
        if self.json {
            let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
            if let Some(map) = v.as_object_mut() {
                map.insert("event".into(), json!("message"));
            }
            json_line(&v);
        } else {
            line(message_line(&m.from, m.to.as_deref(), &m.body));
        }
    }

    /// Records `seq`; false when it is not after the last one printed.
    fn advance(&mut self, seq: Option<u64>) -> bool {
        match (seq, self.last_seq) {
            (Some(seq), Some(last)) if seq <= last => false,
            (Some(seq), _) => {
                self.last_seq = Some(seq);
                true
            }
            (None, _) => true,
        }
    }
}

/// The room's stream, forever: subscribes after `last` (the last seq delivered), forwards
/// messages, and on any break waits and subscribes again after the last one forwarded.
/// Ends when the server refuses the subscription or the receiver is gone.
async fn feed(
    client: A2aClient,
    room_id: String,
    token: String,
    mut last: Option<u64>,
    tx: mpsc::Sender<Feed>,
) {
    let mut wait = RETRY_FIRST;
    loop {
        let reason = match client.subscribe(&room_id, &token, last).await {
            Ok(mut stream) => {
                wait = RETRY_FIRST;
                if tx.send(Feed::Connected).await.is_err() {
                    return;
                }
                loop {
                    match stream.next().await {
                        Some(Ok(m)) => {
                            if let (Some(seq), Some(l)) = (m.seq, last)
                                && seq <= l
                            {
                                continue;
                            }
                            last = m.seq.or(last);
                            if tx.send(Feed::Message(m)).await.is_err() {
                                return;
                            }
                        }
                        // A malformed event: say so, keep reading.
                        Some(Err(ClientError::Protocol(e))) => note(format!("warning: {e}")),
                        Some(Err(e)) => break e.to_string(),
                        None => break "the server closed the stream".to_owned(),
                    }
                }
            }
            Err(ClientError::Status { status, body }) if matches!(status, 401 | 403 | 404) => {
                let _ = tx
                    .send(Feed::Refused(format!("HTTP {status}: {body}")))
                    .await;
                return;
            }
            Err(e) => e.to_string(),
        };
        if tx.send(Feed::Lost(reason)).await.is_err() {
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_MAX);
    }
}

/// Lines of stdin, read by a detached thread; `None` at end of input (or a read error).
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::Builder::new()
        .name("huddle-stdin".into())
        .spawn(move || {
            for text in std::io::stdin().lock().lines() {
                let Ok(text) = text else { break };
                if tx.blocking_send(text).is_err() {
                    break;
                }
            }
        })
        .expect("spawn the stdin reader");
    rx
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
