//! Attaching a container to the overlay, detaching it, and listing what is attached.
//!
//! Attach, for a container whose init has PID `pid`:
//! 1. a veth pair `vwl<pid>` (host end) / `vwg<pid>` (temporary name) with the overlay MTU;
//! 2. the host end joins the bridge, gets the container id as its alias (so detach and
//!    reconcile find it by container), and goes up;
//! 3. the other end moves into the container's netns by PID and is renamed `ethwe` in the
//!    same request (so no `ethwe` ever exists on the host);
//! 4. inside the netns: `arp_notify` on, the addresses added, the link up;
//! 5. once the bridge port forwards, the kernel announces the addresses: `ethwe`'s hardware
//!    address is set (to itself), which with `arp_notify=1` makes the kernel send a
//!    gratuitous ARP per address. (The announcement the kernel makes when the link comes up
//!    in step 4 is lost: the bridge port only starts forwarding once the veth's carrier
//!    change has been processed, after that.)
//!
//! `wait-for-net` starts the command once `ethwe` is up with an address (step 4).
//! If a step fails, the pair is deleted again. A second attach of the same container
//! brings `ethwe`'s IPv4 addresses to exactly the given ones (removing others, adding the
//! missing ones) and announces again.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{BridgePortState, InfoBridgePort, InfoPortData};
use rtnetlink::{Handle, LinkUnspec, LinkVeth};

use super::netns::{self, Netns};
use super::overlay::Overlay;
use super::{NetError, link};

/// The interface name inside the container.
pub const CONTAINER_IFACE: &str = "ethwe";
/// How long the host end may take to start forwarding after the container end is up.
pub const PORT_FORWARDING_TIMEOUT: Duration = Duration::from_secs(2);
const HOST_PREFIX: &str = "vwl";
const PEER_PREFIX: &str = "vwg";

/// A container attached to the overlay, as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The container id given at attach (the host end's alias).
    pub container: String,
    /// The PID whose network namespace holds `ethwe`.
    pub pid: u32,
    /// The host end of the veth pair.
    pub host_iface: String,
    /// The IPv4 addresses on `ethwe`; empty when the namespace could not be entered.
    pub cidrs: Vec<Ipv4Net>,
}

/// The host end's name for a container PID (`vwl<pid>`, at most 10 bytes).
pub fn host_iface(pid: u32) -> String {
    format!("{HOST_PREFIX}{pid}")
}

/// The PID encoded in a host end's name.
pub fn pid_of_host_iface(name: &str) -> Option<u32> {
    name.strip_prefix(HOST_PREFIX)?.parse().ok()
}

/// Attach the container (`pid`) to the overlay with `cidrs`; see the module doc.
pub async fn attach(
    host: &Handle,
    overlay: &Overlay,
    container: &str,
    pid: u32,
    cidrs: &[Ipv4Net],
) -> Result<Attachment, NetError> {
    if container.is_empty() || cidrs.is_empty() {
        return Err(NetError::BadRequest {
            pid,
            reason: "attach needs a container id and at least one address",
        });
    }
    let host_name = host_iface(pid);
    if let Some(existing) = link::find(host, &host_name).await? {
        let owner = link::alias(&existing).unwrap_or_default();
        if owner != container {
            return Err(NetError::AlreadyAttached {
                pid,
                iface: host_name,
                container: owner.to_owned(),
            });
        }
        configure_inside(pid, cidrs).await?;
        announce(host, &host_name, pid).await?;
    } else {
        let host_index = create_pair(host, overlay, container, pid).await?;
        let result = async {
            configure_inside(pid, cidrs).await?;
            announce(host, &host_name, pid).await
        }
        .await;
        if let Err(e) = result {
            let _ = link::delete(host, host_index, &host_name).await;
            return Err(e);
        }
    }
    Ok(Attachment {
        container: container.to_owned(),
        pid,
        host_iface: host_name,
        cidrs: addresses_inside(pid).await?,
    })
}

