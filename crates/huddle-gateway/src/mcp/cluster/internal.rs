//! `/internal/v1/mcp` on the internal listener (`--node-listen`): MCP requests another
//! node forwarded here because this node holds their session.
//!
//! Only nodes of the cluster may call it: the cluster secret is required (compared in
//! constant time), and the internal version must be one this node speaks, so that
//! during a rolling upgrade a node refuses clearly instead of guessing. A request that
//! passes is served here as a local one, minus the `Host`/`Origin` checks (the first
//! node made them against the client's headers) and minus forwarding: whatever session
//! it names, it is never sent on a second hop (a node that disagrees about where a
//! session lives cannot make requests bounce).

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{INTERNAL_VERSION, VERSION_HEADER};
use crate::mcp::{Inner, http};

/// Serves one forwarded request.
pub(crate) async fn handle(inner: &Arc<Inner>, req: Request<Body>) -> Response {
    // Outside cluster mode there is no secret, so nobody is authorized.
    let authorized = inner
        .proxy
        .as_ref()
        .is_some_and(|p| has_secret(req.headers(), &p.config().secret));
    if !authorized {
        let mut r = (
            StatusCode::UNAUTHORIZED,
            "Unauthorized: this route is for the nodes of the cluster (Bearer <cluster secret>)",
        )
            .into_response();
        r.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    if let Err(text) = check_version(req.headers()) {
        return (StatusCode::PRECONDITION_FAILED, text).into_response();
    }
    http::serve(inner, req).await
}

/// Whether `authorization` is `Bearer <secret>`.
fn has_secret(headers: &HeaderMap, secret: &str) -> bool {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|given| same(given, secret.as_bytes()))
}

/// Equality in a time that depends on the lengths only, not on where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_version(headers: &HeaderMap) -> Result<(), String> {
    match headers.get(VERSION_HEADER).map(|v| v.to_str()) {
        Some(Ok(v)) if v.trim().parse::<u32>() == Ok(INTERNAL_VERSION) => Ok(()),
        Some(Ok(v)) => Err(format!(
            "Precondition Failed: {VERSION_HEADER} {v} is not spoken here (this node speaks {INTERNAL_VERSION})"
        )),
        Some(Err(_)) | None => Err(format!(
            "Precondition Failed: the {VERSION_HEADER} header is required (this node speaks {INTERNAL_VERSION})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_must_match_exactly() {
        let mut h = HeaderMap::new();
        assert!(!has_secret(&h, "s3cret"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert!(has_secret(&h, "s3cret"));
        assert!(!has_secret(&h, "s3cre"));
        assert!(!has_secret(&h, "s3cret!"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic s3cret"));
        assert!(!has_secret(&h, "s3cret"));
    }

    #[test]
    fn only_the_version_spoken_here_passes() {
        let mut h = HeaderMap::new();
        assert!(check_version(&h).unwrap_err().contains("is required"));
        h.insert(VERSION_HEADER, HeaderValue::from_static("1"));
        assert_eq!(check_version(&h), Ok(()));
        h.insert(VERSION_HEADER, HeaderValue::from_static("2"));
        assert_eq!(
            check_version(&h).unwrap_err(),
            "Precondition Failed: huddle-internal-version 2 is not spoken here (this node speaks 1)"
        );
    }
}
