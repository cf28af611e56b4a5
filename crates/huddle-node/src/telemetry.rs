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
//! - Sampling happens at the head: the sampler of `OTEL_TRACES_SAMPLER` decides when a
//!   request arrives, before its span exists, and a request it does not keep is never
//!   seen by the exporter's layer (its span has the `huddle::untraced` target). Deciding
//!   at the span's end, as the SDK would, means building every request's span for a
//!   sampler that drops most of them: at one trace in ten that cost a sixth of a small
//!   request. What reaches the SDK is kept (its own sampler is `always_on`).

use std::io::IsTerminal;
use std::sync::OnceLock;

use huddle_cluster::trace;
use huddle_gateway::observe::TraceHooks;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{SpanKind, TraceContextExt as _, TraceId, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    Config, IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, SdkTracerProvider,
    ShouldSample,
};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{FilterExt as _, dynamic_filter_fn, filter_fn};
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
        // Head sampling (module doc): a trace that is not kept enters under the
        // `huddle::untraced` target, off here; the room's spans and events are exported
        // under a kept request or forwarded call only, never as traces of their own.
        let head = EnvFilter::new(format!("info,ractor=off,{}=off", trace::UNTRACED));
        let kept = dynamic_filter_fn(|meta, cx| {
            meta.target() == trace::TRACED || cx.lookup_current().is_some()
        });
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("huddle"))
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_target(false)
            .with_context_activation(false)
            .with_filter(head.and(kept))
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
    // Without a provider no span is recorded: nothing to sample or parent.
    if provider.is_some() {
        let _ = HEAD_SAMPLER.set(Config::default().sampler);
        huddle_gateway::observe::set_trace_hooks(TraceHooks {
            sampled: sampled_request,
            adopt: match format {
                LogFormat::Text => parent_from_headers,
                LogFormat::Json => parent_and_ids_from_headers,
            },
        });
    }
    Ok(Telemetry { provider })
}

/// The sampler of `OTEL_TRACES_SAMPLER` (and `_ARG`), as the SDK reads them: the SDK's
/// default (`parentbased_always_on`) when unset, its warning and fallback when invalid.
static HEAD_SAMPLER: OnceLock<Box<dyn ShouldSample>> = OnceLock::new();

/// Whether the trace of a request with these headers is kept: its client's
/// `traceparent` (the sampler decides whether to follow its flag), else a new root.
fn sampled_request(headers: &axum::http::HeaderMap) -> bool {
    let Some(sampler) = HEAD_SAMPLER.get() else {
        return true;
    };
    let (parent, trace_id) = client_trace(headers);
    let result = sampler.should_sample(
        Some(&parent),
        trace_id,
        "request",
        &SpanKind::Server,
        &[],
        &[],
    );
    !matches!(result.decision, SamplingDecision::Drop)
}

/// The trace context a request's client sent, and the trace id of the request: the
/// client's, or a new one. (For a kept root the SDK makes its own id when the span
/// starts; a ratio sampler only needs this one to be random.)
fn client_trace(headers: &axum::http::HeaderMap) -> (opentelemetry::Context, TraceId) {
    let parent = extract(&HeaderExtractor(headers));
    let from_client = parent.span().span_context().clone();
    let trace_id = if from_client.is_valid() {
        from_client.trace_id()
    } else {
        RandomIdGenerator::default().new_trace_id()
    };
    (parent, trace_id)
}

fn provider(export: bool) -> Result<SdkTracerProvider, TelemetryError> {
    // Whatever reaches the SDK was kept by the head sampler (module doc).
    let mut builder = SdkTracerProvider::builder().with_sampler(Sampler::AlwaysOn);
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

/// The W3C trace context of `headers` made the parent of a kept request's `span`.
fn parent_from_headers(headers: &axum::http::HeaderMap, span: &tracing::Span, kept: bool) {
    if kept {
        let _ = span.set_parent(extract(&HeaderExtractor(headers)));
    }
}

/// [`parent_from_headers`], then the span's `trace_id` and `span_id` fields filled in
/// for JSON log lines (as text in the exported span too: only when logs need them). A
/// request whose trace is not kept still gets ids, so its lines can be told apart and
/// joined with its client's: the client's trace id, or a new one.
fn parent_and_ids_from_headers(headers: &axum::http::HeaderMap, span: &tracing::Span, kept: bool) {
    parent_from_headers(headers, span, kept);
    let (trace_id, span_id) = if kept {
        let ids = span.context().span().span_context().clone();
        if !ids.is_valid() {
            return;
        }
        (ids.trace_id(), ids.span_id())
    } else {
        let (_, trace_id) = client_trace(headers);
        (trace_id, RandomIdGenerator::default().new_span_id())
    };
    span.record("trace_id", tracing::field::display(trace_id));
    span.record("span_id", tracing::field::display(span_id));
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
