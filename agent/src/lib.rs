//! The per-host agent.
//!
//! Modules so far:
//! - [`storage`]: the [`storage::Storage`] trait with its ZFS ([`storage::ZfsStorage`]) and
//!   plain-directory ([`storage::DirStorage`]) backends, the typed volume and snapshot names
//!   and the streams that carry snapshots between hosts.
//! - [`network`]: the cross-host overlay (bridge `weave` + VXLAN, peers) and attaching a
//!   container to it (veth, `ethwe`, addresses, gratuitous ARP) through netlink;
//!   [`network::netns`] is the one place that switches network namespaces.
//! - [`wait_net`]: the logic of the `wait-for-net` binary (wait for `ethwe`, then exec).
//!
//! Binaries: `wait-for-net` (and `flocker-agent`, once it joins the cluster).

#![forbid(unsafe_code)]

pub mod network;
pub mod storage;
pub mod wait_net;
