//! The ceiling of a send-only load: what the same senders get from a server that does
//! nothing. A trivial hyper server on 127.0.0.1 answers every `POST /a2a` with one fixed
//! JSON-RPC reply (it reads the request, parses nothing, stores nothing); the load's
//! senders run against it, in the same process and the same run as the real measurement.
//! The real figure as a percentage of this one says how much of the machine's
//! request-per-second budget (client, loopback TCP, HTTP/1.1) the server's work costs,
//! a ratio that stays meaningful on a machine whose absolute figures swing with load.
//!
//! The server runs on the binary's multi-threaded runtime, like a real server would on
//! its own, while the senders keep the bench's runtime; it lives only while measured.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::BenchArgs;
use super::deliveries;
use super::report::Latency;
use crate::client::A2aClient;

/// Largest request body the trivial server reads (a bench `message.send` is ~300 bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Most connections the trivial server holds at once (the senders need one each).
pub const MAX_CONNECTIONS: usize = 256;

/// The one answer: a reply every action of the load accepts (`room.create` and
/// `room.join` read `roomId` and `agentToken` from its data; `message.send` only needs
/// a reply that is not `Error: ...`).
const REPLY: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"kind":"message","messageId":"ceiling","role":"agent","contextId":"ceiling","parts":[{"kind":"text","text":"Message sent"},{"kind":"data","data":{"roomId":"ceiling","agentName":"ceiling","agentToken":"ceiling"}}]}}"#;

/// The trivial server; stops (with its connections) when dropped.
pub struct Server {
    url: String,
    task: JoinHandle<()>,
}

