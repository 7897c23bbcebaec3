//! `GET /events` as a [`Stream`] of typed container events that outlives the connection.
//!
//! A background task holds the connection and parses Docker's concatenated JSON objects.
//! When the connection ends (daemon restart, socket gone) it reconnects with growing
//! pauses (100 ms up to 2 s, with jitter) and asks for `since=` the last event it delivered, skipping
//! what it already delivered (by time, and by container and action among
//! events of the same nanosecond, so two events that share a timestamp are both
//! delivered), so a restart loses nothing Docker recorded. The task stops when the
//! [`EventStream`] is dropped.
//!
//! [`Docker::updates`] is the same stream with an [`Update::Connected`] ahead of each
//! connection's events, for consumers that reconcile with Docker's current state at every
//! (re)connection: what happened while the daemon was down, or before the first
//! connection, shows only there.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foundation::retry::Backoff;

use futures_util::Stream;
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Docker;
use super::client::{QUERY_SAFE, encode};

/// The first pause before reconnecting.
pub const RECONNECT_MIN: Duration = Duration::from_millis(100);
/// The longest pause between reconnection attempts.
pub const RECONNECT_MAX: Duration = Duration::from_secs(2);
/// Events parsed but not yet taken by the consumer.
const QUEUE: usize = 256;

/// A container event's action.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
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
    /// Any other action (`create`, `kill`, `exec_start: ...`), as Docker names it.
    Other(String),
}

impl Action {
    /// Docker's name for the action.
    pub fn as_str(&self) -> &str {
        match self {
            Action::Start => "start",
            Action::Die => "die",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Destroy => "destroy",
            Action::Other(other) => other,
        }
    }

    fn parse(name: &str) -> Action {
        match name {
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

    fn query(&self, since_nano: i64) -> String {
        let mut filters = serde_json::json!({ "type": ["container"] });
        if !self.actions.is_empty() {
            let names: Vec<&str> = self.actions.iter().map(Action::as_str).collect();
            filters["event"] = serde_json::json!(names);
        }
        let since = format!(
            "{}.{:09}",
            since_nano.div_euclid(1_000_000_000),
            since_nano.rem_euclid(1_000_000_000)
        );
        format!(
            "/events?since={since}&filters={}",
            encode(&filters.to_string(), QUERY_SAFE)
        )
    }
}

/// What [`Docker::updates`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Docker answered a new `GET /events` (the first one or after a reconnection); the
    /// events that follow come over it.
    Connected,
    /// A container event.
    Event(Event),
}

/// The stream returned by [`Docker::updates`]; dropping it stops the background task.
pub struct UpdateStream {
    updates: mpsc::Receiver<Update>,
    task: JoinHandle<()>,
}

impl Stream for UpdateStream {
    type Item = Update;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Update>> {
        self.updates.poll_recv(cx)
    }
}

impl Drop for UpdateStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The stream returned by [`Docker::events`]; dropping it stops the background task.
pub struct EventStream {
    updates: UpdateStream,
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

impl Docker {
    /// Container events matching `filter` from now on, across daemon restarts. Needs a
    /// tokio runtime.
    pub fn events(&self, filter: EventFilter) -> EventStream {
        EventStream {
            updates: self.updates(filter),
        }
    }

