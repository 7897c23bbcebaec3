//! What can go wrong in a transfer, mount, inventory or stop call, and the one place where it
//! becomes a gRPC status.

use tonic::{Code, Status};

use proto::agent::PushRequest;

use crate::storage::StorageError;

/// A failed agent call.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The storage backend failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The request was malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The target agent could not be reached.
    #[error(
        "cannot reach the agent of node {node} at {address} to stream volume {volume}: {reason} (check that its agent runs and listens there, and that this host can reach that address)"
    )]
    Unreachable {
        /// The volume.
        volume: String,
        /// The target node.
        node: String,
        /// Its address.
        address: String,
        /// Why.
        reason: String,
    },
    /// The target refused or could not apply the stream.
    #[error(
        "node {node} refused the stream of volume {volume}: {reason} (moving again starts from the newest snapshot both hold; if it repeats, read the flocker-agent log on {node})"
    )]
    Refused {
        /// The volume.
        volume: String,
        /// The target node.
        node: String,
        /// What it said.
        reason: String,
    },
    /// The target has no room for the stream.
    #[error(
        "node {node} has no space for volume {volume}: {reason} (free space in its pool, or raise the volume's size limit, then move again)"
    )]
    OutOfSpace {
        /// The volume.
        volume: String,
        /// The node without room.
        node: String,
        /// What it said.
        reason: String,
    },
    /// Something on the target stands where the stream must go.
    #[error(
        "node {node} holds data in the way of volume {volume}: {reason} (a copy that is not a replica of this volume; `flockerctl volume inspect {volume}` names the replicas)"
    )]
    NameConflict {
        /// The volume.
        volume: String,
        /// The node.
        node: String,
        /// What it said.
        reason: String,
    },
    /// The caller stopped waiting for the push (a new leader drives the move again).
    #[error(
        "the push of volume {volume} was abandoned: the control service stopped waiting for it"
    )]
    Abandoned {
        /// The volume.
        volume: String,
    },
    /// The receiver lacks the base of an incremental stream.
    #[error(
        "volume {volume} here has no snapshot {base}: push in full or from a snapshot this node holds"
    )]
    MissingBase {
        /// The volume.
        volume: String,
        /// The base snapshot.
        base: String,
    },
    /// Fencing refused a read-write mount.
    #[error(
        "refusing to mount volume {volume} read-write: the control service says the owner is {owner} at epoch {epoch}, not this node ({node}) at epoch {asked}"
    )]
    NotOwner {
        /// The volume.
        volume: String,
        /// This node.
        node: String,
        /// The epoch asked for.
        asked: u64,
        /// The owner the control service names.
        owner: String,
        /// The current epoch.
        epoch: u64,
    },
    /// A stream tried to replace the owner's live copy.
    #[error(
        "refusing to receive into volume {volume}: node {node} owns it (move it away first; only replicas receive)"
    )]
    OwnedHere {
        /// The volume.
        volume: String,
        /// This node.
        node: String,
    },
    /// Docker could not inspect or stop a container.
    #[error("cannot stop container {container} through this host's Docker: {reason}")]
    Docker {
        /// The container.
        container: String,
        /// Why.
        reason: String,
    },
    /// Asked to stop a container that does not use the volume.
    #[error(
        "container {container} does not use volume {volume} here: refusing to stop it (its lease is wrong: restart this host's flocker-agent to reconcile leases)"
    )]
    NotHolder {
        /// The volume.
        volume: String,
        /// The container.
        container: String,
    },
    /// The control service could not confirm ownership.
    #[error("cannot check the owner of volume {volume} with the control service: {reason}")]
    Control {
        /// The volume.
        volume: String,
        /// Why.
        reason: String,
    },
}

