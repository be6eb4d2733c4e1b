//! Fuzzes the side door's incremental request reading: `http::parse_head` on everything
//! received so far after each arrival, then `http::body` (Content-Length bodies with a size
//! limit) until the body is complete, exactly as the reactor reads an API call.
//!
//! Input layout:
//! - byte 0: `max_head = 64 + 16 * (byte & 0x3f)` when bit 7 is set, else the default 8 KiB.
//! - byte 1: body limit `= 4 * byte` (0..=1020 bytes).
//! - byte 2: the number `n` of split points that follow (low 3 bits).
//! - the next `2 * n` bytes: split points (little-endian u16, modulo the request length).
//! - everything else: the bytes the client sends.
//!
//! Checks: no panic; the outcome (head error, body error, incomplete, or head + body) is the same
//! whole, in the input's pieces and one byte at a time; a body is never longer than the limit,
//! starts right after the head and is exactly `Content-Length` bytes of the input.

#![no_main]

use corecast::http::{body, parse_head, BodyError, RequestError, DEFAULT_MAX_HEAD};
use libfuzzer_sys::fuzz_target;

/// Requests up to this length are also read after every single byte (quadratic).
const BYTEWISE_MAX: usize = 512;

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Incomplete,
    Head(RequestError),
    Body(BodyError),
    /// head length, body bounds in the input
    Complete(usize, usize, usize),
}

fn read_after(data: &[u8], ends: &[usize], max_head: usize, limit: usize) -> Outcome {
    for &end in ends.iter().chain(std::iter::once(&data.len())) {
        let buf = &data[..end];
        let head = match parse_head(buf, max_head) {
            Ok(None) => continue,
            Err(e) => return Outcome::Head(e),
            Ok(Some(h)) => h,
        };
        match body(&head, buf, limit) {
            Ok(None) => continue,
            Err(e) => return Outcome::Body(e),
            Ok(Some(b)) => {
                let start = b.as_ptr() as usize - data.as_ptr() as usize;
                return Outcome::Complete(head.head_len, start, start + b.len());
            }
        }
    }
    Outcome::Incomplete
}

fuzz_target!(|data: &[u8]| {
    let [cfg, lim, n, rest @ ..] = data else {
        return;
    };
    let max_head = if cfg & 0x80 != 0 {
        64 + 16 * usize::from(cfg & 0x3f)
    } else {
        DEFAULT_MAX_HEAD
    };
    let limit = 4 * usize::from(*lim);
    let n = usize::from(n & 0b111).min(rest.len() / 2);
    let (points, request) = rest.split_at(2 * n);
    let mut splits: Vec<usize> = points
        .chunks_exact(2)
        .map(|p| usize::from(u16::from_le_bytes([p[0], p[1]])) % (request.len() + 1))
        .collect();
    splits.sort_unstable();

    let whole = read_after(request, &[], max_head, limit);
    assert_eq!(whole, read_after(request, &splits, max_head, limit), "pieces");
    if request.len() <= BYTEWISE_MAX {
        let every: Vec<usize> = (0..request.len()).collect();
        assert_eq!(whole, read_after(request, &every, max_head, limit), "bytewise");
    }
    if let Outcome::Complete(head_len, start, end) = whole {
        assert!(head_len <= max_head);
        assert_eq!(start, head_len, "the body starts right after the head");
        assert!(end - start <= limit, "body over the limit");
        assert!(end <= request.len());
        let head = parse_head(request, max_head).ok().flatten().expect("complete head");
        assert_eq!(head.content_length, Some((end - start) as u64));
    }
});