impl Server {
    /// Serves on a free port of 127.0.0.1, on the current runtime.
    pub async fn start() -> anyhow::Result<Server> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .context("binding the ceiling server on 127.0.0.1")?;
        let url = format!("http://{}", listener.local_addr()?);
        Ok(Server {
            url,
            task: tokio::spawn(accept(listener)),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

async fn accept(listener: TcpListener) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        if connections.len() >= MAX_CONNECTIONS {
            continue; // dropped: the load needs far fewer
        }
        // As the real server: small answers go out at once.
        let _ = tcp.set_nodelay(true);
        connections.spawn(async move {
            let service = hyper::service::service_fn(answer);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// `POST /a2a`: the fixed reply once the body is read; anything else 404; a body over
/// [`MAX_BODY_BYTES`] 413 naming the limit.
async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::POST || request.uri().path() != "/a2a" {
        return Ok(plain(StatusCode::NOT_FOUND, "Not found".into()));
    }
    if Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .is_err()
    {
        return Ok(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Request body too large or broken: the limit is {MAX_BODY_BYTES} bytes"),
        ));
    }
    let mut response = Response::new(Full::new(Bytes::from_static(REPLY.as_bytes())));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response
}

/// The ceiling of a run, reported beside its sends/s.
#[derive(Debug, Clone, Serialize)]
pub struct Ceiling {
    /// What the run's senders got from the trivial server.
    pub requests_per_sec: f64,
    pub latency_us: Latency,
    /// The run's sends/s as a percentage of `requests_per_sec`.
    pub percent_of_ceiling: f64,
    /// `scenario 2` when the run has its shape, `this run` otherwise.
    pub label: &'static str,
    /// `--ceiling-rounds`: the run and its ceiling again, in alternating slices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alternated: Option<Alternated>,
}

/// The run and its ceiling measured in alternating slices (`--ceiling-rounds`).
#[derive(Debug, Clone, Serialize)]
pub struct Alternated {
    pub rounds: u32,
    pub slice_secs: f64,
    /// Every slice's sends over every slice's ceiling requests, as a percentage.
    pub percent_of_ceiling: f64,
    /// Each round's own percentage, in order.
    pub per_round: Vec<f64>,
}

impl Ceiling {
    /// `ceiling: N req/s` and `<label> = X % of ceiling`, one line each.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "  ceiling: {:.1} req/s (trivial in-process server, same senders; {})",
            self.requests_per_sec,
            self.latency_us.human()
        );
        let _ = writeln!(
            out,
            "  {} = {:.1} % of ceiling",
            self.label, self.percent_of_ceiling
        );
        if let Some(a) = &self.alternated {
            let rounds: Vec<String> = a.per_round.iter().map(|p| format!("{p:.1}")).collect();
            let _ = writeln!(
                out,
                "  alternated, {} rounds of {:.1} s each way: {} = {:.1} % of ceiling (rounds: {} %)",
                a.rounds,
                a.slice_secs,
                self.label,
                a.percent_of_ceiling,
                rounds.join(", ")
            );
        }
        out
    }
}

/// Whether `args` is scenario 2 of BENCHMARKS.md: 1 room × 2 agents, 16 senders, no SSE.
pub fn is_scenario_two(args: &BenchArgs) -> bool {
    args.rooms == 1 && args.agents_per_room == 2 && args.senders == 16 && args.no_sse
}

/// `args` reshaped to scenario 2 (the rest, duration included, as given).
pub fn scenario_two(args: &BenchArgs) -> BenchArgs {
    BenchArgs {
        rooms: 1,
        agents_per_room: 2,
        senders: 16,
        no_sse: true,
        ..args.clone()
    }
}

/// Runs the senders of `args` (sends only, same duration) against the trivial server at
/// `url`, and relates `sends_per_sec` (the real run's figure) to what they got.
pub async fn measure(
    args: &BenchArgs,
    url: &str,
    run_id: &str,
    sends_per_sec: f64,
) -> anyhow::Result<Ceiling> {
    let load = BenchArgs {
        url: url.to_owned(),
        no_sse: true,
        server_pid: None,
        interval_secs: 0,
        ..args.clone()
    };
    let client = A2aClient::new(url)?.with_timeout(args.request_timeout());
    let report = deliveries::measure(&load, client, run_id)
        .await
        .context("measuring the ceiling")?;
    anyhow::ensure!(
        report.send_errors == 0 && report.sends_per_sec > 0.0,
        "the ceiling run failed: {} of {} sends answered: {:?}",
        report.sends,
        report.sends + report.send_errors,
        report.errors
    );
    Ok(Ceiling {
        requests_per_sec: report.sends_per_sec,
        latency_us: report.send_latency_us,
        percent_of_ceiling: (sends_per_sec / report.sends_per_sec * 1000.0).round() / 10.0,
        label: if is_scenario_two(args) {
            "scenario 2"
        } else {
            "this run"
        },
        alternated: None,
    })
}

/// `args.ceiling_rounds` alternations of the load against `client`'s server and against
/// the trivial server at `ceiling_url`, each of `duration / rounds` seconds (see
/// `--ceiling-rounds`). A round whose real run had errors fails the whole measurement.
pub async fn alternate(
    args: &BenchArgs,
    client: A2aClient,
    ceiling_url: &str,
    run_id: &str,
) -> anyhow::Result<Alternated> {
    let rounds = args.ceiling_rounds.max(1);
    let slice = BenchArgs {
        duration_secs: args.duration_secs / f64::from(rounds),
        interval_secs: 0,
        ..args.clone()
    };
    let (mut sends, mut requests) = (0.0, 0.0);
    let mut per_round = Vec::new();
    for round in 0..rounds {
        let id = format!("{run_id}r{round}");
        let real = deliveries::measure(&slice, client.clone(), &id)
            .await
            .with_context(|| format!("round {round} of the alternation"))?;
        anyhow::ensure!(
            real.send_errors == 0,
            "round {round} of the alternation had {} failed sends: {:?}",
            real.send_errors,
            real.errors
        );
        let ceiling = measure(&slice, ceiling_url, &id, real.sends_per_sec).await?;
        sends += real.sends_per_sec;
        requests += ceiling.requests_per_sec;
        per_round.push(ceiling.percent_of_ceiling);
    }
    Ok(Alternated {
        rounds,
        slice_secs: slice.duration_secs,
        percent_of_ceiling: (sends / requests * 1000.0).round() / 10.0,
        per_round,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(url: &str, body: String) -> (u16, String) {
        crate::client::install_crypto_provider();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let response = client
            .post(format!("{url}/a2a"))
            .body(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    #[tokio::test]
    async fn every_post_a2a_gets_the_fixed_reply_the_client_accepts() {
        let server = Server::start().await.unwrap();
        let client = A2aClient::new(server.url()).unwrap();
        let created = client
            .create_room(Some("r"), "a", serde_json::Value::Null)
            .await
            .unwrap();
        assert_eq!(created.agent_token, "ceiling");
        client
            .send_message(&created.agent_token, "x", None, None)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn other_paths_are_not_found_and_big_bodies_are_refused_naming_the_limit() {
        let server = Server::start().await.unwrap();
        let (status, _) = post(server.url(), String::new()).await;
        assert_eq!(status, 200);
        crate::client::install_crypto_provider();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let status = http
            .get(format!("{}/a2a", server.url()))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 404);
        let (status, text) = post(server.url(), "x".repeat(MAX_BODY_BYTES + 1)).await;
        assert_eq!(status, 413);
        assert!(
            text.contains(&format!("the limit is {MAX_BODY_BYTES} bytes")),
            "{text}"
        );
    }

    #[test]
    fn only_scenario_twos_shape_is_called_scenario_2() {
        let two = super::super::fake::args("--rooms 1 --agents-per-room 2 --senders 16 --no-sse");
        assert!(is_scenario_two(&two));
        assert!(is_scenario_two(&scenario_two(&super::super::fake::args(
            "--senders 3 --rooms 4"
        ))));
        let with_sse = super::super::fake::args("--rooms 1 --agents-per-room 2 --senders 16");
        assert!(!is_scenario_two(&with_sse));
    }
}
