//! The Terraform module (deploy/terraform), checked offline: `terraform fmt -check
//! -recursive` (the module and both examples), `terraform init -backend=false` and
//! `terraform validate` in the module and the lab example, `terraform test` (plan mode) in
//! the module, and in `terraform graph` the agents' dependency on the members and the
//! rolling upgrade's on the agents. Every command runs with `TF_CLI_CONFIG_FILE=/dev/null`
//! and a temporary `TF_DATA_DIR`; the module uses only Terraform's built-in provider, so
//! nothing is downloaded.
//!
//! Skipped with a reason when `terraform` is not on the PATH, **also under `CI=true`**:
//! none of the registries this project's machines reach ships a usable Terraform (Debian has
//! none; PyPI's wrappers carry Terraform 0.11/1.0, older than `terraform_data` and
//! `terraform test`, or download it at run time), so `deploy/setup-host` cannot install it.
//! CI runs on the project's machine, where `/usr/local/bin/terraform` (1.11) is present.

use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::have;

fn terraform_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/terraform")
}

/// Whether `terraform` can run; a skip (with its reason) otherwise, under CI too.
fn terraform_present() -> bool {
    if have("terraform") {
        return true;
    }
    eprintln!(
        "skipped: the `terraform` command is missing (no registry this project reaches ships \
         Terraform >= 1.6, so setup-host cannot install it; see this test's doc)"
    );
    false
}

/// Runs `terraform ARGS` in `dir`, offline, with `data` as its TF_DATA_DIR; its stdout.
fn terraform(dir: &Path, data: &Path, args: &[&str]) -> String {
    let out = Command::new("terraform")
        .args(args)
        .current_dir(dir)
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .env("TF_DATA_DIR", data)
        .env("TF_IN_AUTOMATION", "1")
        .env("TF_INPUT", "0")
        .env("CHECKPOINT_DISABLE", "1")
        .output()
        .expect("run terraform");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "terraform {} in {} failed:\n{stdout}\n{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_module_and_its_examples_are_formatted() {
    if !terraform_present() {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    // The AWS example is checked only here: validating it needs the AWS provider.
    terraform(
        &terraform_dir(),
        data.path(),
        &["fmt", "-check", "-recursive", "-no-color"],
    );
}

#[test]
fn the_module_and_the_lab_example_validate() {
    if !terraform_present() {
        return;
    }
    for dir in [terraform_dir(), terraform_dir().join("examples/lab")] {
        let data = tempfile::tempdir().unwrap();
        terraform(
            &dir,
            data.path(),
            &["init", "-backend=false", "-input=false", "-no-color"],
        );
        let out = terraform(&dir, data.path(), &["validate", "-no-color"]);
        assert!(out.contains("Success!"), "{}: {out}", dir.display());
    }
}

#[test]
fn the_module_passes_its_plan_mode_tests_and_agents_follow_the_members() {
    if !terraform_present() {
        return;
    }
    let dir = terraform_dir();
    let data = tempfile::tempdir().unwrap();
    terraform(
        &dir,
        data.path(),
        &["init", "-backend=false", "-input=false", "-no-color"],
    );
    let out = terraform(&dir, data.path(), &["test", "-no-color"]);
    assert!(out.contains(" 0 failed"), "{out}");
    let graph = terraform(&dir, data.path(), &["graph"]);
    assert!(
        graph.contains(r#""terraform_data.agent" -> "terraform_data.member""#),
        "the agents start after the members:\n{graph}"
    );
    assert!(
        graph.contains(r#""terraform_data.rollout" -> "terraform_data.agent""#),
        "the rolling upgrade runs once every host's agent is up:\n{graph}"
    );
}
