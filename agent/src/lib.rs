//! The per-host agent. So far it holds the storage backends of portable volumes:
//!
//! - [`storage`]: the [`storage::Storage`] trait with its ZFS ([`storage::ZfsStorage`]) and
//!   plain-directory ([`storage::DirStorage`]) backends, the typed volume and snapshot names
//!   and the streams that carry snapshots between hosts.
//!
//! Still to come here (see docs/volumes.md): snapshot transfer between agents, network
//! attach, the built-in `flocker` and `weave` adapters, the Docker volume plugin, the Docker
//! events watcher and the binaries `flocker-agent` and `wait-for-net`.

#![forbid(unsafe_code)]

pub mod storage;
