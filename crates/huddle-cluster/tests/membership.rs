//! Cluster membership on a real `redis-server` (TestRedis): nodes see each other, leave,
//! survive Redis dying and coming back empty, write nothing but their lease, and stay
//! bounded when Redis holds garbage. TTLs are short (1 s) and every wait polls a
//! condition against a generous deadline.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use huddle_cluster::placement::membership::{
    ADDR_KEY, MAX_NODES, MembershipConfig, NODES_KEY, PlacementError, RedisMembership,
};
use huddle_cluster::placement::{INTERNAL_VERSION, NodeId, Placement};
use huddle_cluster::testing::TestRedis;

const TTL: Duration = Duration::from_secs(1);
/// How long a condition may take to come true before the test fails: many TTLs, so a
/// slow, loaded machine does not fail a correct build.
const PATIENCE: Duration = Duration::from_secs(20);

fn config(redis: &TestRedis, id: &str) -> MembershipConfig {
    MembershipConfig {
        redis_url: redis.url().to_string(),
        node_id: NodeId::new(id),
        advertise: format!("{id}.internal:7000"),
        lease_ttl: TTL,
    }
}

async fn join(redis: &TestRedis, id: &str) -> RedisMembership {
    let m = RedisMembership::connect(config(redis, id)).await.unwrap();
    m.register().await.unwrap();
    m
}

/// Nodes "a", "b" and "c", registered.
async fn trio(redis: &TestRedis) -> [RedisMembership; 3] {
    [
        join(redis, "a").await,
        join(redis, "b").await,
        join(redis, "c").await,
    ]
}

fn names(m: &RedisMembership) -> Vec<String> {
    m.view().nodes().iter().map(|p| p.id.to_string()).collect()
}

