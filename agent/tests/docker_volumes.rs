//! The agent's Docker side against real parts: a `flocker-control` member, a
//! `flocker-agent` process and a private dockerd behind the agent's proxy. Needs root,
//! dockerd and busybox-static; skipped without them, a failure under `CI=true`.

use std::time::Duration;

use proto::control as pb;
use testkit::stack::{self, Stack};
use testkit::wait_until;

fn volume_owner(stack: &Stack, name: &str) -> Option<String> {
    let volumes = stack.ctl_json(&["volume", "ls"]);
    volumes
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)
        .map(|v| v["owner"].as_str().unwrap_or_default().to_owned())
}

fn leases(stack: &Stack) -> Vec<pb::Lease> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = stack.client_as("user-admin").await;
        c.list_leases(pb::Empty {})
            .await
            .unwrap()
            .into_inner()
            .leases
    })
}

/// One raw VolumeDriver call on the plugin socket, as dockerd makes it (no Content-Type).
fn plugin_call(stack: &Stack, call: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut socket =
        std::os::unix::net::UnixStream::connect(stack.plugin_dir().join("flocker.sock")).unwrap();
    write!(
        socket,
        "POST /{call} HTTP/1.1\r\nHost: plugin.moby.localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    socket.read_to_string(&mut reply).unwrap();
    reply
}

#[test]
fn flocker_binds_are_created_rewritten_refused_and_leased() {
    if !stack::available() {
        return;
    }
    let mut stack = Stack::start(None);

    // The killer demo on one host: write, then read in another container.
    stack.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "/flocker/demo:/data",
        "busybox",
        "sh",
        "-c",
        "echo fish > /data/file",
    ]);
    let out = stack.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "/flocker/demo:/data",
        "busybox",
        "cat",
        "/data/file",
    ]);
    assert_eq!(out.trim(), "fish");
    assert_eq!(volume_owner(&stack, "demo").as_deref(), Some("n1"));
    assert!(stack.volume_root().join("demo/file").exists());

    // Sub-paths, options, mounts and a plain bind side by side are all kept.
    let plain = stack.root().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(plain.join("p"), "plain\n").unwrap();
    std::fs::create_dir_all(stack.volume_root().join("demo/sub")).unwrap();
    std::fs::write(stack.volume_root().join("demo/sub/s"), "sub\n").unwrap();
    let plain_bind = format!("{}:/plain:ro", plain.display());
    let out = stack.docker_ok(&[
        "run", "--rm",
        "-v", "/flocker/demo/sub:/sub:ro",
        "-v", &plain_bind,
        "-v", "/flocker/other:/other",
        "--mount", "type=bind,src=/flocker/demo,dst=/m",
        "busybox", "sh", "-c",
        "cat /sub/s /plain/p /m/file && echo x > /other/o && ! touch /sub/w 2>/dev/null && echo ro-ok",
    ]);
    assert_eq!(out, "sub\nplain\nfish\nro-ok\n");
    assert_eq!(volume_owner(&stack, "other").as_deref(), Some("n1"));

    // Bad names are refused with a clear message, and nothing is created.
    let long = format!("/flocker/{}:/x", "a".repeat(64));
    for (bad, says) in [
        ("/flocker/../etc:/x", "does not name a flocker volume"),
        ("/flocker/:/x", "must not be empty"),
        (long.as_str(), "at most 63"),
    ] {
        let out = stack.docker(&["create", "-v", bad, "busybox", "true"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{bad}: {err}");
    }
    let names: Vec<String> = stack
        .ctl_json(&["volume", "ls"])
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["demo", "other"]);
    assert!(stack.docker_ok(&["ps", "-aq"]).trim().is_empty());

    // A volume owned by another node is refused with the owner named.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut n2 = stack.client_as("node-n2").await;
        n2.register_node(pb::RegisterNodeRequest {
            name: "n2".into(),
            address: "127.0.0.1:1".into(),
            storage: "dir:/x".into(),
        })
        .await
        .unwrap();
        n2.create_volume(pb::CreateVolumeRequest {
            name: "far".into(),
            owner: Some("n2".into()),
            ..Default::default()
        })
        .await
        .unwrap();
        n2.acquire_lease(pb::Lease {
            volume: "far".into(),
            node: "n2".into(),
            container_id: "c0ffee123456789".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    });
    let out = stack.docker(&["run", "--rm", "-v", "/flocker/far:/data", "busybox", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("volume 'far' lives on n2")
            && err.contains("c0ffee123456")
            && err.contains("flockerctl volume move far --to n1"),
        "{err}"
    );

    // A running container holds a lease on its volume; it goes when the container stops.
    let id = stack.docker_ok(&[
        "run",
        "-d",
        "-v",
        "/flocker/demo:/data",
        "busybox",
        "sleep",
        "600",
    ]);
    let id = id.trim().to_owned();
    wait_until(Duration::from_secs(20), "the lease to appear", || {
        leases(&stack)
            .iter()
            .any(|l| l.volume == "demo" && l.node == "n1" && l.container_id == id)
    });
    stack.docker_ok(&["stop", "-t", "0", &id]);
    wait_until(Duration::from_secs(20), "the lease to go", || {
        !leases(&stack).iter().any(|l| l.container_id == id)
    });

    // A container that stops while the agent is down loses its lease when the agent
    // comes back and reconciles with what runs.
    stack.docker_ok(&["start", &id]);
    wait_until(Duration::from_secs(20), "the lease to come back", || {
        leases(&stack).iter().any(|l| l.container_id == id)
    });
    stack.stop_agent();
    assert!(
        stack
            .docker_direct(&["stop", "-t", "0", &id])
            .status
            .success()
    );
    assert!(leases(&stack).iter().any(|l| l.container_id == id));
    stack.start_agent(None);
    wait_until(
        Duration::from_secs(20),
        "reconciliation to release the lease",
        || !leases(&stack).iter().any(|l| l.container_id == id),
    );
}

#[test]
fn leases_follow_containers_across_a_dockerd_restart() {
    if !stack::available() {
        return;
    }
    let mut stack = Stack::start(None);
    stack.restart_dockerd();
    // The watcher reconnects to the new daemon on its own.
    let id = stack.docker_ok(&[
        "run",
        "-d",
        "-v",
        "/flocker/again:/data",
        "busybox",
        "sleep",
        "600",
    ]);
    let id = id.trim().to_owned();
    wait_until(Duration::from_secs(30), "a lease after the restart", || {
        leases(&stack)
            .iter()
            .any(|l| l.volume == "again" && l.container_id == id)
    });
    stack.docker_ok(&["rm", "-f", &id]);
    wait_until(Duration::from_secs(20), "the lease to go", || {
        !leases(&stack).iter().any(|l| l.container_id == id)
    });
}

/// The volume drivers dockerd has registered, as `docker info` (and so Swarm's node
/// description) lists them.
fn volume_drivers(stack: &Stack) -> String {
    let out = stack.docker_direct(&["info", "--format", "{{json .Plugins.Volume}}"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A legacy plugin socket is listed by dockerd only once something looked the driver up;
/// until then Swarm finds the node "missing plugin". The agent looks it up at start and
/// after every dockerd restart, with no volume call from anyone.
#[test]
fn dockerd_lists_the_flocker_driver_from_the_start_and_after_a_restart() {
    if !stack::available() {
        return;
    }
    let mut stack = Stack::start(None);
    wait_until(
        Duration::from_secs(20),
        "dockerd to list the flocker driver",
        || volume_drivers(&stack).contains("\"flocker\""),
    );
    stack.restart_dockerd();
    wait_until(
        Duration::from_secs(30),
        "the restarted dockerd to list the flocker driver",
        || volume_drivers(&stack).contains("\"flocker\""),
    );
    assert!(
        stack
            .agent_log()
            .contains("volume driver registered with dockerd"),
        "{}",
        stack.agent_log()
    );
}

/// A service that could never run is refused by the agent's proxy at once, naming the
/// reason, before dockerd sees it; one that can run passes through to dockerd (which, not
/// being in a swarm here, says so).
#[test]
fn impossible_service_specs_are_refused_at_once_and_others_pass_through() {
    if !stack::available() {
        return;
    }
    let stack = Stack::start(None);
    let create = |args: &[&str]| {
        let mut all = vec!["service", "create", "--name", "db"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["busybox", "sleep", "600"]);
        let out = stack.docker(&all);
        assert!(!out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let shared = "type=volume,source=pg,target=/data,volume-driver=flocker";
    let e = create(&["--replicas", "3", "--mount", shared]);
    assert!(
        e.contains("single-writer") && e.contains("pg-{{.Task.Slot}}"),
        "{e}"
    );
    let e = create(&[
        "--mount",
        "type=bind,source=/flocker/pg,target=/data",
        "--update-order",
        "start-first",
    ]);
    assert!(e.contains("start-first"), "{e}");
    let e = create(&["--env", "WEAVE_CIDR=10.255.0.300/16"]);
    assert!(e.contains("WEAVE_CIDR"), "{e}");
    let per_slot = "type=volume,source=pg-{{.Task.Slot}},target=/data,volume-driver=flocker";
    let e = create(&[
        "--replicas",
        "3",
        "--mount",
        per_slot,
        "--env",
        "WEAVE_CIDR=10.255.0.1{{.Task.Slot}}/16",
    ]);
    assert!(e.contains("swarm"), "dockerd's own answer: {e}");
    assert!(!e.contains("single-writer"), "{e}");
}

#[test]
fn volume_plugin_creates_mounts_and_lists() {
    if !stack::available() {
        return;
    }
    let mut stack = Stack::start(None);

    stack.docker_ok(&["volume", "create", "-d", "flocker", "pv"]);
    stack.docker_ok(&["volume", "create", "-d", "flocker", "pv"]);
    assert_eq!(volume_owner(&stack, "pv").as_deref(), Some("n1"));
    stack.docker_ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=pv,dst=/data,volume-driver=flocker",
        "busybox",
        "sh",
        "-c",
        "echo plugged > /data/f",
    ]);
    let out = stack.docker_ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=pv,dst=/data,volume-driver=flocker",
        "busybox",
        "cat",
        "/data/f",
    ]);
    assert_eq!(out.trim(), "plugged");
    // A volume named only in `run --mount` is created on the way.
    stack.docker_ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=implicit,dst=/data,volume-driver=flocker",
        "busybox",
        "true",
    ]);
    assert_eq!(volume_owner(&stack, "implicit").as_deref(), Some("n1"));
    let ls = stack.docker_ok(&["volume", "ls", "--format", "{{.Driver}} {{.Name}}"]);
    assert!(ls.lines().any(|l| l == "flocker pv"), "{ls}");
    let scope = stack.docker_ok(&[
        "volume",
        "inspect",
        "--format",
        "{{.Scope}} {{.Status.owner}}",
        "pv",
    ]);
    assert_eq!(scope.trim(), "global n1");

    // A running container's mount is counted in the state file, and the count survives
    // an agent restart; the lease comes from the container's start as for binds.
    let id = stack.docker_ok(&[
        "run",
        "-d",
        "--mount",
        "type=volume,src=pv,dst=/data,volume-driver=flocker",
        "busybox",
        "sleep",
        "600",
    ]);
    let id = id.trim().to_owned();
    let state_file = stack.state_file();
    let counted = || {
        let text = std::fs::read_to_string(&state_file).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        v["mounts"]["pv"].as_array().map_or(0, Vec::len)
    };
    assert_eq!(counted(), 1);
    wait_until(Duration::from_secs(20), "the lease on pv", || {
        leases(&stack)
            .iter()
            .any(|l| l.volume == "pv" && l.container_id == id)
    });
    stack.stop_agent();
    assert!(
        !stack.plugin_dir().join("flocker.sock").exists(),
        "socket removed on exit"
    );
    stack.start_agent(None);
    // Docker would refuse `volume rm` itself here, so ask the restarted plugin directly.
    let reply = plugin_call(&stack, "VolumeDriver.Remove", r#"{"Name":"pv"}"#);
    assert!(
        reply.starts_with("HTTP/1.1 500") && reply.contains("mounted by 1 container"),
        "{reply}"
    );
    let reply = plugin_call(&stack, "VolumeDriver.Capabilities", "{}");
    assert!(
        reply.contains(r#"{"Capabilities":{"Scope":"global"},"Err":""}"#),
        "{reply}"
    );

    stack.docker_ok(&["rm", "-f", &id]);
    assert_eq!(counted(), 0);
    stack.docker_ok(&["volume", "rm", "pv"]);
    assert_eq!(volume_owner(&stack, "pv"), None);
}

#[test]
fn killer_demo_on_zfs() {
    if !stack::available() {
        return;
    }
    let Some(pool) = testkit::pool::TestPool::create() else {
        return;
    };
    let stack = Stack::start(Some(format!("zfs:{}", pool.name())));
    stack.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "/flocker/zdemo:/data",
        "busybox",
        "sh",
        "-c",
        "echo fish > /data/file",
    ]);
    let out = stack.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "/flocker/zdemo:/data",
        "busybox",
        "cat",
        "/data/file",
    ]);
    assert_eq!(out.trim(), "fish");
    // The containers wrote into the ZFS dataset itself (mounted here by zfs-fuse), not into
    // the directory under its mountpoint.
    assert_eq!(
        std::fs::read_to_string(stack.volume_root().join("zdemo/file")).unwrap(),
        "fish\n"
    );
    assert_eq!(volume_owner(&stack, "zdemo").as_deref(), Some("n1"));
    assert!(
        pool.datasets().lines().any(|d| d.ends_with("/zdemo")),
        "{}",
        pool.datasets()
    );
    drop(stack);
}
