//! What every storage backend must do ([`behaviour`]), run by `tests/zfs.rs` and
//! `tests/dir.rs`. The real parts these tests use (pools, scratch directories) are the
//! workspace's `testkit`.

#![allow(dead_code, missing_docs)]

pub mod behaviour;
