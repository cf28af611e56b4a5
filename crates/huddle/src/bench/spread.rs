//! `--url A,B,C`: the `load` scenario against several nodes of one cluster. Creates,
//! joins and stream opens go round-robin over the nodes, and sender `i` sends through
//! node `i mod N`, so every node both forwards to owners and serves streams of rooms it
//! may not own. A stream that breaks is opened again on the next node (resuming after
//! its last seq), as a client behind a load balancer would. Everything else is the A2A
//! wire of `load`.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::deliveries::{Acked, Agent, Labels, Member, StreamItem, Transport};
use crate::client::{A2aClient, ClientError, MessageStream};

/// The nodes of one cluster, each through its own A2A client.
pub struct Spread {
    nodes: Vec<A2aClient>,
    /// The next node for a create, join or stream open.
    next: AtomicUsize,
}

impl Spread {
    /// Over `nodes` (at least one).
    pub fn new(nodes: Vec<A2aClient>) -> Self {
        assert!(!nodes.is_empty(), "a spread needs at least one node");
        Spread {
            nodes,
            next: AtomicUsize::new(0),
        }
    }

    /// The node the next create, join or stream open goes to.
    fn pick(&self) -> &A2aClient {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.nodes[i % self.nodes.len()]
    }
}

impl Transport for Spread {
    type Credential = String;
    type Sender = A2aClient;
    type Stream = MessageStream;
    type SubscribeError = ClientError;

    const LABELS: Labels = super::load::LABELS;

    async fn create_room(
        &self,
        name: &str,
        agent: &str,
    ) -> anyhow::Result<(String, Member<String>)> {
        Transport::create_room(self.pick(), name, agent).await
    }

    async fn join_room(&self, room_id: &str, agent: &str) -> anyhow::Result<Member<String>> {
        Transport::join_room(self.pick(), room_id, agent).await
    }

    fn sender(&self, i: usize) -> A2aClient {
        self.nodes[i % self.nodes.len()].clone()
    }

    async fn send(&self, sender: &mut A2aClient, agent: &Agent<String>, body: &str) -> Acked {
        // The A2A wire sends through the sender's own client, whichever `self` it is given.
        Transport::send(&self.nodes[0], sender, agent, body).await
    }

    async fn subscribe(
        &self,
        agent: &Agent<String>,
        after: Option<u64>,
    ) -> Result<MessageStream, ClientError> {
        Transport::subscribe(self.pick(), agent, after).await
    }

    async fn next(stream: &mut MessageStream) -> StreamItem {
        <A2aClient as Transport>::next(stream).await
    }
}

/// The base URLs of `--url` (comma-separated, blanks ignored).
pub fn urls(arg: &str) -> Vec<&str> {
    arg.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{deliveries, fake};
    use super::*;

    #[test]
    fn urls_are_split_on_commas() {
        assert_eq!(
            urls("http://a:1, http://b:2,,http://c:3"),
            ["http://a:1", "http://b:2", "http://c:3"]
        );
        assert_eq!(urls("http://a:1"), ["http://a:1"]);
    }

    /// Three listeners of one fake server stand for three nodes of one cluster: every
    /// node gets requests and streams, and no delivery is lost or duplicated.
    #[tokio::test]
    async fn load_is_spread_over_every_node() {
        let nodes = fake::start_nodes(3).await;
        let list: Vec<&str> = nodes.iter().map(|n| n.url.as_str()).collect();
        let a = fake::args(&format!(
            "--url {} --rooms 2 --agents-per-room 3 --senders 6 --duration-secs 0.5",
            list.join(",")
        ));
        let clients = urls(&a.url)
            .into_iter()
            .map(|u| A2aClient::new(u).unwrap())
            .collect();
        let r = deliveries::measure(&a, Spread::new(clients), "t1")
            .await
            .unwrap();
        assert!(r.sends > 10, "{r:?}");
        assert_eq!(r.send_errors, 0);
        assert_eq!(r.deliveries, r.expected_deliveries);
        assert_eq!((r.lost, r.duplicated, r.unconfirmed), (0, 0, 0));
        for n in &nodes {
            let (posts, streams) = n.hits();
            assert!(
                posts > 0 && streams > 0,
                "{}: {posts} posts, {streams} streams",
                n.url
            );
        }
    }
}
