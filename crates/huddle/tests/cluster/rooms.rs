//! Room-level guarantees across nodes: one room per (name, password), DM privacy.

use std::sync::Arc;

use huddle_testkit::*;

/// The same (name, password) created at once through every node: exactly one room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_of_one_name_and_password_through_different_nodes_make_one_room() {
    let cluster = TestCluster::start(3).await;
    let nodes: Vec<A2a> = (0..3).map(|i| A2a::new(&cluster.node(i).base)).collect();
    for round in 0..5 {
        let name = format!("race{round}");
        let creates = nodes.iter().enumerate().map(|(i, n)| {
            n.act("room.create")
                .text(&name)
                .meta("agentName", format!("creator{i}"))
                .meta("password", "pw")
                .send()
        });
        let replies = futures::future::join_all(creates).await;
        let created: Vec<&Reply> = replies.iter().filter(|r| !r.is_error()).collect();
        assert_eq!(
            created.len(),
            1,
            "creates of ({name}, pw) through 3 nodes: {:?}",
            replies.iter().map(|r| r.text()).collect::<Vec<_>>()
        );
        let id = created[0].data()["roomId"].as_str().unwrap().to_string();
        for (i, n) in nodes.iter().enumerate() {
            let joined = n.join(&format!("{name}:pw"), &format!("joiner{i}")).await;
            assert_eq!(
                joined.room_id, id,
                "node {i} resolved ({name}, pw) to another room"
            );
        }
    }
}

/// Alice sends Bob DMs through node 0; Carol's stream is held by node 2, Bob's by node 1:
/// Bob gets them, Carol never does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dm_through_one_node_never_reaches_a_third_members_stream_on_another() {
    let cluster = TestCluster::start(3).await;
    let node = |i: usize| Arc::new(A2a::new(&cluster.node(i).base));
    let (n0, n1, n2) = (node(0), node(1), node(2));
    let alice = n0.create_room("dms", "alice").await;
    let bob = n1.join(&alice.room_id, "bob").await;
    let carol = n2.join(&alice.room_id, "carol").await;
    let ledger = Ledger::new();
    let bobs = ledger.stream(&n1, &bob, 0).await;
    let carols = ledger.stream(&n2, &carol, 0).await;
    for i in 0..20 {
        ledger
            .send(&n0, &alice, &format!("secret-{i}"), Some("bob"))
            .await;
        ledger.send(&n0, &alice, &format!("public-{i}"), None).await;
    }
    assert_eq!(ledger.acked(), 40, "{:?}", ledger.failures());
    ledger.verify(&cluster.client(), &[alice, bob, carol]).await;
    let secrets = |s: &Stream| {
        bodies(&s.received())
            .into_iter()
            .filter(|b| b.starts_with("secret-"))
            .count()
    };
    assert_eq!(secrets(&bobs), 20, "bob got every DM");
    assert_eq!(secrets(&carols), 0, "carol got a DM to bob");
}

/// A node joins: for a moment the others have not seen it yet (each learns of it at its
/// next renewal) and still hold the rooms it now owns. A member that joins such a room
/// through the newcomer is known to the room through every node at once: no node
/// answers from its stale copy of a room the newcomer took (a node takes a room only
/// once its view has settled, by when the others have handed it over).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_joined_through_a_newcomer_is_known_through_every_node_at_once() {
    let mut cluster = TestCluster::start(2).await;
    let old: Vec<A2a> = (0..2).map(|i| A2a::new(&cluster.node(i).base)).collect();
    // Rooms active on the two first nodes, with a member each.
    let mut rooms = Vec::new();
    for r in 0..12 {
        let admin = old[r % 2]
            .create_room(&format!("before-{r}"), "admin")
            .await;
        old[(r + 1) % 2].say(&admin, "warm").await;
        rooms.push(admin);
    }
    let new = cluster.add_node_unsettled().await;
    let newcomer = A2a::new(&cluster.node(new).base);
    let taken: Vec<_> = rooms
        .iter()
        .filter(|admin| cluster.owner_among(&admin.room_id, &[0, 1, new]) == new)
        .collect();
    assert!(!taken.is_empty(), "the newcomer owns none of 12 rooms");
    for admin in taken {
        let late = newcomer.join(&admin.room_id, "late").await;
        for (i, node) in old.iter().enumerate() {
            let unread = node.act("message.unread").token(&late.token).send().await;
            assert!(
                !unread.is_error(),
                "a member joined through the newcomer is unknown through node {i}: {}",
                unread.text()
            );
        }
    }
}
