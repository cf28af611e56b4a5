//! Push endpoint checks (PROTOCOL.md A.4 `room.join`, B.9).
//!
//! At join we can only judge the URL as written: syntax, scheme, and a literal
//! localhost/private host. A hostname can later resolve anywhere (DNS rebinding), so the
//! push client checks the *resolved* addresses again at every delivery, through
//! [`CheckedResolver`], and refuses literal private IPs there too.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use huddle_core::RoomError;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// Why an address may not receive pushes.
fn refuse_ip(ip: IpAddr) -> Option<RoomError> {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    if ip.is_loopback() {
        return Some(RoomError::EndpointLocalhost);
    }
    let private = match ip {
        IpAddr::V4(v4) => {
            v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 0
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64) // 100.64/10 CGNAT
        }
        IpAddr::V6(v6) => {
            v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // fe80::/10 link local
        }
    };
    private.then_some(RoomError::EndpointPrivate)
}

/// The check made at join: the URL as written.
pub fn check_url(raw: &str, allow_private: bool) -> Result<Url, RoomError> {
    let url = Url::parse(raw).map_err(|_| RoomError::InvalidEndpoint)?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(RoomError::EndpointScheme);
    }
    let host = url.host().ok_or(RoomError::InvalidEndpoint)?;
    if allow_private {
        return Ok(url);
    }
    match host {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost" || d.ends_with(".localhost") {
                return Err(RoomError::EndpointLocalhost);
            }
        }
        Host::Ipv4(ip) => {
            if let Some(e) = refuse_ip(IpAddr::V4(ip)) {
                return Err(e);
            }
        }
        Host::Ipv6(ip) => {
            if let Some(e) = refuse_ip(IpAddr::V6(ip)) {
                return Err(e);
            }
        }
    }
    Ok(url)
}

/// A DNS resolver for the push client that drops loopback/private/link-local answers
/// (unless allowed), so a hostname cannot be pointed at the cluster's insides.
pub struct CheckedResolver {
    pub allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = format!("{}:0", name.as_str());
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host(host)
                .await?
                .filter(|a| allow_private || refuse_ip(a.ip()).is_none())
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(std::io::Error::other(
                    "endpoint resolves only to refused (loopback or private) addresses",
                ))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

pub fn resolver(allow_private: bool) -> Arc<CheckedResolver> {
    Arc::new(CheckedResolver { allow_private })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_time_checks_give_the_contract_texts() {
        let t = |u: &str| check_url(u, false).err().map(|e| e.to_string());
        assert_eq!(t("not a url").unwrap(), "Invalid endpoint URL");
        assert_eq!(
            t("ftp://example.com/x").unwrap(),
            "Endpoint URL must use http or https"
        );
        assert_eq!(
            t("http://localhost:3000/").unwrap(),
            "Endpoint URL must not point to localhost"
        );
        assert_eq!(
            t("http://127.0.0.1/").unwrap(),
            "Endpoint URL must not point to localhost"
        );
        assert_eq!(
            t("http://[::1]/").unwrap(),
            "Endpoint URL must not point to localhost"
        );
        assert_eq!(
            t("http://10.1.2.3/").unwrap(),
            "Endpoint URL must not point to a private IP address"
        );
        assert_eq!(
            t("http://169.254.169.254/").unwrap(),
            "Endpoint URL must not point to a private IP address"
        );
        assert_eq!(
            t("http://[::ffff:192.168.0.1]/").unwrap(),
            "Endpoint URL must not point to a private IP address"
        );
        assert!(t("https://agents.example.com/a2a").is_none());
        assert!(check_url("http://127.0.0.1:9/", true).is_ok());
    }

    #[tokio::test]
    async fn resolver_drops_loopback_answers() {
        let r = CheckedResolver {
            allow_private: false,
        };
        let name: Name = "localhost".parse().unwrap();
        assert!(r.resolve(name).await.is_err());
        let r = CheckedResolver {
            allow_private: true,
        };
        let name: Name = "localhost".parse().unwrap();
        assert!(r.resolve(name).await.is_ok());
    }
}
