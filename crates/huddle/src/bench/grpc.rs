//! The `grpc` scenario's wire: the `load` scenario over Huddle's gRPC API
//! (`huddle.v1.RoomService`, generated tonic client) instead of A2A + SSE. Only a Huddle
//! server has it; `--url` is its main port (gRPC is served there over h2c) or its
//! `--grpc-listen` port. The run, the stamps, the accounting and the report belong
//! to `deliveries`.
//!
//! The `Subscribe` streams (one per agent, unless --no-sse) share one connection (HTTP/2
//! multiplexes them), which also serves setup. The senders call `SendMessage` over
//! --grpc-connections more connections (sender i on connection i mod C; a gRPC client
//! normally shares one channel, and fewer connections cost both sides less CPU per
//! call). A stream that ends resumes with `from_seq` = the last seq it got.

use std::time::Duration;

use anyhow::Context;
use huddle_proto::v1::room_service_client::RoomServiceClient;
use huddle_proto::v1::{
    CreateRoomRequest, JoinRoomRequest, SendMessageRequest, SubscribeRequest, SubscribeResponse,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status, Streaming};

use super::BenchArgs;
use super::deliveries::{Acked, Agent, Labels, Member, SendFailure, StreamItem, Transport};

type Client = RoomServiceClient<Channel>;
/// `Bearer <token>`, ready to be sent as `authorization` metadata.
type Auth = MetadataValue<Ascii>;

pub const LABELS: Labels = Labels {
    scenario: "grpc",
    streams: "Subscribe",
    streams_key: "subscribe",
    sends: "SendMessage",
    stream_errors_field: false,
};

/// The connections of one run.
pub struct Grpc {
    /// Setup calls and every `Subscribe` stream.
    setup: Client,
    /// The senders' connections (--grpc-connections).
    pool: Vec<Client>,
    /// Each unary call's limit (--request-timeout-secs).
    limit: Duration,
}

impl Grpc {
    /// Opens the setup connection and the senders' pool.
    pub async fn connect(args: &BenchArgs) -> anyhow::Result<Grpc> {
        let setup = connect(&args.url).await?;
        let mut pool = Vec::with_capacity(args.grpc_connections as usize);
        for _ in 0..args.grpc_connections {
            pool.push(connect(&args.url).await?);
        }
        Ok(Grpc {
            setup,
            pool,
            limit: Duration::from_secs_f64(args.request_timeout_secs),
        })
    }
}

/// A client on a connection of its own.
async fn connect(url: &str) -> anyhow::Result<Client> {
    let channel = Endpoint::from_shared(url.to_string())
        .with_context(|| format!("{url} is not a URL"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(RoomServiceClient::new(channel))
}

fn authorized<T>(message: T, auth: &Auth) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", auth.clone());
    request
}

fn bearer(token: &str) -> anyhow::Result<Auth> {
    format!("Bearer {token}")
        .parse()
        .context("the server's agent token is not valid metadata")
}

/// A setup call, within `limit`.
async fn within<T>(
    limit: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> anyhow::Result<T> {
    let response = tokio::time::timeout(limit, call)
        .await
        .context("timed out")??;
    Ok(response.into_inner())
}

impl Transport for Grpc {
    type Credential = Auth;
    type Sender = Client;
    type Stream = Streaming<SubscribeResponse>;
    type SubscribeError = Status;

    const LABELS: Labels = LABELS;

    async fn create_room(&self, name: &str, agent: &str) -> anyhow::Result<(String, Member<Auth>)> {
        let request = CreateRoomRequest {
            name: name.to_owned(),
            agent_name: agent.to_owned(),
            ..Default::default()
        };
        let created = within(self.limit, self.setup.clone().create_room(request)).await?;
        let credential = bearer(&created.agent_token)?;
        let member = Member {
            name: created.agent_name,
            credential,
        };
        Ok((created.room_id, member))
    }

    async fn join_room(&self, room_id: &str, agent: &str) -> anyhow::Result<Member<Auth>> {
        let request = JoinRoomRequest {
            room: room_id.to_owned(),
            agent_name: agent.to_owned(),
            ..Default::default()
        };
        let joined = within(self.limit, self.setup.clone().join_room(request)).await?;
        Ok(Member {
            credential: bearer(&joined.agent_token)?,
            name: joined.agent_name,
        })
    }

    fn sender(&self, i: usize) -> Client {
        self.pool[i % self.pool.len()].clone()
    }

    async fn send(&self, sender: &mut Client, agent: &Agent<Auth>, body: &str) -> Acked {
        let request = authorized(
            SendMessageRequest {
                text: body.to_owned(),
                ..Default::default()
            },
            &agent.credential,
        );
        match tokio::time::timeout(self.limit, sender.send_message(request)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(SendFailure {
                error: format!("{:?}: {}", status.code(), status.message()),
                pause: matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
                ),
            }),
            Err(_) => Err(SendFailure {
                error: format!("timeout: no answer within {:?}", self.limit),
                pause: false,
            }),
        }
    }

    async fn subscribe(
        &self,
        agent: &Agent<Auth>,
        after: Option<u64>,
    ) -> Result<Streaming<SubscribeResponse>, Status> {
        let request = authorized(
            SubscribeRequest {
                room_id: agent.room_id.clone(),
                agent_token: None,
                from_seq: after,
            },
            &agent.credential,
        );
        Ok(self.setup.clone().subscribe(request).await?.into_inner())
    }

    async fn next(stream: &mut Streaming<SubscribeResponse>) -> StreamItem {
        loop {
            match stream.message().await {
                Ok(Some(SubscribeResponse { message: Some(m) })) => {
                    return StreamItem::Message {
                        seq: Some(m.seq),
                        from: m.from,
                        body: m.body,
                    };
                }
                // A frame without a message: nothing to count.
                Ok(Some(SubscribeResponse { message: None })) => {}
                Ok(None) => return StreamItem::Ended(None),
                Err(status) => {
                    return StreamItem::Ended(Some(format!(
                        "stream: {:?}: {}",
                        status.code(),
                        status.message()
                    )));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{deliveries, fake};
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_delivery_is_accounted_for_against_the_real_gateway() {
        // The real node in-process (the A2A fake speaks no gRPC).
        let node = huddle_testkit::TestNode::start().await;
        let url = &node.base;
        let a = fake::args(&format!(
            "--url {url} --scenario grpc --rooms 2 --agents-per-room 3 --senders 4 --duration-secs 0.5"
        ));
        let grpc = Grpc::connect(&a).await.unwrap();
        let r = deliveries::measure(&a, grpc, "g1").await.unwrap();
        assert!(r.sends > 10, "{r:?}");
        assert_eq!(r.send_errors, 0, "{r:?}");
        assert_eq!(r.expected_deliveries, r.sends * 2);
        assert_eq!(r.deliveries, r.expected_deliveries, "{r:?}");
        assert_eq!((r.lost, r.duplicated, r.unconfirmed), (0, 0, 0));
        assert_eq!(r.delivery_latency_us.count, r.deliveries);
    }
}
