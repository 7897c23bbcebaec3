//! The proxy's Prometheus series: requests and their latency by endpoint, hook calls and
//! their latency by adapter, hook failures by the adapter's failure policy. One set per
//! process ([`METRICS`]); a daemon serves them on its `--metrics-listen` page: `powerstrip`
//! alone, or the agent among its own (it registers them with [`ProxyMetrics::register`]).

use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Docker API resources an endpoint label names; any other first segment is `other`, so
/// that a client cannot make up series.
const RESOURCES: &[&str] = &[
    "_ping",
    "auth",
    "build",
    "commit",
    "configs",
    "containers",
    "distribution",
    "events",
    "exec",
    "grpc",
    "images",
    "info",
    "networks",
    "nodes",
    "plugins",
    "secrets",
    "services",
    "session",
    "swarm",
    "system",
    "tasks",
    "version",
    "volumes",
];

/// Methods an endpoint label names; any other is `OTHER`.
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "HEAD"];

/// The proxy's series.
pub struct ProxyMetrics {
    requests: Family<Labels, Counter>,
    request_seconds: Family<Labels, Histogram>,
    hook_seconds: Family<Labels, Histogram>,
    hook_failures: Family<Labels, Counter>,
    /// Every endpoint label's series, resolved from the families on first use, so that a
    /// request counts without allocating labels or looking them up.
    endpoints: Box<[EndpointSeries]>,
}

/// A request's endpoint label (`METHOD /resource`), from [`ProxyMetrics::endpoint`].
#[derive(Clone, Copy, Debug)]
pub struct Endpoint(usize);

/// One endpoint label's series: handles onto the families' own counters and histogram.
struct EndpointSeries {
    endpoint: String,
    seconds: OnceLock<Histogram>,
    /// By status class, `0xx` to `9xx`.
    classes: [OnceLock<Counter>; 10],
}

/// This process's proxy metrics.
pub static METRICS: LazyLock<ProxyMetrics> = LazyLock::new(ProxyMetrics::new);

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl ProxyMetrics {
    fn new() -> Self {
        Self {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency),
            hook_seconds: Family::new_with_constructor(latency),
            hook_failures: Family::default(),
            endpoints: (0..=METHODS.len())
                .flat_map(|method| (0..=RESOURCES.len()).map(move |resource| (method, resource)))
                .map(|(method, resource)| EndpointSeries {
                    endpoint: format!(
                        "{} /{}",
                        METHODS.get(method).unwrap_or(&"OTHER"),
                        RESOURCES.get(resource).unwrap_or(&"other")
                    ),
                    seconds: OnceLock::new(),
                    classes: Default::default(),
                })
                .collect(),
        }
    }

    /// Adds the series to `registry` (under its prefix, if any) as `proxy_*`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("proxy");
        r.register(
            "requests",
            "Docker API requests through the proxy, by endpoint (METHOD /resource) and status class",
            self.requests.clone(),
        );
        r.register(
            "request_seconds",
            "Time from a request's arrival to its response's head, by endpoint",
            self.request_seconds.clone(),
        );
        r.register(
            "hook_seconds",
            "Time of each hook call, by adapter and hook (pre, post)",
            self.hook_seconds.clone(),
        );
        r.register(
            "hook_failures",
            "Hook calls that failed, by adapter, hook and the adapter's policy (fail stops the request, ignore goes on)",
            self.hook_failures.clone(),
        );
    }

    /// A request to `method path` answered with `status` after `elapsed`.
    pub fn request(&self, method: &str, path: &str, status: u16, elapsed: Duration) {
        self.answered(self.endpoint(method, path), status, elapsed);
    }

    /// The endpoint label of a request to `method path`, resolved without allocating (for
    /// [`ProxyMetrics::answered`] once the response is known).
    pub fn endpoint(&self, method: &str, path: &str) -> Endpoint {
        Endpoint(endpoint_index(method, path))
    }

    /// A request to `endpoint` answered with `status` after `elapsed`.
    pub fn answered(&self, endpoint: Endpoint, status: u16, elapsed: Duration) {
        let series = &self.endpoints[endpoint.0];
        let class = usize::from(status / 100).min(9);
        series.classes[class]
            .get_or_init(|| {
                let labels = vec![
                    ("endpoint", series.endpoint.clone()),
                    ("status", format!("{class}xx")),
                ];
                self.requests.get_or_create(&labels).clone()
            })
            .inc();
        series
            .seconds
            .get_or_init(|| {
                let labels = vec![("endpoint", series.endpoint.clone())];
                self.request_seconds.get_or_create(&labels).clone()
            })
            .observe(elapsed.as_secs_f64());
    }

    /// One hook call of `adapter`, failed or not; `policy` is its `on_error`.
    pub fn hook(&self, adapter: &str, hook: &str, elapsed: Duration, failed: Option<&str>) {
        let labels = vec![("adapter", adapter.to_owned()), ("hook", hook.to_owned())];
        self.hook_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if let Some(policy) = failed {
            let mut labels = labels;
            labels.push(("policy", policy.to_owned()));
            self.hook_failures.get_or_create(&labels).inc();
        }
    }

    /// The proxy's series alone, in Prometheus' text format (`powerstrip --metrics-listen`).
    pub fn render(&self) -> String {
        let mut registry = Registry::with_prefix("powerstrip");
        self.register(&mut registry);
        let mut text = String::new();
        encode(&mut text, &registry).expect("writing to a String cannot fail");
        text
    }
}

