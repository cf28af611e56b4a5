//! The name lock of the PostgreSQL backend: a transaction on a pooled connection that
//! holds `pg_advisory_xact_lock` on the name, so creations of one name are serialised
//! across every node sharing the database. The room is inserted in that transaction,
//! and the commit releases the lock: the next holder's `rooms_named` sees the room.

use async_trait::async_trait;
use huddle_core::Room;

use super::conn::{Lease, backend};
use super::{apply, reads};
use crate::{NameLock, NamedRoom, StoreError};

/// The two-key advisory lock space of room names (`pg_advisory_xact_lock(space, hash)`).
const NAME_LOCKS: i32 = 0x4855; // "HU"

pub(super) struct PgNameLock {
    /// `None` once committed (or handed to the rollback).
    lease: Option<Lease>,
    name: String,
}

impl PgNameLock {
    pub(super) async fn take(lease: Lease, name: &str) -> Result<Self, StoreError> {
        let lock = Self {
            lease: Some(lease),
            name: name.to_string(),
        };
        let conn = &lock.lease.as_ref().expect("just set").conn;
        conn.batch_execute("BEGIN").await.map_err(backend)?;
        conn.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&NAME_LOCKS, &lock.name],
        )
        .await
        .map_err(backend)?;
        Ok(lock)
    }

    fn lease(&self) -> Result<&Lease, StoreError> {
        self.lease
            .as_ref()
            .ok_or_else(|| StoreError::Backend("the name lock was released".into()))
    }
}

#[async_trait]
impl NameLock for PgNameLock {
    async fn rooms_named(&mut self) -> Result<Vec<NamedRoom>, StoreError> {
        reads::rooms_named(&self.lease()?.conn, &self.name).await
    }

    async fn create_room(mut self: Box<Self>, room: &Room) -> Result<(), StoreError> {
        let conn = &self.lease()?.conn;
        apply::create(conn, room).await?;
        conn.batch_execute("COMMIT").await.map_err(backend)?;
        self.lease = None;
        Ok(())
    }
}

impl Drop for PgNameLock {
    /// Released without creating (or the creation failed): roll back, which releases
    /// the advisory lock, before the connection serves anyone else. Without a runtime
    /// to do that on, the connection is closed instead (the server rolls back).
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if lease.conn.batch_execute("ROLLBACK").await.is_err() {
                        drop(deadpool_postgres::Object::take(lease.conn));
                    }
                });
            }
            Err(_) => drop(deadpool_postgres::Object::take(lease.conn)),
        }
    }
}
