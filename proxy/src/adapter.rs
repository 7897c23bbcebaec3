//! Adapters: what a hook calls. One trait for both kinds, so the chain does not care whether
//! an adapter runs in this process ([`builtin`]) or behind an HTTP URL ([`http`]).

pub mod builtin;
pub mod debug;
pub mod http;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use ::http::StatusCode;

use crate::protocol::{ClientRequest, ServerResponse};

/// A boxed future returned by adapter methods (the trait must stay object-safe).
pub type HookFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, AdapterError>> + Send + 'a>>;

/// An extension that sees, and may change, Docker API requests and responses.
///
/// Built-in adapters (the agent's `flocker` and `weave`, this crate's `debug`) implement it
/// directly; external adapters are reached through [`http::HttpAdapter`].
pub trait Adapter: Send + Sync {
    /// Runs before Docker sees the request; returns the request to pass on.
    fn pre_hook<'a>(&'a self, request: ClientRequest) -> HookFuture<'a, ClientRequest>;

    /// Runs after Docker answered; `request` is the client's original request. By default
    /// the response passes unchanged (for adapters that hook only requests).
    fn post_hook<'a>(
        &'a self,
        request: &'a ClientRequest,
        response: ServerResponse,
    ) -> HookFuture<'a, ServerResponse> {
        let _ = request;
        Box::pin(async move { Ok(response) })
    }
}

/// Why an adapter did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The adapter could not be reached (refused connection, unknown host).
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The adapter's URL.
        url: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The adapter did not answer within its timeout.
    #[error("no answer within {0:?} (raise its `timeout` in adapters.yml if it needs longer)")]
    Timeout(Duration),
    /// The adapter answered with a non-2xx status.
    #[error("it answered {status}: {excerpt}")]
    Status {
        /// The adapter's status.
        status: StatusCode,
        /// The start of its body, for the operator.
        excerpt: String,
    },
    /// The adapter's answer is not a Powerstrip v1 reply.
    #[error("its reply is not a Powerstrip v1 {expected}: {reason}")]
    BadReply {
        /// What was expected (`ModifiedClientRequest` or `ModifiedServerResponse`).
        expected: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// A built-in adapter refused the request; `message` goes to the Docker client as is.
    #[error("{message}")]
    Refused {
        /// The status the Docker client gets, e.g. 400 for a bad volume name.
        status: StatusCode,
        /// A message that says what failed and what to do.
        message: String,
    },
}

impl AdapterError {
    /// A refusal with the given status and message, for built-in adapters.
    pub fn refused(status: StatusCode, message: impl Into<String>) -> Self {
        AdapterError::Refused {
            status,
            message: message.into(),
        }
    }

    /// A short label for traces and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            AdapterError::Unreachable { .. } => "unreachable",
            AdapterError::Timeout(_) => "timeout",
            AdapterError::Status { .. } => "status",
            AdapterError::BadReply { .. } => "bad_reply",
            AdapterError::Refused { .. } => "refused",
        }
    }
}
