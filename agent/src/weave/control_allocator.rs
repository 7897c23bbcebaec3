//! [`ControlAllocator`]: addresses from the control service (DESIGN.md section 7).
//!
//! An explicit address (`WEAVE_CIDR=10.255.0.51/8`) is claimed with `ClaimIp`: refused
//! when a running container elsewhere holds it (the refusal names that container and its
//! node), taken over when its holder stopped or was removed, which is how an address moves
//! with its container. `net:10.2.0.0/24` asks `AllocateIp` for a free address in that pool
//! (an operator adds pools with `flockerctl ip add-pool`). Both are keyed by container id and
//! idempotent, so a retried or restarted attach gets the same address. The container's
//! lifecycle reaches the control service through [`super::lifecycle`]: a container that dies
//! gives its addresses up for others to claim, one that is removed frees them.

use ipnet::Ipv4Net;
use proto::control::{AllocateRequest, Allocation, ClaimRequest, ContainerId, Empty};
use tonic::{Code, Status};

use super::allocator::{AddressAllocator, AllocError};
use super::cidr::CidrRequest;
use crate::cluster::Control;

/// Allocates through the control service's gRPC API, for the containers of one node.
#[derive(Clone)]
pub struct ControlAllocator {
    control: Control,
    node: String,
}

impl ControlAllocator {
    /// Allocates for containers on `node` (this agent's node name, as registered) through
    /// the agent's `control` connection (whose calls fail over between members).
    pub fn new(control: Control, node: impl Into<String>) -> Self {
        Self {
            control,
            node: node.into(),
        }
    }

    /// Claims or allocates (`dry_run`: only checks) the address `request` asks for.
    async fn ask(
        &self,
        container_id: &str,
        container_name: &str,
        request: &CidrRequest,
        dry_run: bool,
    ) -> Result<Ipv4Net, AllocError> {
        let text = request.to_string();
        let (reply, prefix) = match request {
            CidrRequest::Explicit(cidr) => {
                let claim = ClaimRequest {
                    address: cidr.addr().to_string(),
                    container_id: container_id.to_owned(),
                    container_name: container_name.to_owned(),
                    node: self.node.clone(),
                    dry_run,
                };
                let reply = self
                    .control
                    .call(claim, |mut c, claim| async move { c.claim_ip(claim).await })
                    .await;
                (reply, cidr.prefix_len())
            }
            CidrRequest::Net(subnet) => {
                let alloc = AllocateRequest {
                    pool: subnet.to_string(),
                    container_id: container_id.to_owned(),
                    container_name: container_name.to_owned(),
                    node: self.node.clone(),
                    dry_run,
                };
                let reply = self
                    .control
                    .call(
                        alloc,
                        |mut c, alloc| async move { c.allocate_ip(alloc).await },
                    )
                    .await;
                (reply, subnet.prefix_len())
            }
        };
        let allocation = reply.map_err(|s| refusal(&text, s))?;
        let bad = |reason: String| AllocError::Unavailable {
            request: text.clone(),
            reason,
        };
        let addr = allocation.address.parse().map_err(|_| {
            bad(format!(
                "the control service answered a bad address {:?}",
                allocation.address
            ))
        })?;
        Ipv4Net::new(addr, prefix).map_err(|e| bad(e.to_string()))
    }

    /// The node this allocator allocates for.
    pub fn node(&self) -> &str {
        &self.node
    }
}

/// A control service answer as an allocation error: refusals keep the service's message
/// (which names the holder of a taken address); anything else means it could not be asked.
fn refusal(request: &str, status: Status) -> AllocError {
    match status.code() {
        Code::AlreadyExists
        | Code::FailedPrecondition
        | Code::NotFound
        | Code::InvalidArgument
        | Code::PermissionDenied
        | Code::OutOfRange => AllocError::Refused {
            request: request.to_owned(),
            reason: status.message().to_owned(),
        },
        _ => AllocError::Unavailable {
            request: request.to_owned(),
            reason: format!("control service: {}", status.message()),
        },
    }
}

impl AddressAllocator for ControlAllocator {
    async fn check(&self, request: &CidrRequest) -> Result<(), AllocError> {
        // The same rule as at start, on the control service's state, writing nothing.
        self.ask("", "", request, true).await.map(|_| ())
    }

    async fn allocate(
        &self,
        container_id: &str,
        container_name: &str,
        request: &CidrRequest,
    ) -> Result<Ipv4Net, AllocError> {
        self.ask(container_id, container_name, request, false).await
    }

    async fn stopped(&self, container_id: &str) -> Result<usize, AllocError> {
        let request = ContainerId {
            container_id: container_id.to_owned(),
        };
        let list = self
            .control
            .call(request, |mut c, request| async move {
                c.container_stopped(request).await
            })
            .await
            .map_err(|s| refusal(&format!("stop of {container_id}"), s))?;
        Ok(list.allocations.len())
    }

    async fn release(&self, container_id: &str) -> Result<(), AllocError> {
        let request = ContainerId {
            container_id: container_id.to_owned(),
        };
        self.control
            .call(request, |mut c, request| async move {
                c.release_ip(request).await
            })
            .await
            .map_err(|s| refusal(&format!("release of {container_id}"), s))?;
        Ok(())
    }

    /// Every allocation the control service records for containers on this node.
    async fn allocations_here(&self) -> Result<Vec<Allocation>, AllocError> {
        let list = self
            .control
            .call(
                Empty {},
                |mut c, empty| async move { c.list_ips(empty).await },
            )
            .await
            .map_err(|s| refusal(&format!("the allocations of node {}", self.node), s))?;
        let mut here = list.allocations;
        here.retain(|a| a.node == self.node);
        Ok(here)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_refusals_that_keep_the_message_and_outages_are_not() {
        let held = Status::already_exists(
            "address 10.0.0.3 is held by running container \"web\" (c1) on node \"n1\"",
        );
        let e = refusal("10.0.0.3/24", held);
        assert!(matches!(e, AllocError::Refused { .. }), "{e}");
        assert!(e.to_string().contains("\"web\" (c1) on node \"n1\""), "{e}");
        let down = refusal("net:10.2.0.0/24", Status::unavailable("no quorum"));
        assert!(matches!(down, AllocError::Unavailable { .. }), "{down}");
    }
}
