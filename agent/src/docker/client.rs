//! [`Docker`]: pooled HTTP/1.1 over dockerd's unix socket (hyper + hyperlocal), `kill` and
//! `stop`, and the subsets of `GET /containers/{id}/json`, `GET /containers/json` and
//! `GET /images/{name}/json` the agent reads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyperlocal::UnixConnector;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::{API_VERSION, DockerError};

/// A client for one Docker daemon. Cheap to clone; nothing is dialled until a request.
#[derive(Clone)]
pub struct Docker {
    socket: PathBuf,
    client: Client<UnixConnector, Empty<Bytes>>,
}

/// What the agent reads of a container (`docker inspect`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
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
    #[serde(default)]
    pub host_config: HostConfig,
    /// What is mounted, binds and volumes alike, as Docker resolved it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mounts: Vec<MountPoint>,
}

/// A running container as `GET /containers/json` lists it (the parts the agent reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSummary {
    /// The full container id.
    pub id: String,
    /// Its names, each with Docker's leading `/`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub names: Vec<String>,
    /// What is mounted, binds and volumes alike.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mounts: Vec<MountPoint>,
}

/// `State` of a container.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerState {
    /// Whether it runs now.
    pub running: bool,
    /// The PID of its init in the host's PID namespace (0 when not running).
    pub pid: u32,
}

/// `Config` of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerConfig {
    /// `NAME=value` entries.
    #[serde(deserialize_with = "null_as_default")]
    pub env: Vec<String>,
    /// The entrypoint, if set.
    #[serde(deserialize_with = "str_slice")]
    pub entrypoint: Option<Vec<String>>,
    /// The command, if set.
    #[serde(deserialize_with = "str_slice")]
    pub cmd: Option<Vec<String>>,
    /// The image as the user named it.
    pub image: String,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// `SOURCE:TARGET[:OPTIONS]` binds.
    #[serde(deserialize_with = "null_as_default")]
    pub binds: Vec<String>,
    /// `--mount` mounts.
    #[serde(deserialize_with = "null_as_default")]
    pub mounts: Vec<Mount>,
    /// `default`, `bridge`, `host`, `none`, `container:ID`, or a network name.
    #[serde(deserialize_with = "null_as_default")]
    pub network_mode: String,
}

/// One `HostConfig.Mounts` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Mount {
    /// `bind`, `volume`, `tmpfs`, ...
    #[serde(rename = "Type")]
    pub kind: String,
    /// The host path or volume name.
    pub source: String,
    /// The path in the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// One entry of a container's `Mounts` (Docker's `MountPoint`): a bind or volume as mounted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountPoint {
    /// `bind`, `volume`, `tmpfs`, ...
    #[serde(rename = "Type")]
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
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInfo {
    /// The image id (`sha256:...`).
    pub id: String,
    /// Its default configuration (absent for some imported images).
    #[serde(default, deserialize_with = "null_as_default")]
    pub config: ImageConfig,
}

/// `Config` of an image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageConfig {
    /// The image's `ENTRYPOINT`.
    #[serde(deserialize_with = "str_slice")]
    pub entrypoint: Option<Vec<String>>,
    /// The image's `CMD`.
    #[serde(deserialize_with = "str_slice")]
    pub cmd: Option<Vec<String>>,
    /// The image's `ENV`.
    #[serde(deserialize_with = "null_as_default")]
    pub env: Vec<String>,
}

