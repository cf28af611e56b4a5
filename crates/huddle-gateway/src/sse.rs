//! `GET /api/messages/{roomId}/sse?agentToken=T` (PROTOCOL.md A.6, Part C).
//!
//! Each message is an event `id: <seq>` / `data: <message JSON>`; a keep-alive
//! `event: ping` every 15 s. `Last-Event-ID` (or `?after=<seq>`) replays the log after that
//! seq before going live. A subscriber too slow to keep up is disconnected (its stream
//! ends) rather than buffered without bound; it reconnects with `Last-Event-ID`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use huddle_core::{AgentToken, RoomError, RoomId, RoomRequest, Seq};
use serde_json::json;

use crate::AppState;

fn refuse(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

pub async fn stream(
    State(app): State<AppState>,
    Path(room): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let router = app.router.as_ref();
    let room_id = match room.parse::<RoomId>() {
        Ok(id) => Some(id),
        // Convenience: an open room may be named instead of identified.
        Err(_) => router
            .rooms_named(&room.to_lowercase())
            .await
            .ok()
            .and_then(|rs| rs.into_iter().find(|r| r.password_hash.is_none()))
            .map(|r| r.id),
    };
    let Some(room_id) = room_id else {
        return refuse(StatusCode::NOT_FOUND, "Room not found");
    };
    let Some(token) = query.get("agentToken").filter(|t| !t.is_empty()) else {
        // Unknown room still wins over a missing token.
        let probe = RoomRequest::Info {
            password: None,
            token: None,
        };
        if let Err(RoomError::RoomNotFound(_)) = router.call(room_id, probe).await {
            return refuse(StatusCode::NOT_FOUND, "Room not found");
        }
        return refuse(StatusCode::UNAUTHORIZED, "agentToken query param required");
    };
    let token = AgentToken::from_wire(token.as_str());
    let after: Option<Seq> = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(query.get("after").map(String::as_str))
        .and_then(|s| s.trim().parse().ok());
    let (messages, _member) = match router.subscribe(room_id, token.clone(), after).await {
        Ok(s) => s,
        Err(RoomError::RoomNotFound(_)) => return refuse(StatusCode::NOT_FOUND, "Room not found"),
        Err(RoomError::InvalidToken) | Err(RoomError::TokenNotInRoom) => {
            return refuse(StatusCode::FORBIDDEN, "Invalid token for this room");
        }
        Err(e @ RoomError::Busy(_)) => return refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(e) => return refuse(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let events = messages
        .take_while(|item| {
            let keep = item.is_ok();
            if let Err(e) = item {
                tracing::debug!(error = %e, "sse stream ends");
            }
            futures::future::ready(keep)
        })
        .filter_map(|item| async move {
            let m = item.ok()?;
            Some(Ok::<_, Infallible>(
                Event::default()
                    .id(m.seq.to_string())
                    .data(m.to_json().to_string()),
            ))
        });
    Sse::new(events)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(15))
                .event(Event::default().event("ping").data("")),
        )
        .into_response()
}
