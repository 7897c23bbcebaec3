//! The VXLAN flood list: one all-zeros FDB entry per peer underlay address
//! (`bridge fdb append 00:00:00:00:00:00 dev vxlan-weave dst PEER self permanent`).
//!
//! Broadcast and unknown-unicast frames go to every entry; the VXLAN device learns where
//! each remote MAC lives from what it receives. [`set`] makes the list equal to the peers
//! the control service knows, adding and removing only the difference.
//!
//! rtnetlink 0.24 has no `append` for FDB entries (a second `add` on the all-zeros MAC
//! fails with `EEXIST`), so the request is built here with `NLM_F_APPEND`.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures_util::{StreamExt, TryStreamExt};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::RouteType;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::Handle;

use super::NetError;
use super::link;

const FLOOD_MAC: [u8; 6] = [0; 6];

/// The peers that must be added and removed to go from `current` to `wanted`.
pub fn diff(current: &BTreeSet<IpAddr>, wanted: &BTreeSet<IpAddr>) -> (Vec<IpAddr>, Vec<IpAddr>) {
    let add = wanted.difference(current).copied().collect();
    let remove = current.difference(wanted).copied().collect();
    (add, remove)
}

/// The peers in the flood list of the VXLAN device `vxlan_index`.
pub async fn current(
    handle: &Handle,
    vxlan: &str,
    vxlan_index: u32,
) -> Result<BTreeSet<IpAddr>, NetError> {
    let entries: Vec<NeighbourMessage> = handle
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Bridge)
        .execute()
        .try_collect()
        .await
        .map_err(link::nl_err("list the fdb of", vxlan))?;
    Ok(entries
        .iter()
        .filter(|m| m.header.ifindex == vxlan_index)
        .filter(|m| {
            m.attributes
                .iter()
                .any(|a| matches!(a, NeighbourAttribute::LinkLayerAddress(l) if l == &FLOOD_MAC))
        })
        .filter_map(|m| {
            m.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::Destination(d) => destination(d),
                _ => None,
            })
        })
        .collect())
}

/// Make the flood list of `vxlan` exactly `peers`.
pub async fn set(
    handle: &Handle,
    vxlan: &str,
    vxlan_index: u32,
    peers: &[IpAddr],
) -> Result<(), NetError> {
    let wanted: BTreeSet<IpAddr> = peers.iter().copied().collect();
    let current = current(handle, vxlan, vxlan_index).await?;
    let (add, remove) = diff(&current, &wanted);
    for peer in add {
        append(handle, vxlan, vxlan_index, peer).await?;
    }
    for peer in remove {
        let msg = flood_entry(vxlan_index, peer);
        match handle.neighbours().del(msg).execute().await {
            Err(e) if link::errno(&e) == Some(link::ENOENT) => {}
            other => other.map_err(|source| NetError::Peer {
                op: "remove",
                peer,
                iface: vxlan.to_owned(),
                source: Box::new(source),
            })?,
        }
    }
    Ok(())
}

async fn append(
    handle: &Handle,
    vxlan: &str,
    vxlan_index: u32,
    peer: IpAddr,
) -> Result<(), NetError> {
    let err = |source| NetError::Peer {
        op: "add",
        peer,
        iface: vxlan.to_owned(),
        source: Box::new(source),
    };
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewNeighbour(flood_entry(
        vxlan_index,
        peer,
    )));
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND;
    let mut responses = handle.clone().request(req).map_err(err)?;
    while let Some(msg) = responses.next().await {
        if let NetlinkPayload::Error(e) = msg.payload
            && e.code.is_some()
        {
            return Err(err(rtnetlink::Error::NetlinkError(e)));
        }
    }
    Ok(())
}

fn flood_entry(vxlan_index: u32, peer: IpAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = vxlan_index;
    msg.header.state = NeighbourState::Permanent;
    // NTF_SELF: the entry belongs to the VXLAN device itself, not to a bridge above it.
    msg.header.flags = NeighbourFlags::Own;
    msg.header.kind = RouteType::Unspec;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(FLOOD_MAC.to_vec()));
    msg.attributes
        .push(NeighbourAttribute::Destination(match peer {
            IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
            IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
        }));
    msg
}

/// In an `AF_BRIDGE` dump the destination comes back as raw bytes.
fn destination(d: &NeighbourAddress) -> Option<IpAddr> {
    match d {
        NeighbourAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        NeighbourAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        NeighbourAddress::Other(b) => match b.len() {
            4 => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
            16 => <[u8; 16]>::try_from(b.as_slice())
                .ok()
                .map(|a| IpAddr::V6(Ipv6Addr::from(a))),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_of(list: &[&str]) -> BTreeSet<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn diff_adds_and_removes_only_the_difference() {
        let current = set_of(&["10.0.0.1", "10.0.0.2"]);
        let wanted = set_of(&["10.0.0.2", "10.0.0.3"]);
        let (add, remove) = diff(&current, &wanted);
        assert_eq!(add, vec!["10.0.0.3".parse::<IpAddr>().unwrap()]);
        assert_eq!(remove, vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(diff(&wanted, &wanted), (vec![], vec![]));
    }

    #[test]
    fn raw_destinations_decode() {
        let v4 = NeighbourAddress::Other(vec![10, 1, 2, 3]);
        assert_eq!(destination(&v4), Some("10.1.2.3".parse().unwrap()));
        assert_eq!(destination(&NeighbourAddress::Other(vec![1, 2])), None);
    }
}
