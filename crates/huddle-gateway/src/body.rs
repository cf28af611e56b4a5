//! Reading a request body under a limit, the polite way.
//!
//! Rejecting an oversized body straight from its `Content-Length` makes hyper close the
//! connection while the client is still uploading: the client sees a reset or a broken
//! pipe instead of our 413 (seen with reqwest and curl). So we read up to the limit, keep
//! reading and discarding the rest (bounded in bytes and time), then answer 413 with
//! `Connection: close`.

use std::time::Duration;

use axum::body::{Body, Bytes};
use bytes::BytesMut;
use futures::StreamExt;

/// Most bytes drained after the limit before giving up on answering politely.
const DRAIN_CAP: usize = 64 * 1024 * 1024;
/// Longest wait for the next chunk.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub enum BodyError {
    /// Over the limit (the rest was drained).
    TooLarge,
    /// The client stopped sending or the connection broke.
    Incomplete(String),
}

/// The refusal text of a request body over `limit` bytes (A2A and MCP alike), counted
/// as a `body_bytes` limit refusal.
pub fn too_large(limit: usize) -> String {
    huddle_metrics::requests::refused("body_bytes");
    format!("Request body is too large: the limit is {limit} bytes")
}

pub async fn read_limited(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    let mut over = 0usize;
    loop {
        let next = tokio::time::timeout(CHUNK_TIMEOUT, stream.next())
            .await
            .map_err(|_| BodyError::Incomplete("timed out reading the request body".into()))?;
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| BodyError::Incomplete(e.to_string()))?;
        if over == 0 && buf.len() + chunk.len() <= limit {
            buf.extend_from_slice(&chunk);
        } else {
            over += chunk.len();
            if over > DRAIN_CAP {
                break;
            }
        }
    }
    if over > 0 {
        Err(BodyError::TooLarge)
    } else {
        Ok(buf.freeze())
    }
}
