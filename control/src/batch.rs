//! Group commit of the leader's writes: concurrent writes become one Raft entry.
//!
//! openraft 0.9 appends each client write on its own and waits for that append's fsync
//! before it takes the next one, so a leader commits at most one write per fsync, however
//! many callers wait (measured: docs/control.md, "Benchmark"). The [`Batcher`] queues the
//! writes this member proposes as leader; a task takes everything queued, proposes it as one
//! [`Command::Batch`] entry (a lone write as itself), and answers each caller with its own
//! command's result. At most [`IN_FLIGHT`] entries are proposed at a time, so that while
//! they commit the next writes gather into the next entry: under load an entry carries many
//! writes, alone a write waits for nothing.
//!
//! A member older than this one cannot read a `Batch` entry: writes are batched only while
//! every other member of the membership has said it can ([`LogFormats`], learned from the
//! replies of the `Raft` service), so a rolling upgrade from an older version keeps
//! committing; until then each write is proposed alone, as before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::proposal::ExecError;
use crate::raft::Raft;
use crate::state::{Command, Response};

/// The log format of this version: 2 adds [`Command::Batch`] and takes heartbeats off the
/// log ([`crate::soft`]). A member says it in the replies of its `Raft` service (header
/// [`LOG_FORMAT_HEADER`]); a member that says nothing writes format 1.
pub const LOG_FORMAT: u32 = 2;

/// The `Raft` service's reply header carrying the replying member's [`LOG_FORMAT`].
pub const LOG_FORMAT_HEADER: &str = "flocker-log-format";

/// Entries proposed and not yet committed at once.
pub const IN_FLIGHT: usize = 2;

/// Most writes in one entry, by default (`flocker-control --max-batch`).
pub const MAX_BATCH: usize = 512;

/// The log format each peer said it writes, by member id (shared by the member's Raft
/// network clients, which learn it, and its batcher, which asks).
#[derive(Clone, Default)]
pub struct LogFormats(Arc<Mutex<HashMap<u64, u32>>>);

impl LogFormats {
    /// Records what member `id` said (`None`: it said nothing, an older version).
    pub fn learn(&self, id: u64, said: Option<u32>) {
        let format = said.unwrap_or(1);
        self.0.lock().expect("log formats lock").insert(id, format);
    }

    /// Whether every member in `ids` is known to read [`LOG_FORMAT`].
    pub fn all_read_batches(&self, ids: impl IntoIterator<Item = u64>) -> bool {
        let known = self.0.lock().expect("log formats lock");
        ids.into_iter()
            .all(|id| known.get(&id).is_some_and(|f| *f >= LOG_FORMAT))
    }

    /// Whether every member of `raft`'s membership but `me` is known to run this log format:
    /// no older member that could not read a `Batch` entry, or that would judge liveness
    /// from logged heartbeats ([`crate::soft`]), is left.
    pub fn others_current(&self, raft: &Raft, me: u64) -> bool {
        // Asked for every batch and every heartbeat: read the membership in place.
        let metrics = raft.metrics();
        let others = metrics
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| *id != me)
            .collect::<Vec<u64>>();
        self.all_read_batches(others)
    }
}

/// A write waiting for its entry.
struct Queued {
    command: Command,
    answer: oneshot::Sender<Result<Response, ExecError>>,
}

/// The queue of this member's writes as leader; cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::UnboundedSender<Queued>,
}

/// What the batcher needs of its member.
pub struct Proposer {
    /// This member's id.
    pub id: u64,
    /// Its Raft.
    pub raft: Raft,
    /// What its peers said about their log format.
    pub formats: LogFormats,
    /// Its commit latency histogram.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Most writes in one entry; 1: no batching, each write proposed alone at once.
    pub max_batch: usize,
}

impl Batcher {
    /// Starts the batching task for `proposer`; it ends when the last clone is dropped.
    pub fn start(proposer: Proposer) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(Arc::new(proposer), rx));
        Self { queue }
    }

    /// Proposes `command` (with whatever else is queued) and waits for its result; fails
    /// with [`ExecError::NotLeader`] unless this member leads. No deadline: the caller sets
    /// one.
    pub async fn write(&self, command: Command) -> Result<Response, ExecError> {
        let (answer, wait) = oneshot::channel();
        let stopped = || ExecError::Raft("this member is shutting down".into());
        self.queue
            .send(Queued { command, answer })
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }
}

async fn run(proposer: Arc<Proposer>, mut rx: mpsc::UnboundedReceiver<Queued>) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < proposer.max_batch {
            match rx.try_recv() {
                Ok(q) => batch.push(q),
                Err(_) => break,
            }
        }
        let proposer = proposer.clone();
        if proposer.max_batch == 1 || !proposer.formats.others_current(&proposer.raft, proposer.id)
        {
            // Each alone, all at once (as without a batcher).
            drop(permit);
            for q in batch {
                let proposer = proposer.clone();
                tokio::spawn(async move {
                    let result = proposer.propose(q.command).await;
                    let _ = q.answer.send(result);
                });
            }
            continue;
        }
        // A lone write holds its place in flight too: what arrives meanwhile gathers.
        tokio::spawn(async move {
            let _permit = permit;
            if batch.len() == 1 {
                let q = batch.pop().expect("one write");
                let result = proposer.propose(q.command).await;
                let _ = q.answer.send(result);
            } else {
                proposer.propose_batch(batch).await;
            }
        });
    }
}

impl Proposer {
    /// One command, one entry.
    async fn propose(&self, command: Command) -> Result<Response, ExecError> {
        let started = Instant::now();
        match self.raft.client_write(command).await {
            Ok(resp) => {
                self.metrics.observe_commit(started.elapsed());
                Ok(resp.data?)
            }
            Err(e) => Err(crate::member::raft_error(&e)),
        }
    }

    /// Several commands, one entry; each caller gets its own command's result.
    async fn propose_batch(&self, batch: Vec<Queued>) {
        let (commands, answers): (Vec<Command>, Vec<_>) =
            batch.into_iter().map(|q| (q.command, q.answer)).unzip();
        let n = commands.len();
        let started = Instant::now();
        match self.raft.client_write(Command::Batch { commands }).await {
            Ok(resp) => {
                let elapsed = started.elapsed();
                let results = match resp.data {
                    Ok(Response::Batch { results }) if results.len() == n => results,
                    other => {
                        let e = ExecError::Raft(format!("a batch of {n} applied as {other:?}"));
                        for answer in answers {
                            let _ = answer.send(Err(e.clone()));
                        }
                        return;
                    }
                };
                for (answer, result) in answers.into_iter().zip(results) {
                    self.metrics.observe_commit(elapsed);
                    let _ = answer.send(result.map_err(ExecError::from));
                }
            }
            Err(e) => {
                let e = crate::member::raft_error(&e);
                for answer in answers {
                    let _ = answer.send(Err(e.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_only_once_every_member_said_it_reads_them() {
        let formats = LogFormats::default();
        assert!(!formats.all_read_batches([2, 3]), "nothing heard yet");
        formats.learn(2, Some(LOG_FORMAT));
        assert!(!formats.all_read_batches([2, 3]), "3 not heard");
        formats.learn(3, None);
        assert!(!formats.all_read_batches([2, 3]), "3 is older");
        formats.learn(3, Some(LOG_FORMAT));
        assert!(formats.all_read_batches([2, 3]));
        formats.learn(3, None);
        assert!(!formats.all_read_batches([2, 3]), "3 was downgraded");
        assert!(formats.all_read_batches([]), "a lone member");
    }
}
