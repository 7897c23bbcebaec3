//! What the systemd units rely on: a member reports readiness (`READY=1` on
//! `$NOTIFY_SOCKET`) once it has joined the cluster, its settings come from a file, variables
//! and flags (`--print-config`), and the units in deploy/systemd pass `systemd-analyze verify`.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use testkit::cluster::Role;
use testkit::{Pki, Proc, binary, free_port, have, prerequisite, stderr, stdout};

/// Member `id` of a cluster of `ports.len()` founders, notifying on `socket`.
fn member(pki: &Pki, dir: &Path, ports: &[u16], id: usize, socket: &Path) -> Proc {
    let peers: Vec<String> = (1..=ports.len())
        .filter(|p| *p != id)
        .map(|p| format!("{p}=127.0.0.1:{}", ports[p - 1]))
        .collect();
    let log = std::fs::File::create(dir.join(format!("member-{id}.log"))).unwrap();
    let child = Command::new(binary("flocker-control"))
        .args(["--id", &id.to_string(), "--data-dir"])
        .arg(dir.join(format!("data-{id}")))
        .args(["--listen", &format!("127.0.0.1:{}", ports[id - 1])])
        .arg("--tls-dir")
        .arg(pki.issue(Role::Control, &format!("m{id}")))
        .args(["--peer", &peers.join(",")])
        .args(["--config", "/dev/null"])
        .env("NOTIFY_SOCKET", socket)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn flocker-control");
    Proc::new(child)
}

fn notify_socket(dir: &Path, name: &str) -> (UnixDatagram, std::path::PathBuf) {
    let path = dir.join(name);
    let socket = UnixDatagram::bind(&path).unwrap();
    (socket, path)
}

fn receive(socket: &UnixDatagram, within: Duration) -> Option<String> {
    socket.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn a_member_is_ready_once_a_majority_has_joined() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let (first, first_path) = notify_socket(dir.path(), "notify-1");
    let (second, second_path) = notify_socket(dir.path(), "notify-2");
    let _m1 = member(&pki, dir.path(), &ports, 1, &first_path);
    assert_eq!(
        receive(&first, Duration::from_secs(2)),
        None,
        "one member of three has no leader, so it is not ready"
    );
    let _m2 = member(&pki, dir.path(), &ports, 2, &second_path);
    let log = || std::fs::read_to_string(dir.path().join("member-1.log")).unwrap_or_default();
    assert_eq!(
        receive(&first, Duration::from_secs(30)).as_deref(),
        Some("READY=1"),
        "member 1's log:\n{}",
        log()
    );
    assert_eq!(
        receive(&second, Duration::from_secs(30)).as_deref(),
        Some("READY=1")
    );
}

#[test]
fn settings_come_from_flags_then_variables_then_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("control.yml");
    std::fs::write(
        &file,
        "id: 2\ndata_dir: /var/lib/flocker-control\nlisten: 10.0.0.2:4523\nnode_timeout: 30s\npeer: [1=10.0.0.1:4523]\n",
    )
    .unwrap();
    let out = Command::new(binary("flocker-control"))
        .arg("--config")
        .arg(&file)
        .args(["--listen", "10.0.0.9:4523", "--print-config"])
        .env("FLOCKER_CONTROL_NODE_TIMEOUT", "20s")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    for line in [
        "id: 2",
        "listen: 10.0.0.9:4523",
        "node_timeout: 20s",
        "call_timeout: 5s",
        "tls_dir: /etc/flocker/tls/control",
        "- 1=10.0.0.1:4523",
    ] {
        assert!(printed.lines().any(|l| l == line), "{line:?} in\n{printed}");
    }

    std::fs::write(
        &file,
        "id: 0\ndata_dir: /x\nlisten: nowhere\ntls_dirr: /x\n",
    )
    .unwrap();
    let out = Command::new(binary("flocker-control"))
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(i32::from(foundation::exit::CONFIG)));
    let said = stderr(&out);
    let file = file.display();
    assert!(
        said.contains(&format!("flocker-control: {file}: tls_dirr: unknown key")),
        "{said}"
    );
    let out = Command::new(binary("flocker-control"))
        .arg("--config")
        .arg(dir.path().join("missing.yml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(i32::from(foundation::exit::CONFIG)));
    assert!(stderr(&out).contains("missing.yml"), "{}", stderr(&out));
}

#[test]
fn a_bad_value_stops_the_member_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("control.yml");
    std::fs::write(
        &file,
        "id: 0\ndata_dir: /x\nlisten: nowhere\nstatus_listen: 0.0.0.0:9520\n",
    )
    .unwrap();
    let out = Command::new(binary("flocker-control"))
        .arg("--config")
        .arg(&file)
        .args(["--tls-dir", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(i32::from(foundation::exit::CONFIG)));
    let said = stderr(&out);
    let file = file.display();
    for want in [
        format!("flocker-control: {file}: id must be a positive integer"),
        format!("flocker-control: {file}: listen \"nowhere\": expected HOST:PORT"),
        format!(
            "flocker-control: {file}: status_listen 0.0.0.0:9520: the status page has no \
             authentication of its own, so it listens on a loopback address only"
        ),
        "flocker-control: --tls-dir: cannot read /nonexistent/ca.crt".to_owned(),
    ] {
        assert!(said.contains(&want), "{want:?} in\n{said}");
    }
}

/// The keys (`key:` at the start of a line) of a settings file.
fn keys(yaml: &str) -> std::collections::BTreeSet<String> {
    yaml.lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()))
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.to_owned()))
        .collect()
}

#[test]
fn the_shipped_settings_file_names_every_setting_and_each_value_parses() {
    let shipped =
        std::fs::read_to_string(testkit::bins::workspace().join("deploy/config/control.yml"))
            .unwrap();
    // Every `#key:` line turned on.
    let all: String = shipped
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase()) => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("control.yml");
    std::fs::write(&file, &all).unwrap();
    let out = Command::new(binary("flocker-control"))
        .arg("--config")
        .arg(&file)
        .arg("--print-config")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(keys(&all), keys(&stdout(&out)));
}

#[test]
fn the_units_pass_systemd_analyze_verify() {
    if !prerequisite(
        have("systemd-analyze"),
        "the units' check needs systemd-analyze (apt-get install systemd)",
    ) {
        return;
    }
    let units = testkit::bins::workspace().join("deploy/systemd");
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart is executable: point it at a program that is here.
    let program = binary("flocker-control");
    for unit in ["flocker-control.service", "flocker-agent.service"] {
        let text = std::fs::read_to_string(units.join(unit)).unwrap();
        let text = text
            .replace("/usr/bin/flocker-control", program.to_str().unwrap())
            .replace("/usr/bin/flocker-agent", program.to_str().unwrap());
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("flocker-control.service"))
        .arg(dir.path().join("flocker-agent.service"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify:\n{}",
        stderr(&out)
    );
}
