//! Logging to stderr (stdout carries what commands print): `RUST_LOG` filters (default
//! `info`); tests stay silent unless `TEST_LOG` is set.
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, traces
//! go to an OpenTelemetry collector over OTLP/HTTP (protobuf, or JSON with
//! `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`), batched on a thread of their own: a span per
//! request (named by its GraphQL operation, the child of the client's `traceparent`), and
//! a child span per SQL statement with its text but never its values (they are bound
//! parameters, not part of the text). `OTEL_SERVICE_NAME` names the service (`tierwise`).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The tracer provider, when traces are exported.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_filter(filter);
    // Traces have a filter of their own: Tierwise's spans whatever `RUST_LOG` says, and
    // no other crate's (the exporter's own HTTP calls must not trace themselves).
    let otel = exporting().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("tierwise"))
            .with_location(false)
            .with_threads(false)
            .with_filter(EnvFilter::new("off,tierwise_api=info"))
    });
    // Ignore "already initialised": tests start many apps in one process.
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
}

/// The provider exporting traces, made on the first call when the environment asks for
/// it; `None` (and nothing made) otherwise.
fn exporting() -> Option<&'static SdkTracerProvider> {
    if let Some(provider) = PROVIDER.get() {
        return Some(provider);
    }
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    if !configured {
        return None;
    }
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let protocol = match std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
        Ok("http/json") => Protocol::HttpJson,
        _ => Protocol::HttpBinary,
    };
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()
    {
        Ok(exporter) => exporter,
        Err(error) => {
            eprintln!("OpenTelemetry: traces are not exported: {error}");
            return None;
        }
    };
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("tierwise");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let _ = PROVIDER.set(provider);
    PROVIDER.get()
}

/// Whether traces are exported.
pub fn enabled() -> bool {
    PROVIDER.get().is_some()
}

/// Sends what is left to the collector; before the process exits.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.shutdown();
    }
}

/// Makes `span` the child of the trace a client's `traceparent` header names.
pub fn continue_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if !enabled() {
        return;
    }
    struct Headers<'a>(&'a axum::http::HeaderMap);
    impl opentelemetry::propagation::Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(|k| k.as_str()).collect()
        }
    }
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&Headers(headers))
    });
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Renames `span` in its trace (once a span is under way, `otel.name` no longer can).
pub fn rename(span: &tracing::Span, name: String) {
    if enabled() {
        span.context().span().update_name(name);
    }
}

/// A span for one SQL statement that took `elapsed` and just ended, a child of the span
/// the statement ran in (statements outside a traced request are not exported).
pub fn record_statement(sql: &str, backend: &'static str, elapsed: Duration, failed: bool) {
    let Some(provider) = PROVIDER.get() else {
        return;
    };
    let parent: Context = tracing::Span::current().context();
    if !parent.span().span_context().is_valid() {
        return;
    }
    let end = SystemTime::now();
    let start = end.checked_sub(elapsed).unwrap_or(end);
    let verb = sql
        .split_whitespace()
        .next()
        .unwrap_or("SQL")
        .to_ascii_uppercase();
    let tracer = provider.tracer("tierwise.sql");
    let mut span = tracer
        .span_builder(verb)
        .with_kind(SpanKind::Client)
        .with_start_time(start)
        .with_attributes(vec![
            KeyValue::new("db.system", backend),
            KeyValue::new("db.statement", sql.to_owned()),
        ])
        .start_with_context(&tracer, &parent);
    if failed {
        span.set_status(Status::error("the statement failed"));
    }
    span.end_with_timestamp(end);
}
