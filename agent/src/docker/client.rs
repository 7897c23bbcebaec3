//! [`Docker`]: the real [`DockerApi`], bollard over dockerd's unix socket, speaking
//! [`API_VERSION`] (dockerd 20.10's; newer daemons accept it), and the events task that
//! survives a daemon restart (see [`super::events`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::{
    EventsOptions, KillContainerOptions, ListContainersOptions, ListVolumesOptions,
    StopContainerOptions,
};
use bollard::{ClientVersion, Docker as Bollard};
use foundation::retry::Backoff;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::events::{Delivered, RECONNECT_MAX, RECONNECT_MIN, now_nano};
use super::{
    API_VERSION, Action, ContainerInfo, ContainerSummary, DockerApi, DockerError, Event,
    EventFilter, ImageInfo, Update, UpdateStream,
};

/// [`API_VERSION`] as bollard takes it.
const CLIENT_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// How long a request may wait for Docker's answer: longer than any the agent makes takes
/// (a stop waits for the container, at most its grace of 300 s and a kill).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// Events parsed but not yet taken by the consumer.
const QUEUE: usize = 256;

/// A client for one Docker daemon. Cheap to clone; nothing is dialled until a request, and
/// the daemon need not be up when it is made.
#[derive(Clone)]
pub struct Docker {
    socket: PathBuf,
    /// bollard's client, made on first use: bollard refuses to make one while the socket
    /// does not exist (dockerd not started yet, or restarting).
    client: Arc<Mutex<Option<Bollard>>>,
}

impl Docker {
    /// A client for the daemon listening on `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Docker {
            socket: socket.into(),
            client: Arc::default(),
        }
    }

    fn client(&self) -> Result<Bollard, DockerError> {
        let mut client = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = client.as_ref() {
            return Ok(client.clone());
        }
        let path = self
            .socket
            .to_str()
            .ok_or_else(|| DockerError::Unreachable {
                socket: self.socket.display().to_string(),
                reason: "the socket's path is not UTF-8".into(),
            })?;
        let made = Bollard::connect_with_unix(path, REQUEST_TIMEOUT.as_secs(), &CLIENT_VERSION)
            .map_err(|e| self.unreachable(&e))?;
        *client = Some(made.clone());
        Ok(made)
    }

    /// `error` of the request `what` as a [`DockerError`]; a 404 is `NotFound` when the
    /// request names a `(kind, name)`.
    fn error(
        &self,
        error: BollardError,
        what: &str,
        named: Option<(&'static str, &str)>,
    ) -> DockerError {
        match (error, named) {
            (
                BollardError::DockerResponseServerError {
                    status_code: 404, ..
                },
                Some(named),
            ) => DockerError::NotFound {
                kind: named.0,
                name: named.1.to_owned(),
            },
            (
                BollardError::DockerResponseServerError {
                    status_code,
                    message,
                },
                _,
            ) => DockerError::Status {
                status: status_code,
                what: what.to_owned(),
                message,
            },
            (BollardError::JsonDataError { message, .. }, _) => DockerError::BadAnswer {
                what: what.to_owned(),
                reason: message,
            },
            (BollardError::JsonSerdeError { err }, _) => DockerError::BadAnswer {
                what: what.to_owned(),
                reason: err.to_string(),
            },
            (other, _) => self.unreachable(&other),
        }
    }

    fn unreachable(&self, error: &dyn std::error::Error) -> DockerError {
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

    /// Once dockerd answers: its container events matching `filter` since `since_nano`.
    async fn subscribe(
        &self,
        filter: &EventFilter,
        since_nano: i64,
    ) -> Result<impl Stream<Item = Result<EventMessage, BollardError>> + use<>, DockerError> {
        let client = self.client()?;
        client
            .ping()
            .await
            .map_err(|e| self.error(e, "GET /_ping", None))?;
        Ok(client.events(Some(events_options(filter, since_nano))))
    }
}

/// Whether `name` may name a container or an image: names, ids and image references never
/// hold a character that would change the request's path (`?`, `#`, `%`, blanks) or a `.`
/// or `..` segment. Anything else Docker does not know either.
fn plausible(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '%'))
        && !name
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

/// `NotFound` for a name Docker cannot know ([`plausible`]).
fn check_name(kind: &'static str, name: &str) -> Result<(), DockerError> {
    if plausible(name) {
        Ok(())
    } else {
        Err(DockerError::NotFound {
            kind,
            name: name.to_owned(),
        })
    }
}

#[async_trait::async_trait]
impl DockerApi for Docker {
    fn socket(&self) -> &Path {
        &self.socket
    }

