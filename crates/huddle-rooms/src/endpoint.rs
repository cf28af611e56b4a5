//! Push endpoint checks.
//!
//! At join we can only judge the URL as written: size, syntax, scheme, and a literal
//! host. A hostname can later resolve anywhere (DNS rebinding), so the push client checks
//! the *resolved* addresses again at every delivery, through [`CheckedResolver`], and
//! the literal URL is checked again too.
//!
//! Addresses are judged by an allow-list: only [global unicast](is_global_unicast)
//! addresses receive pushes (unless private endpoints are allowed). A list of private
//! ranges to refuse misses whatever it forgot (NAT64, 6to4, IPv4-compatible IPv6,
//! site-local, benchmarking ranges...); an allow-list fails closed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use huddle_core::{RoomError, validate};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

/// IPv4 blocks inside the unicast space (1.0.0.0 to 223.255.255.255) that are not
/// globally reachable: the special-purpose registry's private, shared, loopback,
/// link-local, protocol-assignment, documentation, benchmarking and relay blocks.
const V4_NOT_GLOBAL: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 0, 0, 0), 24),
    (Ipv4Addr::new(192, 0, 2, 0), 24),
    (Ipv4Addr::new(192, 88, 99, 0), 24),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(198, 18, 0, 0), 15),
    (Ipv4Addr::new(198, 51, 100, 0), 24),
    (Ipv4Addr::new(203, 0, 113, 0), 24),
];

/// IPv6 blocks inside global unicast `2000::/3` that are not plain global hosts: IETF
/// protocol assignments (Teredo `2001::/32`, benchmarking, ORCHID...), documentation,
/// 6to4 (it tunnels to an embedded IPv4 address, private ones included), and the newer
/// documentation block.
const V6_NOT_GLOBAL: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16),
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),
];

fn in_v4(ip: Ipv4Addr, (net, len): (Ipv4Addr, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net)
}

fn in_v6(ip: Ipv6Addr, (net, len): (Ipv6Addr, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net)
}

/// Is `ip` a global unicast address, the only kind that receives pushes?
///
/// IPv4: the unicast space `1.0.0.0`–`223.255.255.255` (so not `0.0.0.0/8`, multicast
/// `224/4`, reserved `240/4` or broadcast) minus [`V4_NOT_GLOBAL`]. IPv6: `2000::/3`
/// minus [`V6_NOT_GLOBAL`], which leaves out loopback, unspecified, IPv4-compatible
/// `::a.b.c.d`, NAT64 `64:ff9b::/96`, unique-local, link- and site-local and multicast.
/// An IPv4-mapped address `::ffff:a.b.c.d` is judged as the IPv4 address it reaches.
pub fn is_global_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let first = v4.octets()[0];
            (1..=223).contains(&first) && !V4_NOT_GLOBAL.iter().any(|&b| in_v4(v4, b))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_global_unicast(IpAddr::V4(v4)),
            None => {
                in_v6(v6, (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3))
                    && !V6_NOT_GLOBAL.iter().any(|&b| in_v6(v6, b))
            }
        },
    }
}

/// Why an address may not receive pushes: `None` for a global unicast address. Loopback
/// and the unspecified address (which reaches this host on Linux) get the localhost text,
/// everything else the private-address text.
fn refuse_ip(ip: IpAddr) -> Option<RoomError> {
    if is_global_unicast(ip) {
        return None;
    }
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_canonical(),
        v4 => v4,
    };
    Some(if ip.is_loopback() || ip.is_unspecified() {
        RoomError::EndpointLocalhost
    } else {
        RoomError::EndpointPrivate
    })
}

