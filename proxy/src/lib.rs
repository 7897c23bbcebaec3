//! Powerstrip: a Docker API proxy that runs chains of adapters as pre-hooks (change the
//! request before Docker sees it) and post-hooks (change the response before the client
//! sees it), so that Docker extensions compose and every Docker client gets them.
//!
//! # Layout
//!
//! The request path reads top to bottom:
//!
//! - [`server`]: accept loops, connections, graceful shutdown;
//! - [`proxy`]: match -> pre chain -> forward -> post chain -> reply;
//! - [`matcher`]: `METHOD /path` patterns (`*` is one segment, a leading `*` the API version);
//! - [`chain`]: runs a list of adapters in order, each under its own timeout;
//! - [`adapter`]: the [`Adapter`](adapter::Adapter) trait, the HTTP client for external
//!   adapters ([`adapter::http`]), the built-in table ([`adapter::builtin`]) and `debug`;
//! - [`protocol`]: the Powerstrip v1 JSON that external adapters speak;
//! - [`upstream`]: Docker over its unix socket; [`hijack`]: `101` upgrades spliced both ways;
//! - [`streaming`]: endpoints that never complete, where post-hooks are refused.
//!
//! Around it: [`config`] (adapters.yml), [`listen`] and [`tls`] (where and how clients
//! connect), [`launch`] (options to a running proxy, SIGHUP reload), [`errors`] and
//! [`body`] (every failure as a Docker-style error), [`limits`] (every limit, named once).

#![forbid(unsafe_code)]

pub mod adapter;
pub mod body;
pub mod chain;
pub mod config;
pub mod errors;
pub mod hijack;
pub mod launch;
pub mod limits;
pub mod listen;
pub mod matcher;
pub mod metrics;
pub mod protocol;
pub mod proxy;
pub mod server;
pub mod streaming;
pub mod tls;
pub mod upstream;
