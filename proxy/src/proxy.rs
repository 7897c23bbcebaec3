//! The request path, top to bottom: match -> pre chain -> forward -> post chain -> reply.
//!
//! A request that no hook applies to is streamed both ways untouched. A request with hooks
//! has its (small, JSON) body read and shown to the pre-hooks; Docker's response is buffered
//! only when a post-hook needs it. Upgrade requests (`attach`, `exec start`, BuildKit's
//! `/session` and `/grpc`) end in [`hijack::splice`].

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tracing::{Instrument, field};

use crate::body::{ProxyBody, full};
use crate::chain;
use crate::config::{Hooks, SharedConfig};
use crate::errors::ProxyError;
use crate::hijack;
use crate::limits::MAX_POST_HOOK_RESPONSE_BYTES;
use crate::metrics::METRICS;
use crate::protocol::{ClientRequest, ServerResponse};
use crate::upstream::{Driver, Session, Upstream};

/// Headers that describe one hop, not the message; never forwarded as they are.
const HOP_BY_HOP: &[header::HeaderName] = &[
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

/// The proxy: its configuration (swapped on reload), Docker, and its limits.
pub struct Proxy {
    config: SharedConfig,
    upstream: Upstream,
    max_hook_body: usize,
}

/// A request body as the hooks see it.
enum RequestBody {
    /// JSON (or nothing): shown to the adapters, and their version is sent on.
    Visible,
    /// Anything else (a tar build context): adapters see `null`, the stream goes on as is.
    Opaque(Incoming),
}

impl Proxy {
    /// A proxy in front of `upstream`, reading hooks from `config` on every request.
    pub fn new(config: SharedConfig, upstream: Upstream, max_hook_body: usize) -> Self {
        Proxy {
            config,
            upstream,
            max_hook_body,
        }
    }

    /// A line to Docker for one client connection (see [`Upstream::session`]).
    pub fn session(&self) -> (Session, Driver) {
        self.upstream.session()
    }

    /// Serves one request over `session`; every failure becomes a Docker-style error
    /// response.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        session: &Session,
    ) -> Response<ProxyBody> {
        let span = tracing::info_span!(
            "request",
            otel.name = "proxy.request",
            otel.kind = "server",
            http.method = %request.method(),
            http.path = request.uri().path(),
            http.status = field::Empty,
            hooks.pre = field::Empty,
            hooks.post = field::Empty,
        );
        // A client that traces (rare for Docker clients) makes this request its child. No
        // subscriber wants the span when traces are not exported: nothing to attach then.
        if !span.is_disabled() {
            foundation::trace::set_parent_from_headers(&span, request.headers());
        }
        let started = std::time::Instant::now();
        let endpoint = METRICS.endpoint(request.method().as_str(), request.uri().path());
        let recorder = span.clone();
        async move {
            let response = self.route(request, session).await.unwrap_or_else(|error| {
                tracing::warn!(%error, "request failed");
                error.into_response()
            });
            let status = response.status().as_u16();
            recorder.record("http.status", status);
            METRICS.answered(endpoint, status, started.elapsed());
            response
        }
        .instrument(span)
        .await
    }

    async fn route(
        &self,
        mut request: Request<Incoming>,
        session: &Session,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let hooks = self
            .config
            .current()
            .hooks_for(request.method().as_str(), request.uri().path());
        let upgrade = is_upgrade(request.headers()).then(|| hyper::upgrade::on(&mut request));
        if hooks.is_empty() {
            let response = session
                .send(pass_through(request, upgrade.is_some()))
                .instrument(upstream_span())
                .await?;
            return Ok(match upgrade {
                Some(client) => hijack::splice(client, response),
                None => stream(response),
            });
        }
        let span = tracing::Span::current();
        span.record("hooks.pre", hooks.pre.len());
        span.record("hooks.post", hooks.post.len());
        self.with_hooks(request, session, hooks, upgrade).await
    }

    async fn with_hooks(
        &self,
        request: Request<Incoming>,
        session: &Session,
        hooks: Hooks,
        upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let (parts, body) = request.into_parts();
        let (original, body) = self.read_for_hooks(&parts, body).await?;
        let modified = chain::run_pre(&hooks.pre, original.clone()).await?;
        let upstream_request = rebuild_request(parts, &modified, body, upgrade.is_some());
        let response = session
            .send(upstream_request)
            .instrument(upstream_span())
            .await?;
        if let Some(client) = upgrade {
            return Ok(hijack::splice(client, response));
        }
        if hooks.post.is_empty() {
            return Ok(stream(response));
        }
        run_post_hooks(&hooks, &original, response).await
    }

    /// The request as adapters see it, and what becomes of its body.
    async fn read_for_hooks(
        &self,
        parts: &Parts,
        body: Incoming,
    ) -> Result<(ClientRequest, RequestBody), ProxyError> {
        let mut request = ClientRequest {
            method: parts.method.to_string(),
            request: parts
                .uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .to_owned(),
            body: None,
        };
        if has_body(&parts.headers) && !is_json(&parts.headers) {
            return Ok((request, RequestBody::Opaque(body)));
        }
        let bytes = Limited::new(body, self.max_hook_body)
            .collect()
            .await
            .map_err(
                |error| match error.downcast::<http_body_util::LengthLimitError>() {
                    Ok(_) => ProxyError::BodyTooLarge {
                        limit: self.max_hook_body,
                    },
                    Err(other) => ProxyError::ClientBody(other.to_string()),
                },
            )?
            .to_bytes();
        if !bytes.is_empty() {
            request.body = Some(String::from_utf8(bytes.into()).map_err(|_| ProxyError::NotUtf8)?);
        }
        Ok((request, RequestBody::Visible))
    }
}

