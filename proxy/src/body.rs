//! The body type that flows through the proxy in both directions, and Docker-style errors.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};

/// A request or response body: Docker's or the client's stream, or bytes the proxy built.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// A body with these bytes.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A response in Docker's own error format, `{"message": "..."}`, which every Docker
/// client prints as "Error response from daemon: ...".
pub fn docker_error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({ "message": message }).to_string();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(full(body))
        .expect("static status and headers")
}
