//! Stopping the containers that hold a volume, for a move asked with `--stop`. Each one
//! must use the volume here (so a confused caller cannot stop unrelated containers); Docker
//! sends its stop signal (SIGTERM unless the image says otherwise) and kills it after the
//! grace period. The lease then goes the usual way: the lease watcher sees Docker's `die`
//! event and releases it. Nothing restarts the container afterwards.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proto::agent as pb;

use super::TransferError;
use crate::docker::{DockerApi, DockerError};
use crate::flocker::leases::flocker_volumes;
use crate::storage::VolumeName;

/// The longest grace period honoured; a longer request is cut to this.
pub const MAX_GRACE: Duration = Duration::from_secs(300);

/// Stops containers through this host's Docker.
#[derive(Clone)]
pub struct Stopper {
    /// This host's dockerd.
    pub docker: Arc<dyn DockerApi>,
    /// Where volumes are mounted (`--volume-root`), to recognise their binds.
    pub volume_root: PathBuf,
}

enum Outcome {
    Stopped,
    NotRunning,
}

impl Stopper {
    /// Stops each of `ids` (all at once), each after checking that it uses `volume`.
    pub async fn stop(
        &self,
        volume: &VolumeName,
        ids: &[String],
        grace: Duration,
    ) -> Result<pb::StoppedContainers, TransferError> {
        let grace = grace.min(MAX_GRACE);
        let stops = ids.iter().map(|id| self.stop_one(volume, id, grace));
        let mut out = pb::StoppedContainers::default();
        for (id, outcome) in ids.iter().zip(futures_util::future::join_all(stops).await) {
            match outcome? {
                Outcome::Stopped => out.stopped.push(id.clone()),
                Outcome::NotRunning => out.not_running.push(id.clone()),
            }
        }
        Ok(out)
    }

    async fn stop_one(
        &self,
        volume: &VolumeName,
        id: &str,
        grace: Duration,
    ) -> Result<Outcome, TransferError> {
        let docker_failed = |e: DockerError| TransferError::Docker {
            container: id.to_owned(),
            reason: e.to_string(),
        };
        let container = match self.docker.inspect_container(id).await {
            Ok(c) => c,
            Err(DockerError::NotFound { .. }) => return Ok(Outcome::NotRunning),
            Err(e) => return Err(docker_failed(e)),
        };
        if !container.state.running {
            return Ok(Outcome::NotRunning);
        }
        if !flocker_volumes(&container.mounts, &self.volume_root).contains(volume) {
            return Err(TransferError::NotHolder {
                volume: volume.to_string(),
                container: id.to_owned(),
            });
        }
        tracing::info!(volume.name = %volume, container.id = %id, container.name = %container.name,
            grace_s = grace.as_secs(), "stopping the container for a move");
        match self.docker.stop(id, grace).await {
            Ok(()) => Ok(Outcome::Stopped),
            Err(DockerError::NotFound { .. }) => Ok(Outcome::NotRunning),
            Err(e) => Err(docker_failed(e)),
        }
    }
}