/// The span of the call to Docker (until its response headers; a streamed body is not in it).
fn upstream_span() -> tracing::Span {
    tracing::info_span!(
        "upstream",
        otel.name = "docker.upstream",
        otel.kind = "client"
    )
}

/// The client's request, unchanged but for hop-by-hop headers.
fn pass_through(request: Request<Incoming>, upgrade: bool) -> Request<ProxyBody> {
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers, upgrade);
    Request::from_parts(parts, body.boxed())
}

/// The request the pre-hooks produced, with the client's other headers.
fn rebuild_request(
    mut parts: Parts,
    modified: &ClientRequest,
    body: RequestBody,
    upgrade: bool,
) -> Request<ProxyBody> {
    strip_hop_by_hop(&mut parts.headers, upgrade);
    // The chain checked that both parse.
    parts.method = modified.method.parse().expect("checked by the chain");
    parts.uri = modified.request.parse().expect("checked by the chain");
    let body = match body {
        RequestBody::Opaque(stream) => stream.boxed(),
        RequestBody::Visible => {
            let bytes = Bytes::from(modified.body.clone().unwrap_or_default());
            parts
                .headers
                .insert(header::CONTENT_LENGTH, bytes.len().into());
            full(bytes)
        }
    };
    Request::from_parts(parts, body)
}

/// Buffers Docker's response, runs the post-hooks over it, and builds what the client gets.
async fn run_post_hooks(
    hooks: &Hooks,
    original: &ClientRequest,
    response: Response<Incoming>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (mut parts, body) = response.into_parts();
    let bytes = Limited::new(body, MAX_POST_HOOK_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(
            |error| match error.downcast::<http_body_util::LengthLimitError>() {
                Ok(_) => ProxyError::ResponseTooLarge {
                    limit: MAX_POST_HOOK_RESPONSE_BYTES,
                },
                Err(other) => ProxyError::UpstreamBody(other.to_string()),
            },
        )?
        .to_bytes();
    let text = std::str::from_utf8(&bytes).ok().map(str::to_owned);
    let shown = text.is_some();
    let server_response = ServerResponse {
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: text,
        code: parts.status.as_u16(),
    };
    let result = chain::run_post(&hooks.post, original, server_response).await?;
    strip_hop_by_hop(&mut parts.headers, false);
    parts.headers.remove(header::CONTENT_TYPE);
    parts.status = StatusCode::from_u16(result.code).expect("checked by the chain");
    if let Some(content_type) = &result.content_type {
        let value = HeaderValue::from_str(content_type).expect("checked by the chain");
        parts.headers.insert(header::CONTENT_TYPE, value);
    }
    // A body the adapters could not see stays as it was unless one of them replaced it.
    let body = match result.body {
        Some(text) => Bytes::from(text),
        None if shown => Bytes::new(),
        None => bytes,
    };
    parts
        .headers
        .insert(header::CONTENT_LENGTH, body.len().into());
    Ok(Response::from_parts(parts, full(body)))
}

/// Docker's response, streamed to the client as it arrives.
pub fn stream(response: Response<Incoming>) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    Response::from_parts(parts, body.boxed())
}

/// Removes hop-by-hop headers; an upgrade keeps `Connection` and `Upgrade`, which are
/// what ask the daemon to switch protocols.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most messages have none: one pass over the few names there are, instead of a removal
    // (a hash and a probe) per hop-by-hop name.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    for name in HOP_BY_HOP {
        if upgrade && (name == header::CONNECTION || name == header::UPGRADE) {
            continue;
        }
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

fn is_hop_by_hop(name: &header::HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || name == "keep-alive" || name == "proxy-connection"
}

/// Whether the client asks to switch protocols (`Connection: Upgrade` and an `Upgrade`).
fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// `application/json`, with or without parameters; a body with no type is treated as JSON
/// too (the Docker CLI always labels its JSON, other clients do not).
fn is_json(headers: &HeaderMap) -> bool {
    match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        None => true,
        Some(value) => {
            let essence = value.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn upgrade_needs_both_headers() {
        assert!(is_upgrade(&headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "tcp")
        ])));
        assert!(is_upgrade(&headers(&[
            ("connection", "keep-alive, upgrade"),
            ("upgrade", "h2c")
        ])));
        assert!(!is_upgrade(&headers(&[("upgrade", "tcp")])));
        assert!(!is_upgrade(&headers(&[("connection", "close")])));
    }

    #[test]
    fn json_detection() {
        assert!(is_json(&headers(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        assert!(is_json(&headers(&[])));
        assert!(!is_json(&headers(&[("content-type", "application/x-tar")])));
    }

    #[test]
    fn upgrades_keep_their_connection_headers() {
        let mut h = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "tcp"),
            ("te", "trailers"),
        ]);
        strip_hop_by_hop(&mut h, true);
        assert!(h.contains_key("connection") && h.contains_key("upgrade") && !h.contains_key("te"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty());
    }
}
