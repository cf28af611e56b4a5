//! Redis and PostgreSQL failing under load.

use huddle_testkit::*;

use super::*;

/// Redis dies and comes back empty: nodes register again, rooms may move, nothing
/// acknowledged is lost and no seq is reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_under_load_loses_nothing() {
    let cluster = TestCluster::start(3).await;
    let client = cluster.client();
    let rooms = rooms(&client, "redis", 6).await;
    let load = Load::start(&client, &rooms).await;
    load.ledger.wait_acked(60).await;

    cluster.restart_redis_empty();
    let before = load.ledger.acked();
    load.ledger.wait_acked(before + 60).await;
    for i in 0..cluster.len() {
        cluster.wait_ready(i).await;
    }
    served_again(&load.ledger, &client, &rooms, "Redis restarted empty").await;
    load.finish(&client, &rooms).await;
}

/// PostgreSQL stops (immediate) and comes back: sends fail clearly meanwhile, then the
/// rooms are served again with nothing acknowledged lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_restarted_under_load_loses_nothing() {
    let cluster = TestCluster::builder().nodes(3).own_postgres().start().await;
    let client = cluster.client();
    let rooms = rooms(&client, "pg", 4).await;
    let load = Load::start(&client, &rooms).await;
    load.ledger.wait_acked(60).await;

    cluster.stop_postgres();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    cluster.start_postgres();
    let before = load.ledger.acked();
    load.ledger.wait_acked(before + 60).await;
    served_again(&load.ledger, &client, &rooms, "PostgreSQL restarted").await;
    load.finish(&client, &rooms).await;
}
