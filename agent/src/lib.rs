//! The per-host agent: storage backends, snapshot transfer, network attach, the built-in
//! `flocker` and `weave` adapters for the proxy, the Docker volume plugin and the Docker
//! events watcher.
//!
//! Modules so far:
//! - [`wait_net`]: the logic of the `wait-for-net` binary (wait for `ethwe`, then exec).
//!
//! Binaries: `flocker-agent` and `wait-for-net`.

#![forbid(unsafe_code)]

pub mod wait_net;
