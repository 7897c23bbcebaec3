//! Who decides which address a container gets: [`AddressAllocator`].
//!
//! In a cluster the control service owns every allocation (DESIGN.md section 7): explicit
//! addresses are claimed there (and refused when a running container elsewhere holds them),
//! `net:` requests get a free address there, and allocations are keyed by container id so
//! a retried or restarted attach gets the same address. That implementation is
//! [`super::ControlAllocator`].
//!
//! [`ExplicitOnly`] is the standalone mode, for a single host without a control service:
//! explicit addresses are used as given (nothing checks that another host does not use
//! them), and `net:` requests are refused, because picking a free address needs the
//! cluster-wide view only the control service has.

use std::future::Future;

use ipnet::Ipv4Net;
use proto::control::Allocation;

use super::cidr::CidrRequest;

/// Why no address could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The request needs a control service and this agent runs without one.
    #[error(
        "WEAVE_CIDR {request} asks for a free address, which only the control service can \
         pick: run the agent with --control, or give an explicit address such as 10.255.0.51/8"
    )]
    NeedsControl {
        /// The request.
        request: String,
    },
    /// The allocator refused the request (e.g. the address is held by a running container).
    #[error("WEAVE_CIDR {request} refused: {reason}")]
    Refused {
        /// The request.
        request: String,
        /// Why, naming the holder where there is one.
        reason: String,
    },
    /// The allocator could not be asked.
    #[error("cannot allocate WEAVE_CIDR {request}: {reason}")]
    Unavailable {
        /// The request.
        request: String,
        /// What failed.
        reason: String,
    },
}

/// Hands out and takes back containers' overlay addresses.
pub trait AddressAllocator: Send + Sync {
    /// Checks, before the container is created and writing nothing, that `request` would
    /// be served now (the address free or held by a stopped container, the pool known and
    /// not full); the claim at start still decides.
    fn check(&self, request: &CidrRequest) -> impl Future<Output = Result<(), AllocError>> + Send;

    /// The address for `request`, for the container `container_id` (named
    /// `container_name`). Idempotent: the same container and request get the same address.
    fn allocate(
        &self,
        container_id: &str,
        container_name: &str,
        request: &CidrRequest,
    ) -> impl Future<Output = Result<Ipv4Net, AllocError>> + Send;

    /// The container does not run: its addresses stay recorded for it but another
    /// container may claim them. Returns how many it held. Idempotent.
    fn stopped(&self, container_id: &str)
    -> impl Future<Output = Result<usize, AllocError>> + Send;

    /// Gives back every address of the container (it was removed). Idempotent.
    fn release(&self, container_id: &str) -> impl Future<Output = Result<(), AllocError>> + Send;

    /// Every allocation recorded for containers on this node, for the reconcile to compare
    /// with what runs.
    fn allocations_here(&self) -> impl Future<Output = Result<Vec<Allocation>, AllocError>> + Send;
}

/// The standalone mode: explicit addresses as given, `net:` refused (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
pub struct ExplicitOnly;

impl AddressAllocator for ExplicitOnly {
    async fn check(&self, request: &CidrRequest) -> Result<(), AllocError> {
        match request {
            CidrRequest::Explicit(_) => Ok(()),
            CidrRequest::Net(_) => Err(AllocError::NeedsControl {
                request: request.to_string(),
            }),
        }
    }

    async fn allocate(
        &self,
        _container_id: &str,
        _container_name: &str,
        request: &CidrRequest,
    ) -> Result<Ipv4Net, AllocError> {
        match request {
            CidrRequest::Explicit(cidr) => Ok(*cidr),
            CidrRequest::Net(_) => Err(AllocError::NeedsControl {
                request: request.to_string(),
            }),
        }
    }

    async fn stopped(&self, _container_id: &str) -> Result<usize, AllocError> {
        Ok(0)
    }

    async fn release(&self, _container_id: &str) -> Result<(), AllocError> {
        Ok(())
    }

    /// Nothing is recorded without a control service.
    async fn allocations_here(&self) -> Result<Vec<Allocation>, AllocError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weave::cidr;

    #[tokio::test]
    async fn explicit_addresses_pass_and_net_is_refused() {
        let requests = cidr::parse("10.255.0.51/8,net:10.2.0.0/24").unwrap();
        let got = ExplicitOnly
            .allocate("c1", "web", &requests[0])
            .await
            .unwrap();
        assert_eq!(got.to_string(), "10.255.0.51/8");
        let refused = ExplicitOnly.allocate("c1", "web", &requests[1]).await;
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("net:10.2.0.0/24"), "{message}");
        assert!(message.contains("control service"), "{message}");
        assert!(ExplicitOnly.check(&requests[1]).await.is_err());
    }
}
