//! The client's address behind reverse proxies: [`TrustedProxies`] (from `--trusted-proxies`)
//! and [`client_ip`], which reads `X-Forwarded-For` / `X-Real-IP` only when the peer is one
//! of them.
//!
//! Owns the parsing of address lists and forwarded-address headers; takes header values as the
//! caller found them and never panics on them. It knows nothing of sockets or requests.
//!
//! Addresses are compared in canonical form: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
//! as a dual-stack listener reports IPv4 peers) is its IPv4 address, in the trusted list, in
//! the peer and in the headers alike.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::trim_ows;

/// A set of trusted proxy networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<Net>,
}

/// One network: an address with its host bits clear, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Net {
    /// Prefix length 0..=32.
    V4(u32, u8),
    /// Prefix length 0..=128; never inside `::ffff:0:0/96` with a prefix of 96 or more (those
    /// are stored as `V4`).
    V6(u128, u8),
}

/// An entry of `--trusted-proxies` that is not an IP address or CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid trusted proxy {entry:?}: {reason}")]
pub struct TrustedProxiesError {
    /// The entry as written (trimmed).
    pub entry: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// `::ffff:0:0/96`, the IPv4-mapped range.
const MAPPED_PREFIX: u128 = 0xffff_u128 << 32;

impl Net {
    fn parse(entry: &str) -> Result<Self, &'static str> {
        let (addr, prefix) = match entry.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (entry, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| "not an IP address or CIDR network")?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 3 {
                    return Err("prefix length is not a number");
                }
                let p: u8 = p.parse().map_err(|_| "prefix length is not a number")?;
                if p > max {
                    return Err("prefix length too long");
                }
                p
            }
        };
        let net = match addr {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                if a & !mask_v4(prefix) != 0 {
                    return Err("host bits set after the prefix");
                }
                Self::V4(a, prefix)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                if a & !mask_v6(prefix) != 0 {
                    return Err("host bits set after the prefix");
                }
                if prefix >= 96 && a & mask_v6(96) == MAPPED_PREFIX {
                    Self::V4(a as u32, prefix - 96)
                } else {
                    Self::V6(a, prefix)
                }
            }
        };
        Ok(net)
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (*self, ip) {
            (Self::V4(net, p), IpAddr::V4(a)) => u32::from(a) & mask_v4(p) == net,
            (Self::V6(net, p), IpAddr::V6(a)) => u128::from(a) & mask_v6(p) == net,
            _ => false,
        }
    }
}

