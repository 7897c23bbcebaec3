//! [`FakeDocker`]: an in-memory [`DockerApi`] for unit tests. Containers and images are set
//! up by the test, events are sent when the test says so (nothing is emitted by itself:
//! a `stop` does not send `die`), and every call is recorded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{
    Action, ContainerConfig, ContainerInfo, ContainerState, ContainerSummary, DockerApi,
    DockerError, Event, EventFilter, ImageInfo, MountPoint, Update, UpdateStream,
};

/// A call the agent made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `inspect_container(id_or_name)`.
    InspectContainer(String),
    /// `inspect_image(name)`.
    InspectImage(String),
    /// `running_containers()`.
    RunningContainers,
    /// `kill(id_or_name, signal)`.
    Kill(String, String),
    /// `stop(id_or_name, grace)`.
    Stop(String, Duration),
    /// `look_up_volume_driver(driver)`.
    LookUpVolumeDriver(String),
    /// `pause(id_or_name, paused)`.
    Pause(String, bool),
}

/// An in-memory Docker.
pub struct FakeDocker {
    socket: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    containers: Vec<ContainerInfo>,
    images: BTreeMap<String, ImageInfo>,
    calls: Vec<Call>,
    unreachable: bool,
    subscribers: Vec<(EventFilter, mpsc::Sender<Update>)>,
    clock: i64,
}

impl Default for FakeDocker {
    fn default() -> Self {
        FakeDocker {
            socket: PathBuf::from("/fake/docker.sock"),
            state: Mutex::default(),
        }
    }
}

/// A running container `id` (named `/<id>`) with init `pid` and environment `env`.
pub fn running(id: &str, pid: u32, env: &[&str]) -> ContainerInfo {
    ContainerInfo {
        id: id.to_owned(),
        name: format!("/{id}"),
        state: ContainerState { running: true, pid },
        config: ContainerConfig {
            env: env.iter().map(|e| (*e).to_owned()).collect(),
            image: "busybox".into(),
            ..ContainerConfig::default()
        },
        ..ContainerInfo::default()
    }
}

/// A bind of `source` at `/data`, as Docker lists it among a container's mounts.
pub fn bind(source: &str) -> MountPoint {
    MountPoint {
        kind: "bind".into(),
        source: source.into(),
        destination: "/data".into(),
        ..MountPoint::default()
    }
}

impl FakeDocker {
    /// An empty Docker.
    pub fn new() -> Self {
        FakeDocker::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `container`, or replaces the one with its id.
    pub fn add(&self, container: ContainerInfo) {
        let mut state = self.state();
        state.containers.retain(|c| c.id != container.id);
        state.containers.push(container);
    }

    /// Adds `image` under `name`.
    pub fn add_image(&self, name: &str, image: ImageInfo) {
        self.state().images.insert(name.to_owned(), image);
    }

    /// The container `id` stops (it exits, and is kept).
    pub fn exit(&self, id: &str) {
        if let Some(c) = self.state().containers.iter_mut().find(|c| c.id == id) {
            c.state = ContainerState::default();
        }
    }

    /// The container `id` is removed.
    pub fn remove(&self, id: &str) {
        self.state().containers.retain(|c| c.id != id);
    }

    /// The container `id` as Docker has it now.
    pub fn container(&self, id: &str) -> Option<ContainerInfo> {
        self.state().containers.iter().find(|c| c.id == id).cloned()
    }

    /// From now on every call fails as if dockerd were down (or works again).
    pub fn set_unreachable(&self, unreachable: bool) {
        self.state().unreachable = unreachable;
    }

    /// The calls made so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Forgets the calls made so far.
    pub fn clear_calls(&self) {
        self.state().calls.clear();
    }

    /// Every update stream is told of a new connection ([`Update::Connected`]).
    pub fn reconnect(&self) {
        let mut state = self.state();
        state.subscribers.retain(|(_, tx)| !tx.is_closed());
        for (_, tx) in &state.subscribers {
            let _ = tx.try_send(Update::Connected);
        }
    }

    /// Docker reports `action` for container `id` to the streams whose filter passes it.
    pub fn emit(&self, action: Action, id: &str) {
        let mut state = self.state();
        state.clock += 1;
        let name = state
            .containers
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.name.trim_start_matches('/').to_owned())
            .unwrap_or_default();
        let event = Event {
            action,
            id: id.to_owned(),
            attributes: BTreeMap::from([("name".to_owned(), name.clone())]),
            name,
            time_nano: state.clock,
        };
        state.subscribers.retain(|(_, tx)| !tx.is_closed());
        for (filter, tx) in &state.subscribers {
            if filter.matches(&event.action) {
                let _ = tx.try_send(Update::Event(event.clone()));
            }
        }
    }

    /// Records `call`; fails if dockerd is down.
    fn call(&self, call: Call) -> Result<std::sync::MutexGuard<'_, State>, DockerError> {
        let mut state = self.state();
        state.calls.push(call);
        if state.unreachable {
            return Err(DockerError::Unreachable {
                socket: self.socket.display().to_string(),
                reason: "connection refused".into(),
            });
        }
        Ok(state)
    }
}

