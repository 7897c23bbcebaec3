//! One transfer at a time per volume on this agent: a push repeated by a new control leader
//! waits for the old one to stop instead of racing it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// Per-volume locks, made on first use.
#[derive(Clone, Default)]
pub struct VolumeLocks {
    locks: Arc<Mutex<HashMap<String, Arc<AsyncMutex<()>>>>>,
}

impl VolumeLocks {
    /// Waits for and holds the lock of `volume` until the guard drops.
    pub async fn lock(&self, volume: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(volume.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }
}
