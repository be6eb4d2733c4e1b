//! Fuzzes the opening handshake: `http::parse_head` on arbitrary bytes arriving in arbitrary
//! pieces, then `ws::handshake::validate_upgrade`, `write_accept` and the rejection responses
//! (`RequestError` / `UpgradeError`) on whatever it returns.
//!
//! Input layout:
//! - byte 0: configuration. Bit 0 set: `max_head = 64 + 8 * (byte >> 1)` (64..=1080 bytes, so
//!   the limit is reachable with small inputs); clear: `DEFAULT_MAX_HEAD`.
//! - byte 1: the number `n` of split points that follow (low 3 bits).
//! - the next `2 * n` bytes: split points (little-endian u16, taken modulo the request length).
//! - everything else: the bytes the client sends.
//!
//! The request is parsed the way the reactor does it: after each arrival, on everything received
//! so far, until `parse_head` returns something other than `Ok(None)`. That result must equal
//! parsing all bytes at once.

#![no_main]

use corecast::http::{parse_head, RequestError, RequestHead, DEFAULT_MAX_HEAD};
use corecast::ws::handshake::{self, select_protocol, validate_upgrade, write_accept};
use libfuzzer_sys::fuzz_target;

/// Subprotocols the fuzzed server "supports".
const PROTOCOLS: &[&str] = &["chat", "superchat"];
/// Requests up to this length are also parsed after every single byte (quadratic).
const BYTEWISE_MAX: usize = 512;

/// `parse_head` once answered a malformed head with `HeadTooLarge` instead of `Malformed` when
/// more than `max_head` bytes were buffered (see `head_error_does_not_depend_on_arrival` in
/// tests/codec_props.rs); `true` would treat the two errors as equal when they are the only
/// difference.
const TOLERATE_MALFORMED_VS_TOO_LARGE: bool = false;

/// Parses `data` as it would be seen after each arrival ending at one of `splits`.
fn parse_incrementally<'a>(
    data: &'a [u8],
    splits: &[usize],
    max_head: usize,
) -> Result<Option<RequestHead<'a>>, RequestError> {
    for &end in splits.iter().chain(std::iter::once(&data.len())) {
        match parse_head(&data[..end], max_head) {
            Ok(None) => {}
            done => return done,
        }
    }
    Ok(None)
}

/// Parses `out` as an HTTP/1.1 response; returns the status and checks Content-Length.
fn check_response(out: &[u8]) -> u16 {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut res = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(n)) = res.parse(out) else {
        panic!(
            "response is not a complete http head: {:?}",
            String::from_utf8_lossy(out)
        );
    };
    assert_eq!(res.version, Some(1));
    let status = res.code.unwrap_or_default();
    let content_length = res
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(usize::MAX)
        });
    assert_eq!(content_length.unwrap_or(0), out.len() - n, "content-length");
    status
}

fn check_head(head: &RequestHead<'_>, data: &[u8], max_head: usize) {
    assert!(head.head_len <= data.len() && head.head_len <= max_head);
    assert!(data[..head.head_len].ends_with(b"\n"));
    let _ = head.protocols().count();
    let _ = head.extensions().count();
    let protocol = select_protocol(head, PROTOCOLS);
    let _ = head.header_values("x-forwarded-for").count();
    let _ = head.query_param("token");
    match validate_upgrade(head) {
        Ok(upgrade) => {
            let key = head.ws_key.unwrap_or_default();
            assert!(handshake::is_valid_key(key));
            assert_eq!(upgrade.accept, handshake::accept_key(key));
            assert_eq!(head.method, "GET");
            let mut out = Vec::new();
            write_accept(&mut out, &upgrade, protocol, Some("permessage-deflate"));
            assert_eq!(check_response(&out), 101);
        }
        Err(e) => {
            let mut out = Vec::new();
            e.response().write_to(&mut out);
            assert_eq!(check_response(&out), e.status().0);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [cfg, n, rest @ ..] = data else {
        return;
    };
    let max_head = if cfg & 1 == 1 {
        64 + 8 * usize::from(cfg >> 1)
    } else {
        DEFAULT_MAX_HEAD
    };
    let n = usize::from(n & 0b111).min(rest.len() / 2);
    let (points, request) = rest.split_at(2 * n);
    let mut splits: Vec<usize> = points
        .chunks_exact(2)
        .map(|p| usize::from(u16::from_le_bytes([p[0], p[1]])) % (request.len() + 1))
        .collect();
    splits.sort_unstable();

    let whole = parse_head(request, max_head);
    let pieces = parse_incrementally(request, &splits, max_head);
    let bytewise = if request.len() <= BYTEWISE_MAX {
        let every: Vec<usize> = (0..request.len()).collect();
        Some(parse_incrementally(request, &every, max_head))
    } else {
        None
    };
    for split in std::iter::once(pieces).chain(bytewise) {
        let same = match (&whole, &split) {
            (Err(RequestError::HeadTooLarge), Err(RequestError::Malformed))
                if TOLERATE_MALFORMED_VS_TOO_LARGE && request.len() > max_head =>
            {
                true
            }
            (a, b) => a == b,
        };
        assert!(same, "whole {whole:?} != split {split:?}");
    }

    match whole {
        Ok(Some(head)) => check_head(&head, request, max_head),
        Ok(None) => assert!(request.len() < max_head),
        Err(e) => {
            let mut out = Vec::new();
            e.response().write_to(&mut out);
            assert_eq!(check_response(&out), e.status().0);
        }
    }
});
