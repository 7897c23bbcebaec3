//! [`SwarmAdapter`], registered as `builtin:swarm`: refuses a service create or update whose
//! spec can never run ([`super::spec::check`]) with 400 and the reason, before dockerd sees
//! it, and turns binds of `/flocker/NAME` into flocker volume mounts
//! ([`super::spec::binds_to_volumes`]); everything else passes unchanged.

use http::StatusCode;
use proxy::adapter::{Adapter, AdapterError, HookFuture};
use proxy::protocol::ClientRequest;

use super::spec;

/// The `swarm` adapter.
#[derive(Debug, Default)]
pub struct SwarmAdapter;

impl Adapter for SwarmAdapter {
    fn pre_hook<'a>(&'a self, request: ClientRequest) -> HookFuture<'a, ClientRequest> {
        Box::pin(async move {
            let mut request = request;
            let Some(body) = request.body.as_deref() else {
                return Ok(request);
            };
            let refused = |e: spec::SpecError| {
                tracing::info!(error = %e, "service spec refused");
                AdapterError::refused(StatusCode::BAD_REQUEST, e.to_string())
            };
            spec::check(body).map_err(refused)?;
            let mut value: serde_json::Value =
                serde_json::from_str(body).expect("a spec check passed is JSON");
            if spec::binds_to_volumes(&mut value).map_err(refused)? > 0 {
                request.body = Some(value.to_string());
            }
            Ok(request)
        })
    }
}
