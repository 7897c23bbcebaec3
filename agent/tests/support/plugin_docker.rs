//! A private dockerd for the Docker-side tests, in its own mount namespace where a
//! per-test directory is `/run/docker/plugins` (so it finds that test's volume plugin and
//! no other), with a busybox image imported from the host's busybox-static.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::stack::Proc;

/// dockerd in its own mount namespace, where the test's plugin dir is `/run/docker/plugins`.
pub fn start_dockerd(root: &Path) -> Proc {
    let plugins = root.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::create_dir_all("/run/docker/plugins").unwrap();
    let log = std::fs::File::create(root.join("dockerd.log")).unwrap();
    // As shared/LAB.md step 1: with `/` private, the slave namespace below would never see
    // the volume mounts zfs-fuse makes after dockerd starts, and containers would bind the
    // empty directories under them instead of the volumes.
    let shared = Command::new("mount")
        .args(["--make-rshared", "/"])
        .status()
        .expect("mount runs");
    assert!(shared.success(), "mount --make-rshared / failed");
    let script = format!(
        "mount --bind {plugins} /run/docker/plugins && exec dockerd -H unix://{sock} --data-root {root}/droot --exec-root {root}/dexec --pidfile {root}/docker.pid",
        plugins = plugins.display(),
        sock = root.join("docker.sock").display(),
        root = root.display(),
    );
    let child = Command::new("unshare")
        .args(["-m", "--propagation", "slave", "sh", "-c", &script])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("dockerd starts");
    let proc = Proc(child);
    let host = format!("unix://{}", root.join("docker.sock").display());
    let answers = || {
        Command::new("docker")
            .env("DOCKER_HOST", &host)
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !answers() {
        if std::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(root.join("dockerd.log")).unwrap_or_default();
            panic!("dockerd did not answer within 120 s; its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    import_busybox(root, &host);
    proc
}

fn import_busybox(root: &Path, host: &str) {
    let image = root.join("busybox-root");
    std::fs::create_dir_all(image.join("bin")).unwrap();
    std::fs::create_dir_all(image.join("tmp")).unwrap();
    std::fs::copy("/bin/busybox", image.join("bin/busybox")).unwrap();
    for applet in ["sh", "cat", "echo", "ls", "sleep", "true"] {
        let _ = std::os::unix::fs::symlink("busybox", image.join("bin").join(applet));
    }
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&image)
        .args(["-c", "."])
        .output()
        .unwrap();
    let mut import = Command::new("docker")
        .env("DOCKER_HOST", host)
        .args(["import", "-c", "ENV PATH=/bin", "-", "busybox:latest"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    import.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    assert!(
        import.wait().unwrap().success(),
        "docker import of busybox failed"
    );
}
