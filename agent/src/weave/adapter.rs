//! `builtin:weave`, the proxy adapter that gives containers their `WEAVE_CIDR` addresses.
//!
//! - Pre-hook on `POST /containers/create`: a body with `WEAVE_CIDR` is checked (a bad
//!   value or a request the allocator cannot serve is refused with 400 before anything is
//!   created) and rewritten to run `wait-for-net` first ([`super::rewrite`]), reading the
//!   image's ENTRYPOINT/CMD when the request does not give them. Bodies without
//!   `WEAVE_CIDR` pass unchanged.
//! - Post-hook on `POST /containers/{id}/start` and `.../restart`: once Docker answered
//!   204 (or 304, already running), the container is attached ([`super::Attacher`]) and
//!   only then does the client get Docker's answer, so `docker start` returns with
//!   `ethwe` up, or with a clear error and the container stopped (killed: its command
//!   never ran, it was still in `wait-for-net`). A container that was already running
//!   (304) is left running. One that exited before it could be attached (created without
//!   the rewrite, so nothing held its command back) gets Docker's answer unchanged.
//!
//! adapters.yml:
//!
//! ```yaml
//! endpoints:
//!   "POST /*/containers/create": { pre: [weave] }
//!   "POST /*/containers/*/start": { post: [weave] }
//!   "POST /*/containers/*/restart": { post: [weave] }
//! adapters:
//!   weave: builtin:weave
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use http::StatusCode;
use proxy::adapter::{Adapter, AdapterError, HookFuture};
use proxy::protocol::{ClientRequest, ServerResponse};
use serde_json::Value;

use super::allocator::{AddressAllocator, AllocError};
use super::attacher::{AttachError, Attacher};
use super::rewrite::{self, ImageCommand, RewriteError};
use crate::docker::DockerError;
use crate::network::Network;

/// The weave adapter; register it as `weave` in the proxy's built-ins.
pub struct WeaveAdapter<N, A> {
    attacher: Arc<Attacher<N, A>>,
    wait_for_net: PathBuf,
}

/// What a request path asks for, as far as this adapter cares.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint<'a> {
    Create,
    Start(&'a str),
    Other,
}

impl<N: Network + 'static, A: AddressAllocator + 'static> WeaveAdapter<N, A> {
    /// An adapter that attaches through `attacher` and bind-mounts the static
    /// `wait-for-net` found at `wait_for_net` on this host.
    pub fn new(attacher: Arc<Attacher<N, A>>, wait_for_net: impl Into<PathBuf>) -> Self {
        WeaveAdapter {
            attacher,
            wait_for_net: wait_for_net.into(),
        }
    }

    async fn rewrite_create(
        &self,
        mut request: ClientRequest,
    ) -> Result<ClientRequest, AdapterError> {
        let Some(text) = request.body.as_deref() else {
            return Ok(request);
        };
        // Not JSON: Docker will say so better than we can.
        let Ok(mut body) = serde_json::from_str::<Value>(text) else {
            return Ok(request);
        };
        let Some(requests) = rewrite::requests(&body) else {
            return Ok(request);
        };
        let requests = requests.map_err(bad_request)?;
        rewrite::check_network_mode(&body).map_err(bad_request)?;
        for r in &requests {
            self.attacher
                .allocator()
                .check(r)
                .await
                .map_err(|e| match e {
                    AllocError::Unavailable { .. } => refused(StatusCode::SERVICE_UNAVAILABLE, e),
                    _ => refused(StatusCode::BAD_REQUEST, e),
                })?;
        }
        let image = match rewrite::image_needed(&body).map_err(bad_request)? {
            None => ImageCommand::default(),
            Some(name) => match self.attacher.docker().inspect_image(name).await {
                Ok(info) => ImageCommand {
                    entrypoint: info.config.entrypoint,
                    cmd: info.config.cmd,
                },
                // Docker answers 404 too, the client pulls and creates again: hook again then.
                Err(DockerError::NotFound { .. }) => return Ok(request),
                Err(e) => return Err(refused(StatusCode::BAD_GATEWAY, e)),
            },
        };
        let argv = rewrite::command(&body, &image).map_err(bad_request)?;
        let host_path = self.wait_for_net.display().to_string();
        rewrite::wrap(&mut body, argv, &host_path).map_err(bad_request)?;
        request.body = Some(body.to_string());
        Ok(request)
    }

