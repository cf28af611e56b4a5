//! `GET /api/messages/{roomId}/sse?agentToken=T` (docs/protocol.md, section 'SSE stream').
//!
//! The token may also come as `Authorization: Bearer <token>`, which keeps it out of URLs
//! (and so out of access logs); the query parameter stays for join.cloud clients and wins
//! when both are given, as a request field wins over metadata in gRPC.
//!
//! Each message is an event `id: <seq>` / `data: <message JSON>`; a keep-alive
//! `event: ping` every 15 s (`--sse-keep-alive-secs`). `Last-Event-ID` (or
//! `?after=<seq>`) replays the log after that seq before going live. A subscriber too
//! slow to keep up is disconnected (its stream ends) rather than buffered without bound;
//! it reconnects with `Last-Event-ID` (the protocol's contract, so the stream does not
//! resume on the server's side: `OnLag::End`).
//!
//! On an HTTP/1.1 connection served by the node, the frames are written by the connection
//! rather than by hyper once the head is sent ([`crate::handoff`]): an idle stream then
//! holds no HTTP buffers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::StreamExt;
use huddle_cluster::{OnLag, Subscribe};
use huddle_core::{AgentToken, RoomError, Seq, SharedMessage};
use huddle_metrics::Protocol;
use huddle_metrics::streams::{OpenStream, StreamKind};
use serde_json::json;

use crate::AppState;
use crate::coalesce::{CHUNK_BYTES, coalesce};
use crate::handoff::Handoff;

fn refuse(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

pub async fn stream(
    State(app): State<AppState>,
    Path(room): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    method: Method,
    version: Version,
    handoff: Option<Extension<Handoff>>,
    headers: HeaderMap,
) -> Response {
    let router = app.router.as_ref();
    // Convenience: an open room may be named instead of identified.
    let Some(room_id) = huddle_app::resolve::streamed_room(router, &room).await else {
        return refuse(StatusCode::NOT_FOUND, "Room not found");
    };
    let presented = query
        .get("agentToken")
        .map(String::as_str)
        .filter(|t| !t.is_empty())
        .or_else(|| {
            let authorization = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
            crate::bearer::token(authorization)
        });
    let token = presented.map(AgentToken::from_wire);
    let after = resume_point(&headers, &query);
    // One call the room answers once: unknown room (404) wins over a missing token (401).
    tracing::Span::current().record("room.id", tracing::field::display(room_id));
    let opening = router.subscribe(Subscribe {
        room: room_id,
        reader: token,
        after,
        on_lag: OnLag::End,
    });
    let opened = crate::observe::timed(Protocol::Sse, "subscribe", opening).await;
    let open_stream = OpenStream::new(StreamKind::Sse);
    let messages = match opened {
        Ok(subscribed) => subscribed.stream,
        Err(RoomError::RoomNotFound(_)) => return refuse(StatusCode::NOT_FOUND, "Room not found"),
        Err(RoomError::Missing(_)) => {
            return refuse(StatusCode::UNAUTHORIZED, "agentToken query param required");
        }
        Err(RoomError::InvalidToken) | Err(RoomError::TokenNotInRoom) => {
            return refuse(StatusCode::FORBIDDEN, "Invalid token for this room");
        }
        Err(e @ (RoomError::Busy(_) | RoomError::TooManyStreams(_))) => {
            return refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
        }
        Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let frames = messages
        .take_while(|item| {
            if let Err(e) = item {
                tracing::debug!(error = %e, "sse stream ends");
            }
            futures::future::ready(item.is_ok())
        })
        .filter_map(|item| futures::future::ready(item.ok().map(|m| frame(&m))));
    // Messages that are ready together go out in one write of a bounded size.
    let frames = coalesce(frames, CHUNK_BYTES)
        .map(Some)
        .chain(futures::stream::once(futures::future::ready(None)));
    let keep_alive = app.config.sse_keep_alive.max(Duration::from_millis(100));
    let start = tokio::time::Instant::now() + keep_alive;
    let pings =
        tokio_stream::wrappers::IntervalStream::new(tokio::time::interval_at(start, keep_alive))
            .map(|_| Some(Bytes::from_static(b"event: ping\ndata: \n\n")));
    // Ends when the message stream ends (the `None`), not when the pings would, and
    // when the node shuts down (the client resumes with `Last-Event-ID` elsewhere).
    let body = futures::stream::select(frames, pings)
        .take_while(|chunk| futures::future::ready(chunk.is_some()))
        .take_until(app.shutdown.clone().cancelled_owned())
        .map(move |chunk| {
            let _counted = &open_stream;
            chunk.unwrap_or_default()
        });
    // An idle stream costs its connection's buffers unless the connection takes the
    // frames over from hyper (see `handoff`).
    let body = match handoff {
        Some(Extension(handoff)) if Handoff::fits(&method, version, &headers) => {
            handoff.body(body.boxed())
        }
        _ => Body::from_stream(body.map(Ok::<_, Infallible>)),
    };
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response()
}

/// Where a stream resumes: after the seq of `Last-Event-ID`, else of `?after=`; `None`
/// (from now on) when the one given is not a seq.
pub fn resume_point(headers: &HeaderMap, query: &HashMap<String, String>) -> Option<Seq> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(query.get("after").map(String::as_str))
        .and_then(|s| s.trim().parse().ok())
}

/// One SSE event: `id: <seq>` and the message JSON (compact, so one `data:` line,
/// rendered once per message for all its subscribers).
fn frame(m: &SharedMessage) -> Vec<u8> {
    let json = m.json();
    let mut out = Vec::with_capacity(json.len() + 32);
    out.extend_from_slice(format!("id: {}\ndata: ", m.seq).as_bytes());
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(b"\n\n");
    out
}
