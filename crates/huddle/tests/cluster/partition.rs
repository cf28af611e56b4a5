//! The internal link between nodes cut: requests succeed (through another path) or fail
//! clearly; nothing acknowledged is lost once it heals.

use huddle_testkit::*;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_internal_link_loses_nothing_and_fails_clearly() {
    let cluster = TestCluster::start(3).await;
    let client = cluster.client();
    let rooms = rooms(&client, "split", 6).await;
    let load = Load::start(&client, &rooms).await;
    load.ledger.wait_acked(60).await;

    // Node 0's peers can no longer reach it (it still reaches Redis, PostgreSQL and,
    // through their links, them).
    cluster.cut(0);
    let before = load.ledger.acked();
    load.ledger.wait_acked(before + 60).await;
    // Every answer while cut is an acknowledgement or a clear refusal: a refusal that
    // is neither `unavailable` nor an answer of the room would show as a refused send.
    let (refused, _) = load.ledger.failures();
    assert!(
        refused.is_empty(),
        "sends refused while the link was cut: {refused:?}"
    );
    cluster.heal(0);
    served_again(&load.ledger, &client, &rooms, "the link healed").await;
    load.finish(&client, &rooms).await;
}
