//! Moving a volume between nodes (DESIGN section 6), driven by the control leader from the
//! replicated migration record, so a new leader resumes a move where the old one stopped.
//!
//! - [`plan`]: pure decisions: the newest snapshot both sides hold, snapshot names, whether
//!   another copy round is worth it.
//! - [`agents`]: calling an agent's API with the member's control certificate.
//! - [`drive`]: one move, phase by phase: copying rounds, handoff (leases, final push), the
//!   owner commit, mounts and snapshot clean-up; failing cleanly before the commit.
//! - [`deletion`]: a deleted volume's copies destroyed on every node that may hold one.
//! - [`holders`]: the start of the handoff: wait for the containers holding the volume to
//!   let go, or (`--stop`) have their agents stop them.
//! - [`replicate`]: keeping a volume's replicas fresh under its replication policy.
//! - [`schedule`]: taking and pruning a volume's scheduled snapshots.
//! - [`leader`]: the loop that, while this member leads, drives every unfinished move,
//!   failed move's clean-up, deletion and replica refresh.
//! - [`error`]: [`MoveError`], what a failed step says.

pub mod agents;
pub mod deletion;
pub mod drive;
pub mod error;
pub mod holders;
pub mod leader;
pub mod plan;
pub mod replicate;
pub mod schedule;

use std::time::Duration;

pub use error::MoveError;
pub use leader::run;

/// How a move is paced.
#[derive(Clone, Debug)]
pub struct MoveConfig {
    /// A copy round that carried more than this is followed by another round.
    pub round_threshold: u64,
    /// Copy rounds at most before the handoff.
    pub max_rounds: u32,
    /// How long the handoff waits for containers to release their leases.
    pub lease_wait: Duration,
    /// For a move asked to stop containers: how long Docker gives each one between the
    /// stop signal (SIGTERM unless the image says otherwise) and SIGKILL.
    pub stop_grace: Duration,
    /// How often a running push's progress is put into the leader's soft state.
    pub record_every: Duration,
}

impl Default for MoveConfig {
    fn default() -> Self {
        Self {
            round_threshold: 4 << 20,
            max_rounds: 5,
            lease_wait: Duration::from_secs(60),
            stop_grace: Duration::from_secs(10),
            record_every: Duration::from_secs(1),
        }
    }
}
