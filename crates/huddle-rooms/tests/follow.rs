//! A node following a room another node reads, and readers whose room changes publisher:
//! two directories on one store stand for two nodes sharing PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use huddle_core::{ModerateAgent, Moderation, RoomId, Seq};
use huddle_rooms::hub::Fanout;
use huddle_rooms::testing::{join, room, send};
use huddle_rooms::{
    FollowEnd, FollowEvent, FollowStream, MessageStream, OnLag, RoomDirectory, RoomsConfig,
    Subscribe, SubscribeError,
};
use huddle_store::{Durability, EmbeddedStore, LogRange, RoomStore};

/// Longest a test waits for something that must come; only a hang guard.
const PATIENCE: Duration = Duration::from_secs(20);

struct Nodes {
    store: Arc<dyn RoomStore>,
    _data: tempfile::TempDir,
}

impl Nodes {
    fn new() -> Self {
        let data = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(data.path(), Durability::Process).unwrap();
        Self {
            store: Arc::new(store),
            _data: data,
        }
    }

    fn node(&self, config: RoomsConfig) -> RoomDirectory {
        RoomDirectory::new(self.store.clone(), config)
    }
}

/// The next event of a follow, as text: `seq:body`, `removed:<member>` or the end.
async fn follow_next(follow: &mut FollowStream) -> String {
    let item = tokio::time::timeout(PATIENCE, follow.next())
        .await
        .expect("the follow went silent");
    match item {
        Some(Ok(FollowEvent::Message(m))) => format!("{}:{}", m.seq, m.body),
        Some(Ok(FollowEvent::Removed(member))) => format!("removed:{member}"),
        Some(Err(end)) => format!("<{end:?}>"),
        None => "<none>".into(),
    }
}

async fn read_next(stream: &mut MessageStream) -> String {
    let item = tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("the stream went silent");
    match item {
        Some(Ok(m)) => format!("{}:{}", m.seq, m.body),
        Some(Err(SubscribeError::Removed)) => "<removed>".into(),
        Some(Err(e)) => format!("<{e}>"),
        None => "<end>".into(),
    }
}

/// `(seq, body)` of every message of `room` after `after`, from the store.
async fn log(store: &Arc<dyn RoomStore>, room: RoomId, after: Seq) -> Vec<String> {
    let all = store
        .messages_after(LogRange::all(room, after, 1000))
        .await
        .unwrap();
    all.iter()
        .map(|m| format!("{}:{}", m.seq, m.body))
        .collect()
}

#[tokio::test]
async fn a_follow_gets_every_event_after_its_seq_dms_included_log_then_live() {
    let nodes = Nodes::new();
    let owner = nodes.node(RoomsConfig::default());
    let (room, alice) = room(&owner).await;
    let bob = join(&owner, room, "bob").await;
    send(&owner, room, &alice, "one", None).await;
    let from = owner
        .ask(room, huddle_core::Authorize { token: bob.clone() })
        .await
        .unwrap()
        .last_seq;
    send(&owner, room, &alice, "secret", Some("bob")).await;
    send(&owner, room, &alice, "two", None).await;

    let mut follow = owner.follow(room, from).await.unwrap();
    send(&owner, room, &bob, "three", Some("alice")).await;
    send(&owner, room, &alice, "four", None).await;

    let expected = log(&nodes.store, room, from).await;
    assert_eq!(expected.len(), 4, "{expected:?}");
    let mut got = Vec::new();
    for _ in 0..expected.len() {
        got.push(follow_next(&mut follow).await);
    }
    assert_eq!(got, expected, "every message after the seq, in order, once");
}

#[tokio::test]
async fn a_follow_ends_moved_once_the_room_stops_here_after_what_it_published() {
    let nodes = Nodes::new();
    let owner = nodes.node(RoomsConfig::default());
    let (room, alice) = room(&owner).await;
    let bob = join(&owner, room, "bob").await;
    let mut follow = owner.follow(room, Seq::ZERO).await.unwrap();
    let joined = log(&nodes.store, room, Seq::ZERO).await;
    for line in &joined {
        assert_eq!(&follow_next(&mut follow).await, line);
    }

    send(&owner, room, &alice, "last words", None).await;
    let kick = ModerateAgent {
        token: alice.clone(),
        target: "bob".into(),
        action: Moderation::Kick,
    };
    let bob_member = owner
        .ask(room, huddle_core::Authorize { token: bob })
        .await
        .unwrap()
        .member;
    owner.ask(room, kick).await.unwrap();
    owner.shutdown(PATIENCE).await;

    let mut rest = Vec::new();
    loop {
        let item = follow_next(&mut follow).await;
        let end = item.starts_with('<');
        rest.push(item);
        if end {
            break;
        }
    }
    assert!(rest.contains(&format!("removed:{bob_member}")), "{rest:?}");
    assert!(rest.iter().any(|e| e.ends_with(":last words")), "{rest:?}");
    assert_eq!(rest.last().unwrap(), &format!("<{:?}>", FollowEnd::Moved));
    assert_eq!(follow_next(&mut follow).await, "<none>");
}

