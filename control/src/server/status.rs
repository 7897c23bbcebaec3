//! The one place where an [`ExecError`] becomes a gRPC status.

use tonic::{Code, Status};

use crate::proposal::ExecError;

/// Maps an execution error to the status a client sees. "Not leader" and "no quorum" are
/// `unavailable` (retry elsewhere or later), never a blanket `internal`.
pub fn to_status(e: ExecError) -> Status {
    let code = match &e {
        ExecError::Command(c) if c.is_not_found() => Code::NotFound,
        ExecError::Command(c) if c.is_conflict() => Code::AlreadyExists,
        ExecError::Command(crate::state::CommandError::InvalidVolumeName { .. })
        | ExecError::Command(crate::state::CommandError::InvalidNodeName { .. })
        | ExecError::Command(crate::state::CommandError::InvalidReplication { .. })
        | ExecError::Command(crate::state::CommandError::InvalidSnapshotSchedule { .. })
        | ExecError::Command(crate::state::CommandError::InvalidSnapshotLabel { .. })
        | ExecError::Command(crate::state::CommandError::InvalidCidr { .. })
        | ExecError::Command(crate::state::CommandError::InvalidAddress { .. })
        | ExecError::Command(crate::state::CommandError::AddressOutsidePools { .. })
        | ExecError::Command(crate::state::CommandError::EmptyContainerId) => Code::InvalidArgument,
        ExecError::Command(_) => Code::FailedPrecondition,
        ExecError::NotLeader { .. } | ExecError::NoQuorum { .. } | ExecError::Raft(_) => {
            Code::Unavailable
        }
        ExecError::Membership(_) => Code::FailedPrecondition,
        ExecError::Mismatch { .. } => Code::Internal,
    };
    Status::new(code, e.to_string())
}
