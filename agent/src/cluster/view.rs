//! [`ClusterView`]: the nodes and volumes as the control service's change stream shows
//! them, kept by [`follow`] from the agent's one watch stream.

use std::collections::BTreeMap;
use std::time::Instant;

use foundation::retry::Backoff;
use proto::control::watch_event::Object;
use proto::control::{Empty, Node, Volume, WatchEvent, WatchRequest};
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tonic::Status;
use tracing::Instrument;

use super::Control;
use crate::membership::{AgentError, refused};

/// The cluster's nodes and volumes, as of the last change seen.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterView {
    /// How many times the state was listed afresh (at each (re)connection of the stream);
    /// 0 until the first listing, when the view is still empty.
    pub listing: u64,
    /// Every registered node, by name.
    pub nodes: BTreeMap<String, Node>,
    /// Every volume, by name.
    pub volumes: BTreeMap<String, Volume>,
    /// Bumped whenever `volumes` changes (a listing included), so that a follower of the
    /// volumes can skip the far more frequent node changes (every heartbeat is one).
    pub volume_changes: u64,
}

impl ClusterView {
    /// Applies one change from the stream; whether the view changed.
    fn apply(&mut self, event: WatchEvent) -> bool {
        match (event.deleted, event.object) {
            (false, Some(Object::Node(n))) => {
                self.nodes.insert(n.name.clone(), n.clone()) != Some(n)
            }
            (true, Some(Object::Node(n))) => self.nodes.remove(&n.name).is_some(),
            (false, Some(Object::Volume(v))) => {
                self.volumes.insert(v.name.clone(), v.clone()) != Some(v) && self.volume_changed()
            }
            (true, Some(Object::Volume(v))) => {
                self.volumes.remove(&v.name).is_some() && self.volume_changed()
            }
            _ => false,
        }
    }

    /// Counts a change of the volumes; always true.
    fn volume_changed(&mut self) -> bool {
        self.volume_changes += 1;
        true
    }
}

/// Follows the change stream through `control` and publishes the view on `publish`:
/// subscribe, list nodes and volumes (so no change between the two is missed), then apply
/// each change as it arrives; a broken stream is followed again, with backoff, from a fresh
/// listing. Returns only when the control service refuses this node's identity.
pub async fn follow(
    node: &str,
    control: &Control,
    publish: &watch::Sender<ClusterView>,
) -> Result<(), AgentError> {
    let mut backoff = Backoff::reconnect();
    loop {
        let started = Instant::now();
        let failed = session(control, publish)
            .instrument(tracing::info_span!("cluster.watch"))
            .await;
        if let Some(fatal) = refused(node, &failed) {
            return Err(fatal);
        }
        control.failed(&failed);
        tracing::warn!(error = %failed.message(), "change stream broke; following it again");
        backoff.wait_after(started.elapsed()).await;
    }
}

/// One subscription; returns why it stopped.
async fn session(control: &Control, publish: &watch::Sender<ClusterView>) -> Status {
    let mut client = match control.client().await {
        Ok(client) => client,
        Err(unreachable) => return Status::unavailable(unreachable.to_string()),
    };
    let mut stream = match client.watch(WatchRequest {}).await {
        Ok(stream) => stream.into_inner(),
        Err(status) => return status,
    };
    let listed = async {
        let nodes = client.list_nodes(Empty {}).await?.into_inner().nodes;
        let volumes = client.list_volumes(Empty {}).await?.into_inner().volumes;
        Ok::<_, Status>((nodes, volumes))
    };
    let (nodes, volumes) = match listed.await {
        Ok(listed) => listed,
        Err(status) => return status,
    };
    publish.send_modify(|view| {
        view.listing += 1;
        view.nodes = nodes.into_iter().map(|n| (n.name.clone(), n)).collect();
        view.volumes = volumes.into_iter().map(|v| (v.name.clone(), v)).collect();
        view.volume_changes += 1;
    });
    tracing::info!("following the control service's change stream");
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(status) => return status,
        };
        log_change(&event);
        publish.send_if_modified(|view| view.apply(event));
    }
    Status::unavailable("the change stream ended")
}

fn log_change(e: &WatchEvent) {
    let kind = match &e.object {
        Some(Object::Node(_)) => "node",
        Some(Object::Volume(_)) => "volume",
        Some(Object::Lease(_)) => "lease",
        Some(Object::Migration(_)) => "migration",
        Some(Object::Allocation(_)) => "allocation",
        Some(Object::Pool(_)) => "pool",
        None => "unknown",
    };
    // Heartbeats change a node every few seconds: not worth a line each.
    if kind == "node" {
        tracing::debug!(watch.index = e.index, watch.kind = kind, watch.key = %e.key, watch.deleted = e.deleted, "change");
    } else {
        tracing::info!(watch.index = e.index, watch.kind = kind, watch.key = %e.key, watch.deleted = e.deleted, "change");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, up: bool) -> Node {
        Node {
            name: name.into(),
            address: format!("{name}:4524"),
            storage: String::new(),
            last_heartbeat_ms: 0,
            up,
        }
    }

    fn event(deleted: bool, object: Object) -> WatchEvent {
        WatchEvent {
            index: 1,
            deleted,
            key: String::new(),
            object: Some(object),
        }
    }

    #[test]
    fn changes_update_the_view_and_repeats_do_not_count_as_changes() {
        let mut view = ClusterView::default();
        assert!(view.apply(event(false, Object::Node(node("n1", true)))));
        assert!(!view.apply(event(false, Object::Node(node("n1", true)))));
        assert!(view.apply(event(false, Object::Node(node("n1", false)))));
        assert!(!view.nodes["n1"].up);
        assert_eq!(
            view.volume_changes, 0,
            "node changes are not volume changes"
        );
        let volume = Volume {
            name: "demo".into(),
            owner: Some("n1".into()),
            epoch: 1,
            ..Default::default()
        };
        assert!(view.apply(event(false, Object::Volume(volume.clone()))));
        assert_eq!(view.volumes["demo"].epoch, 1);
        assert!(!view.apply(event(false, Object::Volume(volume.clone()))));
        assert_eq!(view.volume_changes, 1, "a repeat is no change");
        assert!(view.apply(event(true, Object::Volume(volume.clone()))));
        assert!(!view.volumes.contains_key("demo"));
        assert!(!view.apply(event(true, Object::Volume(volume))));
        assert!(view.apply(event(true, Object::Node(node("n1", false)))));
        assert!(view.nodes.is_empty());
    }
}