    async fn inspect_container(&self, id_or_name: &str) -> Result<ContainerInfo, DockerError> {
        check_name("container", id_or_name)?;
        let what = format!("GET /{API_VERSION}/containers/{id_or_name}/json");
        self.client()?
            .inspect_container(id_or_name, None)
            .await
            .map(ContainerInfo::from)
            .map_err(|e| self.error(e, &what, Some(("container", id_or_name))))
    }

    async fn inspect_image(&self, name: &str) -> Result<ImageInfo, DockerError> {
        check_name("image", name)?;
        let what = format!("GET /{API_VERSION}/images/{name}/json");
        self.client()?
            .inspect_image(name)
            .await
            .map(ImageInfo::from)
            .map_err(|e| self.error(e, &what, Some(("image", name))))
    }

    async fn running_containers(&self) -> Result<Vec<ContainerSummary>, DockerError> {
        let list = self
            .client()?
            .list_containers(Some(ListContainersOptions::default()))
            .await
            .map_err(|e| self.error(e, &format!("GET /{API_VERSION}/containers/json"), None))?;
        Ok(list.into_iter().map(ContainerSummary::from).collect())
    }

    async fn kill(&self, id_or_name: &str, signal: &str) -> Result<(), DockerError> {
        check_name("container", id_or_name)?;
        let what = format!("POST /{API_VERSION}/containers/{id_or_name}/kill?signal={signal}");
        let options = KillContainerOptions {
            signal: signal.to_owned(),
        };
        self.client()?
            .kill_container(id_or_name, Some(options))
            .await
            .map_err(|e| self.error(e, &what, Some(("container", id_or_name))))
    }

    async fn stop(&self, id_or_name: &str, grace: Duration) -> Result<(), DockerError> {
        check_name("container", id_or_name)?;
        let secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let what = format!("POST /{API_VERSION}/containers/{id_or_name}/stop?t={secs}");
        let options = StopContainerOptions {
            signal: None,
            t: Some(secs),
        };
        // bollard takes Docker's 304 (not running) as success, as we do.
        self.client()?
            .stop_container(id_or_name, Some(options))
            .await
            .map_err(|e| self.error(e, &what, Some(("container", id_or_name))))
    }

    async fn pause(&self, id_or_name: &str, paused: bool) -> Result<(), DockerError> {
        check_name("container", id_or_name)?;
        let verb = if paused { "pause" } else { "unpause" };
        let what = format!("POST /{API_VERSION}/containers/{id_or_name}/{verb}");
        let client = self.client()?;
        let done = if paused {
            client.pause_container(id_or_name).await
        } else {
            client.unpause_container(id_or_name).await
        };
        done.map_err(|e| self.error(e, &what, Some(("container", id_or_name))))
    }

    async fn look_up_volume_driver(&self, driver: &str) -> Result<(), DockerError> {
        let what = format!("GET /{API_VERSION}/volumes?filters={{\"driver\":[\"{driver}\"]}}");
        let options = ListVolumesOptions {
            filters: Some(HashMap::from([(
                "driver".to_owned(),
                vec![driver.to_owned()],
            )])),
        };
        self.client()?
            .list_volumes(Some(options))
            .await
            .map(|_| ())
            .map_err(|e| self.error(e, &what, None))
    }

    fn updates(&self, filter: EventFilter) -> UpdateStream {
        let (tx, rx) = mpsc::channel(QUEUE);
        let docker = self.clone();
        let task = tokio::spawn(async move { follow(docker, filter, tx).await });
        UpdateStream::new(rx, Some(task))
    }
}

/// Connects, forwards events, reconnects; returns when the receiver is gone. A connection
/// starts when dockerd answers a ping: [`Update::Connected`] goes out then, and the events
/// since the last one delivered follow.
async fn follow(docker: Docker, filter: EventFilter, tx: mpsc::Sender<Update>) {
    let mut since = now_nano();
    let mut delivered = Delivered::default();
    let mut backoff = Backoff::new(RECONNECT_MIN, RECONNECT_MAX);
    loop {
        match docker.subscribe(&filter, since).await {
            Ok(events) => {
                let connected = tokio::time::Instant::now();
                if tx.send(Update::Connected).await.is_err() {
                    return;
                }
                let mut events = std::pin::pin!(events);
                while let Some(message) = events.next().await {
                    let message = match message {
                        Ok(message) => message,
                        Err(error) => {
                            tracing::debug!(docker.socket = %docker.socket.display(),
                                "events: {error}");
                            break;
                        }
                    };
                    let Some(event) = event_from(message) else {
                        continue;
                    };
                    if !delivered.first_time(&event) {
                        continue;
                    }
                    since = event.time_nano;
                    if tx.send(Update::Event(event)).await.is_err() {
                        return;
                    }
                }
                // A connection that lasted starts the pauses over; one refused at once
                // (the daemon going down) goes on growing them.
                if connected.elapsed() >= RECONNECT_MAX {
                    backoff.reset();
                }
                tracing::debug!(docker.socket = %docker.socket.display(),
                    "events stream ended; reconnecting");
            }
            Err(error) => {
                tracing::debug!(docker.socket = %docker.socket.display(),
                    "events: {error}; retrying");
            }
        }
        if tx.is_closed() {
            return;
        }
        backoff.wait().await;
    }
}

