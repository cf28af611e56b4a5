//! The sockets a node serves on, bound before it starts: binding port 0 tells the caller
//! the port before anything is served, and a bind failure is reported before the store
//! is opened.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::TcpListener;

use crate::NodeError;

/// The flag names of the listeners, used in logs and errors.
pub(crate) const HTTP: &str = "--listen";
pub(crate) const GRPC: &str = "--grpc-listen";
pub(crate) const MCP: &str = "--mcp-listen";
pub(crate) const METRICS: &str = "--metrics-listen";
pub(crate) const NODE: &str = "--node-listen";

/// Where a node listens (asked for, or bound: see [`crate::RunningNode::addrs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addrs {
    /// Everything: HTTP (A2A, SSE, MCP, health) and gRPC (h2c) on one port.
    pub http: SocketAddr,
    /// gRPC alone, for clients configured with a separate gRPC port.
    pub grpc: Option<SocketAddr>,
    /// `/mcp` alone, for configs written for join.cloud's separate MCP port.
    pub mcp: Option<SocketAddr>,
    /// `/metrics` alone, for a scrape port apart from client traffic.
    pub metrics: Option<SocketAddr>,
    /// The internal node service of a cluster (cluster mode only).
    pub node: Option<SocketAddr>,
}

/// Bound listeners, handed to [`crate::Node::start`].
#[derive(Debug)]
pub struct Listeners {
    pub http: TcpListener,
    pub grpc: Option<TcpListener>,
    pub mcp: Option<TcpListener>,
    pub metrics: Option<TcpListener>,
    pub node: Option<TcpListener>,
}

impl Listeners {
    /// Only the main listener.
    pub fn new(http: TcpListener) -> Self {
        Self {
            http,
            grpc: None,
            mcp: None,
            metrics: None,
            node: None,
        }
    }

    /// Binds every address of `addrs` (the optional ones first, as `huddle serve`
    /// always did: the main port's readiness line comes last).
    pub async fn bind(addrs: &Addrs) -> Result<Self, NodeError> {
        let grpc = match addrs.grpc {
            Some(addr) => Some(bind(GRPC, addr).await?),
            None => None,
        };
        let mcp = match addrs.mcp {
            Some(addr) => Some(bind(MCP, addr).await?),
            None => None,
        };
        let metrics = match addrs.metrics {
            Some(addr) => Some(bind(METRICS, addr).await?),
            None => None,
        };
        let node = match addrs.node {
            Some(addr) => Some(bind(NODE, addr).await?),
            None => None,
        };
        Ok(Self {
            http: bind(HTTP, addrs.http).await?,
            grpc,
            mcp,
            metrics,
            node,
        })
    }

    /// The main listener on a free port of 127.0.0.1 (tests, the bench).
    pub async fn loopback() -> Result<Self, NodeError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        Ok(Self::new(bind(HTTP, addr).await?))
    }

    /// Where the listeners are bound.
    pub fn addrs(&self) -> Result<Addrs, NodeError> {
        let local = |listener: &'static str, l: &TcpListener| {
            l.local_addr()
                .map_err(|source| NodeError::LocalAddr { listener, source })
        };
        Ok(Addrs {
            http: local(HTTP, &self.http)?,
            grpc: self.grpc.as_ref().map(|l| local(GRPC, l)).transpose()?,
            mcp: self.mcp.as_ref().map(|l| local(MCP, l)).transpose()?,
            metrics: self
                .metrics
                .as_ref()
                .map(|l| local(METRICS, l))
                .transpose()?,
            node: self.node.as_ref().map(|l| local(NODE, l)).transpose()?,
        })
    }
}

async fn bind(listener: &'static str, addr: SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind {
            listener,
            addr,
            source,
        })
}
