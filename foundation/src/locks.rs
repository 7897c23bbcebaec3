//! One lock per key (a volume's name, usually), made on first use and forgotten when nobody
//! holds or waits for it: work on one volume is serialised, work on different volumes runs
//! side by side.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// Per-key async locks; cloning shares them.
#[derive(Debug)]
pub struct KeyedLocks<K> {
    locks: Arc<Mutex<HashMap<K, Arc<AsyncMutex<()>>>>>,
}

impl<K> Clone for KeyedLocks<K> {
    fn clone(&self) -> Self {
        Self {
            locks: self.locks.clone(),
        }
    }
}

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        Self {
            locks: Arc::default(),
        }
    }
}

impl<K: Eq + Hash + Clone> KeyedLocks<K> {
    /// Waits for and holds the lock of `key` until the guard drops.
    pub async fn lock<Q>(&self, key: &Q) -> OwnedMutexGuard<()>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            // Forget the locks nobody holds or waits for (only the map refers to them).
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            match locks.get(key) {
                Some(lock) => lock.clone(),
                None => locks.entry(key.to_owned()).or_default().clone(),
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_key_waits_another_does_not() {
        let locks = KeyedLocks::<String>::default();
        let (a, b) = ("a".to_owned(), "b".to_owned());
        let held = locks.lock(&a).await;
        let other = tokio::time::timeout(Duration::from_secs(1), locks.lock(&b)).await;
        assert!(other.is_ok(), "another key must not wait");
        let again = tokio::time::timeout(Duration::from_millis(50), locks.lock(&a));
        assert!(again.await.is_err(), "the same key must wait");
        drop(held);
        let again = tokio::time::timeout(Duration::from_secs(1), locks.lock(&a));
        assert!(again.await.is_ok(), "released: the next one gets it");
    }

    #[tokio::test]
    async fn idle_locks_are_forgotten() {
        let locks = KeyedLocks::<u32>::default();
        for key in 0..100 {
            drop(locks.lock(&key).await);
        }
        let held = locks.lock(&7).await;
        let len = locks.locks.lock().unwrap().len();
        assert_eq!(len, 1, "idle entries are pruned");
        drop(held);
    }
}
