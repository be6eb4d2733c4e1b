//! Admission checks for the chat endpoint, run before a WebSocket upgrade: who the client is
//! (behind trusted proxies), whether it may open another connection (per-IP rate), whether its
//! page may connect (Origin), and whether its token is good (HS256 JWT), plus the per-connection
//! message rate bucket.
//!
//! Everything here is pure policy: no sockets, no logging, no clock reads (callers pass `now`
//! as unix seconds or a monotonic millisecond value). It must not touch the reactor, the hub or
//! the HTTP responses; the caller maps each refusal to its status (503/429/403/401/400).

pub mod jwt;
pub mod origin;
pub mod proxy;
pub mod query;
pub mod ratelimit;

/// `s` without leading and trailing spaces and tabs (HTTP's optional whitespace, RFC 9110 §5.6.3).
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}
