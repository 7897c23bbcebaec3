//! [`StateMachineStore`]: the cluster [`State`] in memory, rebuilt on start from the last
//! snapshot (persisted in redb) plus the committed log after it.

use std::io::Cursor;
use std::sync::{Arc, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, StorageIOError,
    StoredMembership,
};
use redb::{Database, ReadableDatabase};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::db::SNAPSHOT;
use super::{Applied, StorageError, TypeConfig};
use crate::state::{Response, State, apply};

/// How many changes a slow watcher may fall behind before its stream ends.
pub const EVENT_BUFFER: usize = 4096;

/// The applied state plus what openraft needs to know about it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Applying {
    /// Last applied log id.
    pub last_applied: Option<LogId<u64>>,
    /// Last applied membership.
    pub membership: StoredMembership<u64, BasicNode>,
    /// The cluster state.
    pub state: State,
}

/// A persisted snapshot: its meta and its bytes.
type StoredSnapshot = (SnapshotMeta<u64, BasicNode>, Vec<u8>);

/// One applied change, as watchers receive it.
#[derive(Clone, Debug)]
pub struct ChangeEvent {
    /// Log index of the command.
    pub index: u64,
    /// What changed; `None` when the whole state was replaced by a snapshot from the leader,
    /// so watchers must list the state again.
    pub change: Option<Response>,
}

/// The state machine of one member. Clones share the state.
#[derive(Clone)]
pub struct StateMachineStore {
    data: Arc<RwLock<Applying>>,
    db: Arc<Database>,
    events: broadcast::Sender<ChangeEvent>,
    snapshot_seq: Arc<std::sync::atomic::AtomicU64>,
}

fn sm_read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_state_machine(&e).into()
}

fn snap_write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_snapshot(None, &e).into()
}

fn snap_read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_snapshot(None, &e).into()
}

impl StateMachineStore {
    /// Loads the last snapshot from `db`, if any.
    pub fn open(db: Arc<Database>) -> Result<Self, StorageError> {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let store = Self {
            data: Arc::default(),
            db,
            events,
            snapshot_seq: Arc::default(),
        };
        if let Some((_, data)) = store.load_snapshot()? {
            *store.data.write().expect("state lock") =
                serde_json::from_slice(&data).map_err(sm_read_err)?;
        }
        Ok(store)
    }

    /// Reads the state under a lock; `f` must not block.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.data.read().expect("state lock").state)
    }

    /// Subscribes to applied changes.
    pub fn subscribe(&self) -> broadcast::Receiver<ChangeEvent> {
        self.events.subscribe()
    }

    fn load_snapshot(&self) -> Result<Option<StoredSnapshot>, StorageError> {
        let tx = self.db.begin_read().map_err(snap_read_err)?;
        let table = tx.open_table(SNAPSHOT).map_err(snap_read_err)?;
        let (Some(meta), Some(data)) = (
            table.get("meta").map_err(snap_read_err)?,
            table.get("data").map_err(snap_read_err)?,
        ) else {
            return Ok(None);
        };
        let meta = serde_json::from_slice(meta.value()).map_err(snap_read_err)?;
        Ok(Some((meta, data.value().to_vec())))
    }

    fn save_snapshot(
        &self,
        meta: &SnapshotMeta<u64, BasicNode>,
        data: &[u8],
    ) -> Result<(), StorageError> {
        let meta = serde_json::to_vec(meta).map_err(snap_write_err)?;
        let tx = self.db.begin_write().map_err(snap_write_err)?;
        {
            let mut table = tx.open_table(SNAPSHOT).map_err(snap_write_err)?;
            table
                .insert("meta", meta.as_slice())
                .map_err(snap_write_err)?;
            table.insert("data", data).map_err(snap_write_err)?;
        }
        tx.commit().map_err(snap_write_err)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Copy under the lock, serialise outside it, so applying is held up only by the copy.
        let copy = self.data.read().expect("state lock").clone();
        let data = serde_json::to_vec(&copy).map_err(sm_read_err)?;
        let (last_applied, membership) = (copy.last_applied, copy.membership);
        let seq = self
            .snapshot_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let snapshot_id = match last_applied {
            Some(id) => format!("{}-{}-{seq}", id.leader_id, id.index),
            None => format!("none-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        self.save_snapshot(&meta, &data)?;
        tracing::info!(raft.snapshot = %meta.snapshot_id, snapshot.bytes = data.len(), "snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError> {
        let d = self.data.read().expect("state lock");
        Ok((d.last_applied, d.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        let mut events = Vec::new();
        {
            let mut d = self.data.write().expect("state lock");
            for entry in entries {
                d.last_applied = Some(entry.log_id);
                let result = match entry.payload {
                    EntryPayload::Blank => Ok(Response::Unchanged),
                    EntryPayload::Membership(m) => {
                        d.membership = StoredMembership::new(Some(entry.log_id), m);
                        Ok(Response::Unchanged)
                    }
                    EntryPayload::Normal(command) => apply(&mut d.state, command),
                };
                if let Ok(change) = &result {
                    let index = entry.log_id.index;
                    events.extend(change.clone().into_changes(&d.state).into_iter().map(
                        |change| ChangeEvent {
                            index,
                            change: Some(change),
                        },
                    ));
                }
                out.push(result);
            }
        }
        for e in events {
            // No watcher is not an error.
            let _ = self.events.send(e);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let new: Applying = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        self.save_snapshot(meta, &data)?;
        let mut d = self.data.write().expect("state lock");
        *d = new;
        d.last_applied = meta.last_log_id;
        d.membership = meta.last_membership.clone();
        drop(d);
        let _ = self.events.send(ChangeEvent {
            index: meta.last_log_id.map_or(0, |l| l.index),
            change: None,
        });
        tracing::info!(raft.snapshot = %meta.snapshot_id, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(self.load_snapshot()?.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
