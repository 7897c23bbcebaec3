//! Leases from the container lifecycle: a container that runs with a flocker volume holds a
//! lease on it (`AcquireLease(volume, node, container)`), released when it dies. The
//! watcher follows Docker's `start` and `die` events through [`DockerApi::updates`], which
//! reconnects with `since=` after a daemon restart, and reconciles with the running
//! containers at every (re)connection ([`Update::Connected`]) before the events that follow,
//! and every [`LEASE_RECONCILE_PERIOD`] in between.
//!
//! Docker is the truth, as for addresses ([`crate::weave::lifecycle`]): a `start` takes
//! leases only for a container an inspect shows running, and a lease is released only for a
//! container an inspect shows not running. Events, the periodic pass and (re)connections
//! are handled one at a time by one task, in Docker's order, so a `die` is always handled
//! after the `start` before it: a `--rm` container that exits at once leaves no lease. A
//! lease left by anything else (a lost event, a release the control service refused) is
//! released by the next periodic pass, so it blocks a move for seconds at most.
//!
//! A lease names its holder for people (`flockerctl volume ls`): the container's name and,
//! for a Swarm task, its service and task from the container's labels ([`Holder`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use proto::control::Lease;

use super::control::ControlError;
use super::volumes::{VolumeError, Volumes};
use foundation::retry::Backoff;

use crate::docker::{Action, DockerApi, DockerError, Event, EventFilter, MountPoint, Update};
use crate::storage::VolumeName;

/// How often the leases are reconciled between (re)connections: the longest a lease whose
/// container is gone lasts when its `die` was missed.
pub const LEASE_RECONCILE_PERIOD: Duration = Duration::from_secs(5);

/// The label Swarm puts on a task's container naming its service.
pub const SWARM_SERVICE_LABEL: &str = "com.docker.swarm.service.name";
/// The label Swarm puts on a task's container naming its task (`db.1.k2j3...`).
pub const SWARM_TASK_LABEL: &str = "com.docker.swarm.task.name";

/// Who holds a lease, as the lease records it: the container's name and, for a Swarm
/// task, its service and task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    /// The container's name, without Docker's leading `/`.
    pub container_name: Option<String>,
    /// The Swarm service, from [`SWARM_SERVICE_LABEL`].
    pub service: Option<String>,
    /// The Swarm task, from [`SWARM_TASK_LABEL`].
    pub task: Option<String>,
}

impl Holder {
    /// The holder named `name` (as Docker gives it, with a leading `/`) with `labels`.
    pub fn of(name: &str, labels: &BTreeMap<String, String>) -> Self {
        let name = name.trim_start_matches('/');
        Holder {
            container_name: (!name.is_empty()).then(|| name.to_owned()),
            service: labels.get(SWARM_SERVICE_LABEL).cloned(),
            task: labels.get(SWARM_TASK_LABEL).cloned(),
        }
    }
}

/// Follows dockerd and keeps this node's leases in step with its running containers.
pub struct LeaseWatcher {
    docker: Arc<dyn DockerApi>,
    volumes: Arc<Volumes>,
    volume_root: PathBuf,
}

impl LeaseWatcher {
    /// A watcher of `docker` whose flocker binds point under `volume_root`.
    pub fn new(docker: Arc<dyn DockerApi>, volumes: Arc<Volumes>, volume_root: PathBuf) -> Self {
        Self {
            docker,
            volumes,
            volume_root,
        }
    }

