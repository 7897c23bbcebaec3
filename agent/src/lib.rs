//! The per-host agent.
//!
//! - [`config`]: the agent's validated configuration.
//! - [`control_client`]: connecting to any of several control members, with mutual TLS.
//! - [`membership`]: register, heartbeat and watch loops that reconnect on failure.
//! - [`storage`]: the [`storage::Storage`] trait with its ZFS ([`storage::ZfsStorage`]) and
//!   plain-directory ([`storage::DirStorage`]) backends, the typed volume and snapshot names
//!   and the streams that carry snapshots between hosts.
//! - [`network`]: the cross-host overlay (bridge `weave` + VXLAN, peers) and attaching a
//!   container to it (veth, `ethwe`, addresses, gratuitous ARP) through netlink;
//!   [`network::netns`] is the one place that switches network namespaces.
//! - [`transfer`]: the Agent gRPC service: pushing a volume's snapshots to another agent,
//!   receiving them, fenced mounts, inventory; and following the volumes this node owns.
//! - [`wait_net`]: the logic of the `wait-for-net` binary (wait for `ethwe`, then exec).
//!
//! Binaries: `flocker-agent` (joins the cluster) and `wait-for-net`.

#![forbid(unsafe_code)]

pub mod config;
pub mod control_client;
pub mod membership;
pub mod network;
pub mod storage;
pub mod transfer;
pub mod wait_net;

pub use config::AgentConfig;
pub use membership::run;
