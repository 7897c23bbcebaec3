//! What every crate of the cluster shares, so that each thing has one implementation:
//!
//! - [`names`]: volume, snapshot and node names, valid by construction;
//! - [`locks`]: one async lock per key (per volume), side by side across keys;
//! - [`retry`]: the pause between attempts, growing with jitter;
//! - [`logging`]: the daemons' log set-up (`--log-format text|json`, colour only on a
//!   terminal);
//! - [`shutdown`]: waiting for SIGTERM or SIGINT, and the supervisor that stops a daemon's
//!   tasks (cancel, drain within a grace, abandon the rest);
//! - [`exit`]: the exit codes the binaries share.

pub mod exit;
pub mod locks;
pub mod logging;
pub mod names;
pub mod retry;
pub mod shutdown;
