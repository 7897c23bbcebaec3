//! Small netlink helpers shared by the overlay and attach code: look a link up by name,
//! read its attributes, apply a change with an error that names the interface.

use futures_util::TryStreamExt;
use netlink_packet_route::link::{InfoKind, InfoPortData, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::Handle;

use super::NetError;

/// `ENODEV`, `EEXIST`, `ENOENT`, `EADDRNOTAVAIL` as netlink reports them (positive).
pub(super) const ENODEV: i32 = 19;
pub(super) const EADDRNOTAVAIL: i32 = 99;
pub(super) const EEXIST: i32 = 17;
pub(super) const ENOENT: i32 = 2;

/// The errno a netlink error carries, if it is a kernel NACK.
pub(super) fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| -c.get()),
        _ => None,
    }
}

/// Wrap a netlink error with what was being done to which interface.
pub(super) fn nl_err(op: &'static str, iface: &str) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let iface = iface.to_owned();
    move |source| NetError::Netlink {
        op,
        iface,
        source: Box::new(source),
    }
}

/// The link called `name`, or `None` when there is none.
pub(super) async fn find(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, NetError> {
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
        Err(e) => Err(nl_err("look up", name)(e)),
    }
}

/// The link called `name`, or [`NetError::NotFound`].
pub(super) async fn require(
    handle: &Handle,
    name: &str,
    what: &'static str,
) -> Result<LinkMessage, NetError> {
    find(handle, name).await?.ok_or_else(|| NetError::NotFound {
        iface: name.to_owned(),
        what,
    })
}

/// Every link in the handle's namespace.
pub(super) async fn dump(handle: &Handle) -> Result<Vec<LinkMessage>, NetError> {
    handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(nl_err("list", "links"))
}

/// Apply a `RTM_SETLINK` change.
pub(super) async fn set(
    handle: &Handle,
    message: LinkMessage,
    op: &'static str,
    iface: &str,
) -> Result<(), NetError> {
    handle
        .link()
        .set(message)
        .execute()
        .await
        .map_err(nl_err(op, iface))
}

/// Delete a link by index.
pub(super) async fn delete(handle: &Handle, index: u32, iface: &str) -> Result<(), NetError> {
    match handle.link().del(index).execute().await {
        Err(e) if errno(&e) == Some(ENODEV) => Ok(()),
        other => other.map_err(nl_err("delete", iface)),
    }
}

/// The interface name.
pub(super) fn name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.as_str()),
        _ => None,
    })
}

/// The interface alias (`ip link set X alias ...`).
pub(super) fn alias(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(n) => Some(n.as_str()),
        _ => None,
    })
}

/// The MTU.
pub(super) fn mtu(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

/// The hardware address.
pub(super) fn mac(link: &LinkMessage) -> Option<Vec<u8>> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(m) => Some(m.clone()),
        _ => None,
    })
}

/// The index of the bridge (or other controller) the link is a port of.
pub(super) fn controller(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(c) => Some(*c),
        _ => None,
    })
}

fn infos(link: &LinkMessage) -> impl Iterator<Item = &LinkInfo> {
    link.attributes
        .iter()
        .filter_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => Some(infos.iter()),
            _ => None,
        })
        .flatten()
}

/// The link kind (`bridge`, `vxlan`, `veth`, ...).
pub(super) fn kind(link: &LinkMessage) -> Option<&InfoKind> {
    infos(link).find_map(|i| match i {
        LinkInfo::Kind(k) => Some(k),
        _ => None,
    })
}

/// The bridge port data of a link enslaved to a bridge.
pub(super) fn bridge_port(link: &LinkMessage) -> Option<&InfoPortData> {
    infos(link).find_map(|i| match i {
        LinkInfo::PortData(d @ InfoPortData::BridgePort(_)) => Some(d),
        _ => None,
    })
}