/// `GET /events` options: container events of `filter`'s actions since `since_nano`.
fn events_options(filter: &EventFilter, since_nano: i64) -> EventsOptions {
    let mut filters = HashMap::from([("type".to_owned(), vec!["container".to_owned()])]);
    if !filter.actions.is_empty() {
        let names = filter.actions.iter().map(|a| a.as_str().to_owned());
        filters.insert("event".to_owned(), names.collect());
    }
    EventsOptions {
        since: Some(format!(
            "{}.{:09}",
            since_nano.div_euclid(1_000_000_000),
            since_nano.rem_euclid(1_000_000_000)
        )),
        until: None,
        filters: Some(filters),
    }
}

/// A container event as the agent reads it; `None` for other types or one without an id.
fn event_from(message: EventMessage) -> Option<Event> {
    if message.typ != Some(EventMessageTypeEnum::CONTAINER) {
        return None;
    }
    let actor = message.actor?;
    let id = actor.id.filter(|id| !id.is_empty())?;
    let attributes: BTreeMap<String, String> =
        actor.attributes.unwrap_or_default().into_iter().collect();
    Some(Event {
        action: Action::parse(message.action.as_deref().unwrap_or_default()),
        name: attributes.get("name").cloned().unwrap_or_default(),
        id,
        attributes,
        time_nano: message.time_nano.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_as_docker_sends_it_is_read() {
        let json = r#"{"status":"start","id":"c1","Type":"container","Action":"start",
            "Actor":{"ID":"c1","Attributes":{"image":"busybox","name":"web"}},
            "scope":"local","time":1,"timeNano":1000000001}"#;
        let event = event_from(serde_json::from_str(json).unwrap()).unwrap();
        assert_eq!(event.action, Action::Start);
        assert_eq!((event.id.as_str(), event.name.as_str()), ("c1", "web"));
        assert_eq!(event.attributes["image"], "busybox");
        assert_eq!(event.time_nano, 1_000_000_001);
    }

    #[test]
    fn other_types_and_events_without_an_id_are_skipped() {
        let network = r#"{"Type":"network","Action":"connect","Actor":{"ID":"n"}}"#;
        assert_eq!(event_from(serde_json::from_str(network).unwrap()), None);
        let anonymous = r#"{"Type":"container","Action":"start","Actor":{"ID":""}}"#;
        assert_eq!(event_from(serde_json::from_str(anonymous).unwrap()), None);
    }

    #[test]
    fn the_subscription_asks_since_the_last_event_for_the_filters_actions() {
        let filter = EventFilter::actions([Action::Start, Action::Die]);
        let options = events_options(&filter, 1_500_000_000_123);
        assert_eq!(options.since.as_deref(), Some("1500.000000123"));
        let filters = options.filters.unwrap();
        assert_eq!(filters["type"], ["container"]);
        assert_eq!(filters["event"], ["start", "die"]);
        let all = events_options(&EventFilter::default(), 0).filters.unwrap();
        assert!(!all.contains_key("event"));
    }

    #[test]
    fn names_that_would_change_the_path_are_refused_as_unknown() {
        for ok in [
            "web",
            "0123456789ab",
            "localhost:5000/a/b:1",
            "busybox@sha256:ab",
        ] {
            assert!(plausible(ok), "{ok}");
        }
        for bad in ["", "a b", "x?y", "x#y", "x%2F", "../other", "a/./b", "a\n"] {
            assert!(!plausible(bad), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn no_daemon_is_unreachable_and_says_so() {
        let docker = Docker::new("/nonexistent/docker.sock");
        let error = docker.inspect_container("web").await.unwrap_err();
        assert!(matches!(error, DockerError::Unreachable { .. }), "{error}");
        assert!(error.to_string().contains("is dockerd running?"), "{error}");
    }
}
