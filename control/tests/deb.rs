//! `deploy/deb/build` makes a package holding the binaries, the static wait-for-net, the
//! units and the default settings as conffiles (checked with `dpkg-deb`; nothing is
//! installed on this machine).

use std::process::Command;

use testkit::{binary, root_and_tools, stderr, stdout};

#[test]
fn the_package_holds_the_binaries_units_and_settings() {
    if !root_and_tools("the package test", &["dpkg-deb", "dpkg", "ldd"]) {
        return;
    }
    // The test build's binaries (the package's command builds release ones).
    let bin_dir = binary("flocker-agent").parent().unwrap().to_owned();
    assert!(binary("flocker-control").starts_with(&bin_dir));
    let wait_for_net = testkit::bins::static_wait_for_net();
    let out_dir = tempfile::tempdir().unwrap();
    let build = Command::new(testkit::bins::workspace().join("deploy/deb/build"))
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--wait-for-net")
        .arg(&wait_for_net)
        .arg("--out")
        .arg(out_dir.path())
        .arg("--fast")
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", stderr(&build));
    let deb = stdout(&build).lines().last().unwrap().to_owned();
    assert!(deb.ends_with(".deb"), "{deb}");

    let contents = Command::new("dpkg-deb")
        .args(["--contents", &deb])
        .output()
        .unwrap();
    assert!(contents.status.success(), "{}", stderr(&contents));
    let listing = stdout(&contents);
    for path in [
        "./usr/bin/flocker-agent",
        "./usr/bin/flocker-control",
        "./usr/bin/flockerctl",
        "./usr/lib/flocker/wait-for-net",
        "./usr/lib/systemd/system/flocker-agent.service",
        "./usr/lib/systemd/system/flocker-control.service",
        "./etc/flocker/agent.yml",
        "./etc/flocker/control.yml",
        "./etc/flocker/tls/",
        "./etc/profile.d/flocker-docker-host.sh",
        "./usr/share/doc/flocker/deploy.md",
    ] {
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!(" {path}")))
            .unwrap_or_else(|| panic!("{path} not in\n{listing}"));
        assert!(line.contains("root/root"), "owned by root: {line}");
        if path.contains("/bin/") || path.ends_with("wait-for-net") {
            assert!(line.starts_with("-rwxr-xr-x"), "{line}");
        }
        if path.ends_with("/tls/") {
            assert!(line.starts_with("drwx------"), "{line}");
        }
    }

    let info = Command::new("dpkg-deb")
        .args(["--info", &deb])
        .output()
        .unwrap();
    assert!(info.status.success(), "{}", stderr(&info));
    let info = stdout(&info);
    for want in [
        "Package: flocker",
        &format!("Version: {}", env!("CARGO_PKG_VERSION")),
        "conffiles",
        "postinst",
        "prerm",
        "postrm",
    ] {
        assert!(info.contains(want), "{want:?} in\n{info}");
    }
    let conffiles = Command::new("dpkg-deb")
        .args(["--info", &deb, "conffiles"])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&conffiles).lines().collect::<Vec<_>>(),
        [
            "/etc/flocker/agent.yml",
            "/etc/flocker/control.yml",
            "/etc/profile.d/flocker-docker-host.sh"
        ]
    );
}
