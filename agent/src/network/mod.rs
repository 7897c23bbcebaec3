//! Network attach: the per-host overlay and containers' `ethwe` interfaces, through netlink.
//!
//! - [`overlay`]: bridge `weave` + VXLAN device, MTU (underlay minus 50).
//! - [`firewall`]: the iptables rule that lets bridged overlay traffic past dockerd's
//!   `FORWARD` policy.
//! - [`peers`]: the VXLAN flood list, one all-zeros FDB entry per peer host.
//! - [`peer_sync`]: keeps the peers equal to the other up nodes of the control service.
//! - [`attach`]: veth pair, `ethwe` in the container's netns, addresses, gratuitous ARP;
//!   detach; listing what the kernel has (for reconcile on agent start, see
//!   [`crate::weave::reconcile`]).
//! - [`netns`]: the only place that enters another network namespace.
//! - `link`: small netlink helpers.
//!
//! Addresses with their prefix length (`10.255.0.51/16`) are [`ipnet::Ipv4Net`]s.
//!
//! [`Network`] is the interface the rest of the agent uses (the weave adapter, reconcile);
//! [`NetlinkNetwork`] is the real implementation. Tests that prove the network run it in
//! real namespaces (`agent/tests/network.rs`).

pub mod attach;
pub mod firewall;
mod link;
pub mod netns;
pub mod overlay;
pub mod peer_sync;
pub mod peers;

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

pub use attach::{Attachment, CONTAINER_IFACE};
pub use netns::Netns;
pub use overlay::{Overlay, OverlayConfig};

use ipnet::Ipv4Net;
use rtnetlink::Handle;

