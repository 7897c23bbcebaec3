//! A service task with `WEAVE_CIDR` runs `wait-for-net` first, as a container created
//! through the proxy does ([`crate::weave::rewrite`]): Swarm starts a task's container
//! inside dockerd, where no proxy sees it, and the agent attaches `ethwe` on its `start`
//! event, so without the wait the task's first instruction could run before its address
//! exists.
//!
//! The spec's `ContainerSpec` becomes `Command: ["/w/wait-for-net"]`, `Args: ["--", ARGV...]`
//! plus a read-only bind of this host's `wait-for-net` at `/w/wait-for-net` (the same path
//! must hold it on every node: the package installs it at one place). ARGV is what Swarm
//! would run: `Command` replaces the image's ENTRYPOINT and then `Args` replaces its CMD
//! (Swarm's rules are Docker's with `Command` as `Entrypoint` and `Args` as `Cmd`, except
//! that an empty `Command` counts as none), read from the image on this host when the spec
//! leaves it to the image. A spec wrapped already (an update sends back the spec Swarm
//! holds) is left as it is.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::docker::{DockerApi, DockerError};
use crate::weave::rewrite::{self, ImageCommand, WAIT_FOR_NET};

/// What wrapping a spec did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wrapped {
    /// The spec now runs `wait-for-net` first.
    Now,
    /// Nothing to do: no `WEAVE_CIDR`, or wrapped already.
    NotNeeded,
    /// The image the spec leaves the command to is not on this host, so its command is
    /// unknown here: the spec passes as it is (the task gets its address from the start
    /// event, without the wait).
    ImageNotHere(String),
}

/// Why a spec cannot be wrapped.
#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    /// The spec's command fields are malformed, or it gives no command at all.
    #[error("service {service}: {source}")]
    Spec {
        /// The service's name.
        service: String,
        /// What is wrong.
        source: rewrite::RewriteError,
    },
    /// dockerd did not answer the image inspect.
    #[error("service {service}: cannot read image {image:?} for its command: {source}")]
    Docker {
        /// The service's name.
        service: String,
        /// The image.
        image: String,
        /// dockerd's error.
        source: DockerError,
    },
}

/// Wraps service tasks' commands with `wait-for-net` found at a host path.
pub struct TaskNetwork {
    docker: Arc<dyn DockerApi>,
    wait_for_net: PathBuf,
}

impl TaskNetwork {
    /// Reads images from `docker`; binds `wait_for_net` (this host's path) into tasks.
    pub fn new(docker: Arc<dyn DockerApi>, wait_for_net: impl Into<PathBuf>) -> Self {
        Self {
            docker,
            wait_for_net: wait_for_net.into(),
        }
    }

    /// Rewrites the service spec `value` so that its tasks run `wait-for-net` first, if
    /// they have `WEAVE_CIDR` and are not wrapped yet.
    pub async fn wrap(&self, value: &mut Value) -> Result<Wrapped, WrapError> {
        let service = value["Name"].as_str().unwrap_or("(unnamed)").to_owned();
        let Some(spec) = value.pointer_mut("/TaskTemplate/ContainerSpec") else {
            return Ok(Wrapped::NotNeeded);
        };
        if !has_weave_cidr(spec) || wrapped_already(spec) {
            return Ok(Wrapped::NotNeeded);
        }
        let as_container = container_view(spec);
        let spec_error = |source| WrapError::Spec {
            service: service.clone(),
            source,
        };
        let image = match rewrite::image_needed(&as_container).map_err(spec_error)? {
            None => ImageCommand::default(),
            Some(name) => match self.docker.inspect_image(name).await {
                Ok(info) => ImageCommand {
                    entrypoint: info.config.entrypoint,
                    cmd: info.config.cmd,
                },
                Err(DockerError::NotFound { .. }) => {
                    return Ok(Wrapped::ImageNotHere(name.to_owned()));
                }
                Err(source) => {
                    return Err(WrapError::Docker {
                        service,
                        image: name.to_owned(),
                        source,
                    });
                }
            },
        };
        let argv = rewrite::command(&as_container, &image).map_err(spec_error)?;
        let mut args = vec!["--".to_owned()];
        args.extend(argv);
        spec["Command"] = json!([WAIT_FOR_NET]);
        spec["Args"] = json!(args);
        let bind = json!({
            "Type": "bind",
            "Source": self.wait_for_net.display().to_string(),
            "Target": WAIT_FOR_NET,
            "ReadOnly": true,
        });
        match spec.get_mut("Mounts").and_then(Value::as_array_mut) {
            Some(mounts) => mounts.push(bind),
            None => spec["Mounts"] = json!([bind]),
        }
        Ok(Wrapped::Now)
    }
}

fn has_weave_cidr(spec: &Value) -> bool {
    spec["Env"].as_array().is_some_and(|env| {
        env.iter()
            .filter_map(Value::as_str)
            .any(|e| e.starts_with("WEAVE_CIDR="))
    })
}

fn wrapped_already(spec: &Value) -> bool {
    spec["Command"]
        .as_array()
        .is_some_and(|c| c.len() == 1 && c[0].as_str() == Some(WAIT_FOR_NET))
}

