//! The per-host overlay: a Linux bridge (`weave`) with a VXLAN device as one of its ports.
//!
//! Containers' veths join the bridge; the VXLAN device carries their frames to the other
//! hosts in UDP (fixed VNI and port). Remote MACs are learned by the VXLAN device from the
//! traffic it receives; frames for unknown or broadcast MACs go to every peer through the
//! all-zeros FDB entries kept by [`super::peers`] (unicast flooding, no multicast needed).
//!
//! MTU: VXLAN over IPv4 adds 50 bytes (outer IPv4 20, UDP 8, VXLAN 8, inner Ethernet 14), so
//! the bridge, the VXLAN device and every container veth get the underlay's MTU minus 50.

use std::net::Ipv4Addr;

use netlink_packet_route::link::InfoKind;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVxlan};

use super::NetError;
use super::link;

/// Bytes VXLAN over IPv4 adds to each frame.
pub const VXLAN_OVERHEAD: u32 = 50;
/// The VXLAN network identifier every agent uses.
pub const DEFAULT_VNI: u32 = 5745;
/// The VXLAN UDP port (IANA's).
pub const DEFAULT_PORT: u16 = 4789;
/// The bridge name, as Weave's.
pub const DEFAULT_BRIDGE: &str = "weave";
/// The VXLAN device name.
pub const DEFAULT_VXLAN: &str = "vxlan-weave";
/// The smallest overlay MTU accepted (IPv4 needs 68; anything near it is a misconfiguration).
pub const MIN_MTU: u32 = 576;

/// How the overlay on this host is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayConfig {
    /// Bridge name (at most 15 bytes).
    pub bridge: String,
    /// VXLAN device name (at most 15 bytes).
    pub vxlan: String,
    /// VXLAN network identifier, the same on every host.
    pub vni: u32,
    /// VXLAN UDP port, the same on every host.
    pub port: u16,
    /// The interface that carries the encapsulated traffic (the host's link to its peers).
    pub underlay: String,
    /// The source address for encapsulated packets, if it must be fixed.
    pub local: Option<Ipv4Addr>,
}

impl OverlayConfig {
    /// The defaults above, over `underlay`.
    pub fn new(underlay: impl Into<String>) -> Self {
        Self {
            bridge: DEFAULT_BRIDGE.into(),
            vxlan: DEFAULT_VXLAN.into(),
            vni: DEFAULT_VNI,
            port: DEFAULT_PORT,
            underlay: underlay.into(),
            local: None,
        }
    }
}

/// The overlay as the kernel has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlay {
    /// Index of the bridge.
    pub bridge_index: u32,
    /// Index of the VXLAN device.
    pub vxlan_index: u32,
    /// The MTU of the bridge, the VXLAN device and the container veths.
    pub mtu: u32,
}

/// The overlay MTU for an underlay MTU.
pub fn overlay_mtu(underlay: &str, underlay_mtu: u32) -> Result<u32, NetError> {
    match underlay_mtu.checked_sub(VXLAN_OVERHEAD) {
        Some(mtu) if mtu >= MIN_MTU => Ok(mtu),
        _ => Err(NetError::MtuTooSmall {
            iface: underlay.to_owned(),
            mtu: underlay_mtu,
        }),
    }
}

/// Make sure the bridge and the VXLAN device exist, joined, with the right MTU, up.
/// Idempotent: existing devices are kept (their kind is checked) and brought in line.
pub async fn ensure(handle: &Handle, cfg: &OverlayConfig) -> Result<Overlay, NetError> {
    let underlay = link::require(handle, &cfg.underlay, "underlay").await?;
    let mtu = overlay_mtu(&cfg.underlay, link::mtu(&underlay).unwrap_or(0))?;

    let bridge = match link::find(handle, &cfg.bridge).await? {
        Some(b) => b,
        None => {
            let msg = LinkBridge::new(&cfg.bridge).mtu(mtu).build();
            create(handle, msg, &cfg.bridge).await?;
            link::require(handle, &cfg.bridge, "bridge").await?
        }
    };
    check_kind(&bridge, &cfg.bridge, InfoKind::Bridge)?;
    let bridge_index = bridge.header.index;

    let vxlan = match link::find(handle, &cfg.vxlan).await? {
        Some(v) => v,
        None => {
            let mut builder = LinkVxlan::new(&cfg.vxlan, cfg.vni)
                .dev(underlay.header.index)
                .port(cfg.port)
                .learning(true)
                .mtu(mtu);
            if let Some(local) = cfg.local {
                builder = builder.local(local);
            }
            create(handle, builder.build(), &cfg.vxlan).await?;
            link::require(handle, &cfg.vxlan, "vxlan device").await?
        }
    };
    check_kind(&vxlan, &cfg.vxlan, InfoKind::Vxlan)?;
    let vxlan_index = vxlan.header.index;

    let msg = LinkUnspec::new_with_index(bridge_index)
        .mtu(mtu)
        .up()
        .build();
    link::set(handle, msg, "configure bridge", &cfg.bridge).await?;
    let msg = LinkUnspec::new_with_index(vxlan_index)
        .mtu(mtu)
        .controller(bridge_index)
        .up()
        .build();
    link::set(handle, msg, "join to the bridge", &cfg.vxlan).await?;
    Ok(Overlay {
        bridge_index,
        vxlan_index,
        mtu,
    })
}

/// The overlay if it exists (for attach, which does not build it).
pub async fn current(handle: &Handle, cfg: &OverlayConfig) -> Result<Overlay, NetError> {
    let bridge =
        link::require(handle, &cfg.bridge, "overlay bridge (ensure_overlay first)").await?;
    let vxlan = link::require(handle, &cfg.vxlan, "overlay vxlan (ensure_overlay first)").await?;
    Ok(Overlay {
        bridge_index: bridge.header.index,
        vxlan_index: vxlan.header.index,
        mtu: link::mtu(&bridge).unwrap_or(1500),
    })
}

async fn create(
    handle: &Handle,
    msg: netlink_packet_route::link::LinkMessage,
    name: &str,
) -> Result<(), NetError> {
    match handle.link().add(msg).execute().await {
        // Another caller made it between our look-up and now: fine.
        Err(e) if link::errno(&e) == Some(link::EEXIST) => Ok(()),
        other => other.map_err(link::nl_err("create", name)),
    }
}

fn check_kind(
    msg: &netlink_packet_route::link::LinkMessage,
    name: &str,
    want: InfoKind,
) -> Result<(), NetError> {
    match link::kind(msg) {
        Some(k) if *k == want => Ok(()),
        other => Err(NetError::WrongKind {
            iface: name.to_owned(),
            found: other.map_or("device of unknown kind".into(), |k| k.to_string()),
            want: want.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtu_leaves_room_for_vxlan() {
        assert_eq!(overlay_mtu("eth0", 1500).unwrap(), 1450);
        assert_eq!(overlay_mtu("eth0", 9001).unwrap(), 8951);
        assert!(overlay_mtu("eth0", 600).is_err());
        assert!(overlay_mtu("eth0", 0).is_err());
    }

    #[test]
    fn default_names_fit_ifnamsiz() {
        let cfg = OverlayConfig::new("eth0");
        assert!(cfg.bridge.len() <= 15 && cfg.vxlan.len() <= 15);
    }
}
