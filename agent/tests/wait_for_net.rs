//! `wait-for-net` in real network namespaces (root): the timeout message for each missing
//! condition, exec once `ethwe` appears (exit code passed through), and signals reaching the
//! command (same PID after exec).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::netns::{TestNetns, prerequisites};
use testkit::poll_until;

/// Runs the static build, the binary that goes into containers.
fn wait_for_net(ns: &TestNetns, args: &[&str]) -> Command {
    let bin = testkit::bins::static_wait_for_net();
    let mut cmd = ns.command(bin.to_str().expect("a UTF-8 target path"));
    cmd.args(args);
    cmd
}

/// Give `ns` an `ethwe` (a veth whose peer stays in the same namespace) with an address, up.
fn make_ethwe(ns: &TestNetns, addr: &str) {
    ns.ip(&[
        "link",
        "add",
        "ethwe",
        "type",
        "veth",
        "peer",
        "name",
        "ethwe-peer",
    ]);
    ns.ip(&["addr", "add", addr, "dev", "ethwe"]);
    ns.ip(&["link", "set", "ethwe", "up"]);
}

#[test]
fn timeout_names_the_interface_and_what_is_missing() {
    if !prerequisites("timeout_names_the_interface_and_what_is_missing") {
        return;
    }
    let ns = TestNetns::new("wfn");
    let expect = |what: &str| {
        let start = Instant::now();
        let out = wait_for_net(&ns, &["--timeout", "1s", "--", "true"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "stderr: {stderr}");
        assert!(
            stderr.contains("ethwe") && stderr.contains(what),
            "{stderr}"
        );
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(5),
            "{took:?}"
        );
    };
    expect("absent");
    ns.ip(&[
        "link",
        "add",
        "ethwe",
        "type",
        "veth",
        "peer",
        "name",
        "ethwe-peer",
    ]);
    expect("down");
    ns.ip(&["link", "set", "ethwe", "up"]);
    expect("without an IPv4 address");
}

#[test]
fn execs_the_command_once_ethwe_is_up_with_an_address() {
    if !prerequisites("execs_the_command_once_ethwe_is_up_with_an_address") {
        return;
    }
    let ns = TestNetns::new("wfn");
    let mut child = wait_for_net(&ns, &["--timeout", "10s", "--", "sh", "-c", "exit 7"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "it must wait for ethwe"
    );
    let created = Instant::now();
    make_ethwe(&ns, "10.254.0.1/24");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(7), "the command's own exit code");
    assert!(
        created.elapsed() < Duration::from_secs(2),
        "{:?}",
        created.elapsed()
    );
}

#[test]
fn missing_command_exits_127_after_the_wait() {
    if !prerequisites("missing_command_exits_127_after_the_wait") {
        return;
    }
    let ns = TestNetns::new("wfn");
    make_ethwe(&ns, "10.254.0.1/24");
    let out = wait_for_net(&ns, &["--", "no-such-command-xyz"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-command-xyz"));
}

#[test]
fn sigterm_reaches_the_command_in_the_same_process() {
    if !prerequisites("sigterm_reaches_the_command_in_the_same_process") {
        return;
    }
    let ns = TestNetns::new("wfn");
    make_ethwe(&ns, "10.254.0.1/24");
    let script = "trap 'exit 42' TERM; while :; do sleep 0.02; done";
    let mut child = wait_for_net(&ns, &["--", "sh", "-c", script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // nsenter and wait-for-net both exec: the PID we spawned becomes the shell.
    let comm = || std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert!(
        poll_until(Duration::from_secs(5), || comm().trim() == "sh"),
        "pid {pid} never became sh (comm {:?})",
        comm()
    );
    // The trap is set once the loop runs its first `sleep` (a TERM before that, while sh
    // is still starting, would kill it by default: the test raced with it under load).
    let children =
        || std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    assert!(
        poll_until(Duration::from_secs(5), || !children().trim().is_empty()),
        "sh {pid} never started its loop"
    );
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(42), "the command's TERM trap ran");
}
