//! `copy`: an embedded store moved into PostgreSQL answers the same, a rerun goes on
//! where an interrupted copy stopped, and a complete room is skipped.

mod common;

use common::*;
use huddle_core::{Event, MemberId, Message, Room, Seq};
use huddle_store::copy::copy;
use huddle_store::testing::TestPostgres;
use huddle_store::{Durability, EmbeddedStore, PostgresOptions, PostgresStore, RoomStore, SentKey};

/// A room of `store` with members 1..=3, a log of broadcasts and DMs (some keyed) and
/// moved cursors.
async fn populate(store: &EmbeddedStore, r: &Room, n: u64) -> Vec<Message> {
    store.create_room(r).await.unwrap();
    let (_, epoch) = store.acquire(r.id).await.unwrap().unwrap();
    let log: Vec<Message> = (1..=n)
        .map(|seq| {
            let to = (seq % 3 == 0).then_some(1 + seq % 2);
            Message {
                key: (seq % 4 == 0).then(|| format!("k{seq}")),
                ..message(r.id, seq, 1 + seq % 3, to)
            }
        })
        .collect();
    let mut events = vec![joined(2), joined(3)];
    events.extend(log.iter().cloned().map(Event::Posted));
    events.push(Event::CursorMoved {
        member: MemberId::new(2),
        seq: Seq::new(n / 2),
    });
    store.append(r.id, epoch, events).await.unwrap();
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_store_answers_the_same_and_a_rerun_resumes_then_skips() {
    let dir = tempfile::tempdir().unwrap();
    let source = EmbeddedStore::open(dir.path(), Durability::Process).unwrap();
    let dev = room("dev", None);
    let secret = room("secret", Some("$argon2id$x"));
    let dev_log = populate(&source, &dev, 1200).await;
    let secret_log = populate(&source, &secret, 7).await;

    let pg = TestPostgres::start();
    let dest = PostgresStore::connect(&pg.database(), PostgresOptions::default())
        .await
        .unwrap();
    // An interrupted copy: the room and its first 300 messages made it.
    let (state, _) = source.load(dev.id).await.unwrap().unwrap();
    dest.create_room(&Room {
        last_seq: Seq::ZERO,
        ..state
    })
    .await
    .unwrap();
    let (_, epoch) = dest.acquire(dev.id).await.unwrap().unwrap();
    let first = dev_log[..300].iter().cloned().map(Event::Posted).collect();
    dest.append(dev.id, epoch, first).await.unwrap();

    let mut printed = Vec::new();
    let report = copy(&source, &dest, |r| printed.push(r.name.clone()))
        .await
        .unwrap();
    // Both rooms were created at the same instant: the copy's order between them is
    // their ids'.
    let mut summary: Vec<_> = report
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.copied,
                r.messages,
                r.last_seq.get(),
                r.members,
            )
        })
        .collect();
    summary.sort();
    assert_eq!(
        summary,
        [("dev", 900, 1200, 1200, 3), ("secret", 7, 7, 7, 3)],
        "the rerun copied only what was missing"
    );
    printed.sort();
    assert_eq!(
        printed,
        ["dev", "secret"],
        "each room reported as it is verified"
    );

    for (r, log) in [(&dev, &dev_log), (&secret, &secret_log)] {
        assert_reads_match(&dest, r.id, log, 4).await;
        let (copied, _) = dest.acquire(r.id).await.unwrap().unwrap();
        let (original, _) = source.load(r.id).await.unwrap().unwrap();
        assert_eq!(copied, original, "members, tokens, cursors and counters");
    }
    let keyed = dest
        .sent_with_key(SentKey {
            room: dev.id,
            sender: MemberId::FIRST,
            key: "k12",
        })
        .await
        .unwrap();
    assert_eq!(
        keyed.map(|m| m.seq.get()),
        Some(12),
        "idempotency keys come along"
    );
    assert_eq!(
        dest.list_rooms(None, page_of(10, 0)).await.unwrap().total,
        1
    );
    assert_eq!(dest.rooms_named("secret").await.unwrap().len(), 1);

    let again = copy(&source, &dest, |_| {}).await.unwrap();
    assert!(
        again.iter().all(|r| r.copied == 0),
        "complete rooms are skipped"
    );
}
