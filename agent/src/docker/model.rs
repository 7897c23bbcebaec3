//! The parts of Docker's answers the agent reads, as its own small types: converted from
//! bollard's models by [`super::Docker`], built by hand by the fake in unit tests. A field
//! Docker leaves out or sends as `null` is empty here.

use std::collections::BTreeMap;

use bollard::models;

/// What the agent reads of a container (`docker inspect`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerInfo {
    /// The full container id.
    pub id: String,
    /// The name, with Docker's leading `/`.
    pub name: String,
    /// Running state and PID.
    pub state: ContainerState,
    /// The container's configuration.
    pub config: ContainerConfig,
    /// Binds and mounts as requested.
    pub host_config: HostConfig,
    /// What is mounted, binds and volumes alike, as Docker resolved it.
    pub mounts: Vec<MountPoint>,
}

/// A running container as `GET /containers/json` lists it (the parts the agent reads).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSummary {
    /// The full container id.
    pub id: String,
    /// Its names, each with Docker's leading `/`.
    pub names: Vec<String>,
    /// What is mounted, binds and volumes alike.
    pub mounts: Vec<MountPoint>,
    /// Its labels (a Swarm task's say its service and task).
    pub labels: BTreeMap<String, String>,
}

/// `State` of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerState {
    /// Whether it runs now.
    pub running: bool,
    /// The PID of its init in the host's PID namespace (0 when not running).
    pub pid: u32,
}

/// `Config` of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerConfig {
    /// `NAME=value` entries.
    pub env: Vec<String>,
    /// The entrypoint, if set.
    pub entrypoint: Option<Vec<String>>,
    /// The command, if set.
    pub cmd: Option<Vec<String>>,
    /// The image as the user named it.
    pub image: String,
    /// Its labels (a Swarm task's say its service and task).
    pub labels: BTreeMap<String, String>,
}

impl ContainerConfig {
    /// The value of the environment variable `name`, if set.
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.env.iter().find_map(|entry| {
            let (key, value) = entry.split_once('=')?;
            (key == name).then_some(value)
        })
    }
}

/// `HostConfig` of a container (the parts the agent reads).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    /// `SOURCE:TARGET[:OPTIONS]` binds.
    pub binds: Vec<String>,
    /// `--mount` mounts.
    pub mounts: Vec<Mount>,
    /// `default`, `bridge`, `host`, `none`, `container:ID`, or a network name.
    pub network_mode: String,
}

/// One `HostConfig.Mounts` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mount {
    /// `bind`, `volume`, `tmpfs`, ...
    pub kind: String,
    /// The host path or volume name.
    pub source: String,
    /// The path in the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// One entry of a container's `Mounts` (Docker's `MountPoint`): a bind or volume as mounted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountPoint {
    /// `bind`, `volume`, `tmpfs`, ...
    pub kind: String,
    /// The volume's name (empty for a bind).
    pub name: String,
    /// The host path.
    pub source: String,
    /// The path in the container.
    pub destination: String,
    /// The volume's driver (empty for a bind).
    pub driver: String,
}

/// What the agent reads of an image (`docker image inspect`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// The image id (`sha256:...`).
    pub id: String,
    /// Its default configuration (empty when Docker has none, as for some imported images).
    pub config: ImageConfig,
}

/// `Config` of an image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// The image's `ENTRYPOINT`.
    pub entrypoint: Option<Vec<String>>,
    /// The image's `CMD`.
    pub cmd: Option<Vec<String>>,
    /// The image's `ENV`.
    pub env: Vec<String>,
}

impl From<models::ContainerInspectResponse> for ContainerInfo {
    fn from(c: models::ContainerInspectResponse) -> Self {
        let state = c.state.unwrap_or_default();
        let config = c.config.unwrap_or_default();
        let host = c.host_config.unwrap_or_default();
        ContainerInfo {
            id: c.id.unwrap_or_default(),
            name: c.name.unwrap_or_default(),
            state: ContainerState {
                running: state.running.unwrap_or(false),
                pid: state
                    .pid
                    .and_then(|pid| u32::try_from(pid).ok())
                    .unwrap_or(0),
            },
            config: ContainerConfig {
                env: config.env.unwrap_or_default(),
                entrypoint: config.entrypoint,
                cmd: config.cmd,
                image: config.image.unwrap_or_default(),
                labels: config.labels.unwrap_or_default().into_iter().collect(),
            },
            host_config: HostConfig {
                binds: host.binds.unwrap_or_default(),
                mounts: host
                    .mounts
                    .unwrap_or_default()
                    .into_iter()
                    .map(Mount::from)
                    .collect(),
                network_mode: host.network_mode.unwrap_or_default(),
            },
            mounts: mount_points(c.mounts),
        }
    }
}

impl From<models::ContainerSummary> for ContainerSummary {
    fn from(c: models::ContainerSummary) -> Self {
        ContainerSummary {
            id: c.id.unwrap_or_default(),
            names: c.names.unwrap_or_default(),
            mounts: mount_points(c.mounts),
            labels: c.labels.unwrap_or_default().into_iter().collect(),
        }
    }
}