impl Docker {
    /// A client for the daemon listening on `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Docker {
            socket: socket.into(),
            client: Client::builder(TokioExecutor::new()).build(UnixConnector),
        }
    }

    /// The daemon's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /containers/{id_or_name}/json`.
    pub async fn inspect_container(&self, id_or_name: &str) -> Result<ContainerInfo, DockerError> {
        let path = format!("/containers/{}/json", encode(id_or_name, PATH_SAFE));
        self.get_json(&path, "container", id_or_name).await
    }

    /// `GET /images/{name}/json`.
    pub async fn inspect_image(&self, name: &str) -> Result<ImageInfo, DockerError> {
        let path = format!("/images/{}/json", encode(name, PATH_SAFE));
        self.get_json(&path, "image", name).await
    }

    /// `GET /containers/json`: the running containers.
    pub async fn running_containers(&self) -> Result<Vec<ContainerSummary>, DockerError> {
        let body = self.get("/containers/json").await?;
        self.read_json(body, "list containers").await
    }

    /// `POST /containers/{id_or_name}/kill?signal=SIGNAL`.
    pub async fn kill(&self, id_or_name: &str, signal: &str) -> Result<(), DockerError> {
        let path = format!(
            "/containers/{}/kill?signal={}",
            encode(id_or_name, PATH_SAFE),
            encode(signal, QUERY_SAFE)
        );
        match self.send(Method::POST, &path).await {
            Ok(_) => Ok(()),
            Err(DockerError::Status { status, .. }) if status == StatusCode::NOT_FOUND => {
                Err(DockerError::NotFound {
                    kind: "container",
                    name: id_or_name.to_owned(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// `POST /containers/{id_or_name}/stop?t=SECS`: Docker sends the container's stop signal
    /// (SIGTERM unless its image says otherwise), waits up to `grace` and then kills it;
    /// returns when it has stopped. A container that was not running is fine.
    pub async fn stop(&self, id_or_name: &str, grace: Duration) -> Result<(), DockerError> {
        let path = format!(
            "/containers/{}/stop?t={}",
            encode(id_or_name, PATH_SAFE),
            grace.as_secs()
        );
        match self.send(Method::POST, &path).await {
            Ok(_) => Ok(()),
            Err(DockerError::Status { status, .. }) if status == StatusCode::NOT_MODIFIED => Ok(()),
            Err(DockerError::Status { status, .. }) if status == StatusCode::NOT_FOUND => {
                Err(DockerError::NotFound {
                    kind: "container",
                    name: id_or_name.to_owned(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// `GET path` (unversioned, e.g. `/events?...`): the response once its head arrived.
    pub(super) async fn get(&self, path_and_query: &str) -> Result<Incoming, DockerError> {
        self.send(Method::GET, path_and_query).await
    }

    async fn send(&self, method: Method, path_and_query: &str) -> Result<Incoming, DockerError> {
        let uri: http::Uri =
            hyperlocal::Uri::new(&self.socket, &format!("/{API_VERSION}{path_and_query}")).into();
        let what = format!("{method} {path_and_query}");
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Empty::new())
            .expect("a valid request");
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response.into_body());
        }
        let body = response.into_body().collect().await.map(|b| b.to_bytes());
        let message = body
            .ok()
            .map(|b| docker_message(&b))
            .unwrap_or_else(|| "(no body)".into());
        Err(DockerError::Status {
            status: status.as_u16(),
            what,
            message,
        })
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        kind: &'static str,
        name: &str,
    ) -> Result<T, DockerError> {
        let body = match self.get(path).await {
            Ok(body) => body,
            Err(DockerError::Status { status, .. }) if status == StatusCode::NOT_FOUND => {
                return Err(DockerError::NotFound {
                    kind,
                    name: name.to_owned(),
                });
            }
            Err(e) => return Err(e),
        };
        self.read_json(body, &format!("inspect {kind} {name}"))
            .await
    }

    /// The whole of `body`, decoded as JSON; `what` names the request in errors.
    async fn read_json<T: DeserializeOwned>(
        &self,
        body: Incoming,
        what: &str,
    ) -> Result<T, DockerError> {
        let bytes = body
            .collect()
            .await
            .map_err(|e| self.unreachable(&e))?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| DockerError::BadAnswer {
            what: what.to_owned(),
            reason: e.to_string(),
        })
    }

    pub(super) fn unreachable(&self, error: &dyn std::error::Error) -> DockerError {
        let mut reason = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        DockerError::Unreachable {
            socket: self.socket.display().to_string(),
            reason,
        }
    }
}

/// Docker's `{"message": ...}`, or the start of a body that is not that.
fn docker_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    match serde_json::from_slice::<Message>(body) {
        Ok(m) => m.message,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)])
            .trim()
            .to_owned(),
    }
}

/// Characters left as they are in a path segment (`/` and `:` appear in image names).
const PATH_SAFE: &[u8] = b"-._~:/@";
/// Characters left as they are in a query value.
pub(super) const QUERY_SAFE: &[u8] = b"-._~";

/// Percent-encodes every byte that is not alphanumeric or in `safe`.
pub(super) fn encode(text: &str, safe: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || safe.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Docker's `StrSlice`: `null`, a string (one element) or an array of strings.
pub fn str_slice<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => None,
        Some(OneOrMany::One(s)) => Some(vec![s]),
        Some(OneOrMany::Many(v)) => Some(v),
    })
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_json_with_nulls_and_string_forms() {
        let json = r#"{"Id":"abc","Name":"/web","State":{"Running":true,"Pid":42},
            "Config":{"Env":null,"Entrypoint":"/bin/sh","Cmd":null,"Image":"busybox"},
            "HostConfig":{"Binds":null,"Mounts":[{"Type":"bind","Source":"/a","Target":"/b"}]}}"#;
        let c: ContainerInfo = serde_json::from_str(json).unwrap();
        assert_eq!(c.state.pid, 42);
        assert!(c.config.env.is_empty());
        assert_eq!(c.config.entrypoint, Some(vec!["/bin/sh".to_owned()]));
        assert_eq!(c.config.cmd, None);
        assert_eq!(c.host_config.mounts[0].target, "/b");
        assert!(c.mounts.is_empty());
    }

    #[test]
    fn container_list_with_binds_and_volumes() {
        let json = r#"[{"Id":"abc","Names":["/web"],"Image":"busybox","Mounts":[
            {"Type":"bind","Source":"/var/lib/flocker/demo","Destination":"/data",
             "Mode":"","RW":true,"Propagation":"rprivate"},
            {"Type":"volume","Name":"pv","Source":"/mnt/pv","Destination":"/v",
             "Driver":"flocker","Mode":"z","RW":true,"Propagation":""}]},
            {"Id":"def","Names":null,"Mounts":null}]"#;
        let list: Vec<ContainerSummary> = serde_json::from_str(json).unwrap();
        assert_eq!(list[0].names, ["/web"]);
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
    fn image_without_config() {
        let i: ImageInfo = serde_json::from_str(r#"{"Id":"sha256:1","Config":null}"#).unwrap();
        assert_eq!(i.config, ImageConfig::default());
    }

    #[test]
    fn encoding_keeps_names_and_escapes_the_rest() {
        assert_eq!(
            encode("localhost:5000/a/b:1", PATH_SAFE),
            "localhost:5000/a/b:1"
        );
        assert_eq!(encode("a b?#", PATH_SAFE), "a%20b%3F%23");
        assert_eq!(encode(r#"{"a":1}"#, QUERY_SAFE), "%7B%22a%22%3A1%7D");
    }

    #[test]
    fn error_bodies_become_messages() {
        assert_eq!(docker_message(br#"{"message":"no such"}"#), "no such");
        assert_eq!(docker_message(b"plain text\n"), "plain text");
    }
}
