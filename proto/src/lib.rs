//! Wire definitions shared by the control service and the agents.
//!
//! The gRPC services (Raft between control members, the Control API for agents and
//! `flockerctl`, the agent-to-agent snapshot stream) are described in `proto/*.proto` and
//! compiled here once they exist; see `shared/DESIGN.md` section 5.
