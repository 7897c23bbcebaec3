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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::fake::{Call, FakeDocker, bind, running};

    fn stopper(docker: &Arc<FakeDocker>) -> Stopper {
        Stopper {
            docker: docker.clone(),
            volume_root: "/var/lib/flocker".into(),
        }
    }

    fn stops(docker: &FakeDocker) -> Vec<(String, Duration)> {
        let calls = docker.calls().into_iter();
        let stops = calls.filter_map(|c| match c {
            Call::Stop(id, grace) => Some((id, grace)),
            _ => None,
        });
        stops.collect()
    }

    #[tokio::test]
    async fn only_containers_that_use_the_volume_here_are_stopped() {
        let docker = Arc::new(FakeDocker::new());
        let mut holder = running("holder", 10, &[]);
        holder.mounts = vec![bind("/var/lib/flocker/app/sub")];
        docker.add(holder);
        docker.add(running("other", 11, &[]));
        let app = VolumeName::new("app").unwrap();
        let grace = Duration::from_secs(10);

        let refused = stopper(&docker).stop(&app, &["other".into()], grace).await;
        assert!(
            matches!(refused, Err(TransferError::NotHolder { .. })),
            "{refused:?}"
        );
        assert!(docker.container("other").unwrap().state.running);

        let ids = ["holder".to_owned(), "gone".to_owned()];
        let done = stopper(&docker).stop(&app, &ids, grace).await.unwrap();
        assert_eq!(done.stopped, ["holder"]);
        assert_eq!(done.not_running, ["gone"]);
        assert_eq!(stops(&docker), [("holder".to_owned(), grace)]);
    }

    #[tokio::test]
    async fn the_grace_period_is_capped_and_docker_down_is_an_error() {
        let docker = Arc::new(FakeDocker::new());
        let mut holder = running("holder", 10, &[]);
        holder.mounts = vec![bind("/var/lib/flocker/app")];
        docker.add(holder);
        let app = VolumeName::new("app").unwrap();
        let ids = ["holder".to_owned()];
        let long = Duration::from_secs(3600);
        stopper(&docker).stop(&app, &ids, long).await.unwrap();
        assert_eq!(stops(&docker), [("holder".to_owned(), MAX_GRACE)]);

        docker.set_unreachable(true);
        let down = stopper(&docker).stop(&app, &ids, long).await;
        assert!(
            matches!(down, Err(TransferError::Docker { .. })),
            "{down:?}"
        );
    }
}
