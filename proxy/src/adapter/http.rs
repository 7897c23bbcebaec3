//! External adapters: the Powerstrip v1 JSON protocol over HTTP.

use bytes::Bytes;
use http::{Method, Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use super::{Adapter, AdapterError, HookFuture};
use crate::errors::error_chain;
use crate::limits::MAX_ADAPTER_REPLY_BYTES;
use crate::protocol::{
    ClientRequest, HookRequest, HookType, PROTOCOL_VERSION, PostHookReply, PreHookReply,
    ServerResponse,
};

/// Longest excerpt of an adapter's error body passed on to the Docker client.
const ERROR_EXCERPT_CHARS: usize = 300;

/// A shared HTTP client for adapters (keeps connections to each adapter alive).
pub type AdapterClient = Client<HttpConnector, Full<Bytes>>;

/// Makes the client that all HTTP adapters of one proxy share.
pub fn adapter_client() -> AdapterClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// An adapter reached by POSTing Powerstrip v1 JSON to `url`.
#[derive(Clone)]
pub struct HttpAdapter {
    url: Uri,
    client: AdapterClient,
}

impl HttpAdapter {
    /// An adapter at `url` (an `http://` URL), sharing `client`'s connections.
    pub fn new(url: Uri, client: AdapterClient) -> Self {
        HttpAdapter { url, client }
    }

    async fn call<R: DeserializeOwned>(
        &self,
        hook: &HookRequest,
        expected: &'static str,
    ) -> Result<R, AdapterError> {
        let payload = serde_json::to_vec(hook).expect("hook requests always serialize");
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(payload)))
            .expect("a valid URI and static headers");
        // W3C trace context: an adapter in any language can join the request's trace.
        foundation::trace::inject(request.headers_mut());
        let response =
            self.client
                .request(request)
                .await
                .map_err(|e| AdapterError::Unreachable {
                    url: self.url.to_string(),
                    reason: error_chain(&e),
                })?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ADAPTER_REPLY_BYTES)
            .collect()
            .await
            .map_err(|e| AdapterError::BadReply {
                expected,
                reason: format!("reading it failed: {e}"),
            })?
            .to_bytes();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            let excerpt: String = text.trim().chars().take(ERROR_EXCERPT_CHARS).collect();
            return Err(AdapterError::Status { status, excerpt });
        }
        serde_json::from_slice(&body).map_err(|e| AdapterError::BadReply {
            expected,
            reason: e.to_string(),
        })
    }
}

impl Adapter for HttpAdapter {
    fn pre_hook<'a>(&'a self, request: ClientRequest) -> HookFuture<'a, ClientRequest> {
        Box::pin(async move {
            let hook = HookRequest {
                powerstrip_protocol_version: PROTOCOL_VERSION,
                hook_type: HookType::Pre,
                client_request: request,
                server_response: None,
            };
            let reply: PreHookReply = self.call(&hook, "ModifiedClientRequest").await?;
            check_version(reply.powerstrip_protocol_version, "ModifiedClientRequest")?;
            let mut request = hook.client_request;
            request.apply(reply.modified_client_request);
            Ok(request)
        })
    }

    fn post_hook<'a>(
        &'a self,
        request: &'a ClientRequest,
        response: ServerResponse,
    ) -> HookFuture<'a, ServerResponse> {
        Box::pin(async move {
            let hook = HookRequest {
                powerstrip_protocol_version: PROTOCOL_VERSION,
                hook_type: HookType::Post,
                client_request: request.clone(),
                server_response: Some(response),
            };
            let reply: PostHookReply = self.call(&hook, "ModifiedServerResponse").await?;
            check_version(reply.powerstrip_protocol_version, "ModifiedServerResponse")?;
            let mut response = hook.server_response.expect("set above");
            response.apply(reply.modified_server_response);
            Ok(response)
        })
    }
}

fn check_version(version: Option<u32>, expected: &'static str) -> Result<(), AdapterError> {
    match version {
        None | Some(PROTOCOL_VERSION) => Ok(()),
        Some(other) => Err(AdapterError::BadReply {
            expected,
            reason: format!("PowerstripProtocolVersion is {other}, this proxy speaks 1"),
        }),
    }
}
