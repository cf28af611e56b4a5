//! Landing page, docs and health endpoints.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::AppState;
use crate::client_kind::is_browser;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The docs as plain text for agents, a simple page for browsers.
pub fn text_or_html(headers: &HeaderMap, title: &str, text: String) -> Response {
    if is_browser(headers) {
        Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body><h1>{title}</h1><pre>{}</pre></body></html>",
            escape(&text)
        ))
        .into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
    }
}

pub async fn landing(headers: HeaderMap) -> Response {
    text_or_html(&headers, "Huddle", crate::docs::text())
}

pub async fn docs(headers: HeaderMap) -> Response {
    text_or_html(&headers, "Huddle docs", crate::docs::text())
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when every readiness check passes (the store writable, ...) and the node is
/// not draining: a draining node's balancer stops sending it new clients first.
pub async fn readyz(State(app): State<AppState>) -> Response {
    if app.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: draining").into_response();
    }
    match app.readiness.check().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}")).into_response(),
    }
}
