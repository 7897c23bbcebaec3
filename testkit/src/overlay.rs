//! Two overlay "hosts" made small: network namespaces joined by a veth pair (the
//! underlay, 10.97.0.0/24), each with the agent's overlay built in it and the other as its
//! peer; "containers" are processes in a network namespace of their own started from
//! inside a host. Used by the agent's `tests/network.rs` and the network benchmark. Everything is
//! removed on drop, also on panic.

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agent::network::{NetlinkNetwork, Netns, Network, OverlayConfig};

use crate::netns::TestNetns;
use crate::{poll_until, run};

/// The underlay interface's name in each host.
pub const UNDERLAY: &str = "underlay";

/// A host: its namespace, its underlay address, the agent's network code working in it.
pub struct Host {
    /// The host's namespace.
    pub ns: TestNetns,
    /// Its underlay address.
    pub ip: Ipv4Addr,
    /// The agent's network code working in it.
    pub net: NetlinkNetwork,
}

/// Two hosts on one underlay link, each with the overlay built and the other as its peer.
pub async fn two_hosts() -> (Host, Host) {
    let ns1 = TestNetns::new("wnh");
    let ns2 = TestNetns::new("wnh");
    run(
        "ip",
        &[
            "link", "add", UNDERLAY, "netns", &ns1.name, "type", "veth", "peer", "name", UNDERLAY,
            "netns", &ns2.name,
        ],
    );
    let ip1 = Ipv4Addr::new(10, 97, 0, 1);
    let ip2 = Ipv4Addr::new(10, 97, 0, 2);
    let mut hosts = Vec::new();
    for (ns, ip) in [(ns1, ip1), (ns2, ip2)] {
        ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", UNDERLAY]);
        ns.ip(&["link", "set", UNDERLAY, "up"]);
        let net = NetlinkNetwork::new_in(&Netns::Path(ns.path()), OverlayConfig::new(UNDERLAY))
            .await
            .expect("connect to the host netns");
        net.ensure_overlay().await.expect("overlay");
        hosts.push(Host { ns, ip, net });
    }
    let h2 = hosts.pop().unwrap();
    let h1 = hosts.pop().unwrap();
    h1.net.set_peers(&[IpAddr::V4(h2.ip)]).await.unwrap();
    h2.net.set_peers(&[IpAddr::V4(h1.ip)]).await.unwrap();
    (h1, h2)
}

/// A "container": `sleep` in a network namespace of its own, started inside a host.
pub struct Container {
    child: Child,
    /// The process, whose network namespace is the container's.
    pub pid: u32,
}

impl Container {
    /// `sleep 300` as a container of `host`.
    pub fn start(host: &Host) -> Self {
        Self::start_cmd(host, &["sleep", "300"], "sleep")
    }

    /// Run `command` in a new netns inside `host`; ready once the process is `comm`.
    pub fn start_cmd(host: &Host, command: &[&str], comm: &str) -> Self {
        let host_ns = std::fs::read_link(host.ns.path()).ok();
        let child = host
            .ns
            .command("unshare")
            .arg("--net")
            .args(command)
            .stdin(Stdio::null())
            .spawn()
            .expect("start a container process");
        let pid = child.id();
        let container = Self { child, pid };
        let ready = poll_until(Duration::from_secs(5), || {
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
            container.comm() == comm && ns.is_some() && ns != host_ns
        });
        assert!(ready, "container process {pid} never reached its own netns");
        container
    }

    /// The process's name now.
    pub fn comm(&self) -> String {
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", self.pid));
        comm.unwrap_or_default().trim().to_owned()
    }

    /// `ping` from inside the container: true if a reply came within `deadline`.
    pub fn ping(&self, addr: &str, deadline: Duration) -> bool {
        let secs = format!("{}", deadline.as_secs_f64());
        Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", self.pid))
            .args([
                "ping", "-n", "-q", "-c", "1", "-i", "0.01", "-w", &secs, addr,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// `ip ARGS...` inside the container.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", self.pid))
            .arg("ip")
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `ADDRESS/PREFIX` literal.
pub fn cidr(s: &str) -> ipnet::Ipv4Net {
    s.parse().unwrap()
}
