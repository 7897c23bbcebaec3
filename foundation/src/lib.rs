//! What every crate of the cluster shares, so that each thing has one implementation:
//!
//! - [`names`]: volume, snapshot and node names, valid by construction;
//! - [`locks`]: one async lock per key (per volume), side by side across keys;
//! - [`retry`]: the pause between attempts, growing with jitter;
//! - [`logging`]: the daemons' log set-up (`--log-format text|json`, colour only on a
//!   terminal) and OpenTelemetry trace export (`--otlp-endpoint`);
//! - [`trace`]: W3C trace context in and out of requests (HTTP headers, gRPC metadata);
//! - [`yaml`]: YAML configuration files and their errors, naming the file and every problem;
//! - [`config`]: the daemons' settings from flags, `FLOCKER_*` variables and a YAML file;
//! - [`notify`]: readiness for systemd (`Type=notify`);
//! - [`http`]: the small plain HTTP/1 server of the daemons' local pages;
//! - [`metrics`]: serving a daemon's Prometheus page on `GET /metrics`;
//! - [`shutdown`]: waiting for SIGTERM or SIGINT, and the supervisor that stops a daemon's
//!   tasks (cancel, drain within a grace, abandon the rest);
//! - [`exit`]: the exit codes the binaries share.

pub mod config;
pub mod exit;
pub mod http;
pub mod locks;
pub mod logging;
pub mod metrics;
pub mod names;
pub mod notify;
pub mod retry;
pub mod shutdown;
pub mod trace;
pub mod yaml;
