//! Fuzzes the RESP2 reply decoder (`corecast::relay::resp::Decoder`) on the byte stream a Redis
//! server (hostile or broken) sends: the input chooses the limits and where the stream is cut.
//!
//! Input layout:
//! - byte 0: bit 7 clear: the default limits; set: small ones, `max_bulk` from bits 0-2
//!   (0, 1, 2, 5, 16, 64, 300, 4096 bytes) and `max_line` from bits 3-5 (0, 1, 2, 3, 8, 20,
//!   64, 1000 bytes).
//! - byte 1 (small limits only): `max_depth` = bits 0-3 (0..15), `max_array` from bits 4-6
//!   (0, 1, 2, 3, 7, 16, 100, 1 Mi).
//! - next byte: the number `n` of cut points that follow (low 3 bits).
//! - the next `2 * n` bytes: cut points (little-endian u16, modulo the stream length).
//! - everything else: the stream.
//!
//! The stream is decoded fed whole, arriving in the chosen pieces, and one byte at a time (the
//! decoder is linear, so always). Checks: no panic; the three give the same replies (and the
//! same bytes consumed by each), then the same error or the same leftover; a reference decoder
//! written here (recursive, on the whole buffer, `str::parse::<i64>` for integers) agrees;
//! every reply is within the limits, and written back with `Reply::write` it decodes to itself;
//! the decoder's memory stays proportional to the input (a counting allocator: a declared
//! length of a million elements or 64 MiB must not reserve them before they arrive).

#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use corecast::relay::resp::{Decoder, Limit, Limits, Malformed, Reply, RespError};
use libfuzzer_sys::fuzz_target;

/// Counts live heap bytes and their peak, to check the decoder's memory use.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator with the same arguments; the
// counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(live, Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout` (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let live = LIVE.fetch_add(new_size - layout.size(), Relaxed) + new_size - layout.size();
            PEAK.fetch_max(live, Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Relaxed);
        }
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// How a feed ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Error(RespError),
    /// The bytes left unconsumed (an unfinished reply).
    NeedMore(usize),
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Each reply and the bytes it took.
    replies: Vec<(Reply, usize)>,
    end: End,
}

/// Feeds the stream in pieces ending at `ends` (increasing), as a connection does: append,
/// decode until `None`, drop what was consumed.
fn feed(limits: Limits, stream: &[u8], ends: impl Iterator<Item = usize>) -> Outcome {
    let mut dec = Decoder::new(limits);
    let mut buf = Vec::new();
    let mut fed = 0;
    let mut replies = Vec::new();
    for end in ends.chain([stream.len()]) {
        buf.extend_from_slice(&stream[fed..end]);
        fed = end;
        let mut at = 0;
        loop {
            match dec.decode(&buf[at..]) {
                Ok(Some((reply, n))) => {
                    assert!(n > 0 && n <= buf.len() - at, "consumed {n}");
                    replies.push((reply, n));
                    at += n;
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(dec.is_idle(), "reset after an error");
                    return Outcome {
                        replies,
                        end: End::Error(e),
                    };
                }
            }
        }
        buf.drain(..at);
    }
    Outcome {
        replies,
        end: End::NeedMore(buf.len()),
    }
}

// ---- the reference decoder: recursive, on the whole buffer ------------------------------------

/// `Ok(None)`: the buffer ends inside the value.
type Step = Result<Option<(Reply, usize)>, RespError>;

/// The value at `at`, nested in `depth` arrays.
fn reference(buf: &[u8], at: usize, depth: usize, lim: &Limits) -> Step {
    let Some(&ty) = buf.get(at) else {
        return Ok(None);
    };
    if !b"+-:$*".contains(&ty) {
        return Err(Malformed::TypeByte.into());
    }
    // The line: up to max_line bytes, then CRLF; nothing further is looked at.
    let start = at + 1;
    let mut i = start;
    let cr = loop {
        if i > start + lim.max_line {
            return Err(RespError::TooLarge(Limit::Line));
        }
        match buf.get(i) {
            None => return Ok(None),
            Some(b'\n') => return Err(Malformed::LineEnd.into()),
            Some(b'\r') => break i,
            Some(_) => i += 1,
        }
    };
    match buf.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(Malformed::LineEnd.into()),
    }
    let line = &buf[start..cr];
    let next = cr + 2;
    let int = || -> Result<i64, RespError> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or(Malformed::Integer.into())
    };
    let len = || -> Result<Option<usize>, RespError> {
        match int()? {
            -1 => Ok(None),
            n if n < -1 => Err(Malformed::Length.into()),
            n => Ok(Some(n as usize)),
        }
    };
    match ty {
        b'+' => Ok(Some((Reply::Simple(line.to_vec()), next))),
        b'-' => Ok(Some((Reply::Error(line.to_vec()), next))),
        b':' => Ok(Some((Reply::Integer(int()?), next))),
        b'$' => match len()? {
            None => Ok(Some((Reply::Bulk(None), next))),
            Some(n) if n > lim.max_bulk => Err(RespError::TooLarge(Limit::Bulk)),
            Some(n) => {
                if buf.len() < next + n + 2 {
                    return Ok(None);
                }
                if &buf[next + n..next + n + 2] != b"\r\n" {
                    return Err(Malformed::BulkEnd.into());
                }
                Ok(Some((
                    Reply::Bulk(Some(buf[next..next + n].to_vec())),
                    next + n + 2,
                )))
            }
        },
        _ => {
            let n = len()?;
            if depth + 1 > lim.max_depth {
                return Err(RespError::TooDeep);
            }
            let Some(n) = n else {
                return Ok(Some((Reply::Array(None), next)));
            };
            if n > lim.max_array {
                return Err(RespError::TooLarge(Limit::Array));
            }
            let mut items = Vec::new();
            let mut at = next;
            for _ in 0..n {
                let Some((item, end)) = reference(buf, at, depth + 1, lim)? else {
                    return Ok(None);
                };
                items.push(item);
                at = end;
            }
            Ok(Some((Reply::Array(Some(items)), at)))
        }
    }
}

