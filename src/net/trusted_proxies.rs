//! `[server] trusted_proxies`, parsed once when the configuration is read: which peers may name
//! the client in `X-Forwarded-For`, and who the client then is.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

/// An entry of `trusted_proxies` that is neither an IP address nor a CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadProxyEntry {
    #[error("`{0}` is not an IP address or CIDR")]
    NotAnAddress(String),
    #[error("`{0}`: bad prefix length")]
    BadPrefix(String),
}

/// `[server] trusted_proxies`: addresses and networks.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TryFrom<Vec<String>> for TrustedProxies {
    type Error = BadProxyEntry;

    fn try_from(entries: Vec<String>) -> Result<Self, Self::Error> {
        Self::parse(&entries)
    }
}

impl TrustedProxies {
    pub fn parse(entries: &[String]) -> Result<Self, BadProxyEntry> {
        let mut nets = Vec::new();
        for entry in entries {
            let entry = entry.trim();
            let (addr, prefix) = match entry.split_once('/') {
                Some((a, p)) => (a, Some(p)),
                None => (entry, None),
            };
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| BadProxyEntry::NotAnAddress(entry.to_string()))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => max,
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| BadProxyEntry::BadPrefix(entry.to_string()))?,
            };
            nets.push((addr, prefix));
        }
        Ok(Self(nets))
    }

    /// How many addresses and networks are trusted.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0
            .iter()
            .any(|&(net, prefix)| match (canonical(net), ip) {
                (IpAddr::V4(n), IpAddr::V4(a)) => same_prefix(&n.octets(), &a.octets(), prefix),
                (IpAddr::V6(n), IpAddr::V6(a)) => same_prefix(&n.octets(), &a.octets(), prefix),
                _ => false,
            })
    }

    /// The client: the peer, unless the peer is trusted; then `X-Forwarded-For` read from the
    /// right (the hop nearest to us), skipping trusted proxies, up to the first untrusted hop.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.contains(peer) {
            return canonical(peer);
        }
        let mut client = canonical(peer);
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect::<Vec<_>>();
        for hop in hops.into_iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // Garbage from beyond the last trusted hop: that hop is all we know.
                return client;
            };
            client = canonical(ip);
            if !self.contains(client) {
                return client;
            }
        }
        client
    }
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`, from a dual-stack socket) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn same_prefix(net: &[u8], addr: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if net[..full] != addr[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (net[full] & mask) == (addr[full] & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("valid")
    }

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().expect("header"));
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn cidrs_parse_and_match() {
        let p = proxies(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]);
        assert!(p.contains(ip("10.200.3.4")));
        assert!(p.contains(ip("192.0.2.7")));
        assert!(!p.contains(ip("192.0.2.8")));
        assert!(p.contains(ip("2001:db8:1::9")));
        assert!(p.contains(ip("::ffff:10.1.1.1")), "mapped IPv4");
        assert!(!p.contains(ip("11.0.0.1")));
        for bad in ["10.0.0.0/33", "nope", "::1/129", "1.2.3.4/x"] {
            assert!(TrustedProxies::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_peers() {
        let p = proxies(&["10.0.0.0/8"]);
        let headers = xff("198.51.100.9");
        assert_eq!(p.client(ip("203.0.113.5"), &headers), ip("203.0.113.5"));
        assert_eq!(p.client(ip("10.0.0.2"), &headers), ip("198.51.100.9"));
        assert_eq!(p.client(ip("10.0.0.2"), &HeaderMap::new()), ip("10.0.0.2"));
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let p = proxies(&["10.0.0.0/8"]);
        // The client forged the first entry; the proxies appended the rest.
        let headers = xff("1.1.1.1, 198.51.100.9, 10.0.0.5");
        assert_eq!(p.client(ip("10.0.0.2"), &headers), ip("198.51.100.9"));
        assert_eq!(
            p.client(ip("10.0.0.2"), &xff("[2001:db8::5]:443")),
            ip("2001:db8::5")
        );
        assert_eq!(
            p.client(ip("10.0.0.2"), &xff("garbage, 10.0.0.9")),
            ip("10.0.0.9"),
            "garbage stops the walk at the last trusted hop"
        );
    }
}
