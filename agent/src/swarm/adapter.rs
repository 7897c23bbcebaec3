//! [`SwarmAdapter`], registered as `builtin:swarm`: refuses a service create or update whose
//! spec can never run ([`super::spec::check`]) with 400 and the reason, before dockerd sees
//! it; everything else passes unchanged.

use http::StatusCode;
use proxy::adapter::{Adapter, AdapterError, HookFuture};
use proxy::protocol::{ClientRequest, ServerResponse};

use super::spec;

/// The `swarm` adapter.
#[derive(Debug, Default)]
pub struct SwarmAdapter;

impl Adapter for SwarmAdapter {
    fn pre_hook<'a>(&'a self, request: ClientRequest) -> HookFuture<'a, ClientRequest> {
        Box::pin(async move {
            if let Some(body) = request.body.as_deref() {
                spec::check(body).map_err(|e| {
                    tracing::info!(error = %e, "service spec refused");
                    AdapterError::refused(StatusCode::BAD_REQUEST, e.to_string())
                })?;
            }
            Ok(request)
        })
    }

    fn post_hook<'a>(
        &'a self,
        _request: &'a ClientRequest,
        response: ServerResponse,
    ) -> HookFuture<'a, ServerResponse> {
        Box::pin(async move { Ok(response) })
    }
}
