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
        "volume {volume} is held by container {container} on node {node}: stop it there and move again, or move with --stop to have the move stop it"
    )]
    Leased {
        /// The volume.
        volume: String,
        /// The container.
        container: String,
        /// Its node.
        node: String,
    },
    /// The holder's agent could not stop a container (a move asked with `--stop`).
    #[error(
        "cannot stop container {container} on node {node}, which holds volume {volume}: {message}; stop it there yourself (docker stop) and move again, or move without --stop to wait for it"
    )]
    Stop {
        /// The volume.
        volume: String,
        /// The container (several, comma-separated, when one call stopped them together).
        container: String,
        /// Its node.
        node: String,
        /// What the agent said.
        message: String,
    },
    /// A container was stopped but its lease stayed.
    #[error(
        "container {container} on node {node} was stopped but still holds volume {volume}: check `docker ps` and the flocker-agent log on {node} (the agent releases leases from Docker's events), then move again"
    )]
    StillLeased {
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
