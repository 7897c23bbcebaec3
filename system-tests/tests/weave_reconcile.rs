//! Reconcile on agent start, end to end: a real control member, a private dockerd in its
//! own network namespace and a real `flocker-agent --underlay` process in that namespace
//! (`testkit::weave_agent`). Containers are attached through the agent's proxy; the agent
//! is killed with SIGKILL; while it is down, dockerd is driven directly (a restart, a
//! removal, a kill), an `ethwe` gets the wrong address and a stale pair is left on the
//! bridge; the agent started again brings all of it in line within seconds, and doing it
//! again changes nothing. Needs root, dockerd, docker, busybox (skipped with a reason, a
//! failure under `CI=true`).

use std::process::Command;
use std::time::Duration;

use testkit::cluster::{flockerctl, ip_ls, row};
use testkit::netns::{ethwe_of, prerequisites_with};
use testkit::weave_agent::AgentHost;
use testkit::{Cluster, poll_until, stderr, stdout};

fn pid_of(h: &AgentHost, name: &str) -> u32 {
    stdout(&h.docker_direct(&["inspect", "-f", "{{.State.Pid}}", name]))
        .parse()
        .unwrap()
}

/// `ip ARGS` inside the network namespace of `pid`.
fn ip_in(pid: u32, args: &[&str]) {
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .arg("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "ip {args:?}: {}", stderr(&out));
}

/// `ethwe`'s addresses in the netns of `pid`, as `inet A/P` words.
fn inets(pid: u32) -> Vec<String> {
    let shown = ethwe_of(pid);
    let words: Vec<&str> = shown.split_whitespace().collect();
    let mut out: Vec<String> = words
        .windows(2)
        .filter(|w| w[0] == "inet")
        .map(|w| w[1].to_owned())
        .collect();
    out.sort();
    out
}

#[test]
fn the_agent_reconciles_on_start_what_changed_while_it_was_down() {
    let test = "the_agent_reconciles_on_start_what_changed_while_it_was_down";
    if !prerequisites_with(test, &["dockerd", "docker", "busybox", "tar"]) {
        return;
    }
    let c = Cluster::start(1, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(c.leader(1));
    let out = flockerctl(&c, &["ip", "add-pool", "10.2.0.0/24"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let Some(mut h) = AgentHost::start(test, &c, "n1") else {
        return;
    };

    // Four containers attached through the agent's proxy: 10.2.0.1 to 10.2.0.4.
    for name in ["kept", "gone", "dead", "fixed"] {
        let out = h.docker(&[
            "run",
            "-d",
            "--name",
            name,
            "-e",
            "WEAVE_CIDR=net:10.2.0.0/24",
            "busybox",
            "sleep",
            "300",
        ]);
        assert!(out.status.success(), "{}\n{}", stderr(&out), h.log());
    }
    assert_eq!(inets(pid_of(&h, "kept")), ["10.2.0.1/24"]);
    let running = |a: &str, n: &str| row(a, n, "n1", "running");
    assert_eq!(
        ip_ls(&c),
        [
            running("10.2.0.1", "kept"),
            running("10.2.0.2", "gone"),
            running("10.2.0.3", "dead"),
            running("10.2.0.4", "fixed"),
        ]
    );

    // The agent dies; dockerd goes on without it.
    h.kill_agent();
    let old_pid = pid_of(&h, "kept");
    let out = h.docker_direct(&["restart", "-t", "1", "kept"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let kept_pid = pid_of(&h, "kept");
    assert_ne!(kept_pid, old_pid);
    assert!(inets(kept_pid).is_empty(), "restarted without ethwe");
    let removed: &[&str] = &["rm", "-f", "gone"];
    for args in [removed, &["kill", "-s", "KILL", "dead"]] {
        let out = h.docker_direct(args);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let fixed_pid = pid_of(&h, "fixed");
    ip_in(fixed_pid, &["addr", "del", "10.2.0.4/24", "dev", "ethwe"]);
    ip_in(fixed_pid, &["addr", "add", "10.2.0.99/24", "dev", "ethwe"]);
    // A pair left on the bridge for a container that no longer exists.
    let ns = h.docker.netns().name.clone();
    let ns_ip = |args: &[&str]| {
        let mut all = vec!["-n", &ns];
        all.extend_from_slice(args);
        testkit::run("ip", &all);
    };
    ns_ip(&[
        "link",
        "add",
        "vwl4000000",
        "type",
        "veth",
        "peer",
        "name",
        "vwg4000000",
    ]);
    ns_ip(&[
        "link",
        "set",
        "vwl4000000",
        "master",
        "weave",
        "alias",
        "no-such-ctr",
    ]);
    ns_ip(&["link", "set", "vwl4000000", "up"]);

    // The agent comes back: everything in line within a few seconds.
    h.start_agent(&c);
    let want = [
        running("10.2.0.1", "kept"),
        row("10.2.0.3", "dead", "n1", "stopped"),
        running("10.2.0.4", "fixed"),
    ];
    let settled = poll_until(Duration::from_secs(5), || {
        inets(kept_pid) == ["10.2.0.1/24"]
            && inets(fixed_pid) == ["10.2.0.4/24"]
            && ip_ls(&c) == want
    });
    assert!(
        settled,
        "kept {:?}, fixed {:?}, allocations {:?}\n{}",
        inets(kept_pid),
        inets(fixed_pid),
        ip_ls(&c),
        h.log()
    );
    let stale = Command::new("ip")
        .args(["-n", &ns, "link", "show", "vwl4000000"])
        .output()
        .unwrap();
    assert!(!stale.status.success(), "the stale pair is removed");

    // Doing it again changes nothing.
    h.kill_agent();
    let before = h.log().len();
    h.start_agent(&c);
    let summary = || {
        let log = h.log();
        let this_run = &log[before..];
        let line = this_run
            .lines()
            .find(|l| l.contains("reconciled with dockerd"));
        line.map(str::to_owned)
    };
    assert!(
        poll_until(Duration::from_secs(5), || summary().is_some()),
        "{}",
        h.log()
    );
    let last = summary().unwrap();
    assert!(
        last.contains("detached=0") && last.contains("stopped=0") && last.contains("failed=0"),
        "{last}"
    );
    assert_eq!(inets(kept_pid), ["10.2.0.1/24"]);
    assert_eq!(ip_ls(&c), want);

    // The addresses of the removed and the stopped container can be taken.
    for address in ["10.2.0.2/24", "10.2.0.3/24"] {
        let cidr = format!("WEAVE_CIDR={address}");
        let out = h.docker(&[
            "run", "--rm", "-e", &cidr, "busybox", "ip", "-4", "-o", "addr",
        ]);
        let shown = stdout(&out);
        assert!(shown.contains(&format!("inet {address}")), "{shown}");
    }
}