/// The spec's command fields as a container create body: `Command` as `Entrypoint` (an
/// empty one as none, as Swarm reads it) and `Args` as `Cmd`.
fn container_view(spec: &Value) -> Value {
    let command = match &spec["Command"] {
        Value::Array(c) if c.is_empty() => Value::Null,
        other => other.clone(),
    };
    json!({ "Entrypoint": command, "Cmd": spec["Args"].clone(), "Image": spec["Image"].clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::fake::FakeDocker;
    use crate::docker::{ImageConfig, ImageInfo};

    const HOST_PATH: &str = "/usr/local/lib/flocker/wait-for-net";

    fn network_with_image(entrypoint: Option<&[&str]>, cmd: Option<&[&str]>) -> TaskNetwork {
        let docker = FakeDocker::new();
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        docker.add_image(
            "img",
            ImageInfo {
                config: ImageConfig {
                    entrypoint: entrypoint.map(strings),
                    cmd: cmd.map(strings),
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        TaskNetwork::new(Arc::new(docker), HOST_PATH)
    }

    fn spec(container: Value) -> Value {
        json!({ "Name": "db", "TaskTemplate": { "ContainerSpec": container } })
    }

    async fn wrapped(network: &TaskNetwork, container: Value) -> (Wrapped, Value) {
        let mut value = spec(container);
        let outcome = network.wrap(&mut value).await.expect("wraps");
        (outcome, value["TaskTemplate"]["ContainerSpec"].clone())
    }

    #[tokio::test]
    async fn a_task_with_weave_cidr_runs_its_command_under_wait_for_net() {
        let network = network_with_image(Some(&["/entry"]), Some(&["serve"]));
        let cases = [
            // Neither: the image's ENTRYPOINT and CMD.
            (json!({}), vec!["/entry", "serve"]),
            // Args only: the image's ENTRYPOINT with the Args.
            (
                json!({ "Args": ["sh", "-c", "x"] }),
                vec!["/entry", "sh", "-c", "x"],
            ),
            // Command: replaces the ENTRYPOINT, and the image's CMD is not used.
            (json!({ "Command": ["/bin/sh"] }), vec!["/bin/sh"]),
            (
                json!({ "Command": ["/bin/sh"], "Args": ["-c", "x"] }),
                vec!["/bin/sh", "-c", "x"],
            ),
            // An empty Command is none (Swarm's rule; for a container it would clear it).
            (json!({ "Command": [], "Args": ["y"] }), vec!["/entry", "y"]),
        ];
        for (fields, argv) in cases {
            let mut container = fields.clone();
            container["Image"] = json!("img");
            container["Env"] = json!(["A=1", "WEAVE_CIDR=10.255.0.1{{.Task.Slot}}/16"]);
            let (outcome, spec) = wrapped(&network, container).await;
            assert_eq!(outcome, Wrapped::Now, "{fields}");
            assert_eq!(spec["Command"], json!([WAIT_FOR_NET]), "{fields}");
            let mut args = vec!["--"];
            args.extend(argv);
            assert_eq!(spec["Args"], json!(args), "{fields}");
            assert_eq!(
                spec["Mounts"],
                json!([{ "Type": "bind", "Source": HOST_PATH, "Target": WAIT_FOR_NET, "ReadOnly": true }]),
                "{fields}"
            );
            assert_eq!(spec["Env"][1], "WEAVE_CIDR=10.255.0.1{{.Task.Slot}}/16");
        }
    }

    #[tokio::test]
    async fn a_spec_without_weave_cidr_or_wrapped_already_is_left_alone() {
        let network = network_with_image(Some(&["/entry"]), None);
        let plain = json!({ "Image": "img", "Env": ["A=1"], "Args": ["x"] });
        let (outcome, spec) = wrapped(&network, plain.clone()).await;
        assert_eq!((outcome, spec), (Wrapped::NotNeeded, plain));
        // An update sends back the spec Swarm holds: wrapping it again would nest.
        let mut once = spec_with_cidr();
        network.wrap(&mut once).await.unwrap();
        let mut twice = once.clone();
        assert_eq!(network.wrap(&mut twice).await.unwrap(), Wrapped::NotNeeded);
        assert_eq!(once, twice);
        let mounts = once["TaskTemplate"]["ContainerSpec"]["Mounts"]
            .as_array()
            .unwrap();
        assert_eq!(
            mounts.len(),
            2,
            "the flocker mount and one wait-for-net bind"
        );
    }

    fn spec_with_cidr() -> Value {
        spec(json!({
            "Image": "img",
            "Env": ["WEAVE_CIDR=10.255.0.5/16"],
            "Mounts": [{ "Type": "volume", "Source": "pg", "Target": "/data" }],
        }))
    }

    #[tokio::test]
    async fn an_image_not_on_this_host_passes_unwrapped_and_no_command_is_an_error() {
        let network = network_with_image(None, None);
        let mut value =
            spec(json!({ "Image": "elsewhere:1", "Env": ["WEAVE_CIDR=10.255.0.5/16"] }));
        let before = value.clone();
        let outcome = network.wrap(&mut value).await.unwrap();
        assert_eq!(outcome, Wrapped::ImageNotHere("elsewhere:1".into()));
        assert_eq!(value, before);
        // The image has neither ENTRYPOINT nor CMD and the spec gives no command.
        let mut value = spec(json!({ "Image": "img", "Env": ["WEAVE_CIDR=10.255.0.5/16"] }));
        let error = network.wrap(&mut value).await.unwrap_err();
        assert!(
            error
                .to_string()
                .contains("service db: no command specified"),
            "{error}"
        );
    }
}
