//! What can go wrong in a transfer, mount, inventory or stop call, and the one place where it
//! becomes a gRPC status.

use tonic::{Code, Status};

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
    /// The target agent could not be reached or refused the stream.
    #[error(
        "cannot stream volume {volume} to {node} at {address}: {reason} (check that its agent runs and listens there)"
    )]
    Target {
        /// The volume.
        volume: String,
        /// The target node.
        node: String,
        /// Its address.
        address: String,
        /// Why.
        reason: String,
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

impl From<TransferError> for Status {
    fn from(e: TransferError) -> Status {
        let code = match &e {
            TransferError::Storage(StorageError::InvalidName { .. })
            | TransferError::BadRequest(_) => Code::InvalidArgument,
            TransferError::Storage(StorageError::NoSuchVolume { .. }) => Code::NotFound,
            TransferError::MissingBase { .. }
            | TransferError::NotOwner { .. }
            | TransferError::OwnedHere { .. }
            | TransferError::NotHolder { .. } => Code::FailedPrecondition,
            TransferError::Target { .. }
            | TransferError::Control { .. }
            | TransferError::Docker { .. } => Code::Unavailable,
            TransferError::Storage(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}
