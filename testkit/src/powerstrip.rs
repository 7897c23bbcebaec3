//! The `powerstrip` program run as a child process on a private unix socket, in front of
//! a dockerd (or anything else listening on a unix socket).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

use crate::wait::wait_until;
use crate::{binary, unique_dir};

/// A running `powerstrip`, killed and its directory removed on drop.
pub struct Powerstrip {
    child: Child,
    dir: PathBuf,
}

impl Powerstrip {
    /// Starts powerstrip with this adapters.yml in front of `docker`, listening on a unix
    /// socket of its own, and waits until it accepts connections.
    pub fn start(config: &str, docker: &Path) -> Powerstrip {
        Powerstrip::start_with(config, docker, &[])
    }

    /// As [`Powerstrip::start`], logging only warnings (for benchmarks).
    pub fn start_quiet(config: &str, docker: &Path) -> Powerstrip {
        Powerstrip::spawn(config, docker, &[], "warn")
    }

    /// As [`Powerstrip::start`], with extra flags.
    pub fn start_with(config: &str, docker: &Path, extra: &[&str]) -> Powerstrip {
        Powerstrip::spawn(config, docker, extra, "info")
    }

    fn spawn(config: &str, docker: &Path, extra: &[&str], log: &str) -> Powerstrip {
        let dir = unique_dir("psp");
        std::fs::write(dir.join("adapters.yml"), config).unwrap();
        let socket = dir.join("p.sock");
        let log_file = std::fs::File::create(dir.join("powerstrip.log")).unwrap();
        let child = Command::new(binary("powerstrip"))
            .arg("--config")
            .arg(dir.join("adapters.yml"))
            .arg("--listen")
            .arg(format!("unix://{}", socket.display()))
            .arg("--docker")
            .arg(format!("unix://{}", docker.display()))
            .args(extra)
            .env("RUST_LOG", log)
            .stderr(log_file)
            .spawn()
            .expect("powerstrip starts");
        let mut powerstrip = Powerstrip { child, dir };
        wait_until(Duration::from_secs(10), "powerstrip to listen", || {
            if let Ok(Some(status)) = powerstrip.child.try_wait() {
                panic!("powerstrip exited with {status}:\n{}", powerstrip.log());
            }
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        });
        powerstrip
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The proxy's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("p.sock")
    }

    /// The `docker` CLI pointed at the proxy, with a private config directory.
    pub fn docker(&self) -> Command {
        let mut command = Command::new("docker");
        command
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .env("DOCKER_CONFIG", self.dir.join("docker-config"))
            .env("DOCKER_BUILDKIT", "0");
        command
    }

    /// Runs `docker ARGS` through the proxy.
    pub fn run(&self, args: &[&str]) -> Output {
        self.docker().args(args).output().expect("docker runs")
    }

    /// Replaces adapters.yml and sends SIGHUP.
    pub fn reload(&self, config: &str) {
        std::fs::write(self.dir.join("adapters.yml"), config).unwrap();
        let status = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// What powerstrip logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("powerstrip.log")).unwrap_or_default()
    }

    /// The directory this instance keeps its files in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Powerstrip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
