//! [`Collector`]: an OpenTelemetry collector's trace service (OTLP over gRPC) on
//! 127.0.0.1, keeping every span it is sent: what the tests read the node's traces
//! from, and the export target of the telemetry benchmark.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
pub use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
pub use opentelemetry_proto::tonic::trace::v1::Span;

/// Spans received so far; the server runs on the runtime it was started on.
#[derive(Clone, Default)]
pub struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    /// Keep no spans, only count them (a benchmark's sink).
    count_only: bool,
    received: Arc<std::sync::atomic::AtomicU64>,
}

impl Collector {
    /// Serves on a free port of 127.0.0.1; the endpoint is `http://<addr>`.
    pub async fn start() -> (SocketAddr, Collector) {
        Self::serve(Collector::default()).await
    }

    /// A collector that only counts what it receives.
    pub async fn start_counting() -> (SocketAddr, Collector) {
        Self::serve(Collector {
            count_only: true,
            ..Collector::default()
        })
        .await
    }

    async fn serve(collector: Collector) -> (SocketAddr, Collector) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = futures::stream::unfold(listener, |l| async move {
            let accepted = l.accept().await.map(|(stream, _)| stream);
            Some((accepted, l))
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector.clone()))
                .serve_with_incoming(incoming),
        );
        (addr, collector)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// How many spans were received.
    pub fn received(&self) -> u64 {
        self.received.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        let mut kept = self.spans.lock().unwrap();
        for span in spans {
            self.received
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if !self.count_only {
                kept.push(span);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The string (or debug-printed) value of `span`'s attribute `key`.
pub fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            other => Some(format!("{other:?}")),
        }
    })
}

/// Bytes as lower-case hex (trace and span ids as W3C writes them).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
