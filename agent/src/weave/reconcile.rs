//! [`reconcile`]: bring the kernel and the control service in line with the containers
//! dockerd really runs, at agent start and every [`RECONCILE_PERIOD`] after.
//!
//! While the agent is down, Docker goes on: a restart policy or a `docker restart` sent to
//! dockerd directly starts containers anew without `ethwe` (their `wait-for-net` waits),
//! containers die and are removed without the control service hearing of it. While it runs,
//! an event can be lost (dockerd restarting) or a report refused (the control service
//! without a leader for a moment). So at start and then periodically the agent:
//!
//! 1. removes the host ends on the bridge whose container is gone or now runs with another
//!    PID, checked again by an inspect just before (a stale pair; the kernel removes a pair
//!    by itself when the namespace goes, so this is for namespaces something else kept
//!    alive);
//! 2. attaches every running container with `WEAVE_CIDR` that is not fully in place
//!    ([`needs_attach`]: no pair for its PID, `ethwe` with other addresses than its
//!    allocations, or allocations not marked running). [`Attacher::ensure`] is idempotent:
//!    the same addresses from the control service, `ethwe` ends with exactly those;
//! 3. settles every allocation of this node whose container is not running, as an inspect
//!    says ([`super::lifecycle::settle`]): `ReleaseIp` when dockerd no longer has the
//!    container, `ContainerStopped` when it exists but stopped, so another container may
//!    take the address.
//!
//! Each step is idempotent and decides from an inspect made after the listings, so a pass
//! that overlaps a `docker run` in progress leaves it alone; a failure of one container's
//! step is logged with what failed and the others go on. A pass with nothing to do makes
//! no write.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::Duration;

use super::allocator::{AddressAllocator, AllocError};
use super::attacher::{AttachError, Attacher, Outcome};
use super::cidr;
use super::lifecycle::{self, Seen, Settle};
use crate::docker::{DockerApi, DockerError};
use crate::network::{Attachment, NetError, Network};

/// How often the agent reconciles after the one at start: the longest a drift (a lost
/// event, a refused report) lasts.
pub const RECONCILE_PERIOD: Duration = Duration::from_secs(5);

/// What a reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Running containers with `WEAVE_CIDR` whose `ethwe` is now in place.
    pub attached: usize,
    /// Stale host ends removed from the bridge.
    pub detached: usize,
    /// Containers reported stopped to the control service.
    pub stopped: usize,
    /// Containers gone from dockerd whose addresses were released.
    pub released: usize,
    /// Steps that failed (each one logged).
    pub failed: usize,
}

impl Report {
    /// Whether the pass changed or failed anything (else it is not worth an info line).
    pub fn did_something(&self) -> bool {
        *self != Report::default()
    }
}

