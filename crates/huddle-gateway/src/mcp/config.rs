//! Settings of the MCP endpoint, and the `Host`/`Origin` checks they configure.
//!
//! Why a `Host` allow-list at all: a server on a developer's machine can be reached by a
//! web page through DNS rebinding (the page's host name resolves to 127.0.0.1); checking
//! `Host` defeats that. A server behind a load balancer, on the other hand, sees whatever
//! public host names the balancer forwards. So the default ([`HostPolicy::auto`]) is
//! loopback names only when every listener is on loopback, and any host otherwise; an
//! explicit list overrides both. `Origin` is checked only when origins are configured:
//! browsers cannot make a cross-origin JSON POST without a CORS preflight, which this
//! endpoint never grants.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use axum::http::uri::Authority;

/// Which `Host` headers the endpoint answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPolicy {
    Any,
    /// `host` (any port) or `host:port` entries, compared case-insensitively.
    Only(Vec<String>),
}

impl HostPolicy {
    /// Loopback names when all of `listeners` are loopback addresses, else any host.
    pub fn auto(listeners: &[SocketAddr]) -> HostPolicy {
        if !listeners.is_empty() && listeners.iter().all(|a| a.ip().is_loopback()) {
            HostPolicy::Only(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()])
        } else {
            HostPolicy::Any
        }
    }

    /// A comma-separated list; `*` alone means any host.
    pub fn parse(list: &str) -> HostPolicy {
        let entries: Vec<String> = list
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .collect();
        if entries.iter().any(|e| e == "*") {
            HostPolicy::Any
        } else {
            HostPolicy::Only(entries)
        }
    }

    fn allows(&self, host: &str, port: Option<u16>) -> bool {
        match self {
            HostPolicy::Any => true,
            HostPolicy::Only(entries) => entries.iter().any(|entry| {
                let (h, p) = split_authority(entry);
                h == host && p.is_none_or(|p| Some(p) == port)
            }),
        }
    }
}

#[derive(Clone, Debug)]
pub struct McpConfig {
    pub allowed_hosts: HostPolicy,
    /// Browser origins allowed to call (`scheme://host[:port]`); empty: no Origin check.
    pub allowed_origins: Vec<String>,
    /// A session without requests (and without an open GET stream) this long ends.
    pub session_idle: Duration,
    /// The same for a session in no room (anonymous: it never joined one, or left them
    /// all), which a client loses nothing by: short, so that sessions made by stray or
    /// hostile POSTs do not hold places for long. Capped by `session_idle`.
    pub anonymous_idle: Duration,
    /// SSE keep-alive interval of GET streams and POST responses.
    pub keep_alive: Duration,
    /// Largest POST body, in bytes.
    pub max_body_bytes: usize,
    /// Most room notifications put ahead of one tool result (the rest follow with the
    /// next ones).
    pub max_notes: usize,
    /// Most live sessions on this node. At the cap, a new session takes the place of the
    /// longest-idle one without an open GET stream (anonymous ones first); a request
    /// that would start one is refused (503) only when every session has a GET stream
    /// open.
    pub max_sessions: usize,
    /// Most rooms one session remembers (rooms it left still hold their place), and most
    /// rooms one `subscriptions/listen` follows.
    pub max_session_rooms: usize,
    /// Cluster mode: session ids name this node, and requests for a session held by
    /// another node are forwarded there (`cluster`). `None`: a single node.
    pub cluster: Option<super::ClusterMcp>,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: HostPolicy::Any,
            allowed_origins: Vec::new(),
            session_idle: Duration::from_secs(3600),
            anonymous_idle: Duration::from_secs(30),
            keep_alive: Duration::from_secs(15),
            max_body_bytes: 1024 * 1024,
            max_notes: 500,
            max_sessions: 10_000,
            max_session_rooms: 100,
            cluster: None,
        }
    }
}

/// `host[:port]` → (lower-cased host without IPv6 brackets, port).
fn split_authority(s: &str) -> (String, Option<u16>) {
    match s.parse::<Authority>() {
        Ok(a) => (
            a.host().trim_matches(['[', ']']).to_ascii_lowercase(),
            a.port_u16(),
        ),
        Err(_) => (s.trim_matches(['[', ']']).to_ascii_lowercase(), None),
    }
}

impl McpConfig {
    /// `Err` with the reason when `Host` or `Origin` is not allowed.
    pub fn check_request(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        if self.allowed_hosts != HostPolicy::Any {
            let host = headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .ok_or("Forbidden: Host header is required")?;
            let (host, port) = split_authority(host);
            if !self.allowed_hosts.allows(&host, port) {
                return Err("Forbidden: Host header is not allowed");
            }
        }
        if !self.allowed_origins.is_empty()
            && let Some(origin) = headers.get(ORIGIN)
        {
            let origin = origin.to_str().unwrap_or("").trim_end_matches('/');
            let allowed = self
                .allowed_origins
                .iter()
                .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(origin));
            if !allowed {
                return Err("Forbidden: Origin header is not allowed");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn loopback_listeners_answer_loopback_names_only() {
        let local: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let public: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        assert_eq!(HostPolicy::auto(&[public]), HostPolicy::Any);
        assert_eq!(HostPolicy::auto(&[local, public]), HostPolicy::Any);
        let config = McpConfig {
            allowed_hosts: HostPolicy::auto(&[local]),
            ..McpConfig::default()
        };
        assert!(
            config
                .check_request(&headers("127.0.0.1:3000", None))
                .is_ok()
        );
        assert!(config.check_request(&headers("localhost", None)).is_ok());
        assert!(config.check_request(&headers("[::1]:3000", None)).is_ok());
        assert_eq!(
            config.check_request(&headers("evil.example:3000", None)),
            Err("Forbidden: Host header is not allowed")
        );
    }

    #[test]
    fn explicit_hosts_and_origins() {
        let config = McpConfig {
            allowed_hosts: HostPolicy::parse("huddle.example, Internal:8080"),
            allowed_origins: vec!["https://app.example".into()],
            ..McpConfig::default()
        };
        assert!(
            config
                .check_request(&headers("HUDDLE.example", None))
                .is_ok()
        );
        assert!(
            config
                .check_request(&headers("internal:8080", None))
                .is_ok()
        );
        assert!(
            config
                .check_request(&headers("internal:9090", None))
                .is_err()
        );
        assert!(
            config
                .check_request(&headers("huddle.example", Some("https://app.example")))
                .is_ok()
        );
        assert_eq!(
            config.check_request(&headers("huddle.example", Some("https://evil.example"))),
            Err("Forbidden: Origin header is not allowed")
        );
        assert_eq!(HostPolicy::parse(" * "), HostPolicy::Any);
    }
}
