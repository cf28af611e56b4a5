//! The bound on rooms loaded at once (`RoomsConfig::max_loaded_rooms`). Anyone may create
//! and join rooms, and a joined room stays loaded until its idle timeout: without the
//! bound, a flood of joins would keep every one of its rooms in memory that long.

use std::sync::Arc;
use std::time::Duration;

use huddle_core::{AgentToken, GetUnread, RoomId};
use huddle_rooms::testing::{join, room, send};
use huddle_rooms::{RoomDirectory, RoomsConfig};
use huddle_store::{Durability, EmbeddedStore, RoomStore};

const BOUND: usize = 10;

/// A node's rooms, and its store (where each load of a room takes a new epoch).
fn node(data: &tempfile::TempDir) -> (RoomDirectory, Arc<EmbeddedStore>) {
    let store = Arc::new(EmbeddedStore::open(data.path(), Durability::Process).unwrap());
    let config = RoomsConfig {
        max_loaded_rooms: BOUND,
        ..RoomsConfig::default()
    };
    (RoomDirectory::new(store.clone(), config), store)
}

/// Whether `done` comes to hold within a few seconds: rooms asked to unload stop, and
/// their tasks end, on their own tasks.
async fn eventually(done: impl Fn() -> bool) -> bool {
    for _ in 0..500 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

async fn loaded_rooms_settle_within_the_bound(dir: &RoomDirectory) {
    assert!(
        eventually(|| dir.active_rooms() <= BOUND).await,
        "{} rooms still loaded against a bound of {BOUND}",
        dir.active_rooms()
    );
}

/// What `token`'s agent has not read yet, as message texts.
async fn unread(dir: &RoomDirectory, room: RoomId, token: &AgentToken) -> Vec<String> {
    let op = GetUnread {
        token: token.clone(),
    };
    let page = dir.ask(room, op).await.expect("unread messages");
    page.messages.iter().map(|m| m.body.clone()).collect()
}

#[tokio::test]
async fn a_flood_of_rooms_leaves_at_most_the_bound_loaded_and_loses_nothing() {
    let data = tempfile::tempdir().unwrap();
    let (dir, _) = node(&data);
    let mut rooms = Vec::new();
    for i in 0..4 * BOUND {
        let (id, alice) = room(&dir).await;
        let bob = join(&dir, id, "bob").await;
        send(&dir, id, &alice, &format!("hello {i}"), None).await;
        rooms.push((id, bob));
    }
    loaded_rooms_settle_within_the_bound(&dir).await;

    // Every room unloaded on the way loads again with everything it had.
    for (i, (id, bob)) in rooms.iter().enumerate() {
        assert_eq!(unread(&dir, *id, bob).await, [format!("hello {i}")]);
    }
    loaded_rooms_settle_within_the_bound(&dir).await;
}

#[tokio::test]
async fn the_rooms_in_use_stay_loaded_and_the_least_recently_used_go() {
    let data = tempfile::tempdir().unwrap();
    let (dir, store) = node(&data);
    let (busy, alice) = room(&dir).await;
    send(&dir, busy, &alice, "first", None).await;
    let loaded_as = store.epoch(busy).await.unwrap();
    for i in 0..3 * BOUND {
        // A join loads the room (a creation alone does not).
        let (other, _) = room(&dir).await;
        join(&dir, other, "bob").await;
        // The busy room is asked for between every two new rooms.
        send(&dir, busy, &alice, &format!("still here {i}"), None).await;
    }
    loaded_rooms_settle_within_the_bound(&dir).await;
    let now = store.epoch(busy).await.unwrap();
    assert_eq!(
        now, loaded_as,
        "the busy room was unloaded and loaded again (epoch {loaded_as:?} -> {now:?})"
    );
}

/// A room's actor runs beside a few tasks of its own (its idle check's timer among them,
/// which holds the actor's mailboxes): an unloaded room must leave none of them behind,
/// or a flood of rooms would pile them up until their next tick, whatever the bound.
#[tokio::test]
async fn an_unloaded_room_leaves_no_task_behind() {
    let data = tempfile::tempdir().unwrap();
    let (dir, _) = node(&data);
    let tasks = tokio::runtime::Handle::current().metrics();
    for _ in 0..BOUND {
        let (id, _) = room(&dir).await;
        join(&dir, id, "bob").await;
    }
    let bound_loaded = tasks.num_alive_tasks();
    for _ in 0..3 * BOUND {
        let (id, _) = room(&dir).await;
        join(&dir, id, "bob").await;
    }
    loaded_rooms_settle_within_the_bound(&dir).await;
    assert!(
        eventually(|| tasks.num_alive_tasks() <= bound_loaded).await,
        "{} tasks alive with {} rooms loaded, against {bound_loaded} with {BOUND} loaded",
        tasks.num_alive_tasks(),
        dir.active_rooms()
    );
}
