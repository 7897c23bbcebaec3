//! The agent's Docker side of portable volumes.
//!
//! - [`binds`]: finding, validating and rewriting `/flocker/<name>[/sub]` binds and mounts
//!   in a `containers/create` body (pure).
//! - [`control`]: [`control::VolumeControl`], the control service's volume and lease calls
//!   (on the agent's shared connection, [`crate::cluster::Control`]; an in-memory fake in
//!   unit tests).
//! - [`volumes`]: [`volumes::Volumes`], making a volume available read-write here: create
//!   it in the cluster if new, mount it if owned here, ask the placement layer otherwise.
//! - [`placement`]: [`placement::VolumePlacement`], bringing a volume from its owner:
//!   [`placement::ControlMove`] moves it through the control service.
//! - [`adapter`]: [`adapter::FlockerAdapter`], the `builtin:flocker` pre-hook.
//! - [`leases`]: [`leases::LeaseWatcher`], leases from container start and die events
//!   (through [`crate::docker`]).
//! - [`arrivals`]: [`arrivals::ArrivalWatcher`], moving a volume here as soon as a container
//!   using it is created here (Swarm's task preparation), ahead of its start.
//! - [`side`]: running it all: the proxy with `flocker` registered, the plugin, the watchers.

pub mod adapter;
pub mod arrivals;
pub mod binds;
pub mod control;
pub mod leases;
pub mod placement;
pub mod side;
pub mod volumes;
