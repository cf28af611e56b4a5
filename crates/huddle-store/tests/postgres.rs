//! What is particular to the PostgreSQL store: its bounded pool, staying up while the
//! server is away, schema versions shared by several nodes, and `sslmode`.

mod common;

use std::pin::pin;

use common::*;
use futures::{FutureExt, poll};
use huddle_store::testing::TestPostgres;
use huddle_store::{PostgresOptions, PostgresStore, RoomStore, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_pool_and_its_queue_are_refused_naming_the_limit() {
    let pg = TestPostgres::start();
    let options = PostgresOptions {
        pool: 1,
        read_queue: 1,
        writers: 1,
    };
    let store = PostgresStore::connect(&pg.database(), options)
        .await
        .unwrap();
    store.create_room(&room("dev", None)).await.unwrap();
    // A name lock holds the one pooled connection until dropped: no timing involved.
    let held = store.lock_name("dev").await.unwrap();
    let mut queued = pin!(store.list_rooms(None, 10, 0));
    assert!(poll!(&mut queued).is_pending(), "waits for the connection");
    let Some(Err(refused)) = store.rooms_named("dev").now_or_never() else {
        panic!("a third request must be refused at once, not queued");
    };
    assert!(matches!(refused, StoreError::Busy(2)), "{refused:?}");
    assert_eq!(refused.to_string(), "too many reads in flight (limit 2)");
    drop(held);
    assert_eq!(queued.await.unwrap().total, 1, "the queued read ran");
    assert_eq!(store.list_rooms(None, 10, 0).await.unwrap().total, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_errors_while_the_server_is_away_and_recovers_without_restart() {
    let pg = TestPostgres::start_own();
    let store = PostgresStore::connect(&pg.database(), PostgresOptions::default())
        .await
        .unwrap();
    let r = room("dev", None);
    store.create_room(&r).await.unwrap();
    let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
    store
        .append(r.id, epoch, vec![msg(r.id, 1, 1, None)])
        .await
        .unwrap();

    pg.stop();
    let read = store.messages_after(r.id, None, 0, 10).await.unwrap_err();
    assert!(read.to_string().contains("PostgreSQL"), "{read}");
    let write = store
        .append(r.id, epoch, vec![msg(r.id, 2, 1, None)])
        .await
        .unwrap_err();
    assert!(matches!(write, StoreError::Backend(_)), "{write:?}");
    assert!(write.to_string().contains("PostgreSQL"), "{write}");

    pg.restart();
    store
        .append(r.id, epoch, vec![msg(r.id, 2, 1, None)])
        .await
        .unwrap();
    let log = store.messages_after(r.id, None, 0, 10).await.unwrap();
    assert_eq!(seqs(&log), [1, 2], "nothing lost, nothing doubled");
    assert_eq!(store.list_rooms(None, 10, 0).await.unwrap().total, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_at_once_migrate_once_and_a_newer_schema_is_refused() {
    let pg = TestPostgres::start();
    let url = pg.database();
    let starts = (0..6).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { PostgresStore::connect(&url, PostgresOptions::default()).await })
    });
    let stores = futures::future::join_all(starts).await;
    for s in stores {
        s.unwrap().expect("every node starts on the shared schema");
    }
    let store = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .unwrap();
    store.create_room(&room("dev", None)).await.unwrap();
    pg.psql_on(&url, "UPDATE huddle_schema SET version = 99");
    let Err(err) = PostgresStore::connect(&url, PostgresOptions::default()).await else {
        panic!("a database of a newer schema must be refused");
    };
    let text = err.to_string();
    let ours = huddle_store::postgres::SCHEMA_VERSION;
    assert!(
        text.contains("schema version 99") && text.contains(&format!("this huddle's {ours}")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_refuses_a_server_without_tls_and_disable_connects() {
    let pg = TestPostgres::start();
    let url = pg.database();
    let plain = PostgresStore::connect(&url, PostgresOptions::default()).await;
    assert!(plain.is_ok(), "sslmode=disable: {:?}", plain.err());
    let prefer = url.replace("sslmode=disable", "sslmode=prefer");
    let preferred = PostgresStore::connect(&prefer, PostgresOptions::default()).await;
    assert!(
        preferred.is_ok(),
        "prefer falls back: {:?}",
        preferred.err()
    );
    let require = url.replace("sslmode=disable", "sslmode=require");
    let Err(err) = PostgresStore::connect(&require, PostgresOptions::default()).await else {
        panic!("sslmode=require must not connect without TLS");
    };
    assert!(err.to_string().contains("PostgreSQL"), "{err}");
    let Err(bad) = PostgresStore::connect(
        "postgres://x@h/db?sslmode=bogus",
        PostgresOptions::default(),
    )
    .await
    else {
        panic!("an unknown sslmode is refused");
    };
    assert!(bad.to_string().contains("invalid PostgreSQL URL"), "{bad}");
}
