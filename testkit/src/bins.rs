//! The workspace's programs, as built for this test run.
//!
//! A test's own package's programs are built by cargo before the test runs and named in
//! `CARGO_BIN_EXE_<name>`. Any other is built by a nested `cargo test --workspace --no-run`
//! in this run's target directory and profile: the README's test command runs the same
//! build first, so there it is a no-op; a narrower run (`cargo test -p agent`) builds what
//! is missing. A plain `cargo build -p control` would unify features differently and
//! rebuild half the dependency tree.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The path of the workspace's program `name` (`flocker-control`, `flockerctl`,
/// `flocker-agent`, `powerstrip`), built if it is not this package's own.
pub fn binary(name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(format!("CARGO_BIN_EXE_{name}")) {
        return PathBuf::from(path);
    }
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut build = cargo();
        build.args(["test", "--workspace", "--no-run", "--quiet"]);
        match profile_dir().file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                build.arg("--release");
            }
            Some(profile) => {
                build.args(["--profile", profile]);
            }
            None => {}
        }
        let status = build
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo test --workspace --no-run failed");
    });
    profile_dir().join(name)
}

/// The static `wait-for-net`, built once per test process with the flags of
/// shared/LAB.md (`cargo build` is a no-op when it is up to date).
pub fn static_wait_for_net() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            const TARGET: &str = "x86_64-unknown-linux-gnu";
            eprintln!(
                "building the static wait-for-net (cargo build --release --target {TARGET}); \
                 the first build takes a minute"
            );
            let status = cargo()
                .env("RUSTFLAGS", "-C target-feature=+crt-static")
                .args(["build", "--release", "--target", TARGET])
                .args(["-p", "wait-for-net", "--bin", "wait-for-net"])
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the static wait-for-net failed");
            let path = target_dir()
                .join(TARGET)
                .join("release")
                .join("wait-for-net");
            assert!(path.exists(), "{} was not built", path.display());
            path
        })
        .clone()
}

/// The workspace's root.
pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit is a directory of the workspace")
}

/// The directory of this run's profile (`target/debug` for tests, `target/release` for
/// benchmarks): where this test's own executable's `deps` directory is.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test runs from <target>/<profile>/deps")
        .to_owned()
}

/// The target directory this run builds into.
fn target_dir() -> PathBuf {
    profile_dir()
        .parent()
        .expect("<target>/<profile>")
        .to_owned()
}

/// `cargo` in the workspace, building into this run's target directory. The variables cargo
/// sets for a running test would change the build's fingerprints and rebuild shared
/// dependencies each time: the nested build starts without them.
fn cargo() -> Command {
    let mut cargo = Command::new(option_env!("CARGO").unwrap_or("cargo"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" || key == "RUST_LOG" {
            cargo.env_remove(key);
        }
    }
    cargo
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", target_dir());
    cargo
}