/// The check made at join: the URL as written.
pub fn check_url(raw: &str, allow_private: bool) -> Result<Url, RoomError> {
    validate::endpoint_length(raw)?;
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

/// A DNS resolver for the push client that keeps only global unicast answers (unless
/// private endpoints are allowed), so a hostname cannot be pointed at the cluster's
/// insides.
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
                    "endpoint resolves only to refused (not global unicast) addresses",
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

    /// Every kind of address that must not receive pushes, and some that must.
    #[test]
    fn only_global_unicast_addresses_are_allowed() {
        let refused = [
            // IPv4: this network, private, shared, loopback, link-local.
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.1",
            // Protocol assignments, documentation, 6to4 relay, benchmarking.
            "192.0.0.1",
            "192.0.0.170",
            "192.0.2.1",
            "192.88.99.1",
            "198.18.0.1",
            "198.19.255.254",
            "198.51.100.7",
            "203.0.113.9",
            // Multicast, reserved, broadcast.
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6: unspecified, loopback, IPv4-compatible, IPv4-mapped private.
            "::",
            "::1",
            "::10.0.0.1",
            "::8.8.8.8",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            // NAT64 (well-known and local-use), discard-only, unique-local,
            // link-local, site-local, multicast.
            "64:ff9b::a00:1",
            "64:ff9b::808:808",
            "64:ff9b:1::1",
            "100::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            // Inside 2000::/3: IETF assignments (Teredo, benchmarking, ORCHID),
            // documentation, 6to4.
            "2001::1",
            "2001:0:4136:e378::1",
            "2001:2::1",
            "2001:20::1",
            "2001:1ff::1",
            "2001:db8::1",
            "2002::1",
            "2002:a00:1::1",
            "2002:c0a8:101::1",
            "3fff::1",
        ];
        let allowed = [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.3.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.254",
            "::ffff:8.8.8.8",
            "2001:200::1",
            "2001:4860:4860::8888",
            "2606:4700::1111",
            "2a00:1450::1",
            "3ffe::1",
        ];
        for ip in refused {
            let addr: IpAddr = ip.parse().unwrap();
            assert!(!is_global_unicast(addr), "{ip} must be refused");
            assert!(refuse_ip(addr).is_some(), "{ip} must be refused");
        }
        for ip in allowed {
            let addr: IpAddr = ip.parse().unwrap();
            assert!(is_global_unicast(addr), "{ip} must be allowed");
            assert!(refuse_ip(addr).is_none(), "{ip} must be allowed");
        }
    }

    #[test]
    fn loopback_and_unspecified_get_the_localhost_text() {
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "0.0.0.0",
            "::1",
            "::",
            "::ffff:127.0.0.1",
        ] {
            assert_eq!(
                refuse_ip(ip.parse().unwrap()),
                Some(RoomError::EndpointLocalhost),
                "{ip}"
            );
        }
    }

    /// Literal hosts that a refuse-list of private ranges let through.
    #[test]
    fn join_refuses_literal_special_addresses() {
        for url in [
            "http://[64:ff9b::a00:1]/hook",
            "http://[2002:a00:1::1]/hook",
            "http://[::10.0.0.1]/hook",
            "http://[fec0::1]/hook",
            "http://192.0.0.1/hook",
            "http://198.18.0.1/hook",
            "http://240.0.0.1/hook",
            "http://[2001:db8::1]/hook",
            "http://203.0.113.9/hook",
            "http://224.0.0.1/hook",
        ] {
            assert_eq!(
                check_url(url, false).unwrap_err().to_string(),
                "Endpoint URL must not point to a private IP address",
                "{url}"
            );
            assert!(check_url(url, true).is_ok(), "{url} with private allowed");
        }
    }

    #[test]
    fn endpoint_urls_are_bounded() {
        let at_limit = format!("https://agents.example.com/{}", "a".repeat(2048 - 27));
        assert_eq!(at_limit.len(), 2048);
        assert!(check_url(&at_limit, false).is_ok());
        let over = format!("{at_limit}b");
        for allow_private in [false, true] {
            assert_eq!(
                check_url(&over, allow_private).unwrap_err().to_string(),
                "Endpoint URL is too long: the limit is 2048 bytes"
            );
        }
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
