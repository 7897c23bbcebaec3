//! [`SwarmAdapter`], registered as `builtin:swarm`: refuses a service create or update whose
//! spec can never run ([`super::spec::check`]) with 400 and the reason, before dockerd sees
//! it, turns binds of `/flocker/NAME` into flocker volume mounts
//! ([`super::spec::binds_to_volumes`]) and, with the network side on, runs the tasks of a
//! service with `WEAVE_CIDR` under `wait-for-net` ([`super::network`]); everything else
//! passes unchanged.

use http::StatusCode;
use proxy::adapter::{Adapter, AdapterError, HookFuture};
use proxy::protocol::ClientRequest;

use super::network::{TaskNetwork, WrapError, Wrapped};
use super::spec;

/// The `swarm` adapter.
#[derive(Default)]
pub struct SwarmAdapter {
    network: Option<TaskNetwork>,
}

impl SwarmAdapter {
    /// The adapter of an agent without the network side: specs are checked and their
    /// `/flocker` binds rewritten, task commands are left as they are.
    pub fn new() -> Self {
        Self::default()
    }

    /// The adapter of an agent with the network side: tasks with `WEAVE_CIDR` also wait
    /// for their address.
    pub fn with_network(network: TaskNetwork) -> Self {
        Self {
            network: Some(network),
        }
    }
}

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
            let mut changed = spec::binds_to_volumes(&mut value).map_err(refused)? > 0;
            if let Some(network) = &self.network {
                match network.wrap(&mut value).await {
                    Ok(Wrapped::Now) => changed = true,
                    Ok(Wrapped::NotNeeded) => {}
                    Ok(Wrapped::ImageNotHere(image)) => tracing::warn!(%image,
                        "the service's image is not on this host, so its command is unknown here: \
                         its tasks get their address without waiting for it (pull the image here, \
                         or give the command in the spec)"),
                    Err(e @ WrapError::Spec { .. }) => {
                        return Err(AdapterError::refused(
                            StatusCode::BAD_REQUEST,
                            e.to_string(),
                        ));
                    }
                    Err(e @ WrapError::Docker { .. }) => {
                        return Err(AdapterError::refused(
                            StatusCode::BAD_GATEWAY,
                            e.to_string(),
                        ));
                    }
                }
            }
            if changed {
                request.body = Some(value.to_string());
            }
            Ok(request)
        })
    }
}
