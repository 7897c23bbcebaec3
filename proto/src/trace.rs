//! W3C trace context over gRPC: clients write the calling span's context into the request
//! metadata ([`Propagate`], on every channel made by [`crate::connect`] and by the control
//! leader and agents calling agents), and servers start each call's span as its child
//! ([`server_span`], given to `Server::builder().trace_fn`). With no trace exporter
//! configured (`foundation::logging`) nothing is written and the spans stay local.

use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A channel whose requests carry the calling span's trace context.
pub type Traced = InterceptedService<Channel, Propagate>;

/// Wraps `channel` so its requests carry the calling span's trace context.
pub fn traced(channel: Channel) -> Traced {
    InterceptedService::new(channel, Propagate)
}

/// The client interceptor that writes `traceparent`/`tracestate` into the metadata.
#[derive(Clone, Copy, Debug, Default)]
pub struct Propagate;

impl Interceptor for Propagate {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        for (name, value) in foundation::trace::headers_of(&tracing::Span::current()) {
            if let Ok(value) = value.parse() {
                req.metadata_mut().insert(name, value);
            }
        }
        Ok(req)
    }
}

/// Raft's own traffic between members (a heartbeat every few hundred milliseconds): no span.
pub const UNTRACED: [&str; 3] = [
    "/flocker.raft.Raft/AppendEntries",
    "/flocker.raft.Raft/Vote",
    "/flocker.raft.Raft/InstallSnapshot",
];

/// The span of one incoming call, named after its method (`grpc /flocker.agent.Agent/Push`)
/// and the child of the caller's span when the request carries its context; none for the
/// [`UNTRACED`] methods.
pub fn server_span(req: &http::Request<()>) -> tracing::Span {
    let path = req.uri().path();
    if UNTRACED.contains(&path) {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "grpc",
        otel.name = %format!("grpc {path}"),
        otel.kind = "server",
    );
    foundation::trace::set_parent_from_headers(&span, req.headers());
    span
}
