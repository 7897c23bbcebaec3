//! The Vagrantfile (deploy/vagrant) and the shell scripts that install and build, checked
//! offline: `vagrant validate --ignore-provider` (no box, no provider, no network; it also
//! checks that the provisioning script, deploy/install-host, exists) and `shellcheck` on
//! deploy/install-host, deploy/setup-host, deploy/deb/build and demos/lab. The VMs are never
//! booted here: no box can be downloaded. `deploy/setup-host` installs both tools, so under
//! `CI=true` a missing one fails the test.

use std::process::Command;

use testkit::bins::workspace;
use testkit::{have, prerequisite};

#[test]
fn the_vagrantfile_validates() {
    if !prerequisite(
        have("vagrant"),
        "the Vagrantfile's check needs vagrant (deploy/setup-host installs it)",
    ) {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("vagrant")
        .args(["validate", "--ignore-provider"])
        .current_dir(workspace().join("deploy/vagrant"))
        .env("VAGRANT_HOME", home.path().join("home"))
        // Machine state (.vagrant) goes here, not into the source tree.
        .env("VAGRANT_DOTFILE_PATH", home.path().join("dotfile"))
        .env("VAGRANT_CHECKPOINT_DISABLE", "1")
        .env("VAGRANT_NO_COLOR", "1")
        .output()
        .expect("run vagrant");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("Vagrantfile validated successfully"),
        "vagrant validate --ignore-provider:\n{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_shell_scripts_pass_shellcheck() {
    if !prerequisite(
        have("shellcheck"),
        "the scripts' check needs shellcheck (deploy/setup-host installs it)",
    ) {
        return;
    }
    let out = Command::new("shellcheck")
        .args([
            "deploy/install-host",
            "deploy/setup-host",
            "deploy/deb/build",
            "demos/lab",
        ])
        .current_dir(workspace())
        .output()
        .expect("run shellcheck");
    assert!(
        out.status.success(),
        "shellcheck:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
