//! The per-host agent.
//!
//! - [`daemon`]: the composition root: the command line and its validation, the one
//!   storage backend and per-volume locks every part shares, and running every part
//!   under one shutdown design.
//! - [`config`]: the agent's validated configuration.
//! - [`cluster`]: the one session with the control service (a shared connection that fails
//!   over, one watch stream kept as the cluster view every part follows).
//! - [`membership`]: register and heartbeat, following the cluster view, reconnecting on failure.
//! - [`fencing`]: self-fencing: the volumes owned here go read-only while the control
//!   service does not answer the heartbeats, before another node may be given them.
//! - [`metrics`]: the agent's Prometheus series (`--metrics-listen`).
//! - [`docker`]: Docker behind [`docker::DockerApi`], exactly what the agent uses (inspect
//!   containers and images, list running containers, kill, stop, a reconnecting stream of
//!   container events): [`docker::Docker`] on bollard over dockerd's unix socket, and an
//!   in-memory fake for unit tests.
//! - [`storage`]: the [`storage::Storage`] trait with its ZFS ([`storage::ZfsStorage`]) and
//!   plain-directory ([`storage::DirStorage`]) backends, the typed volume and snapshot names
//!   and the streams that carry snapshots between hosts.
//! - [`network`]: the cross-host overlay (bridge `weave` + VXLAN, peers) and attaching a
//!   container to it (veth, `ethwe`, addresses, gratuitous ARP) through netlink;
//!   [`network::peer_sync`] keeps the overlay's peers equal to the cluster's up nodes;
//!   [`network::netns`] is the one place that switches network namespaces.
//! - [`weave`]: `WEAVE_CIDR` parsing, the create-body rewrite, the address allocator trait
//!   (its standalone mode, and `ControlAllocator` with the die/destroy follower for a
//!   cluster), the built-in `weave` proxy adapter and the watcher that
//!   re-attaches containers Docker restarts by itself.
//! - [`transfer`]: the Agent gRPC service: pushing a volume's snapshots to another agent,
//!   receiving them, fenced mounts, inventory; and following the volumes this node owns.
//! - [`flocker`]: the Docker side of portable volumes: the built-in `flocker` adapter
//!   (rewrites `/flocker/<name>` binds), leases from Docker events, the control service's
//!   volume and lease calls behind [`flocker::control::VolumeControl`], and running the agent's
//!   Docker proxy, plugin and watcher together ([`flocker::side`]).
//! - [`plugin`]: the Docker volume plugin (driver `flocker`) with persisted mount counts.
//!
//! Binary: `flocker-agent`. `wait-for-net`, which runs inside containers, is the crate in
//! `agent/wait-for-net/`, kept apart so its static build stays small.

#![forbid(unsafe_code)]

pub mod cluster;
pub mod config;
pub mod daemon;
pub mod docker;
pub mod fencing;
pub mod flocker;
pub mod locks;
pub mod membership;
pub mod metrics;
pub mod network;
pub mod plugin;
pub mod storage;
pub mod swarm;
pub mod transfer;
pub mod weave;

pub use config::AgentConfig;
pub use membership::run;
