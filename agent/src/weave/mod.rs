//! The `weave` side of the agent: per-container addresses from `WEAVE_CIDR`.
//!
//! - [`cidr`]: parsing `WEAVE_CIDR` into typed requests (explicit address, `net:` subnet).
//! - [`rewrite`]: the create-body rewrite that runs `wait-for-net` before the command.

pub mod cidr;
pub mod rewrite;
