//! W3C trace context across a hop (`traceparent`, `tracestate`): written into what a
//! node sends (HTTP headers, gRPC metadata), read back on the other side, so one client
//! request is one trace across every node it crosses. The node's telemetry uses the
//! same two functions for its public listeners.
//!
//! Whether a trace is kept is decided once, where it enters the cluster (the public
//! request's span, by the node's sampler); a hop follows its caller: the callee traces a
//! forwarded call only when the caller's kept trace came with it. The span where a trace
//! enters a node says which under its target: [`TRACED`] or [`UNTRACED`]
//! (`huddle_rooms::traced`).

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use huddle_rooms::traced::{TRACED, UNTRACED};

/// The trace context carried by a hop's headers.
pub fn extract(carrier: &dyn Extractor) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(carrier)
}

/// Writes the current span's trace context into a hop's headers, so the callee's spans
/// join the caller's trace.
pub fn inject(carrier: &mut dyn Injector) {
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, carrier);
}

/// gRPC metadata as a carrier of trace context.
pub struct Metadata<'a>(pub &'a mut MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// Read-only gRPC metadata as a carrier of trace context.
pub struct MetadataRef<'a>(pub &'a MetadataMap);

impl Extractor for MetadataRef<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// Whether a hop's caller sent a kept trace (a `traceparent` with its sampled flag).
pub fn caller_sampled(metadata: &MetadataMap) -> bool {
    use opentelemetry::trace::TraceContextExt as _;
    extract(&MetadataRef(metadata))
        .span()
        .span_context()
        .is_sampled()
}

/// Makes the trace context of `metadata` the parent of `span`.
pub fn adopt(span: &tracing::Span, metadata: &MetadataMap) {
    let _ = span.set_parent(extract(&MetadataRef(metadata)));
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn the_callers_trace_crosses_the_metadata_of_a_hop() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let caller = tracing::info_span!("caller");
            let sent = caller.context().span().span_context().clone();
            assert!(sent.is_valid());
            let mut metadata = MetadataMap::new();
            caller.in_scope(|| inject(&mut Metadata(&mut metadata)));
            assert!(metadata.get("traceparent").is_some());

            let callee = tracing::info_span!("callee");
            adopt(&callee, &metadata);
            let received = callee.context().span().span_context().clone();
            assert_eq!(received.trace_id(), sent.trace_id(), "one trace");
            assert_ne!(received.span_id(), sent.span_id(), "a span of its own");
        });
    }
}
