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

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foundation::retry::Backoff;
use ipnet::Ipv4Net;
use proto::control::control_client::ControlClient;
use proto::control::{AllocateRequest, Allocation, ClaimRequest, ContainerId, Empty};
use proto::tls::TlsDir;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::allocator::{AddressAllocator, AllocError};
use super::cidr::CidrRequest;

/// How many times a control call that found the service unavailable is made at most.
pub const CALL_ATTEMPTS: u32 = 4;

/// Allocates through the control service's gRPC API, for the containers of one node.
#[derive(Clone)]
pub struct ControlAllocator {
    client: Arc<Mutex<ControlClient<Channel>>>,
    node: String,
    /// The members to fail over to when the current one is unavailable.
    failover: Option<(Vec<String>, TlsDir)>,
}

impl ControlAllocator {
    /// Allocates for containers on `node` (this agent's node name, as registered) through
    /// `client` (e.g. from [`proto::connect::connect_any`]; the channel reconnects by
    /// itself).
    pub fn new(client: ControlClient<Channel>, node: impl Into<String>) -> Self {
        Self {
            client: Arc::new(Mutex::new(client)),
            node: node.into(),
            failover: None,
        }
    }

    /// As [`ControlAllocator::new`], connecting to the first of `controls` that answers
    /// (with `tls`) when the current member is unavailable.
    pub fn with_failover(
        client: ControlClient<Channel>,
        node: impl Into<String>,
        controls: Vec<String>,
        tls: TlsDir,
    ) -> Self {
        Self {
            failover: Some((controls, tls)),
            ..Self::new(client, node)
        }
    }

    fn client(&self) -> ControlClient<Channel> {
        self.client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// After an unavailable member: the first member that answers, if there is a list.
    async fn fail_over(&self) {
        let Some((controls, tls)) = &self.failover else {
            return;
        };
        match proto::connect::connect_any(controls, tls).await {
            Ok(client) => *self.client.lock().unwrap_or_else(|e| e.into_inner()) = client,
            Err(e) => tracing::debug!(error = %e, "no control member to fail over to yet"),
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
                    .call(|mut c| {
                        let claim = claim.clone();
                        async move { c.claim_ip(claim).await }
                    })
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
                    .call(|mut c| {
                        let alloc = alloc.clone();
                        async move { c.allocate_ip(alloc).await }
                    })
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

    /// Calls the control service with `call`; a transport failure is tried again (up to
    /// [`CALL_ATTEMPTS`] times, with backoff), on the first member that answers (found by
    /// the lab walk: a run with an address while the member this agent had reached was
    /// down, and the first one after it came back, failed).
    async fn call<T, Fut>(&self, call: impl Fn(ControlClient<Channel>) -> Fut) -> Result<T, Status>
    where
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut attempt = 1;
        loop {
            match call(self.client()).await {
                Err(s) if s.code() == Code::Unavailable && attempt < CALL_ATTEMPTS => {
                    tracing::debug!(error = %s.message(), attempt, "control call unavailable; trying again");
                    attempt += 1;
                    backoff.wait().await;
                    self.fail_over().await;
                }
                reply => return reply.map(tonic::Response::into_inner),
            }
        }
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
            .call(|mut c| {
                let request = request.clone();
                async move { c.container_stopped(request).await }
            })
            .await
            .map_err(|s| refusal(&format!("stop of {container_id}"), s))?;
        Ok(list.allocations.len())
    }

    async fn release(&self, container_id: &str) -> Result<(), AllocError> {
        let request = ContainerId {
            container_id: container_id.to_owned(),
        };
        self.call(|mut c| {
            let request = request.clone();
            async move { c.release_ip(request).await }
        })
        .await
        .map_err(|s| refusal(&format!("release of {container_id}"), s))?;
        Ok(())
    }

    /// Every allocation the control service records for containers on this node.
    async fn allocations_here(&self) -> Result<Vec<Allocation>, AllocError> {
        let list = self
            .call(|mut c| async move { c.list_ips(Empty {}).await })
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