/// Why a reconcile could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// dockerd could not list its containers.
    #[error("cannot list dockerd's running containers: {0}")]
    Docker(#[from] DockerError),
    /// The kernel could not list the bridge's ports.
    #[error("cannot list what is attached to the overlay: {0}")]
    Net(#[from] NetError),
    /// The control service could not list this node's allocations.
    #[error("cannot read this node's allocations: {0}")]
    Alloc(#[from] AllocError),
}

/// A running container as the reconcile needs it.
struct Running {
    pid: u32,
    wants_weave: bool,
}

/// A container's allocations on this node, as the control service records them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// Their addresses.
    pub addresses: BTreeSet<Ipv4Addr>,
    /// Whether every one is marked running.
    pub all_running: bool,
    /// Whether any one is marked running.
    pub any_running: bool,
}

/// Runs the three steps of the module doc once.
pub async fn reconcile<N: Network, A: AddressAllocator>(
    attacher: &Attacher<N, A>,
) -> Result<Report, ReconcileError> {
    let mut report = Report::default();
    let running = running(attacher.docker()).await?;
    let attached = attacher.network().list_attached().await?;
    let held = held(attacher.allocator()).await?;
    detach_stale(attacher, &running, &attached, &mut report).await;
    attach_running(attacher, &running, &attached, &held, &mut report).await;
    settle_allocations(attacher, &running, &held, &mut report).await;
    Ok(report)
}

/// dockerd's running containers by id.
async fn running(docker: &dyn DockerApi) -> Result<HashMap<String, Running>, DockerError> {
    let mut out = HashMap::new();
    for summary in docker.running_containers().await? {
        match docker.inspect_container(&summary.id).await {
            Ok(info) if info.state.running => {
                let running = Running {
                    pid: info.state.pid,
                    wants_weave: cidr::from_env(&info.config.env).is_some(),
                };
                out.insert(info.id, running);
            }
            Ok(_) | Err(DockerError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// This node's allocations by container id.
async fn held<A: AddressAllocator>(allocator: &A) -> Result<BTreeMap<String, Held>, AllocError> {
    let mut held: BTreeMap<String, Held> = BTreeMap::new();
    for a in allocator.allocations_here().await? {
        let entry = held.entry(a.container_id).or_insert_with(|| Held {
            all_running: true,
            ..Held::default()
        });
        entry.all_running &= a.running;
        entry.any_running |= a.running;
        if let Ok(address) = a.address.parse() {
            entry.addresses.insert(address);
        }
    }
    Ok(held)
}

async fn detach_stale<N: Network, A: AddressAllocator>(
    attacher: &Attacher<N, A>,
    running: &HashMap<String, Running>,
    attached: &[Attachment],
    report: &mut Report,
) {
    for attachment in attached {
        if running
            .get(&attachment.container)
            .is_some_and(|r| r.pid == attachment.pid)
        {
            continue;
        }
        // Attached since the listing (a `docker run` in progress): not stale.
        let seen = Seen::inspect(attacher.docker(), &attachment.container).await;
        if matches!(seen, Ok(Seen::Running(pid)) if pid == attachment.pid) {
            continue;
        }
        let (container, iface) = (&attachment.container, &attachment.host_iface);
        match attacher.network().detach_one(attachment).await {
            Ok(removed) => {
                report.detached += usize::from(removed);
                tracing::info!(container.id = %container, iface = %iface,
                    "removed a stale pair: its container is gone or runs anew");
            }
            Err(error) => {
                report.failed += 1;
                tracing::warn!(container.id = %container, iface = %iface,
                    "cannot remove a stale pair: {error}");
            }
        }
    }
}

/// Whether a running container (as `pid`) with `WEAVE_CIDR` needs [`Attacher::ensure`]:
/// no pair for its PID, `ethwe` with other addresses than its allocations, or allocations
/// missing or not all marked running.
pub fn needs_attach(pid: u32, attachment: Option<&Attachment>, held: Option<&Held>) -> bool {
    let (Some(attachment), Some(held)) = (attachment, held) else {
        return true;
    };
    let on_ethwe: BTreeSet<Ipv4Addr> = attachment.cidrs.iter().map(|c| c.addr()).collect();
    attachment.pid != pid || !held.all_running || on_ethwe != held.addresses
}

async fn attach_running<N: Network, A: AddressAllocator>(
    attacher: &Attacher<N, A>,
    running: &HashMap<String, Running>,
    attached: &[Attachment],
    held: &BTreeMap<String, Held>,
    report: &mut Report,
) {
    for (id, r) in running.iter().filter(|(_, r)| r.wants_weave) {
        let attachment = attached
            .iter()
            .find(|a| a.container == *id && a.pid == r.pid);
        if !needs_attach(r.pid, attachment, held.get(id)) {
            continue;
        }
        match attacher.ensure(id).await {
            Ok(Outcome::Attached(_)) => report.attached += 1,
            Ok(_)
            | Err(AttachError::NotRunning { .. })
            | Err(AttachError::Docker(DockerError::NotFound { .. })) => {
                tracing::debug!(container.id = %id, "stopped before it could be attached")
            }
            Err(error) => {
                report.failed += 1;
                tracing::warn!(container.id = %id, "cannot attach a running container: {error}");
            }
        }
    }
}

async fn settle_allocations<N: Network, A: AddressAllocator>(
    attacher: &Attacher<N, A>,
    running: &HashMap<String, Running>,
    held: &BTreeMap<String, Held>,
    report: &mut Report,
) {
    let not_running = held.iter().filter(|(id, _)| !running.contains_key(*id));
    for (id, h) in not_running {
        // Inspected now, after the listings: one started since is seen running and kept.
        let result = match Seen::inspect(attacher.docker(), id).await {
            Ok(seen) => lifecycle::apply(
                attacher.allocator(),
                id,
                lifecycle::settle(seen, h.any_running),
            )
            .await
            .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(Settle::Release) => report.released += 1,
            Ok(Settle::MarkStopped) => report.stopped += 1,
            Ok(Settle::Keep) => {}
            Err(error) => {
                report.failed += 1;
                tracing::warn!(container.id = %id, "cannot settle the container's addresses: {error}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(pid: u32, cidrs: &[&str]) -> Attachment {
        Attachment {
            container: "c1".into(),
            pid,
            host_iface: format!("vwl{pid}"),
            cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
        }
    }

    fn held(addresses: &[&str], all_running: bool) -> Held {
        Held {
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            all_running,
            any_running: all_running,
        }
    }

    #[test]
    fn only_containers_not_fully_in_place_are_attached_again() {
        let ok = attachment(7, &["10.2.0.1/24"]);
        let h = held(&["10.2.0.1"], true);
        assert!(!needs_attach(7, Some(&ok), Some(&h)));
        assert!(needs_attach(7, None, Some(&h)), "no pair");
        assert!(needs_attach(7, Some(&ok), None), "no allocation");
        assert!(needs_attach(8, Some(&ok), Some(&h)), "runs anew");
        assert!(needs_attach(
            7,
            Some(&ok),
            Some(&held(&["10.2.0.1"], false))
        ));
        let wrong = attachment(7, &["10.2.0.99/24"]);
        assert!(needs_attach(7, Some(&wrong), Some(&h)), "other addresses");
        let unreadable = attachment(7, &[]);
        assert!(needs_attach(7, Some(&unreadable), Some(&h)));
    }

    use std::net::IpAddr;
    use std::sync::{Arc, Mutex};

    use ipnet::Ipv4Net;
    use proto::control::Allocation;

    use crate::docker::fake::{FakeDocker, running};
    use crate::network::Overlay;
    use crate::network::attach::host_iface;
    use crate::weave::cidr::CidrRequest;

    /// The kernel's side in memory: pairs by container, and the changes made.
    #[derive(Default)]
    struct FakeNetwork {
        attached: Mutex<Vec<Attachment>>,
        changes: Mutex<Vec<String>>,
    }

    impl Network for FakeNetwork {
        async fn ensure_overlay(&self) -> Result<Overlay, NetError> {
            Err(NetError::BadRequest {
                pid: 0,
                reason: "no overlay in the fake",
            })
        }

        async fn set_peers(&self, _peers: &[IpAddr]) -> Result<(), NetError> {
            Ok(())
        }

        async fn attach(
            &self,
            container: &str,
            pid: u32,
            cidrs: &[Ipv4Net],
        ) -> Result<Attachment, NetError> {
            let attachment = Attachment {
                container: container.to_owned(),
                pid,
                host_iface: host_iface(pid),
                cidrs: cidrs.to_vec(),
            };
            let mut attached = self.attached.lock().unwrap();
            attached.retain(|a| a.pid != pid);
            attached.push(attachment.clone());
            let cidrs: Vec<String> = cidrs.iter().map(ToString::to_string).collect();
            let change = format!("attach {container} pid {pid} {}", cidrs.join(","));
            self.changes.lock().unwrap().push(change);
            Ok(attachment)
        }

        async fn detach(&self, container: &str) -> Result<bool, NetError> {
            let mut attached = self.attached.lock().unwrap();
            let before = attached.len();
            attached.retain(|a| a.container != container);
            Ok(attached.len() != before)
        }

        async fn detach_one(&self, attachment: &Attachment) -> Result<bool, NetError> {
            let mut attached = self.attached.lock().unwrap();
            let before = attached.len();
            attached.retain(|a| a.host_iface != attachment.host_iface);
            let change = format!("detach {}", attachment.host_iface);
            self.changes.lock().unwrap().push(change);
            Ok(attached.len() != before)
        }

        async fn list_attached(&self) -> Result<Vec<Attachment>, NetError> {
            Ok(self.attached.lock().unwrap().clone())
        }
    }

    /// The control service's allocations of this node in memory, and the writes made.
    #[derive(Default)]
    struct FakeAllocator {
        allocations: Mutex<Vec<Allocation>>,
        writes: Mutex<Vec<String>>,
    }

    impl FakeAllocator {
        fn holds(&self, container: &str, address: &str, running: bool) {
            self.allocations.lock().unwrap().push(Allocation {
                address: address.into(),
                container_id: container.into(),
                running,
                ..Allocation::default()
            });
        }

        fn writes(&self) -> Vec<String> {
            self.writes.lock().unwrap().clone()
        }

        fn of(&self, container: &str) -> Vec<(String, bool)> {
            let allocations = self.allocations.lock().unwrap();
            let mine = allocations.iter().filter(|a| a.container_id == container);
            mine.map(|a| (a.address.clone(), a.running)).collect()
        }
    }

    impl AddressAllocator for FakeAllocator {
        async fn check(&self, _request: &CidrRequest) -> Result<(), AllocError> {
            Ok(())
        }

        async fn allocate(
            &self,
            container_id: &str,
            _container_name: &str,
            request: &CidrRequest,
        ) -> Result<Ipv4Net, AllocError> {
            let CidrRequest::Explicit(cidr) = request else {
                return Err(AllocError::NeedsControl {
                    request: request.to_string(),
                });
            };
            let address = cidr.addr().to_string();
            self.writes
                .lock()
                .unwrap()
                .push(format!("allocate {container_id} {address}"));
            let mut allocations = self.allocations.lock().unwrap();
            allocations.retain(|a| a.address != address);
            allocations.push(Allocation {
                address,
                container_id: container_id.into(),
                running: true,
                ..Allocation::default()
            });
            Ok(*cidr)
        }

        async fn stopped(&self, container_id: &str) -> Result<usize, AllocError> {
            self.writes
                .lock()
                .unwrap()
                .push(format!("stopped {container_id}"));
            let mut allocations = self.allocations.lock().unwrap();
            let mine = allocations
                .iter_mut()
                .filter(|a| a.container_id == container_id);
            Ok(mine.map(|a| a.running = false).count())
        }

        async fn release(&self, container_id: &str) -> Result<(), AllocError> {
            self.writes
                .lock()
                .unwrap()
                .push(format!("release {container_id}"));
            let mut allocations = self.allocations.lock().unwrap();
            allocations.retain(|a| a.container_id != container_id);
            Ok(())
        }

        async fn allocations_here(&self) -> Result<Vec<Allocation>, AllocError> {
            Ok(self.allocations.lock().unwrap().clone())
        }
    }

    fn setup() -> (Arc<FakeDocker>, Attacher<FakeNetwork, FakeAllocator>) {
        let docker = Arc::new(FakeDocker::new());
        let attacher = Attacher::new(
            docker.clone(),
            FakeNetwork::default(),
            FakeAllocator::default(),
        );
        (docker, attacher)
    }

    #[tokio::test]
    async fn running_containers_that_ask_for_addresses_get_them_and_the_others_are_left_alone() {
        let (docker, attacher) = setup();
        docker.add(running("web", 10, &["WEAVE_CIDR=10.2.0.5/24 10.3.0.5/16"]));
        docker.add(running("plain", 11, &["PATH=/bin"]));

        let report = reconcile(&attacher).await.unwrap();

        assert_eq!(report.attached, 1, "{report:?}");
        assert_eq!(report.failed, 0, "{report:?}");
        let changes = attacher.network().changes.lock().unwrap().clone();
        assert_eq!(changes, ["attach web pid 10 10.2.0.5/24,10.3.0.5/16"]);
        let held = attacher.allocator().of("web");
        assert_eq!(
            held,
            [("10.2.0.5".to_owned(), true), ("10.3.0.5".to_owned(), true)]
        );
        assert!(attacher.allocator().of("plain").is_empty());
    }

    #[tokio::test]
    async fn what_is_in_place_is_left_alone_and_what_drifted_is_attached_again() {
        let (docker, attacher) = setup();
        docker.add(running("web", 10, &["WEAVE_CIDR=10.2.0.5/24"]));
        docker.add(running("db", 20, &["WEAVE_CIDR=10.2.0.6/24"]));
        reconcile(&attacher).await.unwrap();
        attacher.network().changes.lock().unwrap().clear();
        attacher.allocator().writes.lock().unwrap().clear();

        // A pass with nothing to do makes no write.
        let report = reconcile(&attacher).await.unwrap();
        assert_eq!(report, Report::default());
        assert!(attacher.network().changes.lock().unwrap().is_empty());
        assert!(attacher.allocator().writes().is_empty());

        // db's allocation was marked stopped by a report that raced its restart: db is
        // attached again (same address), web is not touched.
        attacher.allocator().stopped("db").await.unwrap();
        attacher.allocator().writes.lock().unwrap().clear();
        let report = reconcile(&attacher).await.unwrap();
        assert_eq!(report.attached, 1, "{report:?}");
        let changes = attacher.network().changes.lock().unwrap().clone();
        assert_eq!(changes, ["attach db pid 20 10.2.0.6/24"]);
        assert_eq!(attacher.allocator().writes(), ["allocate db 10.2.0.6"]);
    }

    #[tokio::test]
    async fn allocations_of_containers_that_do_not_run_are_marked_stopped_or_released() {
        let (docker, attacher) = setup();
        let mut exited = running("exited", 30, &["WEAVE_CIDR=10.2.0.7/24"]);
        exited.state = Default::default();
        docker.add(exited);
        let mut idle = running("idle", 31, &["WEAVE_CIDR=10.2.0.8/24"]);
        idle.state = Default::default();
        docker.add(idle);
        let allocator = attacher.allocator();
        allocator.holds("exited", "10.2.0.7", true);
        allocator.holds("gone", "10.2.0.9", true);
        allocator.holds("idle", "10.2.0.8", false);

        let report = reconcile(&attacher).await.unwrap();

        assert_eq!((report.stopped, report.released), (1, 1), "{report:?}");
        // The exited container keeps its address, marked stopped, for another to claim;
        // the removed one's is freed; the one already marked stopped is not written.
        let mut writes = allocator.writes();
        writes.sort();
        assert_eq!(writes, ["release gone", "stopped exited"]);
        assert_eq!(allocator.of("exited"), [("10.2.0.7".to_owned(), false)]);
        assert!(allocator.of("gone").is_empty());
        assert!(attacher.network().changes.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn without_dockerd_nothing_is_decided() {
        let (docker, attacher) = setup();
        attacher.allocator().holds("web", "10.2.0.5", true);
        docker.set_unreachable(true);

        let error = reconcile(&attacher).await.unwrap_err();

        assert!(matches!(error, ReconcileError::Docker(_)), "{error}");
        assert!(attacher.allocator().writes().is_empty());
        assert_eq!(
            attacher.allocator().of("web"),
            [("10.2.0.5".to_owned(), true)]
        );
    }
}
