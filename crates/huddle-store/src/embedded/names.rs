//! The name lock of the embedded store. One process owns the file, so an in-process
//! lock per name is enough. Only names being locked have an entry (it goes when the
//! last holder or waiter leaves), so what the map holds is bounded by the creations in
//! progress, not by every name ever seen; and two names never wait for each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as SyncMutex};

use async_trait::async_trait;
use huddle_core::Room;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::EmbeddedStore;
use crate::{NameLock, NamedRoom, RoomStore, StoreError};

/// The names locked or waited for, each with its lock.
#[derive(Default)]
pub(super) struct NameLocks(SyncMutex<HashMap<String, Arc<Mutex<()>>>>);

impl NameLocks {
    pub(super) fn new() -> Self {
        Self::default()
    }

    pub(super) async fn lock(self: &Arc<Self>, name: &str) -> HeldName {
        let entry = {
            let mut names = self.0.lock().unwrap_or_else(|e| e.into_inner());
            names.entry(name.to_string()).or_default().clone()
        };
        // Made before the wait, so that a waiter dropped before it gets the lock leaves
        // as a holder does.
        let mut held = HeldName {
            locks: self.clone(),
            name: name.to_string(),
            entry: entry.clone(),
            guard: None,
        };
        held.guard = Some(entry.lock_owned().await);
        held
    }

    #[cfg(test)]
    fn entries(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A held name; released (and its entry removed if nobody else wants it) on drop.
pub(super) struct HeldName {
    locks: Arc<NameLocks>,
    name: String,
    entry: Arc<Mutex<()>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for HeldName {
    fn drop(&mut self) {
        // The guard holds a reference to the entry too: release it first.
        drop(self.guard.take());
        let mut names = self.locks.0.lock().unwrap_or_else(|e| e.into_inner());
        // The map's reference and ours: nobody else holds or waits for the name (a new
        // locker clones the entry under the map's lock, so this cannot race).
        if Arc::strong_count(&self.entry) == 2 {
            names.remove(&self.name);
        }
    }
}

/// A held name and the store it guards.
pub(super) struct EmbeddedNameLock {
    pub(super) store: EmbeddedStore,
    pub(super) name: String,
    pub(super) _held: HeldName,
}

#[async_trait]
impl NameLock for EmbeddedNameLock {
    async fn rooms_named(&mut self) -> Result<Vec<NamedRoom>, StoreError> {
        self.store.rooms_named(&self.name).await
    }

    async fn create_room(self: Box<Self>, room: &Room) -> Result<(), StoreError> {
        self.store.create_room(room).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_name_waits_only_for_itself_and_leaves_nothing_behind() {
        let locks = Arc::new(NameLocks::new());
        let dev = locks.lock("dev").await;
        // Any other name is free at once, whatever its hash.
        for i in 0..1000 {
            let other = tokio::time::timeout(Duration::from_secs(1), locks.lock(&format!("n{i}")))
                .await
                .expect("another name is not held up");
            drop(other);
        }
        // The same name waits; a waiter that gives up leaves no entry.
        let waiting = tokio::time::timeout(Duration::from_millis(50), locks.lock("dev")).await;
        assert!(waiting.is_err(), "a held name is not given twice");
        assert_eq!(locks.entries(), 1);
        drop(dev);
        assert_eq!(locks.entries(), 0);
        let again = locks.lock("dev").await;
        assert_eq!(locks.entries(), 1);
        drop(again);
        assert_eq!(locks.entries(), 0);
    }
}
