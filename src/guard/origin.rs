//! Which web pages may open a WebSocket to this server: the `Origin` check, the browser's
//! cross-site (CSRF) protection for WebSockets, which browsers leave to the server.
//!
//! Owns the parsing of `--allowed-origins`, of `Origin` header values and of `Host` header
//! values, and the decision. It does not see the request otherwise and never panics on header
//! bytes.
//!
//! Rules of [`OriginPolicy::check`]:
//! - no `Origin` header: allowed (only browsers send one; other clients are not a CSRF risk);
//! - `--allowed-origins '*'`: every request is allowed, whatever its `Origin` (the check is
//!   off; a `null` or odd origin gives an attacker nothing `*` does not already give);
//! - `--allowed-origins a,b`: the `Origin` must equal one entry: scheme and host compared
//!   case-insensitively, ports compared after filling in the scheme's default (80 for
//!   `http`/`ws`, 443 for `https`/`wss`), so `https://a.com` and `https://a.com:443` are the
//!   same entry;
//! - no flag: same origin only. The `Origin`'s host and port must equal the `Host` header's:
//!   hosts case-insensitively, the origin's port defaulted from its scheme (80 for
//!   `http`/`ws`, 443 for `https`/`wss`; other schemes are refused), and a `Host` without a
//!   port standing for either default port (the server cannot know whether TLS ended at a
//!   proxy), so `http://a.com` matches `Host: a.com` and `Host: a.com:80`. The scheme itself
//!   is not compared, for the same reason;
//! - `Origin: null` (sandboxed frames, `file:` pages: anyone can produce it) and anything
//!   that does not parse as `scheme://host[:port]` are refused unless the policy is `*`.

use std::net::Ipv6Addr;

use super::trim_ows;

/// The origin policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPolicy {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Any,
    List(Vec<Origin>),
    SameOrigin,
}

/// Why a request's origin was refused (the server answers 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// `Origin: null`.
    #[error("null origin")]
    Null,
    /// The `Origin` value is not `scheme://host[:port]`.
    #[error("malformed origin")]
    Malformed,
    /// Not one of `--allowed-origins`.
    #[error("origin not allowed")]
    NotAllowed,
    /// Same-origin policy: the origin's host and port are not the `Host` header's.
    #[error("cross-origin request")]
    CrossOrigin,
    /// Same-origin policy, an `Origin` but no `Host` header.
    #[error("missing host header")]
    MissingHost,
    /// Same-origin policy, a `Host` header that is not `host[:port]`.
    #[error("malformed host header")]
    MalformedHost,
}

/// An entry of `--allowed-origins` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid allowed origin {entry:?}: {reason}")]
pub struct OriginListError {
    /// The entry as written (trimmed).
    pub entry: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A parsed origin: lowercase scheme and host (IPv6 in brackets, compressed), and the port
/// with the scheme's default filled in (`None` for an unknown scheme without a port).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

/// A parsed `Host` header: lowercase host and the port if one was written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPort {
    host: String,
    port: Option<u16>,
}

impl OriginPolicy {
    /// Same origin only (no `--allowed-origins`).
    pub fn same_origin() -> Self {
        Self {
            kind: Kind::SameOrigin,
        }
    }

    /// Every origin (`--allowed-origins '*'`).
    pub fn any() -> Self {
        Self { kind: Kind::Any }
    }

    /// The policy for the `--allowed-origins` flag: `None` is [`OriginPolicy::same_origin`],
    /// `Some(list)` is [`OriginPolicy::parse`].
    pub fn from_flag(flag: Option<&str>) -> Result<Self, OriginListError> {
        flag.map_or(Ok(Self::same_origin()), Self::parse)
    }

