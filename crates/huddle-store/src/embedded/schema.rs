//! Tables, indexes and connection settings.

use std::path::Path;

use rusqlite::Connection;

use super::Durability;
use super::codec::backend;
use crate::StoreError;

pub(super) fn open(path: &Path, durability: Durability) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(backend)?;
    let sync = match durability {
        Durability::Process => "NORMAL",
        Durability::Power => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL;
         PRAGMA synchronous={sync};
         PRAGMA foreign_keys=OFF;
         PRAGMA busy_timeout=5000;
         PRAGMA cache_size=-16000;"
    ))
    .map_err(backend)?;
    Ok(conn)
}

pub(super) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS rooms (
            id            TEXT PRIMARY KEY,
            name          TEXT NOT NULL,
            password_hash TEXT,
            description   TEXT NOT NULL,
            kind          TEXT NOT NULL,
            created_at    INTEGER NOT NULL,
            last_seq      INTEGER NOT NULL,
            last_member   INTEGER NOT NULL,
            epoch         INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS rooms_by_name ON rooms(name);
         CREATE TABLE IF NOT EXISTS agents (
            room_id   TEXT NOT NULL,
            member    INTEGER NOT NULL,
            name      TEXT NOT NULL,
            role      TEXT NOT NULL,
            joined_at INTEGER NOT NULL,
            token     BLOB NOT NULL,
            endpoint  TEXT,
            cursor    INTEGER NOT NULL,
            PRIMARY KEY (room_id, member)
         ) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS messages (
            room_id     TEXT NOT NULL,
            seq         INTEGER NOT NULL,
            id          TEXT NOT NULL,
            from_name   TEXT NOT NULL,
            from_member INTEGER NOT NULL,
            to_name     TEXT,
            to_member   INTEGER,
            body        TEXT NOT NULL,
            ts          INTEGER NOT NULL,
            PRIMARY KEY (room_id, seq)
         ) WITHOUT ROWID;",
    )
    .map_err(backend)
}
