//! Which store the nodes started by [`crate::Server`] use, so the one black-box suite
//! runs against both backends without a copy of it.
//!
//! `HUDDLE_TEST_STORE` unset or `sqlite`: the embedded store in the node's data dir.
//! `HUDDLE_TEST_STORE=postgres`: every node gets `--store postgres://…` naming a
//! database of its own on one throwaway PostgreSQL shared by the whole test process
//! (started on first use, stopped when the process exits; or the server at
//! `HUDDLE_TEST_POSTGRES_URL`). The database is keyed by the node's data dir, so a
//! restart on the same dir (the `kill -9` tests) finds the same rooms.
//! `HUDDLE_TEST_STORE=cluster`: every [`crate::Server`] is a 3-node cluster (a database
//! on the same shared PostgreSQL, a Redis of its own; see `cluster`). When no
//! PostgreSQL can be had the first node to need one panics saying how to get one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use huddle_store::testing::TestPostgres;

/// The environment variable choosing the store of every node the kit starts.
pub const STORE_VAR: &str = "HUDDLE_TEST_STORE";

/// The store the nodes of this test process use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestStore {
    /// The embedded SQLite store in the data dir (the default).
    Sqlite,
    /// A database on the shared test PostgreSQL.
    Postgres,
    /// Three nodes in cluster mode on a database of the shared test PostgreSQL.
    Cluster,
}

impl TestStore {
    /// From `HUDDLE_TEST_STORE`; panics on a value it does not know, so a typo never
    /// quietly runs the suite on the default store.
    pub fn from_env() -> Self {
        match std::env::var(STORE_VAR).as_deref() {
            Err(_) | Ok("") | Ok("sqlite") => TestStore::Sqlite,
            Ok("postgres") => TestStore::Postgres,
            Ok("cluster") => TestStore::Cluster,
            Ok(other) => {
                panic!("{STORE_VAR}={other:?}: expected `sqlite`, `postgres` or `cluster`")
            }
        }
    }
}

/// The one PostgreSQL server of this test process.
pub fn shared_postgres() -> &'static TestPostgres {
    static PG: OnceLock<TestPostgres> = OnceLock::new();
    PG.get_or_init(|| {
        let pg = TestPostgres::start();
        pg.stop_when_process_exits();
        pg
    })
}

/// The databases made so far, by data dir.
fn databases() -> &'static Mutex<HashMap<PathBuf, String>> {
    static DBS: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    DBS.get_or_init(Mutex::default)
}

/// The `--store` URL for a node on `dir`: a new database the first time, the same
/// one for a restart on the same dir.
pub(crate) fn postgres_url_for(dir: &Path) -> String {
    let mut dbs = databases().lock().unwrap_or_else(|p| p.into_inner());
    dbs.entry(dir.to_path_buf())
        .or_insert_with(|| shared_postgres().database())
        .clone()
}

/// Drops the database of `dir` (the node on it is gone and nobody restarts it), so
/// a long suite does not fill the disk with one database per test.
pub(crate) fn forget(dir: &Path) {
    let url = databases()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(dir);
    if let Some(url) = url {
        shared_postgres().drop_database(&url);
    }
}