impl TransferError {
    /// The error of a push whose target answered `status`, classified by its code (the one
    /// place the target set it: [`From<TransferError> for Status`]).
    pub fn from_target(push: &PushRequest, status: &Status) -> Self {
        let (volume, node) = (push.volume.clone(), push.to_node.clone());
        let reason = status.message().to_owned();
        match status.code() {
            Code::ResourceExhausted => Self::OutOfSpace {
                volume,
                node,
                reason,
            },
            Code::AlreadyExists => Self::NameConflict {
                volume,
                node,
                reason,
            },
            Code::Unavailable | Code::DeadlineExceeded | Code::Unknown
                if !reason.contains(&volume) =>
            {
                Self::Unreachable {
                    volume,
                    node,
                    address: push.to_address.clone(),
                    reason,
                }
            }
            _ => Self::Refused {
                volume,
                node,
                reason,
            },
        }
    }
}

/// How a storage failure on the receiving side reads to the sender: out of space and a
/// conflicting dataset are told apart from any other refusal by what the tool said.
impl From<crate::storage::NameError> for TransferError {
    fn from(e: crate::storage::NameError) -> Self {
        TransferError::Storage(e.into())
    }
}

fn storage_code(e: &StorageError) -> Code {
    let said = match e {
        StorageError::Command { stderr, .. } => stderr.to_lowercase(),
        StorageError::Io { source, .. } => {
            if source.raw_os_error() == Some(28) || source.raw_os_error() == Some(122) {
                return Code::ResourceExhausted;
            }
            source.to_string().to_lowercase()
        }
        StorageError::VolumeExists { .. } => return Code::AlreadyExists,
        StorageError::InvalidName { .. } => return Code::InvalidArgument,
        StorageError::NoSuchVolume { .. } | StorageError::NoSuchSnapshot { .. } => {
            return Code::NotFound;
        }
        _ => return Code::Internal,
    };
    if [
        "out of space",
        "no space left",
        "quota exceeded",
        "disk quota",
    ]
    .iter()
    .any(|s| said.contains(s))
    {
        Code::ResourceExhausted
    } else if [
        "already exists",
        "destination has snapshots",
        "' exists",
        "has been modified",
    ]
    .iter()
    .any(|s| said.contains(s))
    {
        Code::AlreadyExists
    } else {
        Code::Internal
    }
}

impl From<TransferError> for Status {
    fn from(e: TransferError) -> Status {
        let code = match &e {
            TransferError::Storage(storage) => storage_code(storage),
            TransferError::BadRequest(_) => Code::InvalidArgument,
            TransferError::MissingBase { .. }
            | TransferError::NotOwner { .. }
            | TransferError::OwnedHere { .. }
            | TransferError::NotHolder { .. } => Code::FailedPrecondition,
            TransferError::Unreachable { .. }
            | TransferError::Control { .. }
            | TransferError::Docker { .. } => Code::Unavailable,
            TransferError::Refused { .. } => Code::FailedPrecondition,
            TransferError::OutOfSpace { .. } => Code::ResourceExhausted,
            TransferError::NameConflict { .. } => Code::AlreadyExists,
            TransferError::Abandoned { .. } => Code::Cancelled,
        };
        Status::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zfs_said(stderr: &str) -> StorageError {
        StorageError::Command {
            volume: "v".into(),
            command: "zfs receive -F p/v".into(),
            stderr: stderr.into(),
        }
    }

    fn push() -> PushRequest {
        PushRequest {
            volume: "v".into(),
            to_address: "10.0.0.2:4524".into(),
            to_node: "node2".into(),
            ..Default::default()
        }
    }

    /// Each class of failure on the receiving side reaches the sender as its own error with
    /// its own hint.
    #[test]
    fn receive_failures_are_classified_end_to_end() {
        let cases = [
            (zfs_said("cannot receive: out of space"), "has no space"),
            (
                zfs_said("destination has snapshots (eg. p/v@m1-final)"),
                "holds data in the way",
            ),
            (
                zfs_said("invalid stream (bad magic number)"),
                "refused the stream",
            ),
        ];
        for (storage, hint) in cases {
            let status = Status::from(TransferError::Storage(storage));
            let e = TransferError::from_target(&push(), &status);
            assert!(e.to_string().contains(hint), "{e}");
            assert!(!e.to_string().contains("agent runs"), "{e}");
        }
        let down = Status::unavailable("tcp connect error: Connection refused");
        let e = TransferError::from_target(&push(), &down);
        assert!(e.to_string().contains("check that its agent runs"), "{e}");
    }
}