    /// Parses `--allowed-origins`: `*` alone, or a comma-separated list of exact origins
    /// `scheme://host[:port]` (any scheme, e.g. `https://chat.example.com`,
    /// `http://localhost:8080`, `capacitor://localhost`). Whitespace around entries is
    /// ignored. Refused, naming the entry: an empty list or entry, `*` with other entries,
    /// `null`, a path, query, fragment or user info (`https://a.com/` included: browsers never
    /// send the slash), a bad host or port.
    pub fn parse(list: &str) -> Result<Self, OriginListError> {
        let err = |entry: &str, reason| OriginListError {
            entry: entry.to_owned(),
            reason,
        };
        if list.trim() == "*" {
            return Ok(Self::any());
        }
        let mut origins = Vec::new();
        for entry in list.split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(err(entry, "empty entry"));
            }
            if entry == "*" {
                return Err(err(entry, "'*' must be the only entry"));
            }
            if entry.eq_ignore_ascii_case("null") {
                return Err(err(entry, "the null origin cannot be allowed"));
            }
            let origin = parse_origin(entry.as_bytes()).map_err(|reason| err(entry, reason))?;
            origins.push(origin);
        }
        Ok(Self {
            kind: Kind::List(origins),
        })
    }

    /// True for `*`.
    pub fn is_any(&self) -> bool {
        self.kind == Kind::Any
    }

    /// Checks a request's `Origin` and `Host` header values (as received; surrounding spaces
    /// and tabs are ignored). See the module rules. A request that repeats `Origin` should be
    /// refused by the caller before this (browsers send one).
    pub fn check(&self, origin: Option<&[u8]>, host: Option<&[u8]>) -> Result<(), OriginError> {
        let Some(origin) = origin else {
            return Ok(());
        };
        if self.kind == Kind::Any {
            return Ok(());
        }
        let origin = trim_ows(origin);
        if origin.eq_ignore_ascii_case(b"null") {
            return Err(OriginError::Null);
        }
        let origin = parse_origin(origin).map_err(|_| OriginError::Malformed)?;
        match &self.kind {
            Kind::Any => Ok(()),
            Kind::List(list) => {
                if list.contains(&origin) {
                    Ok(())
                } else {
                    Err(OriginError::NotAllowed)
                }
            }
            Kind::SameOrigin => {
                let host = host.ok_or(OriginError::MissingHost)?;
                let host =
                    parse_host_port(trim_ows(host)).map_err(|_| OriginError::MalformedHost)?;
                let origin_port = match origin.scheme.as_str() {
                    "http" | "https" | "ws" | "wss" => origin.port,
                    _ => return Err(OriginError::CrossOrigin),
                };
                let same_port = match host.port {
                    Some(p) => origin_port == Some(p),
                    None => matches!(origin_port, Some(80 | 443)),
                };
                if origin.host == host.host && same_port {
                    Ok(())
                } else {
                    Err(OriginError::CrossOrigin)
                }
            }
        }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// `scheme://host[:port]`, nothing else.
fn parse_origin(s: &[u8]) -> Result<Origin, &'static str> {
    let s = std::str::from_utf8(s).map_err(|_| "not ASCII")?;
    let (scheme, authority) = s.split_once("://").ok_or("must be scheme://host[:port]")?;
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err("bad scheme");
    }
    if authority.contains(['/', '?', '#']) {
        return Err("must be scheme://host[:port] without a path");
    }
    if authority.contains('@') {
        return Err("must not have user info");
    }
    let scheme = scheme.to_ascii_lowercase();
    let hp = parse_host_port(authority.as_bytes())?;
    let port = hp.port.or_else(|| default_port(&scheme));
    Ok(Origin {
        scheme,
        host: hp.host,
        port,
    })
}

