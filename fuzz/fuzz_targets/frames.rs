//! Fuzzes the frame stream, not just one frame: the input chooses the limits and the chunk
//! sizes (uWebSockets' `makeChunked` idea), the rest is the byte stream a peer sends.
//!
//! Input layout:
//! - byte 0: configuration. Bits 0-2: `max_frame = 64 KiB >> (2 * bits)`; bits 3-4:
//!   `max_message` = `max_frame / 2`, `max_frame`, `2 * max_frame` or 64 KiB; bit 5: decode as a
//!   client (`require_mask = false`).
//! - byte 1: the number `n` of chunk sizes that follow (low 3 bits).
//! - the next `n` bytes: chunk sizes (`byte + 1`), used in a cycle.
//! - everything else: the stream.
//!
//! Every stream is decoded with and without RSV1 allowed, each time fed whole, in the chosen
//! chunks and (for short streams) one byte at a time. Nothing may panic, every event must obey
//! the rules the assembler promises, and all feeds must give the same events followed by the same
//! error or the same unconsumed bytes.

#![no_main]

use corecast::ws::frame::RSV1;
use corecast::ws::{Assembler, DataKind, Event, HeaderRules, MessageLimits, ProtocolError};
use libfuzzer_sys::fuzz_target;

/// The largest limit used: small enough that every run is fast.
const MAX_LIMIT: usize = 64 << 10;
/// Streams up to this length are also fed one byte at a time.
const BYTEWISE_MAX: usize = 2048;

/// An owned copy of an [`Event`].
#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Message {
        kind: DataKind,
        payload: Vec<u8>,
        compressed: bool,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, Vec<u8>),
}

/// How a feed ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The connection must be failed.
    Error(ProtocolError),
    /// Input ran out: the bytes still buffered (partly unmasked in place) and `is_idle`.
    NeedMore { leftover: Vec<u8>, idle: bool },
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Ev>,
    end: End,
}

/// Checks what the assembler promises about an event, and copies it.
fn own(ev: Event<'_>, limits: &MessageLimits) -> Ev {
    match ev {
        Event::Message {
            kind,
            payload,
            compressed,
        } => {
            assert!(
                payload.len() <= limits.max_message,
                "message over the limit"
            );
            if compressed {
                assert!(limits.header.allowed_rsv & RSV1 != 0, "rsv1 not negotiated");
            } else if kind == DataKind::Text {
                assert!(std::str::from_utf8(payload).is_ok(), "text is not utf-8");
            }
            Ev::Message {
                kind,
                payload: payload.to_vec(),
                compressed,
            }
        }
        Event::Ping(p) => {
            assert!(p.len() <= 125, "ping too long");
            Ev::Ping(p.to_vec())
        }
        Event::Pong(p) => {
            assert!(p.len() <= 125, "pong too long");
            Ev::Pong(p.to_vec())
        }
        Event::Close(c) => {
            assert!(c.reason.len() <= 123, "close reason too long");
            assert!(
                std::str::from_utf8(c.reason).is_ok(),
                "close reason not utf-8"
            );
            if let Some(code) = c.code {
                assert!(code.is_allowed_on_wire(), "close code {} accepted", code.0);
            } else {
                assert!(c.reason.is_empty(), "reason without a code");
            }
            Ev::Close(c.code.map(|c| c.0), c.reason.to_vec())
        }
    }
}

/// Feeds `stream` in chunks of `sizes[0]`, `sizes[1]`, ... (cycling), following the call order
/// documented on `Assembler`: call until it needs more input, drop `consumed` bytes each time.
fn feed(stream: &[u8], sizes: &[usize], limits: &MessageLimits) -> Outcome {
    let mut asm = Assembler::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut events = Vec::new();
    let mut rest = stream;
    let mut next = 0;
    while !rest.is_empty() {
        let n = sizes[next % sizes.len()].clamp(1, rest.len());
        next += 1;
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            let len = buf.len();
            let consumed = match asm.handle_bytes(&mut buf, limits) {
                Err(e) => {
                    return Outcome {
                        events,
                        end: End::Error(e),
                    }
                }
                Ok(d) => {
                    assert!(d.consumed <= len, "consumed more than given");
                    match d.event {
                        Some(ev) => {
                            assert!(d.consumed > 0, "event without consuming input");
                            events.push(own(ev, limits));
                        }
                        None if d.consumed == 0 => break,
                        None => {}
                    }
                    d.consumed
                }
            };
            buf.drain(..consumed);
        }
    }
    Outcome {
        events,
        end: End::NeedMore {
            idle: asm.is_idle(),
            leftover: buf,
        },
    }
}

fn limits_from(cfg: u8, allowed_rsv: u8) -> MessageLimits {
    let max_frame = MAX_LIMIT >> (2 * (cfg & 0b111));
    let max_message = match (cfg >> 3) & 0b11 {
        0 => max_frame / 2,
        1 => max_frame,
        2 => max_frame * 2,
        _ => MAX_LIMIT,
    };
    MessageLimits {
        header: HeaderRules {
            require_mask: cfg & 0b10_0000 == 0,
            allowed_rsv,
            max_frame: max_frame as u64,
        },
        max_message,
    }
}

fuzz_target!(|data: &[u8]| {
    let [cfg, n, rest @ ..] = data else {
        return;
    };
    let n = usize::from(n & 0b111).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let sizes: Vec<usize> = sizes.iter().map(|&b| usize::from(b) + 1).collect();

    for allowed_rsv in [0, RSV1] {
        let limits = limits_from(*cfg, allowed_rsv);
        let whole = feed(stream, &[usize::MAX], &limits);
        if !sizes.is_empty() {
            let chunked = feed(stream, &sizes, &limits);
            assert_eq!(whole, chunked, "chunks {sizes:?} differ from one piece");
        }
        if stream.len() <= BYTEWISE_MAX {
            let bytewise = feed(stream, &[1], &limits);
            assert_eq!(whole, bytewise, "byte-at-a-time differs from one piece");
        }
    }
});