/// Remove the container's interface; `false` when it had none (already gone).
pub async fn detach(host: &Handle, container: &str) -> Result<bool, NetError> {
    let mut found = false;
    for l in link::dump(host).await? {
        let name = link::name(&l).unwrap_or_default();
        if pid_of_host_iface(name).is_some() && link::alias(&l) == Some(container) {
            // Deleting one end of a veth pair deletes both.
            link::delete(host, l.header.index, name).await?;
            found = true;
        }
    }
    Ok(found)
}

/// Remove the one host end `attachment` names (as [`list`] found it), if it still carries
/// the same container id; `false` when it is gone already or now belongs to another.
pub async fn detach_one(host: &Handle, attachment: &Attachment) -> Result<bool, NetError> {
    let Some(l) = link::find(host, &attachment.host_iface).await? else {
        return Ok(false);
    };
    if link::alias(&l).unwrap_or_default() != attachment.container {
        return Ok(false);
    }
    link::delete(host, l.header.index, &attachment.host_iface).await?;
    Ok(true)
}

/// Every container attached to the bridge, with the addresses its `ethwe` really has.
pub async fn list(host: &Handle, overlay: &Overlay) -> Result<Vec<Attachment>, NetError> {
    let mut out = Vec::new();
    for l in link::dump(host).await? {
        let name = link::name(&l).unwrap_or_default();
        let Some(pid) = pid_of_host_iface(name) else {
            continue;
        };
        if link::controller(&l) != Some(overlay.bridge_index) {
            continue;
        }
        out.push(Attachment {
            container: link::alias(&l).unwrap_or_default().to_owned(),
            pid,
            host_iface: name.to_owned(),
            cidrs: addresses_inside(pid).await.unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Steps 1-3: the pair, the host end on the bridge, the peer moved and renamed.
async fn create_pair(
    host: &Handle,
    overlay: &Overlay,
    container: &str,
    pid: u32,
) -> Result<u32, NetError> {
    let host_name = host_iface(pid);
    let peer_name = format!("{PEER_PREFIX}{pid}");
    if let Some(stale) = link::find(host, &peer_name).await? {
        link::delete(host, stale.header.index, &peer_name).await?;
    }
    let veth = LinkVeth::new(&host_name, &peer_name)
        .mtu(overlay.mtu)
        .build();
    host.link()
        .add(veth)
        .execute()
        .await
        .map_err(link::nl_err("create veth", &host_name))?;
    let host_index = link::require(host, &host_name, "host end")
        .await?
        .header
        .index;
    let result = async {
        let peer = link::require(host, &peer_name, "veth peer").await?;
        let msg = LinkUnspec::new_with_index(host_index)
            .controller(overlay.bridge_index)
            .alias(container)
            .up()
            .build();
        link::set(host, msg, "join to the bridge", &host_name).await?;
        let msg = LinkUnspec::new_with_index(peer.header.index)
            .mtu(overlay.mtu)
            .name(CONTAINER_IFACE)
            .setns_by_pid(pid)
            .build();
        link::set(host, msg, "move into the container as ethwe", &peer_name).await
    }
    .await;
    match result {
        Ok(()) => Ok(host_index),
        Err(e) => {
            let _ = link::delete(host, host_index, &host_name).await;
            Err(e)
        }
    }
}

/// Step 4, inside the container's namespace: `ethwe` ends with exactly `cidrs`.
async fn configure_inside(pid: u32, cidrs: &[Ipv4Net]) -> Result<(), NetError> {
    let ns = Netns::Pid(pid);
    let inside = netns::connect(&ns).await?;
    let ethwe = link::require(&inside, CONTAINER_IFACE, "container interface").await?;
    let path = format!("/proc/sys/net/ipv4/conf/{CONTAINER_IFACE}/arp_notify");
    let sysctl_path = path.clone();
    netns::run_in(&ns, move || std::fs::write(sysctl_path, "1"))
        .await?
        .map_err(|source| NetError::Sysctl { pid, path, source })?;
    // Others first: removing a subnet's primary address also removes its secondaries.
    for (cidr, message) in address_messages(&inside, ethwe.header.index).await? {
        if !cidrs.contains(&cidr) {
            match inside.address().del(message).execute().await {
                Err(e) if link::errno(&e) == Some(link::EADDRNOTAVAIL) => {}
                other => {
                    other.map_err(link::nl_err("remove a stale address from", CONTAINER_IFACE))?
                }
            }
        }
    }
    for cidr in cidrs {
        let added = inside
            .address()
            .add(
                ethwe.header.index,
                IpAddr::V4(cidr.addr()),
                cidr.prefix_len(),
            )
            .execute()
            .await;
        match added {
            Err(e) if link::errno(&e) == Some(link::EEXIST) => {}
            other => other.map_err(|source| NetError::Address {
                cidr: *cidr,
                pid,
                source: Box::new(source),
            })?,
        }
    }
    let msg = LinkUnspec::new_with_index(ethwe.header.index).up().build();
    link::set(&inside, msg, "bring up", CONTAINER_IFACE).await
}

/// Step 5: wait for the bridge port to forward, then make the kernel send gratuitous ARPs.
async fn announce(host: &Handle, host_name: &str, pid: u32) -> Result<(), NetError> {
    let start = Instant::now();
    loop {
        let l = link::require(host, host_name, "host end").await?;
        let forwarding = matches!(link::bridge_port(&l), Some(InfoPortData::BridgePort(attrs))
            if attrs.contains(&InfoBridgePort::State(BridgePortState::Forwarding)));
        if forwarding {
            break;
        }
        if start.elapsed() > PORT_FORWARDING_TIMEOUT {
            return Err(NetError::PortNotForwarding {
                iface: host_name.to_owned(),
                waited: start.elapsed(),
            });
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let inside = netns::connect(&Netns::Pid(pid)).await?;
    let ethwe = link::require(&inside, CONTAINER_IFACE, "container interface").await?;
    let mac = link::mac(&ethwe).unwrap_or_default();
    let msg = LinkUnspec::new_with_index(ethwe.header.index)
        .address(mac)
        .build();
    link::set(&inside, msg, "announce (gratuitous ARP)", CONTAINER_IFACE).await
}

/// The IPv4 addresses on `ethwe` in the namespace of `pid`.
async fn addresses_inside(pid: u32) -> Result<Vec<Ipv4Net>, NetError> {
    let inside = netns::connect(&Netns::Pid(pid)).await?;
    let ethwe = link::require(&inside, CONTAINER_IFACE, "container interface").await?;
    let mut cidrs: Vec<Ipv4Net> = address_messages(&inside, ethwe.header.index)
        .await?
        .into_iter()
        .map(|(cidr, _)| cidr)
        .collect();
    cidrs.sort();
    Ok(cidrs)
}

/// The IPv4 addresses of link `index`, each with the message that deletes it.
async fn address_messages(
    inside: &Handle,
    index: u32,
) -> Result<Vec<(Ipv4Net, AddressMessage)>, NetError> {
    let messages: Vec<AddressMessage> = inside
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(link::nl_err("list addresses of", CONTAINER_IFACE))?;
    Ok(messages
        .into_iter()
        .filter_map(|m| {
            let addr = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(IpAddr::V4(v4)) => Some(*v4),
                _ => None,
            })?;
            Some((Ipv4Net::new(addr, m.header.prefix_len).ok()?, m))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_fit_and_round_trip() {
        let name = host_iface(4_194_304); // the largest pid_max
        assert!(name.len() <= 15, "{name}");
        assert_eq!(pid_of_host_iface(&name), Some(4_194_304));
        assert_eq!(pid_of_host_iface("vxlan-weave"), None);
        assert_eq!(pid_of_host_iface("vwlx"), None);
    }
}
