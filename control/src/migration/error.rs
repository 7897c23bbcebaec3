//! Why a move step failed.

use crate::proposal::ExecError;

/// A failed step of a move.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// An agent could not be reached or refused an order.
    #[error("agent of node {node}: {message}")]
    Agent {
        /// The node.
        node: String,
        /// What it said.
        message: String,
    },
    /// The record names something the state lacks.
    #[error("{0}")]
    State(String),
    /// A container holds the volume.
    #[error(
        "volume {volume} is held by container {container} on node {node}: stop it (or release its lease), then move again"
    )]
    Leased {
        /// The volume.
        volume: String,
        /// The container.
        container: String,
        /// Its node.
        node: String,
    },
    /// Writing through Raft failed; when this member no longer leads, the new leader resumes.
    #[error("recording the move failed: {0}")]
    Raft(#[from] ExecError),
}

impl MoveError {
    /// Whether the move itself failed (as opposed to this member losing its leadership or
    /// quorum, after which another leader resumes the move).
    pub fn fails_the_move(&self) -> bool {
        match self {
            MoveError::Raft(ExecError::Command(_)) => true,
            MoveError::Raft(_) => false,
            _ => true,
        }
    }
}
