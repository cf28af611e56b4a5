//! Nodes joining and leaving under load: rooms rebalance and are handed over.

use huddle_testkit::*;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_and_another_leaves_with_sigterm_under_load() {
    let mut cluster = TestCluster::start(3).await;
    let client = cluster.client();
    let rooms = rooms(&client, "members", 8).await;
    let load = Load::start(&client, &rooms).await;
    load.ledger.wait_acked(60).await;

    let joined = cluster.add_node().await;
    let moved = rooms
        .iter()
        .filter(|r| cluster.owner(&r.admin().room_id) == joined)
        .count();
    eprintln!(
        "{moved} of {} rooms now belong to the new node",
        rooms.len()
    );
    let before = load.ledger.acked();
    load.ledger.wait_acked(before + 60).await;
    // The new node serves requests too, rooms it owns and rooms it forwards.
    let via_new = A2a::new(&cluster.node(joined).base);
    served_again(&load.ledger, &via_new, &rooms, "a node joined").await;

    cluster.sigterm(0).await;
    let before = load.ledger.acked();
    load.ledger.wait_acked(before + 60).await;
    let live = cluster.client();
    served_again(&load.ledger, &live, &rooms, "SIGTERM of a node").await;
    load.finish(&live, &rooms).await;
}
