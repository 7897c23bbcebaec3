//! The one error type of the storage backends.

use std::io;

/// What went wrong in a storage backend. Each variant names the volume (or the tool) that
/// failed so an operator can act on the message alone.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A volume or snapshot name broke the naming rule; nothing was touched.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// `volume` or `snapshot`.
        kind: &'static str,
        /// The name as given.
        name: String,
        /// Which part of the rule it broke.
        reason: &'static str,
    },
    /// A `--storage` value is not `zfs:POOL[/PATH]` or `dir:/ABSOLUTE/PATH`.
    #[error("invalid storage {spec:?}: {reason}")]
    InvalidSpec {
        /// The value as given.
        spec: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A read-write mount while this agent is fenced (its heartbeats go unanswered).
    #[error(
        "volume {volume}: not mounted read-write: this agent is fenced (the control service has not answered its heartbeats, so another node may own the volume now); it lifts once the control service answers"
    )]
    Fenced {
        /// The volume.
        volume: String,
    },
    /// An external command (`zfs`, `mount`, ...) failed for a volume.
    #[error("volume {volume}: `{command}` failed: {stderr}")]
    Command {
        /// The volume being worked on.
        volume: String,
        /// The command line that failed.
        command: String,
        /// What it printed on stderr (or how it ended).
        stderr: String,
    },
    /// A file-system operation failed for a volume.
    #[error("volume {volume}: {action} failed: {source}")]
    Io {
        /// The volume being worked on.
        volume: String,
        /// What was being done, e.g. `copy snapshot`.
        action: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The volume does not exist on this host.
    #[error("volume {volume} does not exist on this host")]
    NoSuchVolume {
        /// The volume asked for.
        volume: String,
    },
    /// The volume already exists on this host.
    #[error("volume {volume} already exists on this host")]
    VolumeExists {
        /// The volume asked for.
        volume: String,
    },
    /// The snapshot does not exist for this volume.
    #[error("volume {volume}: snapshot {snapshot} does not exist on this host")]
    NoSuchSnapshot {
        /// The volume.
        volume: String,
        /// The snapshot asked for.
        snapshot: String,
    },
    /// A received stream was malformed, truncated or does not fit what this host has.
    #[error("volume {volume}: cannot receive stream: {reason}")]
    BadStream {
        /// The volume being received.
        volume: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The backend itself cannot be used (tool missing, pool absent, ...).
    #[error("storage backend unavailable: `{command}` failed: {stderr}")]
    Unavailable {
        /// The command that showed it.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
}

impl StorageError {
    /// An [`StorageError::Io`] for `volume` while doing `action`.
    pub fn io(volume: impl ToString, action: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            volume: volume.to_string(),
            action: action.into(),
            source,
        }
    }
}

/// The result type of the storage backends.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