#[tokio::test]
async fn a_lagging_follower_ends_with_lag_naming_its_last_seq() {
    let nodes = Nodes::new();
    let config = RoomsConfig {
        subscriber_buffer: 2,
        ..RoomsConfig::default()
    };
    let owner = nodes.node(config);
    let (room, alice) = room(&owner).await;
    let start = Seq::new(log(&nodes.store, room, Seq::ZERO).await.len() as u64);
    let mut follow = owner.follow(room, start).await.unwrap();
    send(&owner, room, &alice, "a", None).await;
    assert_eq!(
        follow_next(&mut follow).await,
        format!("{}:a", start.next())
    );
    for body in ["b", "c", "d", "e"] {
        send(&owner, room, &alice, body, None).await;
    }
    assert_eq!(
        follow_next(&mut follow).await,
        format!("<{:?}>", FollowEnd::Lagged(start.next()))
    );
}

#[tokio::test]
async fn a_reader_fills_a_seq_gap_in_its_live_feed_from_the_store() {
    let nodes = Nodes::new();
    let (here, elsewhere) = (
        nodes.node(RoomsConfig::default()),
        nodes.node(RoomsConfig::default()),
    );
    let (room, alice) = room(&here).await;
    let mut reader = here
        .subscribe(Subscribe {
            room,
            reader: Some(alice.clone()),
            after: None,
            on_lag: OnLag::End,
        })
        .await
        .unwrap()
        .stream;
    // The room is taken by another node (as after a move); this node's fan-out then
    // gets only the last of what was written there.
    here.shutdown(PATIENCE).await;
    for body in ["one", "two", "three"] {
        send(&elsewhere, room, &alice, body, None).await;
    }
    let written = nodes
        .store
        .messages_after(LogRange::all(room, Seq::ZERO, 1000))
        .await
        .unwrap();
    let last = written.last().unwrap().clone();
    here.hub()
        .publish(room, &[Fanout::Message(last.clone().into())]);

    let mut got = Vec::new();
    while got.last() != Some(&format!("{}:three", last.seq)) {
        got.push(read_next(&mut reader).await);
    }
    assert_eq!(got.len(), 3, "one, two (from the store), three: {got:?}");
    assert_eq!(got[0].split_once(':').unwrap().1, "one");
}

#[tokio::test]
async fn a_reader_asks_its_source_again_on_reopen_and_ends_if_it_was_removed_meanwhile() {
    let nodes = Nodes::new();
    let (here, elsewhere) = (
        nodes.node(RoomsConfig::default()),
        nodes.node(RoomsConfig::default()),
    );
    let (room, alice) = room(&here).await;
    let bob = join(&here, room, "bob").await;
    let mut bobs = here
        .subscribe(Subscribe {
            room,
            reader: Some(bob.clone()),
            after: None,
            on_lag: OnLag::End,
        })
        .await
        .unwrap()
        .stream;
    let mut alices = here
        .subscribe(Subscribe {
            room,
            reader: Some(alice.clone()),
            after: None,
            on_lag: OnLag::End,
        })
        .await
        .unwrap()
        .stream;
    here.shutdown(PATIENCE).await;
    // Bob is kicked where this node cannot see it.
    let kick = ModerateAgent {
        token: alice.clone(),
        target: "bob".into(),
        action: Moderation::Kick,
    };
    elsewhere.ask(room, kick).await.unwrap();
    elsewhere.shutdown(PATIENCE).await;
    here.hub().publish(room, &[Fanout::Reopen]);

    assert_eq!(read_next(&mut bobs).await, "<removed>");
    // Alice carries on, from where she was.
    send(&here, room, &alice, "still here", None).await;
    let mut seen = Vec::new();
    while !seen
        .last()
        .is_some_and(|s: &String| s.ends_with(":still here"))
    {
        seen.push(read_next(&mut alices).await);
    }
    assert!(seen.iter().all(|s| !s.starts_with('<')), "{seen:?}");
}
