//! The lab's SSH mode with the Terraform module (docs/deploy.md, "The lab's SSH mode"): three
//! bare hosts, each booting its own systemd, get the package, the certificates and the
//! units from `terraform apply` over SSH (deploy/terraform/examples/lab); the killer demo
//! and a `WEAVE_CIDR` ping run through the deployed agents; `terraform destroy` leaves
//! nothing of ours running on any host. A lab of its own (`LAB_PREFIX=ssh`,
//! 192.168.78.0/24, /var/lib/lab-ssh), so the default lab's names are never touched. Needs
//! root, terraform, systemd-nspawn, sshd and the lab's tools; skipped with a reason
//! otherwise, a failure under CI. `LAB_SSH_DEB=PATH` uses that package instead of building
//! one from this build's binaries (stripped of debug info: building it takes about a
//! minute).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use testkit::{have, prerequisite};

use super::{bin_dir, hold_the_lab, lab_possible, lab_script, stderr, stdout};

const LAB_DIR: &str = "/var/lib/lab-ssh";
const PREFIX: &str = "ssh";
const NET: &str = "192.168.78";
/// Each host's Docker API through its agent (the module's `docker_hosts` output).
const AGENT_DOCKER: &str = "unix:///run/flocker/docker.sock";

/// `demos/lab ARGS...` on this test's lab.
fn ssh_lab(args: &[&str]) -> Output {
    Command::new(lab_script())
        .args(args)
        .env("LAB_DIR", LAB_DIR)
        .env("LAB_PREFIX", PREFIX)
        .env("LAB_NET", NET)
        .env_remove("LAB_SSH")
        .output()
        .expect("demos/lab runs")
}

