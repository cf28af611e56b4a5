//! Logs and traces of a node process.
//!
//! - Logs go to stderr as text (ANSI colour only when stderr is a terminal: a file or a
//!   log collector gets plain text) or as JSON lines carrying the trace and span ids of
//!   the request they belong to.
//! - Traces are exported over OTLP (gRPC) only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set;
//!   the standard `OTEL_*` variables apply (`OTEL_SERVICE_NAME`,
//!   `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`/`_ARG`, the exporter's own). Without
//!   it no exporter runs (it would log an error per batch).
//! - Trace context: a request's span is the child of the W3C `traceparent` its client
//!   sent (HTTP header or gRPC metadata). [`inject`] and [`extract`] are the same
//!   propagation for any other hop (a call forwarded to another node carries its
//!   caller's context).

use std::io::IsTerminal;

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{FilterExt as _, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Where logs are written and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal only).
    Text,
    /// One JSON object per line, with `trace_id`/`span_id` of the current request.
    Json,
}

/// Not `text` or `json`.
#[derive(Debug, thiserror::Error)]
#[error("unknown log format {0:?}: expected text or json")]
pub struct UnknownLogFormat(pub String);

impl std::str::FromStr for LogFormat {
    type Err = UnknownLogFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(UnknownLogFormat(other.to_string())),
        }
    }
}

/// The exporter could not be set up from the `OTEL_*` variables.
#[derive(Debug, thiserror::Error)]
#[error("OpenTelemetry exporter: {0}")]
pub struct TelemetryError(String);

/// Keeps the trace exporter running; [`Telemetry::shutdown`] flushes what is buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered (at exit).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("huddle: flushing traces failed: {e}");
        }
    }
}

/// Whether traces are exported (the standard variable is set and not empty).
pub fn otlp_configured() -> bool {
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok_and(|v| !v.trim().is_empty())
}

/// Installs the process's logger (filter from `HUDDLE_LOG`, default `info`) and, when
/// configured, the OTLP trace exporter. Call once, inside the tokio runtime.
pub fn init(format: LogFormat) -> Result<Telemetry, TelemetryError> {
    let filter = || {
        EnvFilter::try_from_env("HUDDLE_LOG").unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"))
    };
    // JSON lines carry trace ids, so spans get OpenTelemetry contexts then too (a
    // provider with no exporter: ids, nothing sent).
    let provider = if otlp_configured() || format == LogFormat::Json {
        Some(provider(otlp_configured())?)
    } else {
        None
    };
    let otel = provider.as_ref().map(|p| {
        // Spans at info and above: the request and room-command spans, not debug detail,
        // nor ractor's `Actor` span (one per room for its whole life, entered on every
        // message: no use in a trace, and a cost on every command).
        // What a span carries is what an operator reads; what tracing-opentelemetry adds
        // by default (source location, thread, busy/idle time, an activated context on
        // every poll) costs a fifth of a small request's time and says nothing here:
        // off. Hops read a span's context directly (`Span::context`), not the active one.
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("huddle"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            .with_context_activation(false)
            .with_filter(EnvFilter::new("info,ractor=off"))
    });
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        // Text lines are events only: formatting every request's span fields for a line
        // that is seldom written cost about an eighth of a small request. (JSON lines
        // carry the span: its trace and span ids are their point.)
        LogFormat::Text => fmt
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter().and(filter_fn(|meta| meta.is_event())))
            .boxed(),
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter())
            .boxed(),
    };
    // Without a provider, no layer at all rather than a `None` one: an absent layer
    // still counts as interested in every span, so the registry would keep a record of
    // each request's span for nobody.
    match otel {
        Some(otel) => tracing_subscriber::registry().with(fmt).with(otel).init(),
        None => tracing_subscriber::registry().with(fmt).init(),
    }
    // Without a provider no span is recorded: nothing to parent.
    if provider.is_some() {
        huddle_gateway::observe::set_parent_hook(match format {
            LogFormat::Text => parent_from_headers,
            LogFormat::Json => parent_and_ids_from_headers,
        });
    }
    Ok(Telemetry { provider })
}

fn provider(export: bool) -> Result<SdkTracerProvider, TelemetryError> {
    let mut builder = SdkTracerProvider::builder();
    if export {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .map_err(|e| TelemetryError(e.to_string()))?;
        builder = builder.with_batch_exporter(exporter);
    }
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("huddle");
    }
    Ok(builder.with_resource(resource.build()).build())
}

/// The W3C trace context of `headers` made the parent of `span`.
fn parent_from_headers(headers: &axum::http::HeaderMap, span: &tracing::Span) {
    let _ = span.set_parent(extract(&HeaderExtractor(headers)));
}

/// [`parent_from_headers`], then the span's `trace_id` and `span_id` fields filled in
/// for JSON log lines (as text in the exported span too: only when logs need them).
fn parent_and_ids_from_headers(headers: &axum::http::HeaderMap, span: &tracing::Span) {
    parent_from_headers(headers, span);
    let cx = span.context();
    let ids = cx.span().span_context().clone();
    if ids.is_valid() {
        span.record("trace_id", tracing::field::display(ids.trace_id()));
        span.record("span_id", tracing::field::display(ids.span_id()));
    }
}

/// Trace context across a hop (`traceparent`, `tracestate`): the same propagation the
/// internal node calls use.
pub use huddle_cluster::trace::{extract, inject};

struct HeaderExtractor<'a>(&'a axum::http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
