//! `MoveVolume`: record a move through Raft, then stream its progress as this member applies
//! the migration's changes (its phases and rounds), and the bytes sent so far, which only the
//! leader holds ([`crate::soft`]), read from it every [`PROGRESS_EVERY`], until the move is
//! done or failed. Any member can serve the stream; the leader's orchestrator
//! ([`crate::migration`]) does the moving.

use std::pin::Pin;
use std::time::{Duration, Instant};

use proto::control as pb;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::status::to_status;
use crate::member::Member;
use crate::proposal::Moves;
use crate::state::{Command, Migration, Response};

/// How often a stream asks the leader how many bytes the move has sent.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The progress stream of one move.
pub type MoveStream = Pin<Box<dyn Stream<Item = Result<pb::MoveProgress, Status>> + Send>>;

/// Starts moving `req.name` to `req.to` and returns its progress stream.
pub async fn start(member: &Member, req: pb::MoveVolumeRequest) -> Result<MoveStream, Status> {
    // Subscribe before recording, so no change of the new migration is missed.
    let mut events = member.sm.subscribe();
    let cmd = Command::RecordMigration {
        volume: req.name,
        to: req.to,
        stop_containers: req.stop_containers,
        at_ms: Some(super::node_service::now_ms()),
        // This call's span (the child of the caller's): the leader's `move` span joins it.
        trace: foundation::trace::headers_of(&tracing::Span::current())
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect(),
    };
    let m: Migration = member.write(cmd).await.map_err(to_status)?;
    let (tx, rx) = mpsc::channel(16);
    let member = member.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let id = m.id;
        if tx.send(Ok(progress(&m, started))).await.is_err() {
            return;
        }
        let mut last = m;
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = tick.tick() => {
                    // Bytes only: phases come from this member's applied changes, in order.
                    let Some(bytes) = bytes_sent(&member, &last).await else { continue };
                    last.bytes_sent = bytes;
                    if tx.send(Ok(progress(&last, started))).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let m = match event {
                Ok(e) => match e.change {
                    Some(Response::Migration(m)) if m.id == id => m,
                    Some(_) => continue,
                    // This member replaced its state with the leader's snapshot: the move's
                    // own events may be in it, so the stream cannot go on reliably.
                    None => {
                        let _ = tx
                            .send(Err(Status::data_loss(
                                "this member installed a snapshot mid-move: follow the move with `flockerctl volume ls`",
                            )))
                            .await;
                        return;
                    }
                },
                Err(RecvError::Lagged(_)) => {
                    let _ = tx
                        .send(Err(Status::data_loss(
                            "fell behind the change stream: follow the move with `flockerctl volume ls`",
                        )))
                        .await;
                    return;
                }
                Err(RecvError::Closed) => return,
            };
            let end = m.phase.is_terminal();
            last = Migration {
                bytes_sent: m.bytes_sent.max(last.bytes_sent),
                ..m
            };
            if tx.send(Ok(progress(&last, started))).await.is_err() || end {
                return;
            }
        }
    });
    Ok(Box::pin(ReceiverStream::new(rx)))
}

/// The bytes move `m` has sent by the leader's count, if more than `m` shows and the move
/// is under way; `None` too when the leader cannot be asked now (the next tick asks again).
async fn bytes_sent(member: &Member, m: &Migration) -> Option<u64> {
    if m.phase.is_terminal() {
        return None;
    }
    let moves = member.read(Moves(m.volume.clone())).await.ok()?;
    let now = moves.into_iter().find(|n| n.id == m.id)?;
    (now.bytes_sent > m.bytes_sent).then_some(now.bytes_sent)
}

fn progress(m: &Migration, started: Instant) -> pb::MoveProgress {
    let secs = started.elapsed().as_secs_f64();
    pb::MoveProgress {
        migration: m.id,
        phase: crate::convert::phase(m.phase).into(),
        bytes_sent: m.bytes_sent,
        bytes_per_second: if secs > 0.0 {
            (m.bytes_sent as f64 / secs) as u64
        } else {
            0
        },
        rounds: m.rounds,
        error: m.error.clone(),
        volume: m.volume.clone(),
        from: m.from.clone(),
        to: m.to.clone(),
    }
}