    /// Runs until dropped: at every (re)connection to dockerd reconcile (again, with
    /// backoff, until it succeeds), then follow the events, and reconcile every
    /// [`LEASE_RECONCILE_PERIOD`] (a failed periodic pass waits for the next one).
    pub async fn run(self) {
        let mut updates = self
            .docker
            .updates(EventFilter::actions([Action::Start, Action::Die]));
        let first = tokio::time::Instant::now() + LEASE_RECONCILE_PERIOD;
        let mut ticks = tokio::time::interval_at(first, LEASE_RECONCILE_PERIOD);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                update = updates.next() => match update {
                    Some(Update::Connected) => self.reconcile_until_done().await,
                    Some(Update::Event(event)) => self.handle(&event).await,
                    None => return,
                },
                _ = ticks.tick() => {
                    if let Err(e) = self.reconcile().await {
                        tracing::warn!(error = %e, "periodic lease reconciliation failed; \
                            trying again in {LEASE_RECONCILE_PERIOD:?}");
                    }
                }
            }
        }
    }

    async fn reconcile_until_done(&self) {
        let mut backoff = Backoff::reconnect();
        while let Err(e) = self.reconcile().await {
            let pause = backoff.next_pause();
            tracing::warn!(docker.socket = %self.docker.socket().display(), error = %e,
                "lease reconciliation failed; retrying in {pause:?}");
            tokio::time::sleep(pause).await;
        }
    }

    async fn handle(&self, event: &Event) {
        let result = match event.action {
            Action::Start => self.started(&event.id).await,
            Action::Die => self.died(&event.id).await,
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(container.id = %event.id, container.event = event.action.as_str(),
                error = %e, "lease not updated");
        }
    }

    async fn started(&self, id: &str) -> Result<(), String> {
        let container = match self.docker.inspect_container(id).await {
            Ok(container) => container,
            // Removed already (`--rm`): its die comes next and there is nothing to hold.
            Err(DockerError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        if !container.state.running {
            tracing::debug!(container.id = %id, "exited before its start was handled");
            return Ok(());
        }
        let holder = Holder::of(&container.name, &container.config.labels);
        self.acquire_all(id, &container.mounts, &holder).await
    }

    /// Whether container `id` runs now; an error other than "no such container" is
    /// returned.
    async fn runs(&self, id: &str) -> Result<bool, String> {
        match self.docker.inspect_container(id).await {
            Ok(container) => Ok(container.state.running),
            Err(DockerError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Leases on the flocker volumes among `mounts` for container `id`.
    async fn acquire_all(
        &self,
        id: &str,
        mounts: &[MountPoint],
        holder: &Holder,
    ) -> Result<(), String> {
        for volume in flocker_volumes(mounts, &self.volume_root) {
            self.acquire(&volume, id, holder)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn acquire(
        &self,
        volume: &VolumeName,
        id: &str,
        holder: &Holder,
    ) -> Result<(), VolumeError> {
        let lease = Lease {
            volume: volume.to_string(),
            node: self.volumes.node().to_owned(),
            container_id: id.to_owned(),
            container_name: holder.container_name.clone(),
            service: holder.service.clone(),
            task: holder.task.clone(),
        };
        self.volumes
            .control()
            .acquire_lease(lease)
            .await
            .map_err(|e| super::volumes::control_error(volume, "lease", e))?;
        tracing::info!(volume.name = %volume, container.id = %id, "lease acquired");
        crate::metrics::METRICS.lease(true);
        Ok(())
    }

    /// This node's leases.
    async fn my_leases(&self) -> Result<Vec<Lease>, String> {
        let leases = self
            .volumes
            .control()
            .list_leases()
            .await
            .map_err(|e| e.to_string())?;
        Ok(leases
            .into_iter()
            .filter(|l| l.node == self.volumes.node())
            .collect())
    }

    async fn release(&self, lease: Lease) -> Result<(), String> {
        let (volume, id) = (lease.volume.clone(), lease.container_id.clone());
        match self.volumes.control().release_lease(lease).await {
            Ok(()) => {
                tracing::info!(volume.name = %volume, container.id = %id, "lease released");
                crate::metrics::METRICS.lease(false);
                Ok(())
            }
            Err(ControlError::Status(s)) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(ControlError::Status(s)) => {
                Err(format!("release lease on {volume}: {}", s.message()))
            }
            Err(e @ ControlError::Unreachable(_)) => Err(e.to_string()),
        }
    }

    async fn died(&self, id: &str) -> Result<(), String> {
        // Restarted by Docker already (restart policy): it still holds its volumes.
        if self.runs(id).await? {
            return Ok(());
        }
        for lease in self.my_leases().await? {
            if lease.container_id == id {
                self.release(lease).await?;
            }
        }
        Ok(())
    }

    /// Acquires the leases of every running container that lacks them and releases the
    /// leases of this node whose container no longer runs. A pass with nothing to do
    /// makes no write.
    pub async fn reconcile(&self) -> Result<(), String> {
        let leases = self.my_leases().await?;
        let held: BTreeSet<(&str, &str)> = leases
            .iter()
            .map(|l| (l.volume.as_str(), l.container_id.as_str()))
            .collect();
        let running = self
            .docker
            .running_containers()
            .await
            .map_err(|e| e.to_string())?;
        let mut ids = BTreeSet::new();
        for container in &running {
            ids.insert(container.id.as_str());
            let name = container.names.first().map_or("", String::as_str);
            let holder = Holder::of(name, &container.labels);
            for volume in flocker_volumes(&container.mounts, &self.volume_root) {
                if held.contains(&(volume.as_str(), container.id.as_str())) {
                    continue;
                }
                if let Err(e) = self.acquire(&volume, &container.id, &holder).await {
                    tracing::warn!(container.id = %container.id, error = %e, "lease not acquired");
                }
            }
        }
        for lease in &leases {
            // Inspected after the listings: a container that runs now keeps its lease.
            let id = lease.container_id.as_str();
            if !ids.contains(id) && !self.runs(id).await? {
                self.release(lease.clone()).await?;
            }
        }
        Ok(())
    }
}

/// The flocker volumes among a container's mounts: bind sources under `volume_root` and
/// volumes of driver `flocker`.
pub(crate) fn flocker_volumes(mounts: &[MountPoint], volume_root: &Path) -> Vec<VolumeName> {
    let mut names = BTreeSet::new();
    for mount in mounts {
        let name = match mount.kind.as_str() {
            "bind" => PathBuf::from(&mount.source)
                .strip_prefix(volume_root)
                .ok()
                .and_then(|rest| rest.iter().next().map(|c| c.to_string_lossy().into_owned())),
            "volume" if mount.driver == "flocker" => Some(mount.name.clone()),
            _ => None,
        };
        if let Some(Ok(name)) = name.map(|n| VolumeName::new(&n)) {
            names.insert(name);
        }
    }
    names.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::fake::{FakeDocker, bind, running};
    use crate::flocker::control::fake::lease;
    use crate::flocker::volumes::testing::{Host, NODE};

    /// A watcher of a fake Docker over `host`'s volumes (mounted under `/var/lib/flocker`).
    fn watcher(host: &Host) -> (Arc<FakeDocker>, LeaseWatcher) {
        let docker = Arc::new(FakeDocker::new());
        let watcher = LeaseWatcher::new(
            docker.clone(),
            host.volumes.clone(),
            PathBuf::from("/var/lib/flocker"),
        );
        (docker, watcher)
    }

    fn event(action: Action, id: &str) -> Event {
        Event {
            action,
            id: id.into(),
            name: id.into(),
            attributes: Default::default(),
            time_nano: 1,
        }
    }

    fn leases(host: &Host) -> Vec<(String, String, String)> {
        let state = host.control.state();
        let all = state.leases.iter();
        let mut out: Vec<_> = all
            .map(|l| (l.volume.clone(), l.node.clone(), l.container_id.clone()))
            .collect();
        out.sort();
        out
    }

    fn writes(host: &Host) -> Vec<String> {
        let calls = host.control.calls().into_iter();
        calls.filter(|c| !c.starts_with("list")).collect()
    }

    fn with_volumes(id: &str, mounts: Vec<MountPoint>) -> crate::docker::ContainerInfo {
        let mut container = running(id, 10, &[]);
        container.mounts = mounts;
        container
    }

    #[tokio::test]
    async fn a_start_takes_a_lease_on_each_flocker_volume_of_a_running_container() {
        let host = Host::new();
        let (docker, watcher) = watcher(&host);
        let pv = mount("volume", "pv", "/mnt/pv", "flocker");
        let binds = vec![bind("/var/lib/flocker/demo"), bind("/elsewhere"), pv];
        docker.add(with_volumes("c1", binds));
        let mut exited = with_volumes("c2", vec![bind("/var/lib/flocker/demo")]);
        exited.state = Default::default();
        docker.add(exited);

        watcher.handle(&event(Action::Start, "c1")).await;
        // Exited before its start was handled, or removed already: nothing to hold.
        watcher.handle(&event(Action::Start, "c2")).await;
        watcher.handle(&event(Action::Start, "gone")).await;

        let n1 = NODE.to_owned();
        assert_eq!(
            leases(&host),
            [
                ("demo".into(), n1.clone(), "c1".into()),
                ("pv".into(), n1, "c1".into())
            ]
        );
    }

    #[tokio::test]
    async fn a_die_releases_the_leases_only_once_the_container_no_longer_runs() {
        let host = Host::new();
        let (docker, watcher) = watcher(&host);
        docker.add(with_volumes("c1", vec![bind("/var/lib/flocker/demo")]));
        host.control.state().leases = vec![lease("demo", NODE, "c1"), lease("demo", "n2", "c9")];

        // Docker restarted it already (restart policy): it still holds the volume.
        watcher.handle(&event(Action::Die, "c1")).await;
        assert_eq!(leases(&host).len(), 2);

        docker.exit("c1");
        watcher.handle(&event(Action::Die, "c1")).await;
        let left = [("demo".into(), "n2".into(), "c9".into())];
        assert_eq!(leases(&host), left);
    }

    #[tokio::test]
    async fn reconcile_makes_the_leases_follow_what_runs_and_a_pass_in_step_writes_nothing() {
        let host = Host::new();
        let (docker, watcher) = watcher(&host);
        docker.add(with_volumes("c1", vec![bind("/var/lib/flocker/demo")]));
        host.control.state().leases =
            vec![lease("old", NODE, "gone"), lease("demo", "n2", "elsewhere")];

        watcher.reconcile().await.unwrap();
        let n1 = NODE.to_owned();
        assert_eq!(
            leases(&host),
            [
                ("demo".into(), n1, "c1".into()),
                ("demo".into(), "n2".into(), "elsewhere".into())
            ]
        );

        let before = writes(&host).len();
        watcher.reconcile().await.unwrap();
        assert_eq!(writes(&host).len(), before, "{:?}", writes(&host));

        // Without dockerd nothing is released.
        docker.set_unreachable(true);
        assert!(watcher.reconcile().await.is_err());
        assert_eq!(leases(&host).len(), 2);
    }

    /// A Swarm task's container `id` named `/TASK` (as Swarm names them) holding `volume`.
    fn task(id: &str, service: &str, task: &str, volume: &str) -> crate::docker::ContainerInfo {
        let mut container = with_volumes(id, vec![bind(&format!("/var/lib/flocker/{volume}"))]);
        container.name = format!("/{task}");
        container.config.labels = [
            (SWARM_SERVICE_LABEL, service),
            (SWARM_TASK_LABEL, task),
            ("com.docker.swarm.node.id", "k2j3node"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        container
    }

    #[tokio::test]
    async fn a_lease_names_its_container_and_a_swarm_tasks_service_and_task() {
        let host = Host::new();
        let (docker, watcher) = watcher(&host);
        docker.add(task("c1", "db", "db.1.k2j3abc", "demo"));
        docker.add(task("c2", "web", "web.2.x9y8", "pv"));
        docker.add(with_volumes("c3", vec![bind("/var/lib/flocker/logs")]));

        // c1 through its start event, the others through a reconciliation.
        watcher.handle(&event(Action::Start, "c1")).await;
        watcher.reconcile().await.unwrap();

        let state = host.control.state();
        let holder = |id: &str| {
            let l = state.leases.iter().find(|l| l.container_id == id).unwrap();
            (
                l.container_name.as_deref(),
                l.service.as_deref(),
                l.task.as_deref(),
            )
        };
        let c1 = (Some("db.1.k2j3abc"), Some("db"), Some("db.1.k2j3abc"));
        assert_eq!(holder("c1"), c1);
        assert_eq!(
            holder("c2"),
            (Some("web.2.x9y8"), Some("web"), Some("web.2.x9y8"))
        );
        assert_eq!(
            holder("c3"),
            (Some("c3"), None, None),
            "not a task: its name only"
        );
    }

    fn mount(kind: &str, name: &str, source: &str, driver: &str) -> MountPoint {
        MountPoint {
            kind: kind.into(),
            name: name.into(),
            source: source.into(),
            destination: "/data".into(),
            driver: driver.into(),
        }
    }

    #[test]
    fn flocker_binds_and_volumes_are_found_once() {
        let mounts = [
            mount("bind", "", "/var/lib/flocker/demo", ""),
            mount("bind", "", "/var/lib/flocker/demo/sub", ""),
            mount("bind", "", "/elsewhere/x", ""),
            mount("volume", "pv", "/mnt/pv", "flocker"),
            mount(
                "volume",
                "local1",
                "/var/lib/docker/volumes/local1",
                "local",
            ),
            mount("tmpfs", "", "", ""),
        ];
        let names: Vec<String> = flocker_volumes(&mounts, Path::new("/var/lib/flocker"))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(names, ["demo", "pv"]);
    }
}
