//! Tables, indexes and the versioned migrations of the PostgreSQL backend.
//!
//! The version lives in the database (`huddle_schema`), and every node brings it up to
//! date when it starts, under a session advisory lock: several nodes may start at once,
//! and only one runs a step while the others wait and then find it done. Each run of
//! steps is one transaction, so a crash half-way leaves the old schema. A database of a
//! newer schema than this huddle knows is refused, naming both versions.

use deadpool_postgres::Object;

use super::conn::backend;
use crate::StoreError;

/// The advisory lock (one-key space) held while migrating; names use the two-key space,
/// which PostgreSQL keeps apart.
const MIGRATION_LOCK: i64 = 0x4855_4444_4c45; // "HUDDLE"

/// Each entry takes the schema from version `index` to `index + 1`. Append only.
const STEPS: &[&str] = &[INITIAL];

/// Version 1: the embedded store's schema with its kept counts (see the embedded
/// backend's `schema`) and idempotency keys. Names sort bytewise (`COLLATE "C"`), as in
/// SQLite, whatever the database's locale. Text a client chooses freely (message ids,
/// bodies and keys, descriptions, push endpoints) is BYTEA holding its UTF-8: TEXT
/// refuses U+0000, which clients may send and SQLite keeps. Names are TEXT: they cannot
/// hold control characters.
const INITIAL: &str = r#"
    CREATE TABLE rooms (
        id            TEXT PRIMARY KEY,
        name          TEXT COLLATE "C" NOT NULL,
        password_hash TEXT,
        description   BYTEA NOT NULL,
        kind          TEXT NOT NULL,
        created_at    BIGINT NOT NULL,
        last_seq      BIGINT NOT NULL,
        last_member   BIGINT NOT NULL,
        epoch         BIGINT NOT NULL,
        agent_count   BIGINT NOT NULL DEFAULT 0,
        message_count BIGINT NOT NULL DEFAULT 0,
        dm_count      BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX rooms_by_name ON rooms(name);
    CREATE INDEX rooms_public ON rooms(name, created_at) WHERE password_hash IS NULL;
    CREATE TABLE agents (
        room_id   TEXT NOT NULL,
        member    BIGINT NOT NULL,
        name      TEXT NOT NULL,
        role      TEXT NOT NULL,
        joined_at BIGINT NOT NULL,
        token     BYTEA NOT NULL,
        endpoint  BYTEA,
        cursor    BIGINT NOT NULL,
        PRIMARY KEY (room_id, member)
    );
    CREATE TABLE messages (
        room_id        TEXT NOT NULL,
        seq            BIGINT NOT NULL,
        id             BYTEA NOT NULL,
        from_name      TEXT NOT NULL,
        from_member    BIGINT NOT NULL,
        to_name        TEXT,
        to_member      BIGINT,
        body           BYTEA NOT NULL,
        ts             BIGINT NOT NULL,
        broadcast_rank BIGINT NOT NULL,
        key            BYTEA,
        PRIMARY KEY (room_id, seq)
    );
    CREATE INDEX messages_broadcasts ON messages(room_id, seq) WHERE to_member IS NULL;
    CREATE UNIQUE INDEX messages_keys ON messages(room_id, from_member, key)
        WHERE key IS NOT NULL;
    CREATE TABLE dm_views (
        room_id TEXT NOT NULL,
        member  BIGINT NOT NULL,
        seq     BIGINT NOT NULL,
        rank    BIGINT NOT NULL,
        PRIMARY KEY (room_id, member, seq)
    );"#;

/// The schema version this code reads and writes.
pub(super) const VERSION: usize = STEPS.len();

/// Brings the database to [`VERSION`] (see the module doc).
pub(super) async fn migrate(conn: &mut Object) -> Result<(), StoreError> {
    conn.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(backend)?;
    let result = migrate_locked(conn).await;
    let unlocked = conn
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(backend);
    result.and(unlocked.map(drop))
}

async fn migrate_locked(conn: &mut Object) -> Result<(), StoreError> {
    let tx = conn.transaction().await.map_err(backend)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS huddle_schema (version BIGINT NOT NULL)")
        .await
        .map_err(backend)?;
    let found: Option<i64> = tx
        .query_opt("SELECT version FROM huddle_schema", &[])
        .await
        .map_err(backend)?
        .map(|r| r.get(0));
    let found = found.map_or(0, |v| usize::try_from(v).unwrap_or(usize::MAX));
    if found > VERSION {
        return Err(StoreError::Backend(format!(
            "the database has schema version {found}, newer than this huddle's {VERSION}: \
             it was written by a newer huddle"
        )));
    }
    for step in &STEPS[found..] {
        tx.batch_execute(step).await.map_err(backend)?;
    }
    if found < VERSION {
        tx.execute("DELETE FROM huddle_schema", &[])
            .await
            .map_err(backend)?;
        tx.execute(
            "INSERT INTO huddle_schema (version) VALUES ($1)",
            &[&(VERSION as i64)],
        )
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}