/// `host[:port]`: a DNS name or IPv4 address (letters, digits, `-`, `.`, `_`), or `[IPv6]`.
fn parse_host_port(s: &[u8]) -> Result<HostPort, &'static str> {
    let s = std::str::from_utf8(s).map_err(|_| "not ASCII")?;
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or("bad host")?;
        let v6: Ipv6Addr = v6.parse().map_err(|_| "bad host")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("bad host")?),
        };
        (format!("[{v6}]"), port)
    } else {
        let (host, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !host_ok {
            return Err("bad host");
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        Some(p) => {
            let valid = (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
            Some(p.parse::<u16>().ok().filter(|_| valid).ok_or("bad port")?)
        }
    };
    Ok(HostPort { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &str) -> OriginPolicy {
        OriginPolicy::parse(s).unwrap()
    }

    fn check(p: &OriginPolicy, origin: &str, host: &str) -> Result<(), OriginError> {
        p.check(Some(origin.as_bytes()), Some(host.as_bytes()))
    }

    #[test]
    fn no_origin_is_always_allowed() {
        for p in [
            OriginPolicy::same_origin(),
            list("https://a.com"),
            OriginPolicy::any(),
        ] {
            assert_eq!(p.check(None, None), Ok(()));
            assert_eq!(p.check(None, Some(b"b.com")), Ok(()));
        }
    }

    #[test]
    fn star_allows_everything() {
        let p = list(" * ");
        assert!(p.is_any());
        for o in ["https://evil.com", "null", "garbage", ""] {
            assert_eq!(p.check(Some(o.as_bytes()), None), Ok(()), "{o}");
        }
        assert_eq!(OriginPolicy::from_flag(Some("*")), Ok(OriginPolicy::any()));
    }

    #[test]
    fn listed_origins() {
        let p = list("https://Chat.Example.com, http://localhost:8080,capacitor://localhost, https://a.com:443, http://[::1]:3000");
        assert!(!p.is_any());
        for ok in [
            "https://chat.example.com",
            "HTTPS://CHAT.EXAMPLE.COM",
            "https://chat.example.com:443",
            "http://localhost:8080",
            "capacitor://localhost",
            "https://a.com",
            "http://[::1]:3000",
            "http://[0:0::1]:3000",
            " https://a.com\t",
        ] {
            assert_eq!(check(&p, ok, "ignored"), Ok(()), "{ok}");
        }
        for (bad, err) in [
            ("http://chat.example.com", OriginError::NotAllowed),
            ("https://chat.example.com:8443", OriginError::NotAllowed),
            ("https://evil.chat.example.com", OriginError::NotAllowed),
            ("https://chat.example.com.evil.com", OriginError::NotAllowed),
            ("http://localhost", OriginError::NotAllowed),
            ("http://localhost:8081", OriginError::NotAllowed),
            ("capacitor://localhost:1", OriginError::NotAllowed),
            ("wss://a.com", OriginError::NotAllowed),
            ("null", OriginError::Null),
            ("NULL", OriginError::Null),
            ("https://a.com/", OriginError::Malformed),
            ("https://a.com/x", OriginError::Malformed),
            ("https://u@a.com", OriginError::Malformed),
            ("a.com", OriginError::Malformed),
            ("https://", OriginError::Malformed),
            ("https://a.com:", OriginError::Malformed),
            ("https://a.com:99999", OriginError::Malformed),
            ("https://a.com:+1", OriginError::Malformed),
            ("https://a com", OriginError::Malformed),
            ("https://[::1", OriginError::Malformed),
            ("https://[nope]", OriginError::Malformed),
            ("1https://a.com", OriginError::Malformed),
            ("https://\u{e9}.com", OriginError::Malformed),
            ("", OriginError::Malformed),
        ] {
            assert_eq!(check(&p, bad, "a.com"), Err(err), "{bad}");
        }
        assert_eq!(
            p.check(Some(b"https://a.\xff.com"), None),
            Err(OriginError::Malformed)
        );
    }

    #[test]
    fn list_errors_name_the_entry() {
        for (flag, entry, reason) in [
            ("", "", "empty entry"),
            ("https://a.com,", "", "empty entry"),
            ("*,https://a.com", "*", "'*' must be the only entry"),
            ("null", "null", "the null origin cannot be allowed"),
            (
                "https://a.com/",
                "https://a.com/",
                "must be scheme://host[:port] without a path",
            ),
            ("a.com", "a.com", "must be scheme://host[:port]"),
            ("https://a.com:0x50", "https://a.com:0x50", "bad port"),
            ("https://a.com:65536", "https://a.com:65536", "bad port"),
            (
                "https://u:p@a.com",
                "https://u:p@a.com",
                "must not have user info",
            ),
            ("ht tp://a.com", "ht tp://a.com", "bad scheme"),
            ("file://", "file://", "bad host"),
        ] {
            let e = OriginPolicy::parse(flag).unwrap_err();
            assert_eq!((e.entry.as_str(), e.reason), (entry, reason), "{flag}");
        }
        assert_eq!(
            OriginPolicy::from_flag(Some("https://ok.com, https://bad.com/")).unwrap_err().to_string(),
            "invalid allowed origin \"https://bad.com/\": must be scheme://host[:port] without a path"
        );
    }

    #[test]
    fn same_origin_default_ports() {
        let p = OriginPolicy::from_flag(None).unwrap();
        assert_eq!(p, OriginPolicy::same_origin());
        for (origin, host) in [
            ("http://a.com", "a.com"),
            ("http://a.com", "a.com:80"),
            ("https://a.com", "a.com"),
            ("https://a.com", "a.com:443"),
            ("https://a.com:443", "A.COM"),
            ("http://A.com:8080", "a.com:8080"),
            ("https://a.com:8080", "a.com:8080"),
            ("ws://a.com", "a.com:80"),
            ("wss://a.com", "a.com:443"),
            ("http://127.0.0.1:9000", "127.0.0.1:9000"),
            ("http://[::1]:9000", "[0::1]:9000"),
            ("http://[::1]", "[::1]"),
            ("http://a.com", " a.com "),
        ] {
            assert_eq!(check(&p, origin, host), Ok(()), "{origin} vs {host}");
        }
        for (origin, host) in [
            ("http://a.com", "a.com:443"),
            ("https://a.com", "a.com:80"),
            ("http://a.com:8080", "a.com"),
            ("http://a.com", "a.com:8080"),
            ("http://evil.com", "a.com"),
            ("http://a.com.evil.com", "a.com"),
            ("http://sub.a.com", "a.com"),
            ("http://a.com", "sub.a.com"),
            ("capacitor://a.com", "a.com"),
            ("http://[::1]:9000", "[::2]:9000"),
        ] {
            assert_eq!(
                check(&p, origin, host),
                Err(OriginError::CrossOrigin),
                "{origin} vs {host}"
            );
        }
        assert_eq!(
            p.check(Some(b"http://a.com"), None),
            Err(OriginError::MissingHost)
        );
        for host in ["", "a.com:", "a.com:x", "a com", "[::1", "a.com/x", "a@b"] {
            assert_eq!(
                check(&p, "http://a.com", host),
                Err(OriginError::MalformedHost),
                "{host}"
            );
        }
        assert_eq!(check(&p, "null", "a.com"), Err(OriginError::Null));
        assert_eq!(
            check(&p, "http://a.com/", "a.com"),
            Err(OriginError::Malformed)
        );
    }
}
