//! Every way a proxied request can fail, and the one place each becomes a Docker-style
//! response.

use http::{Response, StatusCode};

use crate::adapter::AdapterError;
use crate::body::{ProxyBody, docker_error};
use crate::chain::ChainError;
use crate::upstream::UpstreamError;

/// A request the proxy could not complete.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// An adapter failed (and its policy is `fail`).
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// Docker could not be reached.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// A body that hooks must see is over the limit.
    #[error(
        "the request body is larger than the {limit} bytes that hooks may inspect; raise \
         powerstrip's --max-hook-body or narrow the endpoint pattern"
    )]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The client's body could not be read.
    #[error("reading the request body failed: {0}")]
    ClientBody(String),
    /// The client declared a JSON body that is not UTF-8.
    #[error("the request body is declared as JSON but is not valid UTF-8")]
    NotUtf8,
    /// Docker's response could not be read for the post-hooks.
    #[error("reading Docker's response for the post-hooks failed: {0}")]
    UpstreamBody(String),
    /// Docker's response is too large to buffer for post-hooks.
    #[error(
        "Docker's response is larger than the {limit} bytes that post-hooks may inspect; \
         move the hook off this endpoint"
    )]
    ResponseTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

impl ProxyError {
    /// The status the Docker client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Chain(error) => match &error.source {
                AdapterError::Refused { status, .. } => *status,
                AdapterError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
                AdapterError::Unreachable { .. }
                | AdapterError::Status { .. }
                | AdapterError::BadReply { .. } => StatusCode::BAD_GATEWAY,
            },
            ProxyError::Upstream(_)
            | ProxyError::UpstreamBody(_)
            | ProxyError::ResponseTooLarge { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::ClientBody(_) | ProxyError::NotUtf8 => StatusCode::BAD_REQUEST,
        }
    }

    /// The response the Docker client gets: the status and a `{"message": ...}` body.
    pub fn into_response(self) -> Response<ProxyBody> {
        let message = match &self {
            ProxyError::Chain(ChainError {
                adapter,
                source: AdapterError::Refused { message, .. },
                ..
            }) => format!("{message} (refused by adapter '{adapter}')"),
            other => other.to_string(),
        };
        docker_error(self.status(), &message)
    }
}

/// An error and its causes on one line ("connection refused" is usually a cause).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