/// Where the endpoint label `METHOD /resource` of a request is in
/// [`ProxyMetrics::endpoints`]: the resource is the path's first segment after any API
/// version, if it is a Docker resource, else `other`; the method, if it is not one of
/// [`METHODS`], is `OTHER`.
fn endpoint_index(method: &str, path: &str) -> usize {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let first = segments.next().unwrap_or_default();
    let resource = if crate::matcher::is_version(first) {
        segments.next().unwrap_or_default()
    } else {
        first
    };
    let resource = RESOURCES
        .iter()
        .position(|r| *r == resource)
        .unwrap_or(RESOURCES.len());
    let method = METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len());
    method * (RESOURCES.len() + 1) + resource
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_a_method_and_a_known_resource() {
        let metrics = ProxyMetrics::new();
        let endpoint = |method: &str, path: &str| {
            metrics.endpoints[endpoint_index(method, path)]
                .endpoint
                .clone()
        };
        assert_eq!(
            endpoint("POST", "/v1.41/containers/abc/start"),
            "POST /containers"
        );
        assert_eq!(endpoint("GET", "/_ping"), "GET /_ping");
        assert_eq!(endpoint("GET", "/v1.41/made/up/path"), "GET /other");
        assert_eq!(endpoint("PATCH", "/volumes"), "OTHER /volumes");
    }

    #[test]
    fn the_page_counts_requests_hooks_and_failures() {
        let m = ProxyMetrics::new();
        m.request(
            "POST",
            "/v1.41/containers/create",
            201,
            Duration::from_millis(3),
        );
        m.request(
            "POST",
            "/v1.41/containers/create",
            409,
            Duration::from_millis(1),
        );
        m.hook("flocker", "pre", Duration::from_millis(2), None);
        m.hook("weave", "pre", Duration::from_millis(2), Some("fail"));
        let page = m.render();
        for line in [
            "powerstrip_proxy_requests_total{endpoint=\"POST /containers\",status=\"2xx\"} 1",
            "powerstrip_proxy_requests_total{endpoint=\"POST /containers\",status=\"4xx\"} 1",
            "powerstrip_proxy_request_seconds_count{endpoint=\"POST /containers\"} 2",
            "powerstrip_proxy_hook_seconds_count{adapter=\"flocker\",hook=\"pre\"} 1",
            "powerstrip_proxy_hook_failures_total{adapter=\"weave\",hook=\"pre\",policy=\"fail\"} 1",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} in:\n{page}");
        }
    }
}
