//! A node on PostgreSQL under load when things fail: the node is `kill -9`ed, or the
//! database stops (`pg_ctl stop -m immediate`) and comes back. Every acknowledged send
//! is in the history afterwards and the history is gapless from 1 (docs/architecture.md,
//! section 'Acknowledged = durable'). PostgreSQL-only by nature: these tests name their
//! store themselves, so they run the same whatever `HUDDLE_TEST_STORE` says.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use huddle_proto::v1::SendMessageRequest;
use huddle_proto::v1::room_service_client::RoomServiceClient;
use huddle_store::testing::TestPostgres;
use huddle_testkit::*;

/// Concurrent senders (one agent each) in the one room.
const SENDERS: usize = 4;
/// Each sender's bound on sends, so a test that goes wrong still ends.
const SENDS_PER_SENDER: usize = 2_000;

/// Acknowledged sends: seq → text.
type Acked = Arc<Mutex<BTreeMap<u64, String>>>;

/// Starts `SENDERS` senders that send until `stop` is set, their node is gone, or
/// their bound is reached, recording every acknowledged seq; answers that are not
/// acknowledgements are counted in `refused`.
fn start_senders(
    s: &Arc<Server>,
    agents: &[Agent],
    stop: &Arc<AtomicBool>,
    acked: &Acked,
    refused: &Arc<Mutex<Vec<String>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    agents
        .iter()
        .cloned()
        .map(|agent| {
            let (s, stop, acked, refused) =
                (s.clone(), stop.clone(), acked.clone(), refused.clone());
            tokio::spawn(async move {
                for i in 0..SENDS_PER_SENDER {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let text = format!("{}-{i}", agent.name);
                    let sent = s
                        .act("message.send")
                        .text(&text)
                        .token(&agent.token)
                        .try_send()
                        .await;
                    match sent {
                        Ok(reply) if !reply.is_error() => {
                            let seq = reply.data()["seq"].as_u64().expect("an ack has a seq");
                            acked.lock().unwrap().insert(seq, text);
                        }
                        Ok(reply) => refused.lock().unwrap().push(reply.text().to_string()),
                        // The node is gone (kill -9): this sender is done.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect()
}

async fn acked_at_least(acked: &Acked, n: usize) {
    eventually(Duration::from_secs(60), "acknowledged sends", || async {
        (acked.lock().unwrap().len() >= n).then_some(())
    })
    .await;
}

/// The history holds every acknowledged message at its seq, and its seqs are 1..=n.
fn assert_all_acked_and_gapless(history: &[serde_json::Value], acked: &Acked) {
    let seqs: Vec<u64> = history.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "the history is not gapless from 1");
    let by_seq: BTreeMap<u64, &str> = history
        .iter()
        .map(|m| (m["seq"].as_u64().unwrap(), m["body"].as_str().unwrap_or("")))
        .collect();
    for (seq, text) in acked.lock().unwrap().iter() {
        assert_eq!(
            by_seq.get(seq).copied(),
            Some(text.as_str()),
            "acknowledged message {seq} ({text}) is not in the history at its seq"
        );
    }
}

async fn room_with_senders(s: &Server, room: &str) -> (Agent, Vec<Agent>) {
    let owner = s.create_room(room, "owner").await;
    let mut agents = Vec::new();
    for i in 0..SENDERS {
        agents.push(s.join(room, &format!("sender{i}")).await);
    }
    (owner, agents)
}

#[tokio::test]
async fn kill_9_of_a_node_on_postgres_under_load_loses_no_acknowledged_message() {
    let pg = shared_postgres();
    let url = pg.database();
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        Server::builder()
            .dir(dir.path())
            .args(&["--store", &url])
            .start()
    };
    let s = Arc::new(start().await);
    let (owner, agents) = room_with_senders(&s, "crash").await;

    let (stop, acked, refused) = Default::default();
    let senders = start_senders(&s, &agents, &stop, &acked, &refused);
    acked_at_least(&acked, 200).await;
    s.kill9();
    for sender in senders {
        sender.await.unwrap();
    }
    let before = acked.lock().unwrap().len();
    drop(s);

    let s = start().await;
    let history = s.history_all(&owner).await;
    assert_all_acked_and_gapless(&history, &acked);
    assert!(
        history.len() > before,
        "{} messages for {before} acks",
        history.len()
    );
    assert!(
        refused.lock().unwrap().is_empty(),
        "{:?}",
        refused.lock().unwrap()
    );
    // The room goes on from where it stood.
    let next = s.say(&owner, "after the crash").await;
    assert_eq!(next.data()["seq"].as_u64(), Some(history.len() as u64 + 1));
}

#[tokio::test]
async fn postgres_stopped_under_load_gives_clear_errors_loses_nothing_and_recovers_by_itself() {
    // Our own server: this test stops it.
    let pg = TestPostgres::start_own();
    let url = pg.database();
    let s = Arc::new(Server::builder().args(&["--store", &url]).start().await);
    let (owner, agents) = room_with_senders(&s, "outage").await;

    let (stop, acked, refused): (Arc<AtomicBool>, Acked, _) = Default::default();
    let senders = start_senders(&s, &agents, &stop, &acked, &refused);
    acked_at_least(&acked, 200).await;
    pg.stop();

    // While it is down: clear errors on A2A and gRPC, and the node stays up.
    let down = s
        .act("message.send")
        .text("while down")
        .token(&owner.token)
        .send()
        .await;
    assert!(
        down.err().starts_with("Service unavailable"),
        "A2A while PostgreSQL is down: {}",
        down.0
    );
    let mut grpc = RoomServiceClient::connect(s.base.clone()).await.unwrap();
    let status = grpc
        .send_message(SendMessageRequest {
            text: "while down over gRPC".into(),
            agent_token: Some(owner.token.clone()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let acked_while_down = acked.lock().unwrap().len();
    assert!(s.is_running(), "the node died with its database");

    pg.restart();
    // Back by itself, no node restart: a send succeeds again within a bounded wait.
    eventually(
        Duration::from_secs(60),
        "a send after PostgreSQL is back",
        || async {
            let reply = s
                .act("message.send")
                .text("after")
                .token(&owner.token)
                .try_send()
                .await;
            reply.ok().filter(|r| !r.is_error())
        },
    )
    .await;
    acked_at_least(&acked, acked_while_down + 50).await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }

    let history = s.history_all(&owner).await;
    assert_all_acked_and_gapless(&history, &acked);
    let refused = refused.lock().unwrap();
    assert!(
        refused
            .iter()
            .all(|r| r.starts_with("Error: Service unavailable")),
        "only `Service unavailable` refusals: {refused:?}"
    );
}