fn reference_all(stream: &[u8], lim: &Limits) -> Outcome {
    let mut replies = Vec::new();
    let mut at = 0;
    loop {
        match reference(stream, at, 0, lim) {
            Ok(Some((reply, end))) => {
                replies.push((reply, end - at));
                at = end;
            }
            Ok(None) => {
                return Outcome {
                    replies,
                    end: End::NeedMore(stream.len() - at),
                }
            }
            Err(e) => {
                return Outcome {
                    replies,
                    end: End::Error(e),
                }
            }
        }
    }
}

/// Checks a reply against the limits; returns its depth in arrays.
fn check_limits(reply: &Reply, lim: &Limits) -> usize {
    match reply {
        Reply::Simple(s) | Reply::Error(s) => {
            assert!(s.len() <= lim.max_line);
            assert!(!s.contains(&b'\r') && !s.contains(&b'\n'));
            0
        }
        Reply::Integer(_) | Reply::Bulk(None) => 0,
        Reply::Bulk(Some(b)) => {
            assert!(b.len() <= lim.max_bulk);
            0
        }
        Reply::Array(None) => 1,
        Reply::Array(Some(items)) => {
            assert!(items.len() <= lim.max_array);
            1 + items
                .iter()
                .map(|r| check_limits(r, lim))
                .max()
                .unwrap_or(0)
        }
    }
}

const BULKS: [usize; 8] = [0, 1, 2, 5, 16, 64, 300, 4096];
const LINES: [usize; 8] = [0, 1, 2, 3, 8, 20, 64, 1000];
const ARRAYS: [usize; 8] = [0, 1, 2, 3, 7, 16, 100, 1 << 20];

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    let (limits, rest) = if cfg & 0x80 == 0 {
        (Limits::default(), rest)
    } else {
        let Some((&cfg2, rest)) = rest.split_first() else {
            return;
        };
        let limits = Limits {
            max_bulk: BULKS[usize::from(cfg & 7)],
            max_line: LINES[usize::from((cfg >> 3) & 7)],
            max_depth: usize::from(cfg2 & 0x0f),
            max_array: ARRAYS[usize::from((cfg2 >> 4) & 7)],
        };
        (limits, rest)
    };
    let Some((&n, rest)) = rest.split_first() else {
        return;
    };
    let n = usize::from(n & 7).min(rest.len() / 2);
    let (points, stream) = rest.split_at(2 * n);
    let mut cuts: Vec<usize> = points
        .chunks_exact(2)
        .map(|p| usize::from(u16::from_le_bytes([p[0], p[1]])) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();

    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let whole = feed(limits, stream, std::iter::empty());
    let peak = PEAK.load(Relaxed) - before;
    // Replies cost at most about 11 bytes of memory per byte of input (a 3-byte element is a
    // 32-byte Reply), plus what arrays reserve and double into, plus the decoder's stack.
    assert!(
        peak <= 64 * stream.len() + 4096,
        "{peak} bytes of memory for {} bytes of input",
        stream.len()
    );

    assert_eq!(
        whole,
        feed(limits, stream, cuts.iter().copied()),
        "pieces {cuts:?}"
    );
    assert_eq!(whole, feed(limits, stream, 0..stream.len()), "byte by byte");
    assert_eq!(whole, reference_all(stream, &limits), "reference");

    let used: usize = whole.replies.iter().map(|(_, n)| n).sum();
    if let End::NeedMore(left) = whole.end {
        assert_eq!(used + left, stream.len());
    }
    let mut out = Vec::new();
    for (reply, _) in &whole.replies {
        assert!(check_limits(reply, &limits) <= limits.max_depth);
        out.clear();
        reply.write(&mut out);
        let again = Decoder::new(limits).decode(&out);
        assert_eq!(again, Ok(Some((reply.clone(), out.len()))), "written back");
    }
});
