//! Running a chain of hooks: each adapter's output feeds the next, in list order, each call
//! under its own timeout and traced in its own span.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tracing::{Instrument, field};

use crate::adapter::AdapterError;
use crate::config::{ConfiguredAdapter, OnError};
use crate::protocol::{ClientRequest, HookType, ServerResponse};

/// An adapter failed and its policy is `fail`.
#[derive(Debug, thiserror::Error)]
#[error("adapter '{adapter}' failed in its {}: {source}", hook.as_str())]
pub struct ChainError {
    /// The adapter's name.
    pub adapter: String,
    /// Which hook it was running.
    pub hook: HookType,
    /// What went wrong.
    #[source]
    pub source: AdapterError,
}

/// Runs the pre-hooks over `request` and returns the request to send to Docker.
pub async fn run_pre(
    adapters: &[Arc<ConfiguredAdapter>],
    mut request: ClientRequest,
) -> Result<ClientRequest, ChainError> {
    for adapter in adapters {
        let input = request.clone();
        let result = call(adapter, HookType::Pre, adapter.adapter.pre_hook(input))
            .await
            .and_then(|changed| check_request(&request, changed));
        match settle(adapter, HookType::Pre, result)? {
            Some(changed) => request = changed,
            None => continue,
        }
    }
    Ok(request)
}

/// Runs the post-hooks over `response`; `request` is the client's original request.
pub async fn run_post(
    adapters: &[Arc<ConfiguredAdapter>],
    request: &ClientRequest,
    mut response: ServerResponse,
) -> Result<ServerResponse, ChainError> {
    for adapter in adapters {
        let input = response.clone();
        let result = call(
            adapter,
            HookType::Post,
            adapter.adapter.post_hook(request, input),
        )
        .await
        .and_then(check_response);
        if let Some(changed) = settle(adapter, HookType::Post, result)? {
            response = changed;
        }
    }
    Ok(response)
}

/// One hook call with its timeout, in a span that records duration and outcome.
async fn call<T>(
    adapter: &ConfiguredAdapter,
    hook: HookType,
    future: impl Future<Output = Result<T, AdapterError>>,
) -> Result<T, AdapterError> {
    let span = tracing::info_span!(
        "hook",
        otel.name = %format!("{} {}", hook.as_str(), adapter.name),
        hook.adapter = %adapter.name,
        hook.type = hook.as_str(),
        hook.duration_ms = field::Empty,
        hook.outcome = field::Empty,
    );
    let started = Instant::now();
    let result = tokio::time::timeout(adapter.timeout, future)
        .instrument(span.clone())
        .await
        .unwrap_or(Err(AdapterError::Timeout(adapter.timeout)));
    let elapsed = started.elapsed();
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    let outcome = result.as_ref().map_or_else(AdapterError::kind, |_| "ok");
    let policy = match adapter.on_error {
        OnError::Fail => "fail",
        OnError::Ignore => "ignore",
    };
    let failed = result.is_err().then_some(policy);
    crate::metrics::METRICS.hook(&adapter.name, hook.as_str(), elapsed, failed);
    span.record("hook.duration_ms", duration_ms);
    span.record("hook.outcome", outcome);
    span.in_scope(|| tracing::debug!(hook.duration_ms = duration_ms, hook.outcome = %outcome, "hook call finished"));
    result
}

/// Applies the adapter's failure policy: `Some` to go on with the result, `None` to skip
/// the adapter, `Err` to stop the chain.
fn settle<T>(
    adapter: &ConfiguredAdapter,
    hook: HookType,
    result: Result<T, AdapterError>,
) -> Result<Option<T>, ChainError> {
    match (result, adapter.on_error) {
        (Ok(value), _) => Ok(Some(value)),
        (Err(error), OnError::Ignore) => {
            tracing::warn!(hook.adapter = %adapter.name, hook.type = hook.as_str(), %error,
                "adapter failed; on_error is ignore, so the chain goes on without it");
            Ok(None)
        }
        (Err(source), OnError::Fail) => Err(ChainError {
            adapter: adapter.name.clone(),
            hook,
            source,
        }),
    }
}

/// Adapters may change the method, the query string and the body, never the path: the
/// endpoint was matched, and its streaming behaviour chosen, from the path.
fn check_request(
    before: &ClientRequest,
    after: ClientRequest,
) -> Result<ClientRequest, AdapterError> {
    let bad = |reason: String| AdapterError::BadReply {
        expected: "ModifiedClientRequest",
        reason,
    };
    if after.path() != before.path() {
        return Err(bad(format!(
            "it changed the path from '{}' to '{}'; adapters may change only the query string",
            before.path(),
            after.path()
        )));
    }
    if after.method.parse::<http::Method>().is_err() {
        return Err(bad(format!("'{}' is not an HTTP method", after.method)));
    }
    if after.request.parse::<http::uri::PathAndQuery>().is_err() {
        return Err(bad(format!("'{}' is not a request URI", after.request)));
    }
    Ok(after)
}

