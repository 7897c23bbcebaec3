//! The agent's Prometheus metrics, served on `--metrics-listen` (`GET /metrics`, plain
//! HTTP, off unless set; [`foundation::metrics::serve`]). One set per process, counted where
//! the work happens: heartbeats, snapshots received, leases, attaches, volumes moved here
//! ahead of their container's start, whether it is fenced; and its Docker proxy's
//! ([`proxy::metrics`]).

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

/// The agent's series.
pub struct AgentMetrics {
    registry: Registry,
    heartbeats: Family<Labels, Counter>,
    snapshots_received: Counter,
    received_bytes: Counter,
    leases: Family<Labels, Counter>,
    attach_seconds: Histogram,
    warm_ups: Counter,
    fenced: Gauge,
}

/// This process's metrics.
pub static METRICS: LazyLock<AgentMetrics> = LazyLock::new(AgentMetrics::new);

impl AgentMetrics {
    fn new() -> AgentMetrics {
        let mut registry = Registry::with_prefix("flocker_agent");
        let m = AgentMetrics {
            registry: Registry::default(),
            heartbeats: Family::default(),
            snapshots_received: Counter::default(),
            received_bytes: Counter::default(),
            leases: Family::default(),
            attach_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            warm_ups: Counter::default(),
            fenced: Gauge::default(),
        };
        let r = &mut registry;
        r.register(
            "heartbeats",
            "Heartbeats sent to the control service, by result (ok, failed)",
            m.heartbeats.clone(),
        );
        r.register(
            "snapshots_received",
            "Snapshot streams received (volume moves and replicas)",
            m.snapshots_received.clone(),
        );
        r.register(
            "received_bytes",
            "Bytes of snapshot streams received",
            m.received_bytes.clone(),
        );
        r.register(
            "leases",
            "Leases taken and released for this host's containers, by action",
            m.leases.clone(),
        );
        r.register(
            "attach_seconds",
            "Time to give a container its ethwe: inspect, addresses, attach",
            m.attach_seconds.clone(),
        );
        r.register(
            "warm_ups",
            "Volume moves started here ahead of a container's start (its create event)",
            m.warm_ups.clone(),
        );
        r.register(
            "fenced",
            "1 while this agent is fenced: the control service has not answered its heartbeats for --fence-after, so the volumes owned here are read-only",
            m.fenced.clone(),
        );
        // Every label value from the start, at 0, so that a rate is defined before the
        // first event.
        for result in ["ok", "failed"] {
            let _ = m.heartbeats.get_or_create(&vec![("result", result)]);
        }
        for action in ["taken", "released"] {
            let _ = m.leases.get_or_create(&vec![("action", action)]);
        }
        // The Docker proxy's series (`flocker_agent_proxy_*`): requests, hooks.
        proxy::metrics::METRICS.register(&mut registry);
        AgentMetrics { registry, ..m }
    }

    /// One heartbeat sent, answered or not.
    pub fn heartbeat(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.heartbeats
            .get_or_create(&vec![("result", result)])
            .inc();
    }

    /// One snapshot stream of `bytes` received.
    pub fn snapshot_received(&self, bytes: u64) {
        self.snapshots_received.inc();
        self.received_bytes.inc_by(bytes);
    }

    /// A lease taken (`true`) or released.
    pub fn lease(&self, taken: bool) {
        let action = if taken { "taken" } else { "released" };
        self.leases.get_or_create(&vec![("action", action)]).inc();
    }

    /// A container given its `ethwe` in `elapsed`.
    pub fn attached(&self, elapsed: Duration) {
        self.attach_seconds.observe(elapsed.as_secs_f64());
    }

    /// The fence closed (`true`) or lifted ([`crate::fencing`]).
    pub fn fenced(&self, fenced: bool) {
        self.fenced.set(i64::from(fenced));
    }

    /// A volume move started ahead of a container's start.
    pub fn warmed_up(&self) {
        self.warm_ups.inc();
    }

    /// The page, in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_series_with_its_help_and_counts() {
        let m = AgentMetrics::new();
        m.heartbeat(true);
        m.heartbeat(true);
        m.heartbeat(false);
        m.snapshot_received(1000);
        m.lease(true);
        m.attached(Duration::from_millis(30));
        let page = m.render();
        for line in [
            "flocker_agent_heartbeats_total{result=\"ok\"} 2",
            "flocker_agent_heartbeats_total{result=\"failed\"} 1",
            "flocker_agent_received_bytes_total 1000",
            "flocker_agent_leases_total{action=\"taken\"} 1",
            "flocker_agent_attach_seconds_count 1",
            "flocker_agent_warm_ups_total 0",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} in:\n{page}");
        }
        assert!(
            page.contains("# HELP flocker_agent_attach_seconds Time to give"),
            "{page}"
        );
    }
}
