//! `huddle_streams_open{kind}`: live streams by kind, held by a guard for the stream's
//! life, so a stream that ends any way (client gone, shutdown, error) is counted out.

use std::sync::OnceLock;

use metrics::Gauge;

/// The kinds of live stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Sse,
    GrpcSubscribe,
    Mcp,
}

fn gauges() -> &'static [Gauge; 3] {
    static G: OnceLock<[Gauge; 3]> = OnceLock::new();
    G.get_or_init(|| {
        crate::handle();
        ["sse", "grpc", "mcp"].map(|kind| metrics::gauge!("huddle_streams_open", "kind" => kind))
    })
}

/// Counts a stream open until dropped.
pub struct OpenStream(&'static Gauge);

impl OpenStream {
    pub fn new(kind: StreamKind) -> Self {
        let gauge = &gauges()[kind as usize];
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
