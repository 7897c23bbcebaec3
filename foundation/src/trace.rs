//! W3C trace context across processes: the `traceparent` (and `tracestate`) of the current
//! span written into an outgoing request's headers, and a span made the child of the
//! context an incoming request carries. Used by the proxy's HTTP hooks and by every gRPC
//! client and server (`proto::trace`); without an exporter ([`crate::logging`]) spans carry
//! no context and nothing is written.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The headers W3C trace context uses.
pub const FIELDS: [&str; 2] = ["traceparent", "tracestate"];

/// The trace-context headers of `span` (empty when it is not exported), as (name, value).
pub fn headers_of(span: &tracing::Span) -> Vec<(&'static str, String)> {
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    FIELDS
        .iter()
        .filter_map(|f| carrier.remove(*f).map(|v| (*f, v)))
        .collect()
}

/// Writes the current span's trace context into `headers`.
pub fn inject(headers: &mut http::HeaderMap) {
    for (name, value) in headers_of(&tracing::Span::current()) {
        if let Ok(value) = http::HeaderValue::try_from(value) {
            headers.insert(name, value);
        }
    }
}

/// Makes `span` the child of the trace context in `get` (a header lookup), if any.
pub fn set_parent(span: &tracing::Span, get: impl Fn(&str) -> Option<String>) {
    let carrier: HashMap<String, String> = FIELDS
        .iter()
        .filter_map(|f| get(f).map(|v| ((*f).to_owned(), v)))
        .collect();
    if carrier.is_empty() {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(cx);
}

/// Makes `span` the child of the trace context in `headers`, if any.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    set_parent(span, |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
}

/// The trace id of `span` as 32 hex digits, when it is exported (for logs and tests).
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    use opentelemetry::trace::TraceContextExt;
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}
