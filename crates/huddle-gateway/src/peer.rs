//! The client's address, as the listener saw the connection: failed room-password
//! attempts are throttled by it. It is there as axum's `ConnectInfo<SocketAddr>` when
//! the node serves the connection (as `huddle serve` does);
//! without it (an app driven in-process) it is unknown and only the per-room throttle
//! applies. Forwarding headers are not trusted: any client could set them.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::Extensions;

/// The peer address of the request whose extensions these are.
pub fn ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}