    async fn attach_started(
        &self,
        id: &str,
        response: ServerResponse,
    ) -> Result<ServerResponse, AdapterError> {
        if !matches!(response.code, 204 | 304) {
            return Ok(response);
        }
        match self.attacher.ensure(id).await {
            Ok(_) => Ok(response),
            // It ran and exited (a `--rm` one is gone) before it could be attached: Docker's
            // answer stands, its addresses follow it (see `super::lifecycle`).
            Err(AttachError::NotRunning { .. })
            | Err(AttachError::Docker(DockerError::NotFound { .. })) => Ok(response),
            Err(e @ (AttachError::Cidr { .. } | AttachError::SharedNetns { .. })) => {
                Err(refused(StatusCode::BAD_REQUEST, e))
            }
            Err(e) if response.code == 304 => Err(AdapterError::refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the container was already running; its weave network is not: {e}"),
            )),
            Err(e) => {
                // Do not leave it waiting in wait-for-net: a start without its network failed.
                let stopped = match self.attacher.docker().kill(id, "KILL").await {
                    Ok(()) => "it was stopped".to_owned(),
                    Err(kill) => format!("stopping it failed too: {kill}"),
                };
                Err(AdapterError::refused(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the container's weave network could not be set up, so {stopped}: {e}"),
                ))
            }
        }
    }
}

impl<N: Network + 'static, A: AddressAllocator + 'static> Adapter for WeaveAdapter<N, A> {
    fn pre_hook<'a>(&'a self, request: ClientRequest) -> HookFuture<'a, ClientRequest> {
        Box::pin(async move {
            match endpoint(&request.method, &request.request) {
                Endpoint::Create => self.rewrite_create(request).await,
                _ => Ok(request),
            }
        })
    }

    fn post_hook<'a>(
        &'a self,
        request: &'a ClientRequest,
        response: ServerResponse,
    ) -> HookFuture<'a, ServerResponse> {
        Box::pin(async move {
            match endpoint(&request.method, &request.request) {
                Endpoint::Start(id) => self.attach_started(id, response).await,
                _ => Ok(response),
            }
        })
    }
}

/// Which endpoint a request is: the version prefix and the query do not matter.
fn endpoint<'a>(method: &str, uri: &'a str) -> Endpoint<'a> {
    if method != "POST" {
        return Endpoint::Other;
    }
    let path = uri.split(['?', '#']).next().unwrap_or("");
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments
        .first()
        .is_some_and(|s| s.starts_with('v') && s[1..].parse::<f32>().is_ok())
    {
        segments.remove(0);
    }
    match segments.as_slice() {
        ["containers", "create"] => Endpoint::Create,
        ["containers", id, "start" | "restart"] => Endpoint::Start(id),
        _ => Endpoint::Other,
    }
}

fn bad_request(e: RewriteError) -> AdapterError {
    refused(StatusCode::BAD_REQUEST, e)
}

fn refused(status: StatusCode, e: impl std::fmt::Display) -> AdapterError {
    AdapterError::refused(status, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_with_and_without_version_and_query() {
        assert_eq!(
            endpoint("POST", "/v1.41/containers/create?name=x"),
            Endpoint::Create
        );
        assert_eq!(endpoint("POST", "/containers/create"), Endpoint::Create);
        assert_eq!(
            endpoint("POST", "/v1.41/containers/abc/start"),
            Endpoint::Start("abc")
        );
        assert_eq!(
            endpoint("POST", "/containers/web/restart?t=1"),
            Endpoint::Start("web")
        );
        assert_eq!(endpoint("GET", "/containers/create"), Endpoint::Other);
        assert_eq!(
            endpoint("POST", "/v1.41/containers/abc/stop"),
            Endpoint::Other
        );
        assert_eq!(
            endpoint("POST", "/containers/create/start/x"),
            Endpoint::Other
        );
    }
}
