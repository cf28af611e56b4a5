//! What one `history` read costs on a large room: a timed loop, not a test.
//!
//! `cargo run --release -p huddle-store --example history_cost [messages] [dm_every]`
//!
//! Builds a room of `messages` (default 100,000) in a temporary data dir, every
//! `dm_every`-th one (default 10) a DM between two members the viewer is not, and times
//! `history` for a viewer at several offsets, plus `list_rooms`.

use std::time::{Duration, Instant};

use huddle_core::room::NewRoom;
use huddle_core::{
    Agent, Event, MemberId, Message, Page, Role, Room, RoomId, RoomType, Seq, Timestamp,
    TokenDigest,
};
use huddle_store::{Durability, EmbeddedStore, HistoryRead, RoomStore};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let messages: u64 = args
        .next()
        .map_or(100_000, |a| a.parse().expect("messages"));
    let dm_every: u64 = args.next().map_or(10, |a| a.parse().expect("dm_every"));
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path(), Durability::Process).expect("open");
    let room = Room::create(
        NewRoom {
            id: RoomId::new_random(),
            name: "bench".into(),
            password_hash: None,
            description: String::new(),
            kind: RoomType::Group,
            creator: "a1".into(),
            creator_token: TokenDigest([1; 32]),
            creator_endpoint: None,
        },
        Timestamp(0),
    );
    store.create_room(&room).await.expect("create");
    let (_, epoch) = store
        .acquire(room.id)
        .await
        .expect("acquire")
        .expect("room");
    let joins = (2..=3).map(|m| {
        Event::Joined(Agent {
            member: MemberId::new(m),
            name: format!("a{m}"),
            role: Role::Member,
            joined_at: Timestamp(0),
            token: TokenDigest([m as u8; 32]),
            endpoint: None,
            cursor: Seq::ZERO,
        })
    });
    store
        .append(room.id, epoch, joins.collect())
        .await
        .expect("join");
    let started = Instant::now();
    for chunk in (1..=messages).collect::<Vec<_>>().chunks(1000) {
        let events = chunk
            .iter()
            .map(|&seq| {
                let dm = dm_every > 0 && seq % dm_every == 0;
                Event::Posted(Message {
                    seq: Seq::new(seq),
                    id: format!("m{seq}"),
                    room_id: room.id,
                    from: if dm { "a2" } else { "a1" }.into(),
                    from_member: MemberId::new(if dm { 2 } else { 1 }),
                    to: dm.then(|| "a3".into()),
                    to_member: dm.then_some(MemberId::new(3)),
                    body: format!("message number {seq}"),
                    timestamp: Timestamp(seq as i64),
                    key: None,
                })
            })
            .collect();
        store.append(room.id, epoch, events).await.expect("append");
    }
    println!(
        "built {messages} messages (every {dm_every}th a DM the viewer may not see) in {:.1?}",
        started.elapsed()
    );
    let (_, total) = store
        .history(HistoryRead {
            room: room.id,
            viewer: MemberId::FIRST,
            page: Page {
                limit: 20,
                offset: 0,
            },
        })
        .await
        .expect("history");
    for offset in [0, total / 2, total.saturating_sub(20)] {
        let per_call = time(|| async {
            store
                .history(HistoryRead {
                    room: room.id,
                    viewer: MemberId::FIRST,
                    page: Page {
                        limit: 20,
                        offset: offset as usize,
                    },
                })
                .await
                .expect("history");
        })
        .await;
        report(
            &format!("history limit 20 offset {offset} (viewer sees {total})"),
            per_call,
        );
    }
    let per_call = time(|| async {
        store
            .history(HistoryRead {
                room: room.id,
                viewer: MemberId::new(3),
                page: Page {
                    limit: 20,
                    offset: 0,
                },
            })
            .await
            .expect("history");
    })
    .await;
    report("history limit 20 offset 0 (a DM recipient)", per_call);
    let per_call = time(|| async {
        store
            .list_rooms(
                None,
                Page {
                    limit: 20,
                    offset: 0,
                },
            )
            .await
            .expect("list");
    })
    .await;
    report("list_rooms limit 20", per_call);
}

/// Wall time and CPU time (user + system, of the whole process: the writer is idle
/// meanwhile) per call, over up to 1000 calls or about 3 s. CPU time is the figure to
/// compare on a shared machine, where wall time mostly measures waiting for a core.
fn report(what: &str, (wall, cpu): (Duration, Duration)) {
    println!("{what:<48} wall {wall:>10.1?}  cpu {cpu:>10.1?} per call");
}

async fn time<F, Fut>(mut f: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    f().await;
    let (started, cpu) = (Instant::now(), cpu_time());
    let mut rounds = 0;
    while rounds < 1000 && started.elapsed() < Duration::from_secs(3) {
        f().await;
        rounds += 1;
    }
    (
        started.elapsed() / rounds,
        cpu_time().saturating_sub(cpu) / rounds,
    )
}

/// This process's user + system CPU time, from `/proc/self/stat` (Linux; zero elsewhere).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // The kernel's USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}
