//! The `load` scenario's wire: plain A2A `SendMessage` (`room.create`, `room.join`,
//! `message.send`) and the SSE stream (resumed with `Last-Event-ID` when the server gives
//! seqs), through [`A2aClient`], so it measures any join.cloud-compatible server. The
//! run, the stamps, the accounting and the report belong to `deliveries`.

use futures::StreamExt;

use super::deliveries::{Acked, Agent, Labels, Member, SendFailure, StreamItem, Transport};
use crate::client::{A2aClient, ClientError, MessageStream};

pub const LABELS: Labels = Labels {
    scenario: "load",
    streams: "SSE",
    streams_key: "sse",
    sends: "sends",
    stream_errors_field: true,
};

/// Every sender and stream shares the client's connection pool; an agent is its token.
impl Transport for A2aClient {
    type Credential = String;
    type Sender = A2aClient;
    type Stream = MessageStream;
    type SubscribeError = ClientError;

    const LABELS: Labels = LABELS;

    async fn create_room(
        &self,
        name: &str,
        agent: &str,
    ) -> anyhow::Result<(String, Member<String>)> {
        let created =
            A2aClient::create_room(self, Some(name), agent, serde_json::Value::Null).await?;
        Ok((
            created.room_id,
            Member {
                name: created.agent_name,
                credential: created.agent_token,
            },
        ))
    }

    async fn join_room(&self, room_id: &str, agent: &str) -> anyhow::Result<Member<String>> {
        let joined = A2aClient::join_room(self, room_id, agent, serde_json::Value::Null).await?;
        Ok(Member {
            name: joined.agent_name,
            credential: joined.agent_token,
        })
    }

    fn sender(&self, _: usize) -> A2aClient {
        self.clone()
    }

    async fn send(&self, sender: &mut A2aClient, agent: &Agent<String>, body: &str) -> Acked {
        match sender
            .send_message(&agent.credential, body, None, None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(SendFailure {
                error: error_text(&e),
                // A refusal is an answer; anything else may be a server that is gone.
                pause: !matches!(e, ClientError::Action(_)),
            }),
        }
    }

    async fn subscribe(
        &self,
        agent: &Agent<String>,
        after: Option<u64>,
    ) -> Result<MessageStream, ClientError> {
        A2aClient::subscribe(self, &agent.room_id, &agent.credential, after).await
    }

    async fn next(stream: &mut MessageStream) -> StreamItem {
        match stream.next().await {
            Some(Ok(m)) => StreamItem::Message {
                seq: m.seq,
                from: m.from,
                body: m.body,
            },
            // A transport error is yielded once, then the stream ends.
            Some(Err(e)) => StreamItem::Error(error_text(&e)),
            None => StreamItem::Ended(None),
        }
    }
}

/// `<kind>: <message>`, so the report shows what the server said.
fn error_text(e: &ClientError) -> String {
    format!("{}: {e}", e.kind())
}

#[cfg(test)]
mod tests {
    use super::super::{deliveries, fake};
    use super::*;

    #[tokio::test]
    async fn every_delivery_is_accounted_for_against_a_fake_server() {
        let url = fake::start().await;
        let a = fake::args(&format!(
            "--url {url} --rooms 2 --agents-per-room 3 --senders 4 --duration-secs 0.5"
        ));
        let client = A2aClient::new(&url).unwrap();
        let r = deliveries::measure(&a, client, "t1").await.unwrap();
        assert!(r.sends > 10, "{r:?}");
        assert_eq!(r.send_errors, 0);
        assert_eq!(r.expected_deliveries, r.sends * 2);
        assert_eq!(r.deliveries, r.expected_deliveries);
        assert_eq!((r.lost, r.duplicated, r.unconfirmed), (0, 0, 0));
        assert_eq!(r.delivery_latency_us.count, r.deliveries);
    }
}
