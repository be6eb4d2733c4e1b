//! Fuzzes the relay's message envelope (`corecast::relay::envelope`): what a node reads from a
//! Redis channel or history list, whoever wrote it.
//!
//! Input layout:
//! - byte 0, bit 0 clear: the rest is an envelope as received. Checks: no panic; when it
//!   parses, the payload is the input after the first LF, byte for byte (borrowed, not
//!   copied), the fields validate, writing the envelope back gives exactly the input, and the
//!   same header in front of another payload parses to the same kind, origin and fields.
//! - byte 0, bit 0 set: the rest, split at 0xff bytes, is the parts of an envelope to write:
//!   kind (the next byte's value modulo the 5 kinds), origin, room, seq (up to 8 bytes, little
//!   endian), user and payload (the parts as UTF-8, lossily). Checks: writing succeeds exactly
//!   when `validate` does (and writes nothing otherwise), and what is written parses back to
//!   the same envelope.

#![no_main]

use std::borrow::Cow;

use corecast::relay::envelope::{Envelope, Kind, Target};
use libfuzzer_sys::fuzz_target;

fn check_received(input: &[u8]) {
    let Ok(env) = Envelope::parse(input) else {
        return;
    };
    let nl = input
        .iter()
        .position(|&b| b == b'\n')
        .expect("a header line");
    assert_eq!(env.payload, &input[nl + 1..]);
    assert!(std::ptr::eq(env.payload.as_ptr(), input[nl + 1..].as_ptr()));
    assert_eq!(env.validate(), Ok(()));
    assert_eq!(env.kind(), env.target.kind());
    let mut out = Vec::new();
    env.write(&mut out).expect("a parsed envelope writes");
    assert_eq!(out, input, "written back");
    // The header alone decides kind, origin and fields.
    let mut other = input[..=nl].to_vec();
    other.extend_from_slice(b"\n\xff other payload cc1 room n r 1\n");
    let again = Envelope::parse(&other).expect("same header");
    assert_eq!((again.origin, &again.target), (env.origin, &env.target));
}

fn check_written(parts: &[u8]) {
    let mut it = parts.split(|&b| b == 0xff);
    let kind = Kind::ALL[usize::from(it.next().and_then(|k| k.first().copied()).unwrap_or(0)) % 5];
    let mut text = || String::from_utf8_lossy(it.next().unwrap_or_default()).into_owned();
    let origin = text();
    let room = text();
    let seq_bytes = text();
    let user = text();
    let payload = it.next().unwrap_or_default();
    let seq = seq_bytes
        .bytes()
        .take(8)
        .enumerate()
        .fold(0u64, |n, (i, b)| n | (u64::from(b) << (8 * i)));
    let user = Cow::Borrowed(user.as_str());
    let target = match kind {
        Kind::Room => Target::Room { room: &room, seq },
        Kind::Replay => Target::Replay { room: &room, seq },
        Kind::Presence => Target::Presence { room: &room, user },
        Kind::User => Target::User { user },
        Kind::Notify => Target::Notify { user },
        Kind::Disconnect => Target::Disconnect { user },
    };
    let env = Envelope {
        origin: &origin,
        target,
        payload,
    };
    let mut out = b"before".to_vec();
    match env.write(&mut out) {
        Err(e) => {
            assert_eq!(env.validate(), Err(e));
            assert_eq!(out, b"before", "nothing written on error");
        }
        Ok(()) => {
            assert_eq!(env.validate(), Ok(()));
            let parsed = Envelope::parse(&out[6..]).expect("what is written parses");
            assert_eq!(parsed, env);
            check_received(&out[6..]);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        check_received(rest);
    } else {
        check_written(rest);
    }
});
