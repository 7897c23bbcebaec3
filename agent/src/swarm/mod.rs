//! Swarm services through the agent's proxy: the built-in `swarm` adapter, a pre-hook on
//! `POST /*/services/create` and `POST /*/services/*/update` that refuses at once, with the
//! reason, a service spec that can never run on this system ([`spec::check`]), instead of
//! letting Swarm accept it and its tasks fail or corrupt a volume later, and makes the
//! tasks of a service with `WEAVE_CIDR` wait for their address ([`network`]).

pub mod adapter;
pub mod network;
pub mod spec;

pub use adapter::SwarmAdapter;