    /// As [`Docker::events`], with an [`Update::Connected`] ahead of the events of every
    /// connection. Needs a tokio runtime.
    pub fn updates(&self, filter: EventFilter) -> UpdateStream {
        let (tx, rx) = mpsc::channel(QUEUE);
        let docker = self.clone();
        let task = tokio::spawn(async move { follow(docker, filter, tx).await });
        UpdateStream { updates: rx, task }
    }
}

/// Connects, forwards events, reconnects; returns when the receiver is gone.
async fn follow(docker: Docker, filter: EventFilter, tx: mpsc::Sender<Update>) {
    let mut since = now_nano();
    let mut delivered = Delivered::default();
    let mut backoff = Backoff::new(RECONNECT_MIN, RECONNECT_MAX);
    loop {
        match docker.get(&filter.query(since)).await {
            Ok(mut body) => {
                backoff.reset();
                if tx.send(Update::Connected).await.is_err() {
                    return;
                }
                let mut buffer = Vec::new();
                while let Some(frame) = body.frame().await {
                    let Ok(frame) = frame else { break };
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    buffer.extend_from_slice(&data);
                    for event in drain_events(&mut buffer) {
                        if !delivered.first_time(&event) {
                            continue;
                        }
                        since = event.time_nano;
                        if tx.send(Update::Event(event)).await.is_err() {
                            return;
                        }
                    }
                }
                tracing::debug!(docker.socket = %docker.socket().display(),
                    "events stream ended; reconnecting");
            }
            Err(error) => {
                tracing::debug!(docker.socket = %docker.socket().display(),
                    "events: {error}; retrying");
            }
        }
        if tx.is_closed() {
            return;
        }
        backoff.wait().await;
    }
}

/// What was delivered already, to skip what `since=` sends again after a reconnection:
/// everything older than the last event, and at the last event's nanosecond the
/// (container, action) pairs already sent.
#[derive(Debug, Default)]
struct Delivered {
    last_nano: Option<i64>,
    at_last: Vec<(String, Action)>,
}

impl Delivered {
    /// Whether `event` is new; if so it counts as delivered from now on.
    fn first_time(&mut self, event: &Event) -> bool {
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

/// Parses the complete JSON objects at the start of `buffer`, leaving a partial one.
fn drain_events(buffer: &mut Vec<u8>) -> Vec<Event> {
    let mut events = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(buffer).into_iter::<Wire>();
    let mut consumed = 0;
    loop {
        match stream.next() {
            Some(Ok(wire)) => {
                consumed = stream.byte_offset();
                events.extend(wire.into_event());
            }
            Some(Err(e)) if e.is_eof() => break,
            Some(Err(e)) => {
                // Not JSON: drop what is buffered rather than stall on it forever.
                tracing::warn!("events: skipping unparsable data: {e}");
                consumed = buffer.len();
                break;
            }
            None => {
                consumed = buffer.len();
                break;
            }
        }
    }
    buffer.drain(..consumed);
    events
}

/// An event as Docker sends it (API 1.41).
#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "Type", default)]
    kind: String,
    #[serde(rename = "Action", default)]
    action: String,
    #[serde(rename = "Actor", default)]
    actor: Actor,
    #[serde(rename = "timeNano", default)]
    time_nano: i64,
}

#[derive(Deserialize, Default)]
struct Actor {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "Attributes", default)]
    attributes: BTreeMap<String, String>,
}

impl Wire {
    fn into_event(self) -> Option<Event> {
        if self.kind != "container" || self.actor.id.is_empty() {
            return None;
        }
        Some(Event {
            action: Action::parse(&self.action),
            name: self
                .actor
                .attributes
                .get("name")
                .cloned()
                .unwrap_or_default(),
            id: self.actor.id,
            attributes: self.actor.attributes,
            time_nano: self.time_nano,
        })
    }
}

fn now_nano() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = r#"{"status":"start","id":"c1","Type":"container","Action":"start",
        "Actor":{"ID":"c1","Attributes":{"image":"busybox","name":"web"}},"time":1,
        "timeNano":1000000001}"#;

    #[test]
    fn parses_whole_objects_and_keeps_a_partial_one() {
        let mut buffer = format!("{START}\n{}", &START[..40]).into_bytes();
        let events = drain_events(&mut buffer);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].action, Action::Start);
        assert_eq!(events[0].name, "web");
        assert_eq!(events[0].attributes["image"], "busybox");
        assert_eq!(String::from_utf8_lossy(&buffer).trim_start(), &START[..40]);
        buffer.extend_from_slice(&START.as_bytes()[40..]);
        assert_eq!(drain_events(&mut buffer).len(), 1);
        assert!(buffer.is_empty());
    }

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
    fn skips_other_types_and_garbage() {
        let mut buffer = br#"{"Type":"network","Action":"connect","Actor":{"ID":"n"}}"#.to_vec();
        assert!(drain_events(&mut buffer).is_empty());
        let mut buffer = b"<html>".to_vec();
        assert!(drain_events(&mut buffer).is_empty());
        assert!(buffer.is_empty());
    }

    #[test]
    fn query_has_since_and_encoded_filters() {
        let q = EventFilter::actions([Action::Start, Action::Die]).query(1_500_000_000_123);
        assert!(
            q.starts_with("/events?since=1500.000000123&filters=%7B"),
            "{q}"
        );
        assert!(q.contains("%22start%22%2C%22die%22"), "{q}");
    }
}
