//! The per-host agent: storage backends, snapshot transfer, network attach, the built-in
//! `flocker` and `weave` adapters for the proxy, the Docker volume plugin and the Docker
//! events watcher.
//!
//! Modules so far:
//! - [`docker`]: a small Docker Engine API client (inspect containers and images, a
//!   reconnecting stream of container events).
//! - [`wait_net`]: the logic of the `wait-for-net` binary (wait for `ethwe`, then exec).
//! - [`network`]: the cross-host overlay (bridge `weave` + VXLAN, peers) and attaching a
//!   container to it (veth, `ethwe`, addresses, gratuitous ARP) through netlink;
//!   [`network::netns`] is the one place that switches network namespaces.
//! - [`weave`]: `WEAVE_CIDR` parsing, the create-body rewrite, the address allocator trait
//!   (and its standalone mode), the built-in `weave` proxy adapter and the watcher that
//!   re-attaches containers Docker restarts by itself.
//!
//! Binaries: `flocker-agent` and `wait-for-net`.

#![forbid(unsafe_code)]

pub mod docker;
pub mod network;
pub mod wait_net;
pub mod weave;
