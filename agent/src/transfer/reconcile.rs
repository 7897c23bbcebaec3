//! Following the control service's volumes on this node. Volume creation is a replicated
//! command; the owner's agent makes the volume exist on its storage when it sees it:
//!
//! - owned here and present: mount read-write (the mount path is then ready for containers);
//! - owned here, absent, never moved (epoch 1, no replicas): create it empty, then mount;
//! - owned here, absent, moved before: refuse to invent an empty volume (Flocker did, and
//!   lost data) and log an error naming the volume;
//! - a replica here: mount read-only; a container of this host that holds it (a restart
//!   policy started it on a returning old owner) is killed: its copy here is stale;
//! - deleted (`flockerctl volume rm`, or the plugin's `Remove`): the control leader has this
//!   agent destroy its copy (`CleanUp`), now or, if the agent is down, when it is back; the
//!   agent itself never destroys data on the strength of an absence (a copy the cluster
//!   does not know is logged at start and left alone).
//!
//! Each volume is acted on once per epoch, so an agent never remounts a volume that a move in
//! handoff has just unmounted; the move's orchestrator mounts explicitly as well.

use std::collections::HashMap;
use std::sync::Arc;

use proto::control::Volume;
use tokio::sync::watch;
use tracing::Instrument;

use crate::cluster::ClusterView;
use crate::config::AgentConfig;
use crate::fencing::Holders;
use crate::storage::{Access, Backend, CreateOptions, Storage, VolumeName};

/// Follows the volumes of the cluster `view` until the future is dropped.
pub async fn run(
    config: AgentConfig,
    storage: Arc<Backend>,
    mut view: watch::Receiver<ClusterView>,
    holders: Holders,
) {
    let mut seen: HashMap<String, u64> = HashMap::new();
    let (mut listing, mut handled) = (0, 0);
    loop {
        // Only the volumes matter here: node changes (heartbeats) are skipped uncopied.
        let now = {
            let view = view.borrow_and_update();
            (view.listing > 0 && view.volume_changes != handled).then(|| view.clone())
        };
        if let Some(now) = now {
            handled = now.volume_changes;
            if now.listing != listing {
                listing = now.listing;
                report_unknown_copies(&storage, &now).await;
            }
            // A deleted volume is forgotten: made again under its name, it is acted on anew.
            seen.retain(|name, _| now.volumes.contains_key(name));
            for v in now.volumes.values() {
                volume_changed(&config, &storage, &holders, &mut seen, v).await;
            }
        }
        if view.changed().await.is_err() {
            return;
        }
    }
}

/// Logs the copies here of volumes the cluster does not know (once per listing): they are
/// left alone, for the operator to judge.
async fn report_unknown_copies(storage: &Backend, view: &ClusterView) {
    if let Ok(here) = storage.volumes().await {
        for name in here {
            if !view.volumes.contains_key(name.as_str()) {
                tracing::warn!(volume.name = %name, "a copy here of a volume the cluster does not know: left as it is (destroy it by hand if it is not wanted)");
            }
        }
    }
}

async fn volume_changed(
    config: &AgentConfig,
    storage: &Backend,
    holders: &Holders,
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
    match apply(storage, &name, v, owned)
        .instrument(span.clone())
        .await
    {
        Ok(Some(what)) => tracing::info!("{what}"),
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "cannot bring the volume to its recorded state"),
    }
    if let (false, Some(owner)) = (owned, v.owner.as_deref()) {
        holders.kill_stale(&name, owner).instrument(span).await;
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
