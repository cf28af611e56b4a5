//! Graceful shutdown of a node, in one place.
//!
//! [`Shutdown`] owns the node's one shutdown trigger and the servers that must be waited
//! for. The trigger is a [`CancellationToken`] handed to the gateway, so that everything
//! that would otherwise stay open forever watches it. When the shutdown future given to
//! [`Shutdown::run`] resolves (SIGTERM or ctrl-c for `huddle serve`, anything for a test):
//! 1. the trigger fires: every listener stops accepting, every live stream ends (SSE,
//!    MCP GET and `subscriptions/listen` cleanly, gRPC `Subscribe` with UNAVAILABLE) and
//!    gRPC health reports NOT_SERVING; clients resume by seq on another node;
//! 2. the servers finish the requests in flight and close their connections;
//! 3. the rooms handle what is already in their mailboxes and commit it.
//!
//! A node of a cluster first leaves it ([`Shutdown::leaving_first`]): it deregisters and
//! hands its rooms over, within the grace, while it still serves and forwards.
//!
//! All of it within the grace ([`crate::NodeConfig::shutdown_grace`]): a connection that cannot end (a
//! client that stopped reading or sending) would otherwise hold the node until an
//! orchestrator kills it. Past the grace, what is still open is logged and cut, and the
//! node exits anyway. Acknowledged writes are already committed (a reply follows its
//! commit), so a cut loses only answers that were never sent.

use std::future::Future;
use std::time::Duration;

use huddle_rooms::RoomDirectory;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::NodeError;

/// A server's name in the logs (its flag) and how it ended.
type Served = (&'static str, std::io::Result<()>);

/// The node's shutdown: its trigger, its servers, its grace.
pub struct Shutdown {
    trigger: CancellationToken,
    /// The listeners being served, each until the trigger fires and its connections close.
    servers: JoinSet<Served>,
    /// Names of the servers still running (for the log when the grace runs out).
    open: Vec<&'static str>,
    grace: Duration,
    /// Cancelled when the shutdown is asked for, `delay` before the trigger: readiness
    /// fails while everything is still served, so balancers stop sending new clients.
    draining: CancellationToken,
    delay: Duration,
    /// Run first when the shutdown is asked for (a cluster node leaving its cluster).
    leave: Option<futures::future::BoxFuture<'static, ()>>,
}

impl Shutdown {
    pub fn new(grace: Duration) -> Self {
        Self {
            trigger: CancellationToken::new(),
            servers: JoinSet::new(),
            open: Vec::new(),
            grace,
            draining: CancellationToken::new(),
            delay: Duration::ZERO,
            leave: None,
        }
    }

    /// Runs `leave` first when the shutdown is asked for (after readiness fails, before
    /// the drain), within the grace.
    pub fn leaving_first(mut self, leave: futures::future::BoxFuture<'static, ()>) -> Self {
        self.leave = Some(leave);
        self
    }

    /// Fails readiness `delay` before the drain begins (zero: together).
    pub fn with_drain_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Cancelled when the node starts draining (readiness fails).
    pub fn draining(&self) -> CancellationToken {
        self.draining.clone()
    }

    /// The trigger, for what must end when the shutdown begins (the gateway's streams).
    pub fn trigger(&self) -> CancellationToken {
        self.trigger.clone()
    }

    /// Serves `app` on `listener` until the shutdown begins and its connections close.
    /// `name` says which listener in the logs.
    pub fn serve(&mut self, name: &'static str, listener: TcpListener, app: axum::Router) {
        let server = crate::serve::listener(listener, app, self.trigger.clone());
        self.open.push(name);
        self.servers.spawn(async move { (name, server.await) });
    }

    /// Serves until `signal` resolves (or a server fails), then shuts down as the module
    /// docs say, within the grace. An error: a server that stopped on its own.
    pub async fn run(
        mut self,
        signal: impl Future<Output = ()>,
        rooms: &RoomDirectory,
    ) -> Result<(), NodeError> {
        let failed = tokio::select! {
            () = signal => None,
            Some(ended) = self.servers.join_next() => Some(self.ended(ended)),
        };
        self.draining.cancel();
        if let Some(leave) = self.leave.take()
            && tokio::time::timeout(self.grace, leave).await.is_err()
        {
            tracing::warn!(
                grace_secs = self.grace.as_secs_f64(),
                "leaving the cluster took longer than the grace; draining anyway"
            );
        }
        if failed.is_none() && !self.delay.is_zero() {
            tracing::info!(
                delay_secs = self.delay.as_secs_f64(),
                "shutdown requested: not ready, still serving until the drain begins"
            );
            tokio::time::sleep(self.delay).await;
        }
        let started = Instant::now();
        let deadline = started + self.grace;
        self.trigger.cancel();
        tracing::info!(
            grace_secs = self.grace.as_secs_f64(),
            "shutting down: no new connections, live streams ended, finishing requests in flight"
        );
        let servers_closed = tokio::time::timeout_at(deadline, async {
            while let Some(ended) = self.servers.join_next().await {
                self.ended(ended);
            }
        })
        .await
        .is_ok();
        if !servers_closed {
            tracing::warn!(
                grace_secs = self.grace.as_secs_f64(),
                cut = ?self.open,
                "shutdown grace ran out: cutting the connections still open"
            );
            self.servers.abort_all();
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let drained = !remaining.is_zero()
            && tokio::time::timeout(remaining, rooms.shutdown(remaining))
                .await
                .is_ok();
        if drained {
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "shutdown complete: rooms drained and committed"
            );
        } else {
            tracing::warn!(
                grace_secs = self.grace.as_secs_f64(),
                "shutdown grace ran out: rooms not drained; commands still queued were never acknowledged"
            );
        }
        match failed {
            Some(listener) => Err(NodeError::ServerStopped { listener }),
            None => Ok(()),
        }
    }

    /// Books a server that ended; returns its name.
    fn ended(&mut self, ended: Result<Served, tokio::task::JoinError>) -> &'static str {
        let name = match ended {
            Ok((name, Ok(()))) => name,
            Ok((name, Err(e))) => {
                tracing::error!(server = name, error = %e, "server failed");
                name
            }
            Err(e) => {
                tracing::error!(error = %e, "server task failed");
                "unknown"
            }
        };
        self.open.retain(|n| *n != name);
        name
    }
}