/// `demos/lab ARGS...`, which must succeed.
fn ssh_lab_ok(args: &[&str]) -> Output {
    let out = ssh_lab(args);
    assert!(
        out.status.success(),
        "demos/lab {args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// `command` on host `node` over ssh (`demos/lab ssh`).
fn on(node: u32, command: &str) -> Output {
    ssh_lab(&["ssh", &node.to_string(), command])
}

/// `docker ARGS` on host `node` through its agent, which must succeed; its stdout.
fn agent_docker(node: u32, args: &str) -> String {
    let out = on(node, &format!("docker -H {AGENT_DOCKER} {args}"));
    assert!(
        out.status.success(),
        "node{node}: docker {args}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs `demos/lab down` on this test's lab when dropped, also when the test panics
/// (unless `LAB_KEEP_ON_FAILURE=1`).
struct SshLab;

impl Drop for SshLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in 1..=3 {
                let journal = on(
                    node,
                    "journalctl -u flocker-agent -u flocker-control -n 30 --no-pager",
                );
                eprintln!("==== node{node}'s journal\n{}", stdout(&journal));
            }
            if std::env::var("LAB_KEEP_ON_FAILURE").is_ok_and(|v| v == "1") {
                eprintln!(
                    "LAB_KEEP_ON_FAILURE=1: the SSH lab stays up; \
                     LAB_DIR={LAB_DIR} LAB_PREFIX={PREFIX} LAB_NET={NET} demos/lab down"
                );
                return;
            }
        }
        let _ = ssh_lab(&["down"]);
    }
}

/// The package: `LAB_SSH_DEB`, or `deploy/deb/build` from this build's binaries with their
/// debug info stripped (a package of the debug build's 650 MB takes minutes to compress).
fn package(work: &Path) -> PathBuf {
    if let Some(deb) = std::env::var_os("LAB_SSH_DEB") {
        return PathBuf::from(deb);
    }
    build_package(work, None)
}

/// `deploy/deb/build` of this build's binaries (stripped once) into `work`, as `version`
/// (default: the workspace's).
fn build_package(work: &Path, version: Option<&str>) -> PathBuf {
    let bins = work.join("bin");
    std::fs::create_dir_all(&bins).unwrap();
    for name in ["flocker-agent", "flocker-control", "flockerctl"] {
        if bins.join(name).exists() {
            continue;
        }
        let out = Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(bins.join(name))
            .arg(bin_dir().join(name))
            .output()
            .expect("strip runs");
        assert!(out.status.success(), "strip {name}: {}", stderr(&out));
    }
    let mut build = Command::new(testkit::bins::workspace().join("deploy/deb/build"));
    build
        .arg("--bin-dir")
        .arg(&bins)
        .arg("--wait-for-net")
        .arg(testkit::bins::static_wait_for_net())
        .arg("--out")
        .arg(work)
        .arg("--fast");
    if let Some(version) = version {
        build.args(["--version", version]);
    }
    let build = build.output().expect("deploy/deb/build runs");
    assert!(build.status.success(), "{}", stderr(&build));
    PathBuf::from(stdout(&build).lines().last().expect("the package's path"))
}

/// `terraform ARGS` in deploy/terraform/examples/lab with this test's inputs, offline, its
/// data and state in `work`; must succeed.
fn terraform(work: &Path, args: &[&str], deb: &Path) -> Output {
    let example = testkit::bins::workspace().join("deploy/terraform/examples/lab");
    let mut command = Command::new("terraform");
    command
        .current_dir(&example)
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .env("TF_DATA_DIR", work.join("tf-data"))
        .env("TF_IN_AUTOMATION", "1")
        .args(args);
    if args[0] != "init" {
        command
            .arg("-input=false")
            .arg("-no-color")
            .arg(format!(
                "-state={}",
                work.join("terraform.tfstate").display()
            ))
            .arg(format!("-var=package={}", deb.display()))
            .arg(format!("-var=ssh_private_key={LAB_DIR}/ssh/id_ed25519"))
            .arg(format!("-var=network={NET}"))
            .arg(format!("-var=ca_dir={}", work.join("ca").display()))
            .arg(format!(
                "-var=flockerctl={}",
                bin_dir().join("flockerctl").display()
            ));
    }
    let out = command.output().expect("terraform runs");
    assert!(
        out.status.success(),
        "terraform {args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Whether this machine can boot the SSH lab (a failure under CI when not).
fn ssh_lab_possible() -> bool {
    lab_possible()
        && prerequisite(
            have("terraform"),
            "the SSH lab test needs terraform (Terraform 1.5 or later)",
        )
        && prerequisite(
            have("strip") && have("dpkg-deb"),
            "the SSH lab test needs strip (binutils) and dpkg-deb to build the package",
        )
}

#[test]
fn terraform_deploys_onto_the_ssh_lab_and_destroy_leaves_nothing() {
    if !ssh_lab_possible() {
        return;
    }
    let _held = hold_the_lab();
    let started = Instant::now();
    let mut timings = Vec::new();
    let mut lap = Instant::now();
    let mut mark = |what: &str| {
        timings.push(format!("{what}: {:.1} s", lap.elapsed().as_secs_f64()));
        lap = Instant::now();
    };

    let work = tempfile::tempdir().unwrap();
    let deb = package(work.path());
    mark("package");

    ssh_lab(&["down"]);
    let guard = SshLab;
    let up = ssh_lab_ok(&["up", "--ssh", "3"]);
    assert!(
        stdout(&up).contains(&format!("node3  {NET}.13")),
        "{}",
        stdout(&up)
    );
    mark("lab up --ssh 3");
    // Each host: its own systemd as PID 1, and nothing of ours.
    for node in [1, 2, 3] {
        let out = on(
            node,
            "cat /proc/1/comm; hostname; systemctl is-active docker zfs-fuse ssh; \
             dpkg -s flocker >/dev/null 2>&1 && echo installed || echo absent",
        );
        assert_eq!(
            stdout(&out),
            format!("systemd\nnode{node}\nactive\nactive\nactive\nabsent\n"),
            "{}",
            stderr(&out)
        );
    }

    terraform(work.path(), &["init", "-input=false", "-no-color"], &deb);
    let apply = terraform(work.path(), &["apply", "-auto-approve"], &deb);
    assert!(
        stdout(&apply).contains("Apply complete!"),
        "{}",
        stdout(&apply)
    );
    mark("terraform init + apply");
    for node in [1, 2, 3] {
        let out = on(
            node,
            "systemctl is-active flocker-control flocker-agent docker",
        );
        assert_eq!(
            stdout(&out),
            "active\nactive\nactive\n",
            "node{node}: {}",
            stderr(&out)
        );
    }
    // The package landed on each host only: not on this machine.
    assert!(!Path::new("/usr/bin/flocker-agent").exists());

    // The killer demo's essence: written on node1, read on node2 (the volume follows).
    agent_docker(
        1,
        "run --rm -v /flocker/ssh-demo:/data busybox sh -c 'echo fish > /data/file'",
    );
    assert_eq!(
        agent_docker(
            2,
            "run --rm -v /flocker/ssh-demo:/data busybox cat /data/file"
        ),
        "fish\n"
    );
    mark("killer demo");
    // A WEAVE_CIDR address on node1 answers a container on node3 over the overlay.
    agent_docker(
        1,
        "run -d --name ssh-srv -e WEAVE_CIDR=10.255.0.61/16 busybox sleep 600",
    );
    let ping = agent_docker(
        3,
        "run --rm -e WEAVE_CIDR=10.255.0.63/16 busybox ping -c 2 -W 5 10.255.0.61",
    );
    assert!(ping.contains("2 packets received"), "{ping}");
    agent_docker(1, "rm -f ssh-srv");
    mark("WEAVE_CIDR ping");

    // A new build, applied again: the rollout upgrades the hosts one at a time, members
    // first, keeping the control service's quorum, while a client creates a volume every
    // 200 ms through all three members.
    let upgrade = build_package(work.path(), Some("0.1.0+rolled"));
    mark("package (new build)");
    let creating = VolumeCreator::start(work.path());
    let reapply = terraform(work.path(), &["apply", "-auto-approve"], &upgrade);
    let creates = creating.stop();
    assert!(
        stdout(&reapply).contains("terraform_data.rollout"),
        "{}",
        stdout(&reapply)
    );
    mark("terraform apply (rolling)");
    for node in [1, 2, 3] {
        let out = on(
            node,
            "dpkg-query -W -f='${Version}\\n' flocker; systemctl is-active flocker-control flocker-agent",
        );
        assert_eq!(
            stdout(&out),
            "0.1.0+rolled\nactive\nactive\n",
            "node{node}: {}",
            stderr(&out)
        );
    }
    let outage = creates.longest_outage();
    eprintln!(
        "rolling upgrade: {} creates, {} failed, longest time without a successful create {:.1} s",
        creates.attempts.len(),
        creates.attempts.iter().filter(|(_, ok)| !ok).count(),
        outage.as_secs_f64()
    );
    assert!(
        creates.attempts.iter().filter(|(_, ok)| *ok).count() > 10,
        "creates went through during the rollout"
    );
    assert!(
        outage < std::time::Duration::from_secs(15),
        "no create failed for longer than a failover: {outage:?}"
    );

    terraform(work.path(), &["destroy", "-auto-approve"], &deb);
    mark("terraform destroy");
    for node in [1, 2, 3] {
        // No process, no unit, no binary; the package removed (`dpkg -r` keeps its
        // settings, as conffiles are kept, or purged).
        let out = on(
            node,
            "pgrep -l flocker; systemctl list-unit-files 'flocker*' --no-legend; \
             ls /usr/bin /usr/lib/flocker 2>/dev/null | grep -e flocker -e wait-for-net; \
             dpkg-query -W -f='${db:Status-Status}\\n' flocker 2>/dev/null | \
             grep -v -x -e config-files -e not-installed; true",
        );
        assert_eq!(
            stdout(&out).trim(),
            "",
            "node{node} still has something of ours: {}",
            stderr(&out)
        );
    }

    ssh_lab_ok(&["down"]);
    drop(guard);
    mark("lab down");
    let netns = stdout(&testkit::run("ip", &["netns", "list"]));
    assert!(!netns.lines().any(|l| l.starts_with("sshnode")), "{netns}");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(LAB_DIR), "{mounts}");
    assert!(!Path::new(LAB_DIR).exists());
    eprintln!(
        "SSH lab with Terraform: {} in {:.1} s",
        timings.join(", "),
        started.elapsed().as_secs_f64()
    );
}

/// A client that creates a volume every 200 ms through all three members (as `flockerctl`
/// with the operator's certificate from the module's CA), until stopped.
struct VolumeCreator {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Creates>,
}

/// Each create's time and whether it succeeded.
struct Creates {
    attempts: Vec<(Instant, bool)>,
}

impl Creates {
    /// The longest time between two successful creates (or from the first attempt).
    fn longest_outage(&self) -> std::time::Duration {
        let mut longest = std::time::Duration::ZERO;
        let mut last_ok = self.attempts.first().map(|a| a.0);
        for (at, ok) in &self.attempts {
            if let Some(since) = last_ok {
                longest = longest.max(at.duration_since(since));
            }
            if *ok {
                last_ok = Some(*at);
            }
        }
        longest
    }
}

impl VolumeCreator {
    fn start(work: &Path) -> VolumeCreator {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let members = format!("{NET}.11:4523,{NET}.12:4523,{NET}.13:4523");
        let tls = work.join("ca/user");
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut attempts = Vec::new();
                for n in 0.. {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let out = Command::new(bin_dir().join("flockerctl"))
                        .args(["--control", &members, "--tls-dir"])
                        .arg(&tls)
                        .args(["volume", "create", &format!("roll-{n}")])
                        .output()
                        .expect("flockerctl runs");
                    attempts.push((Instant::now(), out.status.success()));
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                Creates { attempts }
            }
        });
        VolumeCreator { stop, thread }
    }

    fn stop(self) -> Creates {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}
