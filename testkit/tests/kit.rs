//! The kit's parts against the real things they stand for. The root parts skip with a
//! reason where they cannot run, and fail under `CI=true`.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use testkit::docker::TestDocker;
use testkit::netns::{TestNetns, prerequisites};
use testkit::pool::TestPool;
use testkit::{Scratch, free_port, is_root, prerequisite, run, stdout, unique};

/// Set for the copy of this binary that the prerequisite test runs.
const PROBE: &str = "TESTKIT_PREREQUISITE_PROBE";

#[test]
fn a_missing_prerequisite_skips_with_its_reason_and_fails_under_ci() {
    if std::env::var_os(PROBE).is_some() {
        assert!(!prerequisite(false, "the probe's prerequisite"));
        return;
    }
    let probe = |ci: Option<&str>| {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--exact",
                "a_missing_prerequisite_skips_with_its_reason_and_fails_under_ci",
                "--nocapture",
            ])
            .env(PROBE, "1")
            .env_remove("CI");
        if let Some(ci) = ci {
            command.env("CI", ci);
        }
        let out = command.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for ci in [None, Some("false"), Some("")] {
        let (passed, stderr) = probe(ci);
        assert!(passed, "CI={ci:?}: {stderr}");
        assert!(
            stderr.contains("skipped: the probe's prerequisite"),
            "CI={ci:?}: {stderr}"
        );
    }
    for ci in ["true", "1"] {
        let (passed, stderr) = probe(Some(ci));
        assert!(!passed, "CI={ci}: {stderr}");
        assert!(
            stderr.contains("prerequisite missing under CI: the probe's prerequisite"),
            "CI={ci}: {stderr}"
        );
    }
}

#[test]
fn free_ports_are_free_distinct_and_below_the_ephemeral_range() {
    let ports: BTreeSet<u16> = (0..50).map(|_| free_port()).collect();
    assert_eq!(ports.len(), 50);
    for port in ports {
        assert!((20_000..32_000).contains(&port), "{port}");
        TcpListener::bind(("127.0.0.1", port)).unwrap();
    }
}

#[test]
fn unique_names_are_distinct_and_fit_an_interface_name() {
    let names: BTreeSet<String> = (0..100).map(|_| unique("abcd")).collect();
    assert_eq!(names.len(), 100);
    assert!(names.iter().all(|n| n.len() <= 15), "{names:?}");
}

#[test]
fn a_scratch_directory_goes_with_what_is_mounted_below_it() {
    if !prerequisite(is_root(), "mounting needs root") {
        return;
    }
    let scratch = Scratch::new("tks");
    let dir = scratch.path().to_owned();
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    run("mount", &["-t", "tmpfs", "tmpfs", mnt.to_str().unwrap()]);
    std::fs::write(mnt.join("file"), b"x").unwrap();
    drop(scratch);
    assert!(!dir.exists());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(dir.to_str().unwrap()), "{mounts}");
}

#[test]
fn a_namespace_runs_jobs_inside_and_is_deleted_on_drop() {
    if !prerequisites("a_namespace_runs_jobs_inside_and_is_deleted_on_drop") {
        return;
    }
    let ns = TestNetns::new("tkn");
    let netns_of = |path: &str| std::fs::metadata(path).unwrap().ino();
    let inside = ns.run_in(move || netns_of("/proc/thread-self/ns/net"));
    assert_eq!(inside, std::fs::metadata(ns.path()).unwrap().ino());
    assert_ne!(inside, netns_of("/proc/thread-self/ns/net"));
    let path = ns.path();
    drop(ns);
    assert!(!path.exists());
}

#[test]
fn a_private_dockerd_runs_busybox_restarts_on_its_data_and_leaves_nothing() {
    let test = "a_private_dockerd_runs_busybox_restarts_on_its_data_and_leaves_nothing";
    let Some(mut docker) = TestDocker::start(test) else {
        return;
    };
    let hi = docker.cli(&["run", "--rm", "busybox", "echo", "hi"]);
    assert_eq!(stdout(&hi), "hi");
    docker.restart();
    let ls = docker.cli(&["run", "--rm", "busybox", "ls", "/bin/sh"]);
    assert_eq!(
        stdout(&ls),
        "/bin/sh",
        "busybox is still there after a restart"
    );
    stdout(&docker.cli(&["run", "-d", "busybox", "sleep", "300"]));
    let (dir, ns) = (docker.dir().to_owned(), docker.netns().path());
    drop(docker);
    assert!(!dir.exists(), "{} is left", dir.display());
    assert!(!ns.exists(), "{} is left", ns.display());
    let ps = String::from_utf8_lossy(
        &Command::new("ps")
            .args(["-eo", "args"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        !ps.lines().any(|l| l.contains(dir.to_str().unwrap())),
        "{ps}"
    );
}

#[test]
fn a_pool_is_made_and_destroyed() {
    let Some(pool) = TestPool::create() else {
        return;
    };
    let name = pool.name().to_owned();
    assert_eq!(pool.datasets().trim(), name);
    drop(pool);
    // zfs-fuse may be gone too: it is stopped with the last pool when this process started it.
    let pools = Command::new("zpool")
        .args(["list", "-H", "-o", "name"])
        .output()
        .unwrap();
    let pools = String::from_utf8_lossy(&pools.stdout);
    assert!(!pools.lines().any(|p| p == name), "{pools}");
    assert!(!Path::new(&std::env::temp_dir().join(format!("{name}.img"))).exists());
}
