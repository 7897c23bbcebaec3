//! The `weave` side of the agent: per-container addresses from `WEAVE_CIDR`.
//!
//! - [`cidr`]: parsing `WEAVE_CIDR` into typed requests (explicit address, `net:` subnet).
//! - [`rewrite`]: the create-body rewrite that runs `wait-for-net` before the command.
//! - [`allocator`]: who decides the address ([`AddressAllocator`]); [`ExplicitOnly`] is the
//!   standalone mode without a control service.
//! - [`control_allocator`]: [`ControlAllocator`], the cluster mode: addresses from the
//!   control service.
//! - [`lifecycle`]: how an allocation follows its container's real state in every order
//!   (one decision from an inspect, [`lifecycle::settle`]); [`LifecycleFollower`] reports
//!   containers that die (addresses may move) and are removed (addresses freed).
//! - [`attacher`]: inspect, allocate, attach through [`crate::network`].
//! - [`adapter`]: `builtin:weave` for the proxy (pre-hook on create, post-hook on start).
//! - [`restart`]: re-attaches containers Docker starts by itself (restart policy).
//! - [`reconcile`]: at agent start and every [`reconcile::RECONCILE_PERIOD`], the kernel and
//!   the control service brought in line with what dockerd runs (containers restarted,
//!   stopped or removed while the agent was down, events lost while it ran).
//! - [`side`]: all of the above running in `flocker-agent` (`--underlay`).

pub mod adapter;
pub mod allocator;
pub mod attacher;
pub mod cidr;
pub mod control_allocator;
pub mod lifecycle;
pub mod reconcile;
pub mod restart;
pub mod rewrite;
pub mod side;

pub use adapter::WeaveAdapter;
pub use allocator::{AddressAllocator, AllocError, ExplicitOnly};
pub use attacher::{AttachError, Attacher, Outcome};
pub use control_allocator::ControlAllocator;
pub use lifecycle::LifecycleFollower;
pub use restart::RestartWatcher;
