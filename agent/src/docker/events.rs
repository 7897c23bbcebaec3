//! Container events as the agent reads them: [`Event`], [`EventFilter`], and the streams
//! [`DockerApi::events`](super::DockerApi::events) and
//! [`DockerApi::updates`](super::DockerApi::updates) return.
//!
//! The real client ([`super::Docker`]) follows `GET /events` in a background task that
//! outlives the connection, subscribing once dockerd answers a ping: when it ends (daemon restart, socket gone) it reconnects with
//! growing pauses ([`RECONNECT_MIN`] up to [`RECONNECT_MAX`], with jitter) and asks for
//! `since=` the last event it delivered, skipping what it already delivered (`Delivered`:
//! by time, and by container and action among events of the same nanosecond, so two events
//! that share a timestamp are both delivered), so a restart loses nothing Docker recorded.
//! The task stops when the stream is dropped.
//!
//! [`UpdateStream`] is the same stream with an [`Update::Connected`] ahead of each
//! connection's events, for consumers that reconcile with Docker's current state at every
//! (re)connection: what happened while the daemon was down, or before the first
//! connection, shows only there.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The first pause before reconnecting.
pub const RECONNECT_MIN: Duration = Duration::from_millis(100);
/// The longest pause between reconnection attempts.
pub const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// A container event's action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// The container was created (not started yet).
    Create,
    /// The container started (also after a restart by Docker).
    Start,
    /// Its process exited.
    Die,
    /// It was stopped by a client.
    Stop,
    /// `docker restart` (after its `die` and `start`).
    Restart,
    /// It was removed.
    Destroy,
    /// Any other action (`kill`, `exec_start: ...`), as Docker names it.
    Other(String),
}

impl Action {
    /// Docker's name for the action.
    pub fn as_str(&self) -> &str {
        match self {
            Action::Create => "create",
            Action::Start => "start",
            Action::Die => "die",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Destroy => "destroy",
            Action::Other(other) => other,
        }
    }

    /// The action Docker names `name`.
    pub fn parse(name: &str) -> Action {
        match name {
            "create" => Action::Create,
            "start" => Action::Start,
            "die" => Action::Die,
            "stop" => Action::Stop,
            "restart" => Action::Restart,
            "destroy" => Action::Destroy,
            other => Action::Other(other.to_owned()),
        }
    }
}

/// One container event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub action: Action,
    /// The container id.
    pub id: String,
    /// The container name (without `/`), from the attributes.
    pub name: String,
    /// Docker's attributes: `image`, `name`, `exitCode`, labels, ...
    pub attributes: BTreeMap<String, String>,
    /// When, in nanoseconds since the Unix epoch.
    pub time_nano: i64,
}

/// Which container events to receive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// The actions wanted; empty means all.
    pub actions: Vec<Action>,
}

impl EventFilter {
    /// Only these actions.
    pub fn actions(actions: impl IntoIterator<Item = Action>) -> Self {
        EventFilter {
            actions: actions.into_iter().collect(),
        }
    }

    /// Whether an event with `action` passes the filter.
    pub fn matches(&self, action: &Action) -> bool {
        self.actions.is_empty() || self.actions.contains(action)
    }
}

/// What [`DockerApi::updates`](super::DockerApi::updates) yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Docker answers (at first, or again after the connection was lost); the events
    /// that follow are those since the last one delivered, so Docker's state read now is
    /// no older than them.
    Connected,
    /// A container event.
    Event(Event),
}

/// The stream returned by [`DockerApi::updates`](super::DockerApi::updates); dropping it
/// stops the task that feeds it.
pub struct UpdateStream {
    updates: mpsc::Receiver<Update>,
    task: Option<JoinHandle<()>>,
}

impl UpdateStream {
    /// The updates sent into `updates`, by `task` if there is one (aborted on drop).
    pub fn new(updates: mpsc::Receiver<Update>, task: Option<JoinHandle<()>>) -> Self {
        UpdateStream { updates, task }
    }
}

impl Stream for UpdateStream {
    type Item = Update;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Update>> {
        self.updates.poll_recv(cx)
    }
}

impl Drop for UpdateStream {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The stream returned by [`DockerApi::events`](super::DockerApi::events): the events of an
/// [`UpdateStream`] without its [`Update::Connected`]s; dropping it stops the task.
pub struct EventStream {
    updates: UpdateStream,
}

impl EventStream {
    /// The events of `updates`.
    pub fn new(updates: UpdateStream) -> Self {
        EventStream { updates }
    }
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        loop {
            match Pin::new(&mut self.updates).poll_next(cx) {
                Poll::Ready(Some(Update::Connected)) => continue,
                Poll::Ready(Some(Update::Event(event))) => return Poll::Ready(Some(event)),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// What was delivered already, to skip what `since=` sends again after a reconnection:
/// everything older than the last event, and at the last event's nanosecond the
/// (container, action) pairs already sent.
#[derive(Debug, Default)]
pub(super) struct Delivered {
    last_nano: Option<i64>,
    at_last: Vec<(String, Action)>,
}

impl Delivered {
    /// Whether `event` is new; if so it counts as delivered from now on.
    pub(super) fn first_time(&mut self, event: &Event) -> bool {
        let key = (event.id.clone(), event.action.clone());
        match self.last_nano {
            Some(last) if event.time_nano < last => false,
            Some(last) if event.time_nano == last => {
                if self.at_last.contains(&key) {
                    return false;
                }
                self.at_last.push(key);
                true
            }
            _ => {
                self.last_nano = Some(event.time_nano);
                self.at_last = vec![key];
                true
            }
        }
    }
}

/// Now, in nanoseconds since the Unix epoch.
pub(super) fn now_nano() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, action: Action, time_nano: i64) -> Event {
        Event {
            action,
            id: id.into(),
            name: String::new(),
            attributes: BTreeMap::new(),
            time_nano,
        }
    }

    #[test]
    fn events_sharing_a_nanosecond_are_all_delivered_once() {
        let mut delivered = Delivered::default();
        let die = event("c1", Action::Die, 5);
        let destroy = event("c1", Action::Destroy, 5);
        let other = event("c2", Action::Die, 5);
        for e in [&die, &destroy, &other] {
            assert!(delivered.first_time(e), "{e:?}");
        }
        // What `since=` sends again after a reconnection is skipped.
        for e in [&event("c0", Action::Start, 4), &die, &destroy, &other] {
            assert!(!delivered.first_time(e), "{e:?}");
        }
        assert!(delivered.first_time(&event("c1", Action::Start, 6)));
        assert!(!delivered.first_time(&die));
    }

    #[test]
    fn a_filter_passes_its_actions_and_an_empty_one_all() {
        let filter = EventFilter::actions([Action::Start]);
        assert!(filter.matches(&Action::Start));
        assert!(!filter.matches(&Action::Die));
        assert!(EventFilter::default().matches(&Action::Other("create".into())));
    }
}
