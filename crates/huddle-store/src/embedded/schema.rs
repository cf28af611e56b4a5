//! Tables, indexes, connection settings, and the versioned migrations between schemas.
//!
//! The schema version lives in the file (`PRAGMA user_version`), so a data dir written by
//! an older huddle is brought up to date when it is opened, inside one transaction: a
//! crash half-way leaves the old schema, and the next open starts again. A file from a
//! newer huddle (a version we do not know) is refused rather than misread.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

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

/// Each entry takes the schema from version `index` to `index + 1`. Append only: a
/// released step never changes, because data files in the field were written by it.
const STEPS: &[&str] = &[INITIAL, KEPT_COUNTS, IDEMPOTENCY_KEYS, NO_BROADCAST_INDEX];

/// Version 1: the first schema. Files written before versioning have `user_version` 0
/// and these tables already, hence `IF NOT EXISTS`.
const INITIAL: &str = "
    CREATE TABLE IF NOT EXISTS rooms (
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
    ) WITHOUT ROWID;";

/// Version 2: counts kept as the log grows, so that reads never count or skip rows.
///
/// - `rooms.agent_count`: members now (the listing shows it).
/// - `rooms.message_count`, `rooms.dm_count`: messages and DMs in the log.
/// - `messages.broadcast_rank`: how many broadcasts (non-DMs) have `seq` up to this row.
/// - `dm_views`: one row per DM per member who may see it (sender and recipient), with
///   `rank` = how many DMs that member may see up to this `seq`.
///
/// So the number of messages member `v` sees up to `seq` s is `broadcast_rank` at s plus
/// `v`'s `rank` at s: two index lookups, whatever the log's size (see `reads::history`).
/// Every column is backfilled from the rows already there.
const KEPT_COUNTS: &str = "
    ALTER TABLE rooms ADD COLUMN agent_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rooms ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE rooms ADD COLUMN dm_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN broadcast_rank INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE dm_views (
        room_id TEXT NOT NULL,
        member  INTEGER NOT NULL,
        seq     INTEGER NOT NULL,
        rank    INTEGER NOT NULL,
        PRIMARY KEY (room_id, member, seq)
    ) WITHOUT ROWID;
    UPDATE rooms SET
        agent_count = (SELECT count(*) FROM agents a WHERE a.room_id = rooms.id),
        message_count = (SELECT count(*) FROM messages m WHERE m.room_id = rooms.id),
        dm_count = (SELECT count(*) FROM messages m
                    WHERE m.room_id = rooms.id AND m.to_member IS NOT NULL);
    UPDATE messages SET broadcast_rank = b.rank
    FROM (SELECT room_id, seq,
                 sum(to_member IS NULL) OVER (PARTITION BY room_id ORDER BY seq) AS rank
          FROM messages) AS b
    WHERE messages.room_id = b.room_id AND messages.seq = b.seq;
    INSERT INTO dm_views (room_id, member, seq, rank)
    SELECT room_id, member, seq,
           row_number() OVER (PARTITION BY room_id, member ORDER BY seq)
    FROM (SELECT room_id, from_member AS member, seq FROM messages WHERE to_member IS NOT NULL
          UNION
          SELECT room_id, to_member AS member, seq FROM messages WHERE to_member IS NOT NULL);
    CREATE INDEX messages_broadcasts ON messages(room_id, seq) WHERE to_member IS NULL;
    CREATE INDEX rooms_public ON rooms(name, created_at) WHERE password_hash IS NULL;";

/// Version 3: each message keeps its sender's idempotency key (NULL when it gave none),
/// unique per sender in a room, so a retried send finds the message it already made.
/// Messages written before have no key.
const IDEMPOTENCY_KEYS: &str = "
    ALTER TABLE messages ADD COLUMN key TEXT;
    CREATE UNIQUE INDEX messages_keys ON messages(room_id, from_member, key)
        WHERE key IS NOT NULL;";

/// Version 4: no index of broadcasts. A page of what a viewer may see walks the log and
/// jumps over runs of others' DMs by rank (see `visible`), so nothing reads the index any
/// more, and keeping it cost every send: SQLite rebalances an index b-tree at its right
/// edge every few inserts, rewriting three of its pages each time.
const NO_BROADCAST_INDEX: &str = "DROP INDEX IF EXISTS messages_broadcasts;";

/// The schema version this code reads and writes.
pub(super) const VERSION: usize = STEPS.len();

/// Brings the file to [`VERSION`], running the steps it lacks in one transaction.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // IMMEDIATE: two processes opening one old file must not both run a step.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let found: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    let found = usize::try_from(found).unwrap_or(usize::MAX);
    if found > VERSION {
        return Err(StoreError::Backend(format!(
            "the data file has schema version {found}, newer than this huddle's {VERSION}: \
             it was written by a newer huddle"
        )));
    }
    for step in &STEPS[found..] {
        tx.execute_batch(step).map_err(backend)?;
    }
    if found < VERSION {
        tx.pragma_update(None, "user_version", VERSION as i64)
            .map_err(backend)?;
    }
    tx.commit().map_err(backend)
}