impl From<models::Mount> for Mount {
    fn from(m: models::Mount) -> Self {
        Mount {
            kind: m.typ.map(|t| t.to_string()).unwrap_or_default(),
            source: m.source.unwrap_or_default(),
            target: m.target.unwrap_or_default(),
            read_only: m.read_only.unwrap_or(false),
        }
    }
}

impl From<models::MountPoint> for MountPoint {
    fn from(m: models::MountPoint) -> Self {
        MountPoint {
            kind: m.typ.unwrap_or_default(),
            name: m.name.unwrap_or_default(),
            source: m.source.unwrap_or_default(),
            destination: m.destination.unwrap_or_default(),
            driver: m.driver.unwrap_or_default(),
        }
    }
}

impl From<models::ImageInspect> for ImageInfo {
    fn from(i: models::ImageInspect) -> Self {
        let config = i.config.unwrap_or_default();
        ImageInfo {
            id: i.id.unwrap_or_default(),
            config: ImageConfig {
                entrypoint: config.entrypoint,
                cmd: config.cmd,
                env: config.env.unwrap_or_default(),
            },
        }
    }
}

fn mount_points(mounts: Option<Vec<models::MountPoint>>) -> Vec<MountPoint> {
    mounts
        .unwrap_or_default()
        .into_iter()
        .map(MountPoint::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_answer_with_nulls_and_string_forms_is_read() {
        // As dockerd 20.10 answers: nulls for empty lists, `Type` as a plain string.
        let json = r#"{"Id":"abc","Name":"/web","State":{"Running":true,"Pid":42},
            "Config":{"Env":null,"Entrypoint":["/bin/sh"],"Cmd":null,"Image":"busybox",
              "Labels":{"com.docker.swarm.task.name":"db.1.k2j3"}},
            "HostConfig":{"Binds":null,"NetworkMode":"default",
              "Mounts":[{"Type":"bind","Source":"/a","Target":"/b"}]},
            "Mounts":null}"#;
        let raw: models::ContainerInspectResponse = serde_json::from_str(json).unwrap();
        let c = ContainerInfo::from(raw);
        assert_eq!(
            c.state,
            ContainerState {
                running: true,
                pid: 42
            }
        );
        assert!(c.config.env.is_empty());
        assert_eq!(c.config.entrypoint, Some(vec!["/bin/sh".to_owned()]));
        assert_eq!(c.config.cmd, None);
        assert_eq!(c.config.labels["com.docker.swarm.task.name"], "db.1.k2j3");
        assert_eq!(c.host_config.network_mode, "default");
        assert_eq!(c.host_config.mounts[0].kind, "bind");
        assert_eq!(c.host_config.mounts[0].target, "/b");
        assert!(c.mounts.is_empty());
    }

    #[test]
    fn a_container_list_with_binds_and_volumes_is_read() {
        let json = r#"[{"Id":"abc","Names":["/web"],"Image":"busybox","State":"running",
            "Labels":{"com.docker.swarm.service.name":"web"},
            "Mounts":[
            {"Type":"bind","Source":"/var/lib/flocker/demo","Destination":"/data",
             "Mode":"","RW":true,"Propagation":"rprivate"},
            {"Type":"volume","Name":"pv","Source":"/mnt/pv","Destination":"/v",
             "Driver":"flocker","Mode":"z","RW":true,"Propagation":""}]},
            {"Id":"def","Names":null,"Mounts":null}]"#;
        let raw: Vec<models::ContainerSummary> = serde_json::from_str(json).unwrap();
        let list: Vec<ContainerSummary> = raw.into_iter().map(Into::into).collect();
        assert_eq!(list[0].names, ["/web"]);
        assert_eq!(list[0].labels["com.docker.swarm.service.name"], "web");
        assert!(list[1].labels.is_empty());
        assert_eq!(list[0].mounts[0].kind, "bind");
        assert_eq!(list[0].mounts[0].source, "/var/lib/flocker/demo");
        assert_eq!(list[0].mounts[1].name, "pv");
        assert_eq!(list[0].mounts[1].driver, "flocker");
        assert!(list[1].mounts.is_empty());
    }

    #[test]
    fn env_var_finds_the_first_exact_name() {
        let config = ContainerConfig {
            env: vec!["WEAVE_CIDRX=1".into(), "WEAVE_CIDR=10.0.0.1/8".into()],
            ..Default::default()
        };
        assert_eq!(config.env_var("WEAVE_CIDR"), Some("10.0.0.1/8"));
        assert_eq!(config.env_var("PATH"), None);
    }

    #[test]
    fn an_image_without_config_has_an_empty_one() {
        let raw: models::ImageInspect =
            serde_json::from_str(r#"{"Id":"sha256:1","Config":null}"#).unwrap();
        assert_eq!(ImageInfo::from(raw).config, ImageConfig::default());
    }
}
