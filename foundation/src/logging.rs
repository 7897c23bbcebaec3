//! The daemons' log and trace set-up.
//!
//! Logs go to stderr, filtered by `RUST_LOG` (else the daemon's default), as text (colour
//! only when stderr is a terminal, so log files and the journal hold no escape codes) or as
//! one JSON object per line.
//!
//! Traces: when an OTLP endpoint is given (`--otlp-endpoint`) or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, every span
//! that passes the filter is also exported over OTLP/gRPC by a batch exporter, as service
//! `OTEL_SERVICE_NAME` (default: the binary's name). The SDK reads the other standard
//! variables itself (`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_HEADERS`, ...). Context crosses
//! processes as W3C trace context: see [`crate::trace`].

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, with the span fields.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?}: use text or json")),
        }
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// The standard variables that turn trace export on when `--otlp-endpoint` is not given.
pub const OTLP_ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// What [`init`] sets up.
#[derive(Clone, Debug)]
pub struct Settings<'a> {
    /// How log lines are written.
    pub format: LogFormat,
    /// The filter when `RUST_LOG` is unset or invalid (e.g. `info`).
    pub default_filter: &'a str,
    /// The service name of exported spans unless `OTEL_SERVICE_NAME` (or `service.name` in
    /// `OTEL_RESOURCE_ATTRIBUTES`) says otherwise: the binary's name.
    pub service: &'a str,
    /// Where to export traces (`http://HOST:4317`); when unset, the standard variables
    /// decide, and without them no trace is exported.
    pub otlp_endpoint: Option<&'a str>,
}

/// The trace exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("OTLP trace exporter for {endpoint}: {message}")]
pub struct TraceSetupError {
    /// The endpoint given or found in the environment.
    pub endpoint: String,
    /// What the exporter said.
    pub message: String,
}

/// The installed trace pipeline: hold it until the daemon has stopped, then call
/// [`Telemetry::shutdown`] so the spans still queued are sent.
#[must_use = "the spans still queued are sent by Telemetry::shutdown"]
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes the spans still queued and stops the exporter (waiting at most the export
    /// timeout). Call it from the runtime once the daemon has stopped.
    pub async fn shutdown(mut self) {
        if let Some(provider) = self.provider.take() {
            // The batch processor's thread exports on this runtime's I/O: wait off it.
            let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(e)) = done {
                eprintln!("trace export at shutdown: {e}");
            }
        }
    }
}

/// Installs the global subscriber (logs, and traces when configured); a second call in the
/// same process installs nothing and exports nothing. Call it inside the Tokio runtime: the
/// exporter's gRPC channel lives there.
pub fn init(settings: &Settings<'_>) -> Result<Telemetry, TraceSetupError> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(settings.default_filter));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match settings.format {
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).boxed(),
        LogFormat::Json => fmt.json().with_current_span(true).boxed(),
    };
    let provider = match endpoint(settings.otlp_endpoint, |k| std::env::var(k).ok()) {
        Some(endpoint) => Some(provider(&endpoint, settings.service)?),
        None => None,
    };
    let otel = provider.as_ref().map(|p| {
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        tracing_opentelemetry::layer().with_tracer(p.tracer(settings.service.to_owned()))
    });
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    Ok(match installed {
        Ok(()) => Telemetry { provider },
        Err(_) => Telemetry::default(),
    })
}

/// The endpoint traces go to: the flag's, else the standard variables'; `None` is off.
fn endpoint(flag: Option<&str>, var: impl Fn(&str) -> Option<String>) -> Option<String> {
    flag.map(str::to_owned)
        .or_else(|| OTLP_ENDPOINT_VARS.iter().find_map(|k| var(k)))
        .filter(|e| !e.trim().is_empty())
}

fn provider(endpoint: &str, service: &str) -> Result<SdkTracerProvider, TraceSetupError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| TraceSetupError {
            endpoint: endpoint.to_owned(),
            message: e.to_string(),
        })?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(service))
        .build())
}

/// The SDK's resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, the SDK's own
/// attributes), named `service` when the environment names no service.
fn resource(service: &str) -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::new("service.name"))
        .is_some_and(|v| !v.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder()
            .with_service_name(service.to_owned())
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_print_as_given() {
        for f in [LogFormat::Text, LogFormat::Json] {
            assert_eq!(f.to_string().parse::<LogFormat>(), Ok(f));
        }
        let err = "yaml".parse::<LogFormat>().unwrap_err();
        assert!(err.contains("text or json"), "{err}");
    }

    #[test]
    fn traces_are_off_unless_an_endpoint_is_given_or_set() {
        let none = |_: &str| None;
        assert_eq!(endpoint(None, none), None);
        assert_eq!(endpoint(Some(""), none), None);
        assert_eq!(
            endpoint(Some("http://a:4317"), |_| Some("http://b:4317".into())).as_deref(),
            Some("http://a:4317"),
            "the flag beats the variable"
        );
        let env = |k: &str| (k == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://c:4317".into());
        assert_eq!(endpoint(None, env).as_deref(), Some("http://c:4317"));
    }

    #[tokio::test]
    async fn an_exporter_is_built_for_an_endpoint_and_a_bad_one_is_an_error() {
        let p = provider("http://127.0.0.1:4317", "test").unwrap();
        p.shutdown().unwrap();
        let err = provider("not a uri", "test").unwrap_err();
        assert_eq!(err.endpoint, "not a uri");
    }
}
