//! The `weave` side of the agent: per-container addresses from `WEAVE_CIDR`.
//!
//! - [`cidr`]: parsing `WEAVE_CIDR` into typed requests (explicit address, `net:` subnet).
//! - [`rewrite`]: the create-body rewrite that runs `wait-for-net` before the command.
//! - [`allocator`]: who decides the address ([`AddressAllocator`]); [`ExplicitOnly`] is the
//!   standalone mode without a control service.
//! - [`attacher`]: inspect, allocate, attach through [`crate::network`].
//! - [`adapter`]: `builtin:weave` for the proxy (pre-hook on create, post-hook on start).
//! - [`restart`]: re-attaches containers Docker starts by itself (restart policy).

pub mod adapter;
pub mod allocator;
pub mod attacher;
pub mod cidr;
pub mod restart;
pub mod rewrite;

pub use adapter::WeaveAdapter;
pub use allocator::{AddressAllocator, AllocError, ExplicitOnly};
pub use attacher::{AttachError, Attacher, Outcome};
pub use restart::RestartWatcher;
