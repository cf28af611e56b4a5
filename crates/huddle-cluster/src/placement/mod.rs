//! Who is in the cluster and which node owns which room, as this node sees it.
//!
//! A [`View`] is a snapshot of the live nodes; a room's owner is chosen from it by
//! rendezvous (highest random weight) hashing, so when a node joins or leaves only the
//! rooms whose top-ranked node changed move. A view is only advice: the store's epoch
//! is the truth of who may write a room (an owner takes a room by bumping its epoch),
//! so two nodes with different views can at worst fence one another, never both write.
//!
//! [`Placement`] is the seam the router reads: the Redis-backed membership in cluster
//! mode ([`membership`]), or a fixed view.

pub mod membership;

use std::sync::Arc;
use std::time::Instant;

use huddle_core::RoomId;
use tokio::sync::watch;

/// The version of the internal node protocol this build speaks (the
/// `huddle-internal-version` of its calls, registered with each node's address).
pub const INTERNAL_VERSION: u32 = 1;

/// A node's name in the cluster (`--node-id`, the hostname by default).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(Arc<str>);

impl NodeId {
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest node id: a DNS name's length, so any hostname fits.
pub const MAX_NODE_ID_LEN: usize = 253;

/// Why a string cannot be a node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdError {
    #[error("The node id is empty")]
    Empty,
    #[error("The node id is too long: the limit is {MAX_NODE_ID_LEN} characters")]
    TooLong,
    #[error("The node id {0:?} has a character other than ASCII letters, digits, '-', '_' and '.'")]
    BadCharacter(String),
}

/// Checks a node id (`--node-id`, and every id read from Redis): 1 to
/// [`MAX_NODE_ID_LEN`] of `[A-Za-z0-9_.-]` (hostnames fit), nothing that would need
/// quoting in a log line, an HTTP header, a Redis key or an MCP session id (which is
/// `<node-id>.<uuid>`, split at its last dot).
pub fn validate_node_id(id: &str) -> Result<(), NodeIdError> {
    if id.is_empty() {
        return Err(NodeIdError::Empty);
    }
    if id.len() > MAX_NODE_ID_LEN {
        return Err(NodeIdError::TooLong);
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if !id.bytes().all(allowed) {
        return Err(NodeIdError::BadCharacter(id.to_string()));
    }
    Ok(())
}

/// A live node: its name, where its node service listens (`--advertise`), and the
/// internal protocol version it speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub id: NodeId,
    /// `host:port` of its `huddle.internal.v1.Node` service.
    pub addr: Arc<str>,
    pub version: u32,
}

/// The live nodes at one moment, in a fixed order (by id).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    nodes: Vec<Peer>,
}

impl View {
    pub fn new(mut nodes: Vec<Peer>) -> Self {
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        nodes.dedup_by(|a, b| a.id == b.id);
        Self { nodes }
    }

    pub fn nodes(&self) -> &[Peer] {
        &self.nodes
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn peer(&self, id: &NodeId) -> Option<&Peer> {
        self.nodes.iter().find(|p| &p.id == id)
    }

    /// The room's owner: the node of highest weight for it (`None`: no live node).
    pub fn owner(&self, room: RoomId) -> Option<&Peer> {
        self.nodes.iter().max_by_key(|p| weight(&p.id, room))
    }

    /// Every node, the room's owner first, then the one that would own it if the owner
    /// left, and so on.
    pub fn ranked(&self, room: RoomId) -> Vec<&Peer> {
        let mut ranked: Vec<_> = self.nodes.iter().collect();
        ranked.sort_by_key(|p| std::cmp::Reverse(weight(&p.id, room)));
        ranked
    }
}

/// The rendezvous weight of `node` for `room`: a hash of both that every node computes
/// alike (FNV-1a then a 64-bit finaliser: stable across processes and releases, unlike
/// std's randomly seeded hasher).
fn weight(node: &NodeId, room: RoomId) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in room.0.as_bytes().iter().chain(node.as_str().as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // splitmix64's finaliser: spreads FNV's weak low bits over the whole word.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// This node's view of the cluster, as the router and the rooms read it.
#[async_trait::async_trait]
pub trait Placement: Send + Sync + 'static {
    /// This node.
    fn me(&self) -> &NodeId;

    /// The live nodes now (this node included once it is registered).
    fn view(&self) -> Arc<View>;

    /// Every new view, as membership changes.
    fn changes(&self) -> watch::Receiver<Arc<View>>;

    /// Until when this node's own lease surely holds (monotonic): the send time of its
    /// last successful renewal plus the lease TTL minus a safety margin. Past it, other
    /// nodes may already have taken its rooms, so it must not answer reads from memory
    /// without checking its epoch in the store. `None`: never registered.
    fn lease_deadline(&self) -> Option<Instant>;

    /// Whether this node is registered (for readiness).
    fn registered(&self) -> bool;

    /// Reads the membership again now (after a `NotOwner`, the view may be stale).
    async fn refresh(&self);

    /// When the current view replaced the one before it (`None`: it never changed, a
    /// fixed view).
    fn view_changed_at(&self) -> Option<Instant> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: &str) -> Peer {
        Peer {
            id: NodeId::new(id),
            addr: format!("{id}:7000").into(),
            version: 1,
        }
    }

    #[test]
    fn a_joining_node_takes_only_rooms_from_others_and_a_fair_share() {
        let three = View::new(vec![peer("a"), peer("b"), peer("c")]);
        let four = View::new(vec![peer("a"), peer("b"), peer("c"), peer("d")]);
        let rooms: Vec<_> = (0..4000).map(|_| RoomId::new_random()).collect();
        let mut moved = 0;
        for &room in &rooms {
            let before = three.owner(room).unwrap();
            let after = four.owner(room).unwrap();
            if before != after {
                assert_eq!(after.id.as_str(), "d", "a room moves only to the newcomer");
                moved += 1;
            }
        }
        // A quarter of the rooms, within a wide band (4000 samples).
        assert!((800..1200).contains(&moved), "moved {moved} of 4000");
    }

    #[test]
    fn node_ids_are_hostname_like_names() {
        for good in ["huddle-0", "Node_7", "pod.example.com", &"a".repeat(253)] {
            assert_eq!(validate_node_id(good), Ok(()), "{good}");
        }
        assert_eq!(validate_node_id(""), Err(NodeIdError::Empty));
        assert_eq!(
            validate_node_id(&"a".repeat(254)),
            Err(NodeIdError::TooLong)
        );
        for bad in ["a b", "é", "a:b", "a/b", "a|b"] {
            assert_eq!(
                validate_node_id(bad),
                Err(NodeIdError::BadCharacter(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            NodeIdError::TooLong.to_string(),
            "The node id is too long: the limit is 253 characters"
        );
    }

    #[test]
    fn every_view_orders_alike_whatever_order_nodes_were_listed_in() {
        let one = View::new(vec![peer("c"), peer("a"), peer("b")]);
        let two = View::new(vec![peer("b"), peer("c"), peer("a"), peer("a")]);
        assert_eq!(one, two);
        let room = RoomId::new_random();
        let ranked: Vec<_> = one.ranked(room).iter().map(|p| p.id.clone()).collect();
        assert_eq!(ranked.len(), 3);
        assert_eq!(&ranked[0], &one.owner(room).unwrap().id);
    }
}
