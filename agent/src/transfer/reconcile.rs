//! Following the control service's volumes on this node. Volume creation is a replicated
//! command; the owner's agent makes the volume exist on its storage when it sees it:
//!
//! - owned here and present: mount read-write (the mount path is then ready for containers);
//! - owned here, absent, never moved (epoch 1, no replicas): create it empty, then mount;
//! - owned here, absent, moved before: refuse to invent an empty volume (Flocker did, and
//!   lost data) and log an error naming the volume;
//! - a replica here: mount read-only;
//! - deleted (`flockerctl volume rm`, or the plugin's `Remove`): the control leader has this
//!   agent destroy its copy (`CleanUp`), now or, if the agent is down, when it is back; the
//!   agent itself never destroys data on the strength of an absence (a copy the cluster
//!   does not know is logged at start and left alone).
//!
//! Each volume is acted on once per epoch, so an agent never remounts a volume that a move in
//! handoff has just unmounted; the move's orchestrator mounts explicitly as well.

use std::collections::HashMap;
use std::sync::Arc;

use proto::control::watch_event::Object;
use proto::control::{Empty, Volume, WatchRequest};
use tokio_stream::StreamExt;
use tracing::Instrument;

use crate::config::AgentConfig;
use crate::storage::{Access, Backend, CreateOptions, Storage, VolumeName};
use proto::connect::connect_any;

/// Follows volume changes until the future is dropped.
pub async fn run(config: AgentConfig, storage: Arc<Backend>) {
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut backoff = foundation::retry::Backoff::reconnect();
    loop {
        let started = std::time::Instant::now();
        if let Err(e) = session(&config, &storage, &mut seen).await {
            tracing::warn!(error = %e, "volume watch failed; reconnecting");
        }
        backoff.wait_after(started.elapsed()).await;
    }
}

async fn session(
    config: &AgentConfig,
    storage: &Backend,
    seen: &mut HashMap<String, u64>,
) -> Result<(), String> {
    let mut client = connect_any::<proto::connect::NodeClient>(&config.controls, &config.tls)
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = client
        .watch(WatchRequest {})
        .await
        .map_err(|s| s.message().to_owned())?
        .into_inner();
    let volumes = client
        .list_volumes(Empty {})
        .await
        .map_err(|s| s.message().to_owned())?
        .into_inner()
        .volumes;
    if let Ok(here) = storage.volumes().await {
        for name in here {
            if !volumes.iter().any(|v| v.name == name.as_str()) {
                tracing::warn!(volume.name = %name, "a copy here of a volume the cluster does not know: left as it is (destroy it by hand if it is not wanted)");
            }
        }
    }
    for v in volumes {
        volume_changed(config, storage, seen, &v).await;
    }
    while let Some(event) = stream.next().await {
        let event = event.map_err(|s| s.message().to_owned())?;
        match (event.deleted, &event.object) {
            (false, Some(Object::Volume(v))) => volume_changed(config, storage, seen, v).await,
            (true, Some(Object::Volume(v))) => {
                seen.remove(&v.name);
            }
            _ => {}
        }
    }
    Ok(())
}

async fn volume_changed(
    config: &AgentConfig,
    storage: &Backend,
    seen: &mut HashMap<String, u64>,
    v: &Volume,
) {
    if seen.get(&v.name) == Some(&v.epoch) {
        return;
    }
    let Ok(name) = VolumeName::new(&v.name) else {
        return;
    };
    let owned = v.owner.as_deref() == Some(config.node.as_str());
    let replica = v.replicas.iter().any(|r| r.node == config.node);
    if !owned && !replica {
        return;
    }
    seen.insert(v.name.clone(), v.epoch);
    let span = tracing::info_span!("reconcile", volume.name = %v.name, volume.epoch = v.epoch);
    match apply(storage, &name, v, owned).instrument(span).await {
        Ok(Some(what)) => tracing::info!("{what}"),
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "cannot bring the volume to its recorded state"),
    }
}

async fn apply(
    storage: &Backend,
    name: &VolumeName,
    v: &Volume,
    owned: bool,
) -> Result<Option<&'static str>, String> {
    let present = storage
        .volumes()
        .await
        .map_err(|e| e.to_string())?
        .contains(name);
    if owned && !present {
        if v.epoch > 1 || !v.replicas.is_empty() {
            return Err(format!(
                "volume {} is owned by this node at epoch {} but missing from its storage; not creating an empty one (restore it or move it here from a replica)",
                v.name, v.epoch
            ));
        }
        let options = CreateOptions {
            quota: v.size_limit,
        };
        crate::storage::create_if_absent(storage, name, &options)
            .await
            .map_err(|e| e.to_string())?;
    }
    if !present && !owned {
        return Ok(None);
    }
    let access = if owned {
        Access::ReadWrite
    } else {
        Access::ReadOnly
    };
    storage
        .mount(name, access)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some(if owned {
        "mounted read-write (owner)"
    } else {
        "mounted read-only (replica)"
    }))
}
