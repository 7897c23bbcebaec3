//! The cluster as the status page shows it: what the list RPCs answered, kept up to date by
//! the Watch stream's events, plus the members' status and the volumes' usage, polled.

use std::collections::BTreeMap;

use proto::control as pb;

/// How many finished moves the page keeps (the newest).
pub const RECENT_MOVES: usize = 20;

/// The cluster, as last listed and watched.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// Members, leader, term and commit index (`None` until `Status` answered).
    pub cluster: Option<pb::ClusterStatus>,
    /// Nodes by name.
    pub nodes: BTreeMap<String, pb::Node>,
    /// Volumes by name; `state` and `moving` follow [`View::moves`].
    pub volumes: BTreeMap<String, pb::Volume>,
    /// Leases by volume, then container id.
    pub leases: BTreeMap<(String, String), pb::Lease>,
    /// Moves under way and the [`RECENT_MOVES`] newest finished ones, by id.
    pub moves: BTreeMap<u64, pb::Migration>,
    /// Pools by CIDR (their `allocated` is counted from [`View::allocations`]).
    pub pools: BTreeMap<String, pb::Pool>,
    /// Address allocations by address.
    pub allocations: BTreeMap<String, pb::Allocation>,
    /// Bytes each volume uses on its owner, as its agent last reported.
    pub usage: BTreeMap<String, u64>,
    /// The Raft log index of the last change watched.
    pub index: u64,
    /// Now, in milliseconds since the Unix epoch (heartbeat ages are counted from it).
    pub now_ms: u64,
    /// Why the page's data may be stale (the control service is unreachable), if it is.
    pub problem: Option<String>,
}

/// Whether a move is still under way.
pub fn under_way(m: &pb::Migration) -> bool {
    matches!(
        m.phase(),
        pb::MovePhase::Copying | pb::MovePhase::Handoff | pb::MovePhase::Unspecified
    )
}

impl View {
    /// Applies one watched change.
    pub fn apply(&mut self, event: pb::WatchEvent) {
        use pb::watch_event::Object;
        self.index = self.index.max(event.index);
        let Some(object) = event.object else {
            return;
        };
        let deleted = event.deleted;
        match object {
            Object::Node(n) => put(&mut self.nodes, n.name.clone(), n, deleted),
            Object::Volume(v) => {
                if deleted {
                    self.usage.remove(&v.name);
                }
                put(&mut self.volumes, v.name.clone(), v, deleted);
            }
            Object::Lease(l) => {
                let key = (l.volume.clone(), l.container_id.clone());
                put(&mut self.leases, key, l, deleted);
            }
            Object::Migration(m) => put(&mut self.moves, m.id, m, deleted),
            Object::Allocation(a) => put(&mut self.allocations, a.address.clone(), a, deleted),
            Object::Pool(p) => put(&mut self.pools, p.cidr.clone(), p, deleted),
        }
        self.settle();
    }

    /// Takes the leader's soft values from `nodes` and `moves` as listed: a node's last
    /// heartbeat and a move's bytes sent, never lower than shown. Everything else comes from
    /// watched changes, in order.
    pub fn soften(&mut self, nodes: Vec<pb::Node>, moves: Vec<pb::Migration>) {
        for n in nodes {
            if let Some(shown) = self.nodes.get_mut(&n.name).filter(|s| s.up && n.up) {
                shown.last_heartbeat_ms = shown.last_heartbeat_ms.max(n.last_heartbeat_ms);
            }
        }
        for m in moves {
            if let Some(shown) = self.moves.get_mut(&m.id).filter(|s| under_way(s)) {
                shown.bytes_sent = shown.bytes_sent.max(m.bytes_sent);
            }
        }
    }

    /// Keeps the newest finished moves only, and derives each volume's state from the moves.
    pub fn settle(&mut self) {
        let mut finished: Vec<u64> = self
            .moves
            .values()
            .filter(|m| !under_way(m))
            .map(|m| m.id)
            .collect();
        if finished.len() > RECENT_MOVES {
            finished.sort_unstable();
            for id in &finished[..finished.len() - RECENT_MOVES] {
                self.moves.remove(id);
            }
        }
        for v in self.volumes.values_mut() {
            let moving = self
                .moves
                .values()
                .rev()
                .find(|m| m.volume == v.name && under_way(m));
            v.moving = moving.map(|m| pb::VolumeMove {
                to: m.to.clone(),
                phase: m.phase,
            });
            v.set_state(match (&v.moving, &v.owner) {
                (Some(_), _) => pb::VolumeState::Moving,
                (None, Some(_)) => pb::VolumeState::Ready,
                (None, None) => pb::VolumeState::NoOwner,
            });
        }
    }

    /// The leases held on `volume`.
    pub fn holders(&self, volume: &str) -> impl Iterator<Item = &pb::Lease> {
        self.leases
            .range((volume.to_owned(), String::new())..)
            .take_while(move |((v, _), _)| v == volume)
            .map(|(_, l)| l)
    }
}

fn put<K: Ord, V>(map: &mut BTreeMap<K, V>, key: K, value: V, deleted: bool) {
    if deleted {
        map.remove(&key);
    } else {
        map.insert(key, value);
    }
}
