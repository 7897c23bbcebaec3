//! [`LogStore`]: openraft's `RaftLogStorage` on redb, with group commit.
//!
//! openraft 0.9 calls `append` once per client write on the leader. Giving each its own
//! fsync caps a leader at one write per fsync, so appends go to a dedicated writer thread
//! instead: it takes every operation queued since its last commit, writes them in order in
//! one redb transaction (default `Durability::Immediate`, i.e. fsync), and only then reports
//! the appends as flushed through openraft's `LogFlushed` callbacks. Until then the entries
//! are readable from an in-memory `pending` map, as openraft requires. Votes, truncation and
//! purging go through the same queue and wait for their commit, so all writes stay in order.
//!
//! The committed log id is not persisted (openraft makes that optional): a restarted member
//! learns the commit index from the leader within a heartbeat.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, mpsc};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageIOError, Vote};
use redb::{Database, ReadableDatabase, ReadableTable};
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use super::db::{LOG, META};
use super::{StorageError, TypeConfig};

/// Most operations folded into one transaction.
pub const MAX_GROUP: usize = 4096;

/// Entries appended but not yet committed to redb, by index.
type Pending = Arc<Mutex<BTreeMap<u64, Entry<TypeConfig>>>>;

/// A write for the writer thread.
enum Op {
    Append {
        entries: Vec<(u64, Vec<u8>)>,
        callback: LogFlushed<TypeConfig>,
    },
    Meta {
        key: &'static str,
        value: Vec<u8>,
        done: oneshot::Sender<Result<(), String>>,
    },
    Truncate {
        from: u64,
        done: oneshot::Sender<Result<(), String>>,
    },
    Purge {
        upto: LogId<u64>,
        done: oneshot::Sender<Result<(), String>>,
    },
}

/// The Raft log, vote and purge point of one member.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    pending: Pending,
    writer: mpsc::Sender<Op>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failed(String);

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(&e).into()
}

impl LogStore {
    /// A store over an opened database (see [`super::db::open`]); starts its writer thread,
    /// which ends when the last clone is dropped.
    pub fn new(db: Arc<Database>) -> Self {
        let (writer, queue) = mpsc::channel();
        let pending = Pending::default();
        let (db2, pending2) = (db.clone(), pending.clone());
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || write_loop(&db2, &pending2, &queue))
            .expect("spawn the raft log writer thread");
        Self {
            db,
            pending,
            writer,
        }
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StorageError> {
        let tx = self.db.begin_read().map_err(read_err)?;
        let table = tx.open_table(META).map_err(read_err)?;
        match table.get(key).map_err(read_err)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(read_err)?)),
            None => Ok(None),
        }
    }

    /// Queues `op` (built around a completion sender) and waits for its commit.
    async fn submit(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Op,
    ) -> Result<(), StorageError> {
        let (done, wait) = oneshot::channel();
        self.writer
            .send(op(done))
            .map_err(|_| write_err(Failed("log writer stopped".into())))?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(write_err(Failed(e))),
            Err(_) => Err(write_err(Failed("log writer stopped".into()))),
        }
    }
}

/// The writer thread: group every queued operation into one durable transaction.
fn write_loop(db: &Database, pending: &Pending, queue: &mpsc::Receiver<Op>) {
    while let Ok(first) = queue.recv() {
        let mut ops = vec![first];
        while ops.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let result = commit(db, &ops).map_err(|e| e.to_string());
        if result.is_ok() {
            let mut p = pending.lock().expect("pending lock");
            for op in &ops {
                if let Op::Append { entries, .. } = op {
                    for (index, _) in entries {
                        p.remove(index);
                    }
                }
            }
        }
        for op in ops {
            let r = result.clone();
            match op {
                Op::Append { callback, .. } => {
                    callback.log_io_completed(r.map_err(std::io::Error::other))
                }
                Op::Meta { done, .. } | Op::Truncate { done, .. } | Op::Purge { done, .. } => {
                    let _ = done.send(r);
                }
            }
        }
    }
}

fn commit(db: &Database, ops: &[Op]) -> Result<(), redb::Error> {
    let tx = db.begin_write()?;
    {
        let mut log = tx.open_table(LOG)?;
        let mut meta = tx.open_table(META)?;
        for op in ops {
            match op {
                Op::Append { entries, .. } => {
                    for (index, bytes) in entries {
                        log.insert(*index, bytes.as_slice())?;
                    }
                }
                Op::Meta { key, value, .. } => {
                    meta.insert(*key, value.as_slice())?;
                }
                Op::Truncate { from, .. } => log.retain_in(*from.., |_, _| false)?,
                Op::Purge { upto, .. } => {
                    let bytes = serde_json::to_vec(upto)
                        .map_err(|e| redb::Error::Io(std::io::Error::other(e)))?;
                    meta.insert("last_purged", bytes.as_slice())?;
                    log.retain_in(..=upto.index, |_, _| false)?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        // Pending first: an entry leaves `pending` only after its commit is visible in redb.
        let mut out: BTreeMap<u64, Entry<TypeConfig>> = {
            let p = self.pending.lock().expect("pending lock");
            p.range(range.clone())
                .map(|(i, e)| (*i, e.clone()))
                .collect()
        };
        let tx = self.db.begin_read().map_err(read_err)?;
        let table = tx.open_table(LOG).map_err(read_err)?;
        for item in table.range(range).map_err(read_err)? {
            let (k, v) = item.map_err(read_err)?;
            if let std::collections::btree_map::Entry::Vacant(slot) = out.entry(k.value()) {
                slot.insert(serde_json::from_slice(v.value()).map_err(read_err)?);
            }
        }
        Ok(out.into_values().collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let pending_last = {
            let p = self.pending.lock().expect("pending lock");
            p.values().next_back().map(|e| e.log_id)
        };
        let last_purged_log_id: Option<LogId<u64>> = self.get_meta("last_purged")?;
        let stored_last = {
            let tx = self.db.begin_read().map_err(read_err)?;
            let table = tx.open_table(LOG).map_err(read_err)?;
            match table.last().map_err(read_err)? {
                Some((_, v)) => {
                    let e: Entry<TypeConfig> =
                        serde_json::from_slice(v.value()).map_err(read_err)?;
                    Some(e.log_id)
                }
                None => None,
            }
        };
        let last = pending_last.max(stored_last);
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last.or(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        let value = serde_json::to_vec(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        self.submit(|done| Op::Meta {
            key: "vote",
            value,
            done,
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.get_meta("vote")
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        {
            let mut p = self.pending.lock().expect("pending lock");
            for entry in entries {
                let bytes = serde_json::to_vec(&entry).map_err(write_err)?;
                encoded.push((entry.log_id.index, bytes));
                p.insert(entry.log_id.index, entry);
            }
        }
        self.writer
            .send(Op::Append {
                entries: encoded,
                callback,
            })
            .map_err(|_| write_err(Failed("log writer stopped".into())))
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError> {
        self.submit(|done| Op::Truncate {
            from: log_id.index,
            done,
        })
        .await?;
        self.pending
            .lock()
            .expect("pending lock")
            .retain(|i, _| *i < log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError> {
        self.submit(|done| Op::Purge { upto: log_id, done }).await
    }
}