impl TrustedProxies {
    /// No trusted proxies: [`client_ip`] always returns the peer.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses a comma-separated list of IP addresses and CIDR networks, IPv4 or IPv6
    /// (`10.0.0.0/8, 192.168.1.10, ::1, fd00::/8`). Whitespace around entries is ignored; an
    /// empty or all-whitespace list is [`TrustedProxies::none`]. Refused, naming the entry:
    /// an empty entry (`a,,b`, a trailing comma), anything that is not an address, a prefix
    /// longer than the family allows, and host bits set after the prefix (`10.0.0.1/8`: write
    /// `10.0.0.0/8` or `10.0.0.1/32`). IPv4-mapped entries (`::ffff:10.0.0.1`,
    /// `::ffff:10.0.0.0/104`) are the IPv4 ones; other IPv6 networks never match IPv4 peers.
    pub fn parse(list: &str) -> Result<Self, TrustedProxiesError> {
        if list.trim().is_empty() {
            return Ok(Self::none());
        }
        let nets = list
            .split(',')
            .map(|entry| {
                let entry = entry.trim();
                if entry.is_empty() {
                    return Err(TrustedProxiesError {
                        entry: entry.to_owned(),
                        reason: "empty entry",
                    });
                }
                Net::parse(entry).map_err(|reason| TrustedProxiesError {
                    entry: entry.to_owned(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { nets })
    }

    /// True when `ip` (canonical form) is in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// True when no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

impl std::str::FromStr for TrustedProxies {
    type Err = TrustedProxiesError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The client's address for rate limiting and logs.
///
/// - The peer (canonical form) unless the peer is trusted.
/// - Then `X-Forwarded-For`, read from the right across all instances of the header (in the
///   order received; each one a comma-separated list): the first address that is not itself
///   trusted is the client (everything to its left was written by the client or by proxies
///   we do not trust, and is ignored). Empty list elements are skipped.
/// - An element that is not an address (`unknown`, an obfuscated identifier, garbage) stops
///   the walk: the result is the last address read before it (a trusted proxy, the nearest
///   hop known; it wrote or passed on the garbage), or the peer when the garbage is the
///   rightmost element. `X-Real-IP` is not consulted then.
/// - When every `X-Forwarded-For` address is trusted, or there is none: `X-Real-IP` (the
///   caller passes the last instance of the header) if it is one address, else the peer.
///
/// An address element is, after trimming spaces and tabs: an IPv4 address, an IPv6 address,
/// or either with a port: `a.b.c.d:port`, `[v6]` or `[v6]:port` (some proxies and load
/// balancers add the client port; it is dropped). A bare IPv6 address with a port cannot be
/// told apart and is read as an address only. Zone ids (`fe80::1%eth0`) are not addresses.
/// Mapped IPv6 addresses are returned as IPv4.
pub fn client_ip(
    peer: IpAddr,
    x_forwarded_for: &[&[u8]],
    x_real_ip: Option<&[u8]>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let mut last_good = None;
    for header in x_forwarded_for.iter().rev() {
        for element in header.rsplit(|b| *b == b',') {
            let element = trim_ows(element);
            if element.is_empty() {
                continue;
            }
            match parse_addr(element) {
                None => return last_good.unwrap_or(peer),
                Some(ip) if trusted.contains(ip) => last_good = Some(ip),
                Some(ip) => return ip,
            }
        }
    }
    x_real_ip
        .and_then(|v| parse_addr(trim_ows(v)))
        .unwrap_or(peer)
}

/// One forwarded address element (see [`client_ip`]), canonical.
fn parse_addr(s: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(s).ok()?;
    let ip = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        IpAddr::V6(v6.parse::<Ipv6Addr>().ok()?)
    } else if let Some((v4, port)) = s.split_once(':').filter(|(_, p)| !p.contains(':')) {
        if !is_port(port) {
            return None;
        }
        IpAddr::V4(v4.parse::<Ipv4Addr>().ok()?)
    } else {
        s.parse::<IpAddr>().ok()?
    };
    Some(ip.to_canonical())
}

/// 1 to 5 ASCII digits, at most 65535.
fn is_port(s: &str) -> bool {
    (1..=5).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn tp(s: &str) -> TrustedProxies {
        TrustedProxies::parse(s).unwrap()
    }

    #[test]
    fn parse_lists() {
        let t = tp(" 10.0.0.0/8 , 192.168.1.10,::1, fd00::/8,2001:db8::/32 ");
        for yes in [
            "10.1.2.3",
            "192.168.1.10",
            "::1",
            "fd12::5",
            "2001:db8:ffff::1",
        ] {
            assert!(t.contains(ip(yes)), "{yes}");
        }
        for no in ["11.0.0.1", "192.168.1.11", "::2", "fe00::1", "2001:db9::1"] {
            assert!(!t.contains(ip(no)), "{no}");
        }
        assert!(tp("").is_empty());
        assert!(tp("  ").is_empty());
        assert!(!t.is_empty());
        assert_eq!(TrustedProxies::none(), tp(""));
        assert!(tp("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!tp("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(tp("::/0").contains(ip("2001:db8::1")));
        assert!(
            !tp("::/0").contains(ip("203.0.113.9")),
            "IPv6 nets never match IPv4"
        );
        assert!(tp("10.0.0.1/32").contains(ip("10.0.0.1")));
        assert!("10.0.0.0/8".parse::<TrustedProxies>().is_ok());
    }

    #[test]
    fn parse_errors_name_the_entry() {
        for (list, entry, reason) in [
            ("10.0.0.0/8,,::1", "", "empty entry"),
            ("10.0.0.0/8,", "", "empty entry"),
            (
                "10.0.0.300",
                "10.0.0.300",
                "not an IP address or CIDR network",
            ),
            (
                "proxy.local",
                "proxy.local",
                "not an IP address or CIDR network",
            ),
            ("[::1]", "[::1]", "not an IP address or CIDR network"),
            ("10.0.0.0/33", "10.0.0.0/33", "prefix length too long"),
            ("::/129", "::/129", "prefix length too long"),
            ("10.0.0.0/", "10.0.0.0/", "prefix length is not a number"),
            (
                "10.0.0.0/+8",
                "10.0.0.0/+8",
                "prefix length is not a number",
            ),
            (
                "10.0.0.0/0008",
                "10.0.0.0/0008",
                "prefix length is not a number",
            ),
            (
                "10.0.0.0/8/8",
                "10.0.0.0/8/8",
                "prefix length is not a number",
            ),
            ("10.0.0.1/8", "10.0.0.1/8", "host bits set after the prefix"),
            ("fd00::1/8", "fd00::1/8", "host bits set after the prefix"),
        ] {
            let err = TrustedProxies::parse(list).unwrap_err();
            assert_eq!((err.entry.as_str(), err.reason), (entry, reason), "{list}");
            assert!(!err.to_string().contains('\n'));
        }
        assert_eq!(
            TrustedProxies::parse("10.0.0.0/8, 10.0.0.1/8")
                .unwrap_err()
                .to_string(),
            "invalid trusted proxy \"10.0.0.1/8\": host bits set after the prefix"
        );
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let t = tp("::ffff:10.0.0.1, ::ffff:192.168.0.0/112");
        assert!(t.contains(ip("10.0.0.1")));
        assert!(t.contains(ip("::ffff:10.0.0.1")));
        assert!(t.contains(ip("192.168.7.7")));
        assert!(!t.contains(ip("192.169.0.1")));
        let t = tp("10.0.0.0/8");
        assert!(t.contains(ip("::ffff:10.9.9.9")));
        assert_eq!(
            client_ip(ip("::ffff:203.0.113.5"), &[], None, &t),
            ip("203.0.113.5")
        );
    }

    const PROXY: &str = "10.0.0.1";

    fn trusted() -> TrustedProxies {
        tp("10.0.0.0/8, fd00::/8")
    }

    fn cip(xff: &[&str], real: Option<&str>) -> IpAddr {
        let xff: Vec<&[u8]> = xff.iter().map(|s| s.as_bytes()).collect();
        client_ip(ip(PROXY), &xff, real.map(str::as_bytes), &trusted())
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_the_headers() {
        let peer = ip("203.0.113.7");
        assert_eq!(
            client_ip(peer, &[b"1.2.3.4"], Some(b"5.6.7.8"), &trusted()),
            peer
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &[b"1.2.3.4"], None, &TrustedProxies::none()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn rightmost_untrusted_forwarded_address() {
        assert_eq!(cip(&["1.2.3.4"], None), ip("1.2.3.4"));
        // A spoofed entry on the left is ignored: the proxy appended the real one.
        assert_eq!(cip(&["6.6.6.6, 1.2.3.4"], None), ip("1.2.3.4"));
        // Trusted hops on the right are skipped.
        assert_eq!(
            cip(&["6.6.6.6, 1.2.3.4, 10.0.0.2, 10.9.9.9"], None),
            ip("1.2.3.4")
        );
        // Across several header instances, the last one is the rightmost.
        assert_eq!(cip(&["6.6.6.6", "1.2.3.4, 10.0.0.2"], None), ip("1.2.3.4"));
        assert_eq!(
            cip(&["1.2.3.4", "10.0.0.2", "10.0.0.3"], None),
            ip("1.2.3.4")
        );
        // X-Real-IP is not used when XFF names the client.
        assert_eq!(cip(&["1.2.3.4"], Some("5.6.7.8")), ip("1.2.3.4"));
    }

    #[test]
    fn whitespace_empty_elements_ports_and_brackets() {
        assert_eq!(cip(&[" \t1.2.3.4 \t, 10.0.0.2 "], None), ip("1.2.3.4"));
        assert_eq!(cip(&["1.2.3.4,,10.0.0.2,"], None), ip("1.2.3.4"));
        assert_eq!(cip(&["", ","], Some("5.6.7.8")), ip("5.6.7.8"));
        assert_eq!(cip(&["1.2.3.4:5678"], None), ip("1.2.3.4"));
        assert_eq!(cip(&["2001:db8::1"], None), ip("2001:db8::1"));
        assert_eq!(cip(&["[2001:db8::1]"], None), ip("2001:db8::1"));
        assert_eq!(cip(&["[2001:db8::1]:443"], None), ip("2001:db8::1"));
        assert_eq!(cip(&["2001:db8::1, [fd00::1]:80"], None), ip("2001:db8::1"));
        assert_eq!(cip(&["::ffff:1.2.3.4"], None), ip("1.2.3.4"));
        assert_eq!(cip(&["[::ffff:10.0.0.5]:1, 1.1.1.1"], None), ip("1.1.1.1"));
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_good_address() {
        // Rightmost element is garbage: the peer.
        assert_eq!(cip(&["1.2.3.4, unknown"], Some("5.6.7.8")), ip(PROXY));
        // Garbage behind a trusted hop: that hop.
        assert_eq!(cip(&["1.2.3.4, unknown, 10.0.0.2"], None), ip("10.0.0.2"));
        assert_eq!(
            cip(&["1.2.3.4", "_hidden", "10.0.0.2"], None),
            ip("10.0.0.2")
        );
        for bad in [
            "1.2.3.4:",
            "1.2.3.4:65536",
            "1.2.3.4:+80",
            "1.2.3.4:000080",
            "[2001:db8::1",
            "[2001:db8::1]x",
            "[2001:db8::1]:",
            "[1.2.3.4]",
            "fe80::1%eth0",
            "1.2.3",
            "01.2.3.4",
            "1.2.3.4 5.6.7.8",
            "\u{e9}",
            "::ffff:1.2.3.4:80",
        ] {
            assert_eq!(cip(&[bad, "10.0.0.3"], None), ip("10.0.0.3"), "{bad:?}");
        }
        // Invalid UTF-8 never panics and is garbage.
        let xff: [&[u8]; 2] = [b"1.2.3.4, \xff\xfe", b"10.0.0.3"];
        assert_eq!(client_ip(ip(PROXY), &xff, None, &trusted()), ip("10.0.0.3"));
    }

    #[test]
    fn x_real_ip_when_every_forwarded_address_is_trusted() {
        assert_eq!(cip(&[], Some("5.6.7.8")), ip("5.6.7.8"));
        assert_eq!(
            cip(&["10.0.0.2, 10.0.0.3"], Some(" 5.6.7.8 ")),
            ip("5.6.7.8")
        );
        assert_eq!(
            cip(&["10.0.0.2"], Some("[2001:db8::2]:9")),
            ip("2001:db8::2")
        );
        assert_eq!(cip(&["10.0.0.2"], None), ip(PROXY));
        assert_eq!(cip(&[], None), ip(PROXY));
        assert_eq!(
            cip(&[], Some("5.6.7.8, 9.9.9.9")),
            ip(PROXY),
            "one address only"
        );
        assert_eq!(cip(&[], Some("garbage")), ip(PROXY));
        assert_eq!(cip(&[], Some("")), ip(PROXY));
    }

    #[test]
    fn ipv6_proxy_chain() {
        let xff: [&[u8]; 1] = [b"2001:db8::9, fd00::2"];
        assert_eq!(
            client_ip(ip("fd00::1"), &xff, None, &trusted()),
            ip("2001:db8::9")
        );
        // A mapped peer that is trusted as IPv4.
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), &[b"192.0.2.1"], None, &trusted()),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn trim() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
    }
}
