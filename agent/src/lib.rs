//! The per-host agent: storage backends, snapshot transfer, network attach, the built-in
//! `flocker` and `weave` adapters for the proxy, the Docker volume plugin and the Docker
//! events watcher.
//!
//! Binaries: `flocker-agent` and `wait-for-net`.
