//! `builtin:debug`: logs each request and response that passes through it, unchanged.
//! Bodies are never logged (they can hold credentials); their sizes are.

use super::{Adapter, HookFuture};
use crate::protocol::{ClientRequest, ServerResponse};

/// Logs what passes at `info` level, target `powerstrip::debug`, and changes nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct DebugAdapter;

impl Adapter for DebugAdapter {
    fn pre_hook<'a>(&'a self, request: ClientRequest) -> HookFuture<'a, ClientRequest> {
        tracing::info!(
            target: "powerstrip::debug",
            hook = "pre",
            http.method = %request.method,
            http.request = %request.request,
            body.bytes = request.body.as_ref().map(String::len),
            "request"
        );
        Box::pin(async move { Ok(request) })
    }

    fn post_hook<'a>(
        &'a self,
        request: &'a ClientRequest,
        response: ServerResponse,
    ) -> HookFuture<'a, ServerResponse> {
        tracing::info!(
            target: "powerstrip::debug",
            hook = "post",
            http.method = %request.method,
            http.request = %request.request,
            http.status = response.code,
            content_type = response.content_type.as_deref().unwrap_or(""),
            body.bytes = response.body.as_ref().map(String::len),
            "response"
        );
        Box::pin(async move { Ok(response) })
    }
}