fn check_response(response: ServerResponse) -> Result<ServerResponse, AdapterError> {
    if !(200..=599).contains(&response.code) {
        return Err(AdapterError::BadReply {
            expected: "ModifiedServerResponse",
            reason: format!(
                "Code {} is not a final HTTP status (200-599)",
                response.code
            ),
        });
    }
    if let Some(content_type) = &response.content_type
        && http::HeaderValue::from_str(content_type).is_err()
    {
        return Err(AdapterError::BadReply {
            expected: "ModifiedServerResponse",
            reason: format!("ContentType {content_type:?} is not a valid header value"),
        });
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapter::{Adapter, HookFuture};
    use http::StatusCode;
    use std::time::Duration;

    /// Appends its tag to the body, or fails / sleeps as told.
    struct Tagger {
        tag: &'static str,
        behaviour: Behaviour,
    }

    enum Behaviour {
        Append,
        Refuse,
        Sleep,
        ChangePath,
    }

    impl Adapter for Tagger {
        fn pre_hook<'a>(&'a self, mut request: ClientRequest) -> HookFuture<'a, ClientRequest> {
            Box::pin(async move {
                match self.behaviour {
                    Behaviour::Append => {
                        request.body = Some(request.body.unwrap_or_default() + self.tag);
                        Ok(request)
                    }
                    Behaviour::Refuse => Err(AdapterError::refused(StatusCode::BAD_REQUEST, "no")),
                    Behaviour::Sleep => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        Ok(request)
                    }
                    Behaviour::ChangePath => {
                        request.request = "/v1.41/images/json".into();
                        Ok(request)
                    }
                }
            })
        }

        fn post_hook<'a>(
            &'a self,
            _request: &'a ClientRequest,
            mut response: ServerResponse,
        ) -> HookFuture<'a, ServerResponse> {
            Box::pin(async move {
                response.body = Some(response.body.unwrap_or_default() + self.tag);
                response.code = 299;
                Ok(response)
            })
        }
    }

    fn adapter(
        tag: &'static str,
        behaviour: Behaviour,
        on_error: OnError,
    ) -> Arc<ConfiguredAdapter> {
        Arc::new(ConfiguredAdapter {
            name: tag.into(),
            adapter: Arc::new(Tagger { tag, behaviour }),
            timeout: Duration::from_millis(50),
            on_error,
        })
    }

    fn request() -> ClientRequest {
        ClientRequest {
            method: "POST".into(),
            request: "/v1.41/containers/create?name=x".into(),
            body: Some(String::new()),
        }
    }

    #[tokio::test]
    async fn adapters_run_in_order_each_seeing_the_last_output() {
        let chain = [
            adapter("a", Behaviour::Append, OnError::Fail),
            adapter("b", Behaviour::Append, OnError::Fail),
        ];
        let out = run_pre(&chain, request()).await.unwrap();
        assert_eq!(out.body.as_deref(), Some("ab"));
        let response = ServerResponse {
            content_type: None,
            body: Some(String::new()),
            code: 200,
        };
        let out = run_post(&chain, &request(), response).await.unwrap();
        assert_eq!((out.body.as_deref(), out.code), (Some("ab"), 299));
    }

    #[tokio::test]
    async fn a_failing_adapter_stops_the_chain_unless_ignored() {
        let chain = [
            adapter("a", Behaviour::Append, OnError::Fail),
            adapter("bad", Behaviour::Refuse, OnError::Fail),
            adapter("c", Behaviour::Append, OnError::Fail),
        ];
        let error = run_pre(&chain, request()).await.unwrap_err();
        assert_eq!(error.adapter, "bad");
        let chain = [
            adapter("a", Behaviour::Append, OnError::Fail),
            adapter("bad", Behaviour::Refuse, OnError::Ignore),
            adapter("c", Behaviour::Append, OnError::Fail),
        ];
        assert_eq!(
            run_pre(&chain, request()).await.unwrap().body.as_deref(),
            Some("ac")
        );
    }

    #[tokio::test]
    async fn a_slow_adapter_times_out() {
        let chain = [adapter("slow", Behaviour::Sleep, OnError::Fail)];
        let error = run_pre(&chain, request()).await.unwrap_err();
        assert!(matches!(error.source, AdapterError::Timeout(_)), "{error}");
        assert!(
            error
                .to_string()
                .contains("adapter 'slow' failed in its pre-hook")
        );
    }

    #[tokio::test]
    async fn changing_the_path_is_refused() {
        let chain = [adapter("sneaky", Behaviour::ChangePath, OnError::Fail)];
        let error = run_pre(&chain, request()).await.unwrap_err();
        assert!(
            error
                .to_string()
                .contains("may change only the query string"),
            "{error}"
        );
    }
}
