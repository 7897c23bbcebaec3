//! The overlay and attach in real namespaces (root): two "hosts" are network namespaces
//! joined by a veth pair (the underlay); "containers" are processes in their own network
//! namespace started from inside a host. Everything is removed on drop, also on panic.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use agent::network::Network;
use testkit::netns::prerequisites;
use testkit::overlay::{Container, cidr, two_hosts};
use testkit::{poll_until, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlay_has_the_vxlan_mtu_and_follows_the_peer_list() {
    if !prerequisites("overlay_has_the_vxlan_mtu_and_follows_the_peer_list") {
        return;
    }
    let (h1, _h2) = two_hosts().await;
    // Idempotent: a second call keeps what is there.
    let o = h1.net.ensure_overlay().await.unwrap();
    assert_eq!(o.mtu, 1450, "underlay 1500 minus 50 for VXLAN");
    let show = String::from_utf8_lossy(&h1.ns.ip(&["-d", "link", "show", "vxlan-weave"]).stdout)
        .into_owned();
    assert!(
        show.contains("mtu 1450") && show.contains("master weave"),
        "{show}"
    );
    assert!(
        show.contains("vxlan id 5745") && show.contains("dstport 4789"),
        "{show}"
    );

    let p = |s: &str| s.parse::<IpAddr>().unwrap();
    let fdb = || {
        let out = run(
            "bridge",
            &["-n", &h1.ns.name, "fdb", "show", "dev", "vxlan-weave"],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut dsts: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("00:00:00:00:00:00"))
            .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "dst").nth(1))
            .map(str::to_owned)
            .collect();
        dsts.sort();
        dsts
    };
    h1.net
        .set_peers(&[p("10.97.0.2"), p("10.97.0.3")])
        .await
        .unwrap();
    assert_eq!(fdb(), ["10.97.0.2", "10.97.0.3"]);
    h1.net
        .set_peers(&[p("10.97.0.3"), p("10.97.0.4")])
        .await
        .unwrap();
    assert_eq!(fdb(), ["10.97.0.3", "10.97.0.4"]);
    assert_eq!(h1.net.peers().await.unwrap().len(), 2);
    h1.net.set_peers(&[]).await.unwrap();
    assert!(fdb().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_on_two_hosts_reach_each_other_over_ethwe() {
    if !prerequisites("containers_on_two_hosts_reach_each_other_over_ethwe") {
        return;
    }
    let (h1, h2) = two_hosts().await;
    let a = Container::start(&h1);
    let b = Container::start(&h2);
    let att = h1
        .net
        .attach("ctr-a", a.pid, &[cidr("10.255.0.1/16")])
        .await
        .unwrap();
    assert_eq!(att.cidrs, [cidr("10.255.0.1/16")]);
    h2.net
        .attach("ctr-b", b.pid, &[cidr("10.255.0.2/16")])
        .await
        .unwrap();

    assert!(
        a.ping("10.255.0.2", Duration::from_secs(3)),
        "a -> b over the VXLAN"
    );
    assert!(
        b.ping("10.255.0.1", Duration::from_secs(3)),
        "b -> a over the VXLAN"
    );
    let link = a.ip(&["link", "show", "ethwe"]);
    assert!(
        link.contains("mtu 1450") && link.contains("state UP"),
        "{link}"
    );

    // What the kernel has, for reconcile.
    let listed = h1.net.list_attached().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0].container.as_str(), listed[0].pid),
        ("ctr-a", a.pid)
    );
    assert_eq!(listed[0].cidrs, [cidr("10.255.0.1/16")]);
    // Attach again (a retry): idempotent, adds only the new address.
    let again = h1
        .net
        .attach(
            "ctr-a",
            a.pid,
            &[cidr("10.255.0.1/16"), cidr("10.255.1.1/16")],
        )
        .await
        .unwrap();
    assert_eq!(again.cidrs, [cidr("10.255.0.1/16"), cidr("10.255.1.1/16")]);

    assert!(h2.net.detach("ctr-b").await.unwrap());
    assert!(
        !b.ip(&["link"]).contains("ethwe"),
        "ethwe gone from the container"
    );
    assert!(
        !a.ping("10.255.0.2", Duration::from_millis(500)),
        "b detached"
    );
    assert!(h2.net.list_attached().await.unwrap().is_empty());
    assert!(
        !h2.net.detach("ctr-b").await.unwrap(),
        "second detach finds nothing"
    );

    // A container that exits takes its namespace and the pair with it.
    drop(a);
    let mut gone = false;
    for _ in 0..500 {
        if h1.net.list_attached().await.unwrap().is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gone, "the pair of an exited container is no longer listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_address_is_reachable_within_a_second() {
    if !prerequisites("a_moved_address_is_reachable_within_a_second") {
        return;
    }
    let (h1, h2) = two_hosts().await;
    let a = Container::start(&h1);
    let c = Container::start(&h1);
    h1.net
        .attach("ctr-a", a.pid, &[cidr("10.255.0.10/16")])
        .await
        .unwrap();
    h1.net
        .attach("ctr-c", c.pid, &[cidr("10.255.0.30/16")])
        .await
        .unwrap();
    assert!(
        c.ping("10.255.0.10", Duration::from_secs(3)),
        "c -> a before the move"
    );
    let neigh = c.ip(&["neigh", "show", "10.255.0.10"]);
    assert!(neigh.contains("lladdr"), "c has a's MAC cached: {neigh}");

    // The container "moves": gone from host 1, started on host 2 with the same address.
    assert!(h1.net.detach("ctr-a").await.unwrap());
    drop(a);
    let d = Container::start(&h2);
    let attach_start = Instant::now();
    h2.net
        .attach("ctr-a", d.pid, &[cidr("10.255.0.10/16")])
        .await
        .unwrap();
    eprintln!("attach took {:?}", attach_start.elapsed());
    let start = Instant::now();
    assert!(
        c.ping("10.255.0.10", Duration::from_secs(1)),
        "the moved address must answer within a second (gratuitous ARP); neigh: {}",
        c.ip(&["neigh", "show", "10.255.0.10"])
    );
    let took = start.elapsed();
    eprintln!("moved address answered after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_net_in_a_container_runs_the_command_once_attached() {
    if !prerequisites("wait_for_net_in_a_container_runs_the_command_once_attached") {
        return;
    }
    let (h1, _h2) = two_hosts().await;
    let bin = testkit::bins::static_wait_for_net();
    let args = [
        bin.to_str().unwrap(),
        "--timeout",
        "10s",
        "--",
        "sleep",
        "300",
    ];
    let w = Container::start_cmd(&h1, &args, "wait-for-net");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(w.comm(), "wait-for-net", "still waiting before the attach");
    let attached = Instant::now();
    h1.net
        .attach("ctr-w", w.pid, &[cidr("10.255.0.40/16")])
        .await
        .unwrap();
    assert!(
        poll_until(Duration::from_secs(2), || w.comm() == "sleep"),
        "the command runs once ethwe is up with its address"
    );
    eprintln!(
        "command running {:?} after attach began",
        attached.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reattach_converges_and_a_stale_pair_is_removed_alone() {
    if !prerequisites("a_reattach_converges_and_a_stale_pair_is_removed_alone") {
        return;
    }
    let (h1, _h2) = two_hosts().await;
    let a = Container::start(&h1);
    let b = Container::start(&h1);
    h1.net
        .attach(
            "ctr-a",
            a.pid,
            &[cidr("10.255.0.1/16"), cidr("10.255.9.9/16")],
        )
        .await
        .unwrap();
    // Attach with other addresses: ethwe ends with exactly those, the others are gone.
    let again = h1
        .net
        .attach("ctr-a", a.pid, &[cidr("10.255.0.2/24")])
        .await
        .unwrap();
    assert_eq!(again.cidrs, [cidr("10.255.0.2/24")]);
    let shown = a.ip(&["-4", "-o", "addr", "show", "ethwe"]);
    assert!(
        shown.contains("inet 10.255.0.2/24") && !shown.contains("10.255.0.1"),
        "{shown}"
    );

    // detach_one removes the one pair it names, not the container's others or another's.
    h1.net
        .attach("ctr-b", b.pid, &[cidr("10.255.0.3/16")])
        .await
        .unwrap();
    let listed = h1.net.list_attached().await.unwrap();
    let of_a = listed.iter().find(|x| x.container == "ctr-a").unwrap();
    assert!(h1.net.detach_one(of_a).await.unwrap());
    assert!(!h1.net.detach_one(of_a).await.unwrap(), "already gone");
    let left = h1.net.list_attached().await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].container, "ctr-b");
    // A listing whose container id no longer matches the interface is left alone.
    let mut other = left[0].clone();
    other.container = "ctr-z".into();
    assert!(!h1.net.detach_one(&other).await.unwrap());
    assert_eq!(h1.net.list_attached().await.unwrap().len(), 1);
}