impl State {
    /// The container `id_or_name` names: its id, its name (with or without `/`), or a
    /// prefix of one id.
    fn find(&mut self, id_or_name: &str) -> Result<&mut ContainerInfo, DockerError> {
        let wanted = id_or_name.trim_start_matches('/');
        let exact = self
            .containers
            .iter()
            .position(|c| c.id == id_or_name || c.name.trim_start_matches('/') == wanted);
        let prefix = || {
            let mut hits =
                (self.containers.iter().enumerate()).filter(|(_, c)| c.id.starts_with(id_or_name));
            match (hits.next(), hits.next()) {
                (Some((i, _)), None) if !id_or_name.is_empty() => Some(i),
                _ => None,
            }
        };
        match exact.or_else(prefix) {
            Some(i) => Ok(&mut self.containers[i]),
            None => Err(DockerError::NotFound {
                kind: "container",
                name: id_or_name.to_owned(),
            }),
        }
    }
}

#[async_trait::async_trait]
impl DockerApi for FakeDocker {
    fn socket(&self) -> &Path {
        &self.socket
    }

    async fn inspect_container(&self, id_or_name: &str) -> Result<ContainerInfo, DockerError> {
        let mut state = self.call(Call::InspectContainer(id_or_name.to_owned()))?;
        state.find(id_or_name).map(|c| c.clone())
    }

    async fn inspect_image(&self, name: &str) -> Result<ImageInfo, DockerError> {
        let state = self.call(Call::InspectImage(name.to_owned()))?;
        state
            .images
            .get(name)
            .cloned()
            .ok_or_else(|| DockerError::NotFound {
                kind: "image",
                name: name.to_owned(),
            })
    }

    async fn running_containers(&self) -> Result<Vec<ContainerSummary>, DockerError> {
        let state = self.call(Call::RunningContainers)?;
        Ok(state
            .containers
            .iter()
            .filter(|c| c.state.running)
            .map(|c| ContainerSummary {
                id: c.id.clone(),
                names: vec![c.name.clone()],
                mounts: c.mounts.clone(),
                labels: c.config.labels.clone(),
            })
            .collect())
    }

    async fn kill(&self, id_or_name: &str, signal: &str) -> Result<(), DockerError> {
        let call = Call::Kill(id_or_name.to_owned(), signal.to_owned());
        let mut state = self.call(call)?;
        let container = state.find(id_or_name)?;
        if !container.state.running {
            return Err(DockerError::Status {
                status: 409,
                what: format!("kill {id_or_name}"),
                message: format!("Container {} is not running", container.id),
            });
        }
        container.state = ContainerState::default();
        Ok(())
    }

    async fn stop(&self, id_or_name: &str, grace: Duration) -> Result<(), DockerError> {
        let mut state = self.call(Call::Stop(id_or_name.to_owned(), grace))?;
        state.find(id_or_name)?.state = ContainerState::default();
        Ok(())
    }

    async fn pause(&self, id_or_name: &str, paused: bool) -> Result<(), DockerError> {
        let mut state = self.call(Call::Pause(id_or_name.to_owned(), paused))?;
        state.find(id_or_name)?;
        Ok(())
    }

    async fn look_up_volume_driver(&self, driver: &str) -> Result<(), DockerError> {
        let _answered = self.call(Call::LookUpVolumeDriver(driver.to_owned()))?;
        Ok(())
    }

    fn updates(&self, filter: EventFilter) -> UpdateStream {
        let (tx, rx) = mpsc::channel(256);
        let mut state = self.state();
        if !state.unreachable {
            let _ = tx.try_send(Update::Connected);
        }
        state.subscribers.push((filter, tx));
        UpdateStream::new(rx, None)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[tokio::test]
    async fn the_fake_answers_like_docker() {
        let docker = FakeDocker::new();
        docker.add(running("abc123", 7, &["A=1"]));
        assert_eq!(docker.inspect_container("abc").await.unwrap().state.pid, 7);
        assert_eq!(
            docker.inspect_container("/abc123").await.unwrap().id,
            "abc123"
        );
        let missing = docker.inspect_container("zzz").await.unwrap_err();
        assert_eq!(missing.to_string(), "no such container: zzz");
        docker.stop("abc123", Duration::from_secs(1)).await.unwrap();
        assert!(docker.running_containers().await.unwrap().is_empty());
        docker.set_unreachable(true);
        let down = docker.running_containers().await.unwrap_err();
        assert!(matches!(down, DockerError::Unreachable { .. }), "{down}");
        assert_eq!(docker.calls().len(), 6);

        docker.set_unreachable(false);
        let mut updates = docker.updates(EventFilter::actions([Action::Die]));
        docker.emit(Action::Start, "abc123");
        docker.emit(Action::Die, "abc123");
        assert_eq!(updates.next().await, Some(Update::Connected));
        match updates.next().await {
            Some(Update::Event(e)) => {
                assert_eq!((e.action, e.name.as_str()), (Action::Die, "abc123"))
            }
            other => panic!("{other:?}"),
        }
    }
}