/// Polls `check` until it holds, failing with `what` after [`PATIENCE`].
async fn until<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn redis_conn(redis: &TestRedis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn members_in_redis(redis: &TestRedis) -> Vec<String> {
    let mut conn = redis_conn(redis).await;
    let mut members: Vec<String> = redis::cmd("ZRANGE")
        .arg(NODES_KEY)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    members.sort();
    members
}

#[tokio::test]
async fn nodes_on_one_redis_see_each_other_with_address_and_version() {
    let redis = TestRedis::start_own();
    let [a, b, c] = trio(&redis).await;
    for m in [&a, &b, &c] {
        until("every node sees all three", || async {
            names(m) == ["a", "b", "c"]
        })
        .await;
        assert!(m.registered());
        let peer = m.view().peer(&NodeId::new("b")).cloned().unwrap();
        assert_eq!(&*peer.addr, "b.internal:7000");
        assert_eq!(peer.version, INTERNAL_VERSION);
    }
}

#[tokio::test]
async fn a_connected_node_is_in_no_view_until_it_registers() {
    let redis = TestRedis::start_own();
    let a = join(&redis, "a").await;
    let late = RedisMembership::connect(config(&redis, "late"))
        .await
        .unwrap();
    late.refresh().await;
    assert_eq!(names(&late), ["a"], "it sees the others, not itself");
    assert!(!late.registered());
    assert_eq!(late.lease_deadline(), None);
    a.refresh().await;
    assert_eq!(names(&a), ["a"]);
    assert_eq!(members_in_redis(&redis).await, ["a"]);

    late.register().await.unwrap();
    assert!(late.registered());
    assert_eq!(names(&late), ["a", "late"]);
    assert!(late.lease_deadline().unwrap() > Instant::now());
}

#[tokio::test]
async fn refresh_reads_the_membership_now() {
    let redis = TestRedis::start_own();
    // A long TTL: the heartbeat would not read again for 10 s.
    let slow = RedisMembership::connect(MembershipConfig {
        lease_ttl: Duration::from_secs(30),
        ..config(&redis, "slow")
    })
    .await
    .unwrap();
    slow.register().await.unwrap();
    let mut changes = slow.changes();
    changes.borrow_and_update();
    let _b = join(&redis, "b").await;
    assert_eq!(names(&slow), ["slow"]);
    slow.refresh().await;
    assert_eq!(names(&slow), ["b", "slow"]);
    assert!(changes.has_changed().unwrap(), "a new view is published");
}

#[tokio::test]
async fn a_node_that_stops_renewing_or_deregisters_leaves_the_others_views() {
    let redis = TestRedis::start_own();
    let [a, b, c] = trio(&redis).await;
    // Each by each: b's own view after it leaves is the others it had seen.
    until("all three seen by all three", || async {
        [&a, &b, &c].iter().all(|n| names(n) == ["a", "b", "c"])
    })
    .await;

    // Deregistered: gone from Redis at once, from its own view at once, lease over.
    b.deregister().await.unwrap();
    assert_eq!(names(&b), ["a", "c"]);
    assert!(!b.registered());
    assert!(b.lease_deadline().unwrap() <= Instant::now());
    assert_eq!(members_in_redis(&redis).await, ["a", "c"]);
    until("a and c see b gone", || async {
        names(&a) == ["a", "c"] && names(&c) == ["a", "c"]
    })
    .await;

    // Dropped (a crash, as far as Redis knows): gone once its lease expires.
    drop(c);
    until("a sees c gone", || async { names(&a) == ["a"] }).await;
    until("c pruned from Redis", || async {
        members_in_redis(&redis).await == ["a"]
    })
    .await;
    let mut conn = redis_conn(&redis).await;
    let addrs: Vec<String> = redis::cmd("HKEYS")
        .arg(ADDR_KEY)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(addrs, ["a"], "the pruned node's address goes too");
}

#[tokio::test]
async fn while_redis_is_down_views_are_kept_and_the_lease_deadline_passes() {
    let redis = TestRedis::start_own();
    let a = join(&redis, "a").await;
    let b = join(&redis, "b").await;
    until("both seen", || async {
        names(&a) == ["a", "b"] && names(&b) == ["a", "b"]
    })
    .await;
    let before = a.view();

    redis.kill();
    let deadline = a.lease_deadline().unwrap();
    until("a's lease deadline passes", || async {
        Instant::now() > a.lease_deadline().unwrap()
    })
    .await;
    // Several renewals have failed by now (every third of the TTL)…
    tokio::time::sleep(TTL).await;
    // …and none moved the deadline or changed a view: nothing rebalances.
    assert_eq!(a.lease_deadline(), Some(deadline));
    assert_eq!(a.view(), before);
    assert_eq!(names(&b), ["a", "b"]);
    a.refresh().await;
    assert_eq!(a.view(), before, "a failed refresh keeps the view");
    assert!(
        a.registered() && b.registered(),
        "an outage does not unready a node"
    );
}

#[tokio::test]
async fn redis_restarted_empty_every_node_registers_again() {
    let redis = TestRedis::start_own();
    let nodes = trio(&redis).await;
    until("all three seen", || async {
        nodes.iter().all(|m| names(m) == ["a", "b", "c"])
    })
    .await;

    redis.kill();
    let stale = nodes[0].lease_deadline().unwrap();
    until("the lease passes while Redis is down", || async {
        Instant::now() > stale
    })
    .await;
    redis.restart();
    assert!(members_in_redis(&redis).await.is_empty(), "restarted empty");

    until("every node registered again", || async {
        members_in_redis(&redis).await == ["a", "b", "c"]
    })
    .await;
    until("every view whole and every lease renewed", || async {
        nodes
            .iter()
            .all(|m| names(m) == ["a", "b", "c"] && m.lease_deadline().unwrap() > Instant::now())
    })
    .await;
}

#[tokio::test]
async fn renewals_write_only_the_two_membership_keys() {
    let redis = TestRedis::start_own();
    let a = join(&redis, "a").await;
    let _b = join(&redis, "b").await;
    let first = a.lease_deadline().unwrap();
    until("a renewed several times", || async {
        a.lease_deadline().unwrap() > first + TTL
    })
    .await;
    let mut conn = redis_conn(&redis).await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    assert_eq!(keys, [ADDR_KEY, NODES_KEY]);
    let entries: Vec<String> = redis::cmd("HVALS")
        .arg(ADDR_KEY)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        entries
            .iter()
            .all(|e| e.ends_with(&format!("|{INTERNAL_VERSION}"))),
        "{entries:?}"
    );
}

