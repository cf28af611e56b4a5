//! `huddle_upstream_feeds`: the rooms this node follows from their owner on another node
//! (one upstream feed per room with readers here, however many readers), held by a
//! guard for the feed's life.

use std::sync::OnceLock;

use metrics::Gauge;

fn gauge() -> &'static Gauge {
    static G: OnceLock<Gauge> = OnceLock::new();
    G.get_or_init(|| {
        crate::handle();
        metrics::gauge!("huddle_upstream_feeds")
    })
}

/// Counts an upstream feed until dropped.
pub struct UpstreamFeed(&'static Gauge);

impl UpstreamFeed {
    pub fn new() -> Self {
        let gauge = gauge();
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Default for UpstreamFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for UpstreamFeed {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
