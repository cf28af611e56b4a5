//! What the node shows its operators: `/metrics` (sampling the gauges the node already
//! keeps at scrape time) and the readiness checks behind `/readyz`.

use std::sync::Arc;

use axum::routing::get;
use huddle_gateway::mcp::Mcp;
use huddle_gateway::ready::Readiness;
use huddle_metrics::gauges;
use huddle_rooms::RoomDirectory;
use huddle_store::RoomStore;

/// `GET /metrics`: the Prometheus text of everything counted, with the gauges sampled now.
pub(crate) fn metrics_route(rooms: &RoomDirectory, mcp: &Mcp) -> axum::Router {
    let (rooms, mcp) = (rooms.clone(), mcp.clone());
    axum::Router::new().route(
        "/metrics",
        get(move || {
            huddle_metrics::set_gauge(gauges::ROOMS_ACTIVE, rooms.active_rooms() as f64);
            huddle_metrics::set_gauge(gauges::ROOMS_TAIL_BYTES, rooms.tail_bytes() as f64);
            huddle_metrics::set_gauge(
                gauges::STREAMS_BACKLOG_BYTES,
                rooms.stream_backlog_bytes() as f64,
            );
            huddle_metrics::set_gauge(gauges::MCP_SESSIONS, mcp.session_count() as f64);
            std::future::ready((
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                huddle_metrics::render(),
            ))
        }),
    )
}

/// The node's readiness checks: the store takes writes (its writer alive, its file or
/// server writable). Cluster mode adds its own with [`Readiness::with`].
pub(crate) fn readiness(store: Arc<dyn RoomStore>) -> Readiness {
    Readiness::default().with(
        "store",
        Arc::new(move || {
            let store = store.clone();
            Box::pin(async move { store.check_writable().await.map_err(|e| e.to_string()) })
        }),
    )
}