/// What can go wrong while building the overlay or attaching a container.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A network namespace could not be entered (the process may have exited).
    #[error("cannot enter {netns}: {source}")]
    Netns {
        /// Which namespace.
        netns: String,
        /// Why.
        source: std::io::Error,
    },
    /// The kernel refused a link change.
    #[error("cannot {op} {iface}: {source}")]
    Netlink {
        /// What was being done.
        op: &'static str,
        /// The interface.
        iface: String,
        /// The netlink error.
        source: Box<rtnetlink::Error>,
    },
    /// An interface that must exist does not.
    #[error("{what} {iface} does not exist")]
    NotFound {
        /// The interface.
        iface: String,
        /// Its role.
        what: &'static str,
    },
    /// An interface of the overlay's name exists but is of another kind.
    #[error("{iface} is a {found}, expected a {want}: remove or rename it")]
    WrongKind {
        /// The interface.
        iface: String,
        /// Its kind.
        found: String,
        /// The kind needed.
        want: String,
    },
    /// The underlay MTU leaves no room for VXLAN.
    #[error("underlay {iface} has MTU {mtu}: too small for VXLAN (needs at least {})",
        overlay::MIN_MTU + overlay::VXLAN_OVERHEAD)]
    MtuTooSmall {
        /// The underlay interface.
        iface: String,
        /// Its MTU.
        mtu: u32,
    },
    /// A flood-list entry could not be changed.
    #[error("cannot {op} peer {peer} on {iface}: {source}")]
    Peer {
        /// `add` or `remove`.
        op: &'static str,
        /// The peer's underlay address.
        peer: IpAddr,
        /// The VXLAN device.
        iface: String,
        /// The netlink error.
        source: Box<rtnetlink::Error>,
    },
    /// An address could not be added to `ethwe`.
    #[error("cannot add {cidr} to ethwe of pid {pid}: {source}")]
    Address {
        /// The address.
        cidr: Ipv4Net,
        /// The container's PID.
        pid: u32,
        /// The netlink error.
        source: Box<rtnetlink::Error>,
    },
    /// A sysctl inside the container could not be set.
    #[error("cannot set {path} in the netns of pid {pid}: {source}")]
    Sysctl {
        /// The container's PID.
        pid: u32,
        /// The sysctl file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The host end never started forwarding on the bridge.
    #[error("bridge port {iface} not forwarding after {waited:?}")]
    PortNotForwarding {
        /// The host end.
        iface: String,
        /// How long was waited.
        waited: Duration,
    },
    /// The PID's host end exists and belongs to another container.
    #[error("pid {pid} already has {iface}, attached for container {container:?}")]
    AlreadyAttached {
        /// The PID.
        pid: u32,
        /// The host end.
        iface: String,
        /// The container it was attached for.
        container: String,
    },
    /// The iptables rule that lets overlay traffic through could not be checked or added.
    #[error("cannot let traffic within bridge {bridge} through iptables FORWARD: {detail}")]
    Firewall {
        /// The bridge.
        bridge: String,
        /// What failed.
        detail: String,
    },
    /// The request itself is invalid.
    #[error("bad attach request for pid {pid}: {reason}")]
    BadRequest {
        /// The PID.
        pid: u32,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The host effects the rest of the agent needs from the network.
pub trait Network: Send + Sync {
    /// Build (or check and repair) the bridge and the VXLAN device, and let traffic within
    /// the bridge through the firewall ([`firewall`]).
    fn ensure_overlay(&self) -> impl Future<Output = Result<Overlay, NetError>> + Send;
    /// Make the VXLAN flood list exactly `peers` (other hosts' underlay addresses).
    fn set_peers(&self, peers: &[IpAddr]) -> impl Future<Output = Result<(), NetError>> + Send;
    /// Give the container whose init is `pid` an `ethwe` with `cidrs` on the overlay.
    fn attach(
        &self,
        container: &str,
        pid: u32,
        cidrs: &[Ipv4Net],
    ) -> impl Future<Output = Result<Attachment, NetError>> + Send;
    /// Remove the container's `ethwe`; `false` if it had none.
    fn detach(&self, container: &str) -> impl Future<Output = Result<bool, NetError>> + Send;
    /// Remove the one pair [`Network::list_attached`] reported as `attachment` (a stale one:
    /// its container is gone or runs with another PID); `false` if it is gone already.
    fn detach_one(
        &self,
        attachment: &Attachment,
    ) -> impl Future<Output = Result<bool, NetError>> + Send;
    /// What the kernel has attached to the bridge now.
    fn list_attached(&self) -> impl Future<Output = Result<Vec<Attachment>, NetError>> + Send;
}

/// [`Network`] through rtnetlink, in the agent's namespace or in a given one.
#[derive(Clone)]
pub struct NetlinkNetwork {
    handle: Handle,
    /// The namespace worked in; `None` for the agent's own.
    netns: Option<Netns>,
    config: OverlayConfig,
}

impl NetlinkNetwork {
    /// Work in the agent's own network namespace. Needs a tokio runtime.
    pub fn new(config: OverlayConfig) -> Result<Self, NetError> {
        Ok(Self {
            handle: netns::connect_here()?,
            netns: None,
            config,
        })
    }

    /// Work in the namespace `host` (the lab's and the tests' "hosts").
    pub async fn new_in(host: &Netns, config: OverlayConfig) -> Result<Self, NetError> {
        Ok(Self {
            handle: netns::connect(host).await?,
            netns: Some(host.clone()),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OverlayConfig {
        &self.config
    }
}

impl Network for NetlinkNetwork {
    async fn ensure_overlay(&self) -> Result<Overlay, NetError> {
        let overlay = overlay::ensure(&self.handle, &self.config).await?;
        let bridge = self.config.bridge.clone();
        let allow = move || firewall::accept_bridged(&bridge);
        match &self.netns {
            Some(ns) => netns::run_in(ns, allow).await??,
            None => {
                tokio::task::spawn_blocking(allow)
                    .await
                    .map_err(|e| NetError::Firewall {
                        bridge: self.config.bridge.clone(),
                        detail: e.to_string(),
                    })??
            }
        }
        Ok(overlay)
    }

    async fn set_peers(&self, peers: &[IpAddr]) -> Result<(), NetError> {
        let o = overlay::current(&self.handle, &self.config).await?;
        peers::set(&self.handle, &self.config.vxlan, o.vxlan_index, peers).await
    }

    async fn attach(
        &self,
        container: &str,
        pid: u32,
        cidrs: &[Ipv4Net],
    ) -> Result<Attachment, NetError> {
        let o = overlay::current(&self.handle, &self.config).await?;
        attach::attach(&self.handle, &o, container, pid, cidrs).await
    }

    async fn detach(&self, container: &str) -> Result<bool, NetError> {
        attach::detach(&self.handle, container).await
    }

    async fn detach_one(&self, attachment: &Attachment) -> Result<bool, NetError> {
        attach::detach_one(&self.handle, attachment).await
    }

    async fn list_attached(&self) -> Result<Vec<Attachment>, NetError> {
        let o = overlay::current(&self.handle, &self.config).await?;
        attach::list(&self.handle, &o).await
    }
}

impl NetlinkNetwork {
    /// The peers currently in the VXLAN flood list.
    pub async fn peers(&self) -> Result<std::collections::BTreeSet<IpAddr>, NetError> {
        let o = overlay::current(&self.handle, &self.config).await?;
        peers::current(&self.handle, &self.config.vxlan, o.vxlan_index).await
    }
}