/// A `MakeWriter` that keeps everything logged.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_member_list_stuffed_by_a_hostile_writer_is_capped_and_the_refusal_logged() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // This runtime has one thread: the heartbeat task logs through this subscriber too.
    let _guard = tracing::subscriber::set_default(subscriber);

    let redis = TestRedis::start_own();
    let mut conn = redis_conn(&redis).await;
    let forever = 4_000_000_000_000_i64; // year 2096, in ms
    let mut pipe = redis::pipe();
    for i in 0..5_000 {
        let id = format!("fake-{i:05}");
        pipe.zadd(NODES_KEY, &id, forever)
            .hset(
                ADDR_KEY,
                &id,
                format!("10.9.{}.{}:7000|1", i / 256, i % 256),
            )
            .ignore();
    }
    // Garbage among them: no address, an id far too long, an entry without a version.
    pipe.zadd(NODES_KEY, "no-address", forever)
        .zadd(NODES_KEY, "x".repeat(100_000), forever)
        .zadd(NODES_KEY, "no-version", forever)
        .hset(ADDR_KEY, "no-version", "10.0.0.1:7000")
        .ignore();
    pipe.query_async::<()>(&mut conn).await.unwrap();

    let a = join(&redis, "a").await;
    let view = a.view();
    assert_eq!(view.nodes().len(), MAX_NODES);
    assert!(
        view.peer(&NodeId::new("a")).is_some(),
        "this node stays in its view"
    );
    assert!(view.nodes().iter().all(|p| p.id.as_str().len() < 100));
    let text = logs.text();
    assert!(
        text.contains(&format!("the limit is {MAX_NODES}")),
        "no refusal naming the limit in: {text}"
    );
    // Renewals go on, logging the same refusal once, not per renewal.
    let first = a.lease_deadline().unwrap();
    until("a renewed several times", || async {
        a.lease_deadline().unwrap() > first + TTL
    })
    .await;
    assert_eq!(
        logs.text().matches("the limit is").count(),
        1,
        "{}",
        logs.text()
    );
}

#[tokio::test]
async fn bad_settings_are_refused_clearly_and_no_password_is_printed() {
    let redis = TestRedis::start_own();
    // Nothing listens on port 1.
    let unreachable = MembershipConfig {
        redis_url: "redis://:s3cret-pass@127.0.0.1:1/0".into(),
        ..config(&redis, "a")
    };
    let err = RedisMembership::connect(unreachable).await.err().unwrap();
    let text = format!("{err} {err:?}");
    assert!(matches!(
        err,
        PlacementError::Connect { .. } | PlacementError::Timeout { .. }
    ));
    assert!(text.contains("127.0.0.1:1"), "{text}");
    assert!(!text.contains("s3cret"), "the password leaked: {text}");

    let err = RedisMembership::connect(MembershipConfig {
        redis_url: "http://:s3cret-pass@nowhere".into(),
        ..config(&redis, "a")
    })
    .await
    .err()
    .unwrap();
    assert!(matches!(err, PlacementError::InvalidUrl(_)), "{err}");
    assert!(!format!("{err} {err:?}").contains("s3cret"), "{err:?}");

    for (bad, says) in [
        (
            MembershipConfig {
                node_id: NodeId::new("a b"),
                ..config(&redis, "a")
            },
            "node id",
        ),
        (
            MembershipConfig {
                advertise: "host:7000|2".into(),
                ..config(&redis, "a")
            },
            "advertised address",
        ),
        (
            MembershipConfig {
                lease_ttl: Duration::from_millis(300),
                ..config(&redis, "a")
            },
            "the minimum is 1s",
        ),
    ] {
        let err = RedisMembership::connect(bad).await.err().unwrap();
        assert!(matches!(err, PlacementError::Config(_)));
        assert!(err.to_string().contains(says), "{err}");
    }
    assert!(members_in_redis(&redis).await.is_empty());
}
