//! The agent's per-volume locks: one registry, made by the daemon and handed to every part
//! that changes a volume on this host, so work on one volume is serialised and work on
//! different volumes runs side by side.
//!
//! A single lock per volume cannot serve: a `docker run` of a volume that lives elsewhere
//! waits for the move that brings it here, and that move's `Receive` runs on this same
//! host. So there are three levels, always taken in this order (never the reverse):
//!
//! 1. [`VolumeLocks::run`]: a `docker run`'s preparation of the volume (create it if the
//!    cluster has none, bring it here, mount it): two runs of one new volume cannot race
//!    each other into the backend.
//! 2. [`VolumeLocks::transfer`]: one incoming or outgoing transfer, or one clean-up, of the
//!    volume at a time.
//! 3. [`VolumeLocks::dataset`]: one change to the volume's local dataset or its mount at a
//!    time (create, destroy, mount, unmount, receive, swapping a staged copy in), taken by
//!    the storage [`Backend`](crate::storage::Backend) itself: `zfs set mountpoint` or
//!    `zfs mount` racing on one dataset fail with "busy".

use foundation::locks::KeyedLocks;
use tokio::sync::OwnedMutexGuard;

/// Held while the guarded work runs; dropping it lets the next waiter in.
pub type VolumeGuard = OwnedMutexGuard<()>;

/// The per-volume locks of one agent, in three levels; cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct VolumeLocks {
    runs: KeyedLocks<String>,
    transfers: KeyedLocks<String>,
    datasets: KeyedLocks<String>,
}

impl VolumeLocks {
    /// Level 1: a `docker run`'s preparation of `volume`.
    pub async fn run(&self, volume: &str) -> VolumeGuard {
        self.runs.lock(volume).await
    }

    /// Level 2: one transfer or clean-up of `volume`.
    pub async fn transfer(&self, volume: &str) -> VolumeGuard {
        self.transfers.lock(volume).await
    }

    /// Level 3: one change to `volume`'s local dataset or mount.
    pub async fn dataset(&self, volume: &str) -> VolumeGuard {
        self.datasets.lock(volume).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A run holding its level-1 lock while the volume's move comes in must not block the
    /// move's receive (level 2) nor the storage work under it (level 3).
    #[tokio::test]
    async fn a_run_waiting_for_its_move_does_not_block_the_receive() {
        let locks = VolumeLocks::default();
        let _run = locks.run("demo").await;
        let received = async {
            let _transfer = locks.transfer("demo").await;
            let _dataset = locks.dataset("demo").await;
        };
        tokio::time::timeout(Duration::from_secs(1), received)
            .await
            .expect("the receive waited on the run");
    }

    #[tokio::test]
    async fn one_level_serialises_one_volume_only() {
        let locks = VolumeLocks::default();
        let _held = locks.transfer("a").await;
        tokio::time::timeout(Duration::from_millis(200), locks.transfer("b"))
            .await
            .expect("another volume waited");
        assert!(
            tokio::time::timeout(Duration::from_millis(200), locks.transfer("a"))
                .await
                .is_err(),
            "a second transfer of the same volume went in"
        );
    }

    #[tokio::test]
    async fn clones_share_the_locks() {
        let locks = VolumeLocks::default();
        let other = locks.clone();
        let _held = locks.dataset("a").await;
        assert!(
            tokio::time::timeout(Duration::from_millis(200), other.dataset("a"))
                .await
                .is_err()
        );
    }
}
