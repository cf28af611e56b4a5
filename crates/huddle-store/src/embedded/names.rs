//! The name lock of the embedded store. One process owns the file, so an in-process
//! lock per name is enough: striped (a bounded set of mutexes, not one per name ever
//! seen), so two names may share a stripe and wait for each other, which is harmless.

use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use huddle_core::Room;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::EmbeddedStore;
use crate::{NameLock, NamedRoom, RoomStore, StoreError};

const STRIPES: usize = 64;

/// The stripes of one store.
pub(super) struct NameStripes(Vec<Arc<Mutex<()>>>);

impl NameStripes {
    pub(super) fn new() -> Self {
        Self((0..STRIPES).map(|_| Arc::new(Mutex::new(()))).collect())
    }

    pub(super) async fn lock(&self, name: &str) -> OwnedMutexGuard<()> {
        // One hasher per process is enough: stripes only spread contention.
        static HASHER: OnceLock<std::hash::RandomState> = OnceLock::new();
        let i = HASHER.get_or_init(Default::default).hash_one(name) as usize % STRIPES;
        self.0[i].clone().lock_owned().await
    }
}

/// A held stripe and the store it guards.
pub(super) struct EmbeddedNameLock {
    pub(super) store: EmbeddedStore,
    pub(super) name: String,
    pub(super) _held: OwnedMutexGuard<()>,
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
