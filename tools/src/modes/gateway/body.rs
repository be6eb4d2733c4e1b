//! The gateway mode's events on the wire, both ways: the AMQP body the publisher sends,
//! `{"ownerId":"owner-17","data":{"s":"<stamp>","p":"xx..x"}}`, and the frame every owner must
//! receive for it, `{"type":"<routing key>","data":<the same data, byte for byte>}`. The stamp
//! (`crate::stamp`: owner, event number, publish time) lets an owner check that the event was
//! its own and measure the latency. Pure formatting and checking: no IO, no clock.

use crate::stamp::{self, Stamp};

/// `data` without padding: `{"s":"` + stamp + `","p":"` + `"}`.
pub const DATA_MIN: usize = 6 + stamp::LEN + 7 + 2;
/// Largest `data` the mode sends.
pub const DATA_MAX: usize = 64 * 1024;

/// Whether `s` is 1-128 bytes of `A-Z a-z 0-9 - _ .` (no JSON or URL escaping needed).
pub fn is_plain(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Event `n` for `owner` published at `sent_ns`: `data` of exactly `size` bytes (>= DATA_MIN).
pub fn write_data(out: &mut Vec<u8>, owner: u64, n: u64, sent_ns: u64, size: usize) {
    out.extend_from_slice(b"{\"s\":\"");
    let at = out.len();
    out.resize(at + stamp::LEN, b'0');
    Stamp {
        sender: owner as u32,
        counter: n,
        sent_ns,
    }
    .write(&mut out[at..]);
    out.extend_from_slice(b"\",\"p\":\"");
    let pad = size.saturating_sub(DATA_MIN);
    out.resize(out.len() + pad, b'x');
    out.extend_from_slice(b"\"}");
}

/// The AMQP body of event `n`: `{"FIELD":"PREFIXowner","data":DATA}`. `field` and `prefix`
/// are plain ([`is_plain`]).
pub fn write_body(
    out: &mut Vec<u8>,
    field: &str,
    prefix: &str,
    owner: u64,
    n: u64,
    sent_ns: u64,
    size: usize,
) {
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(field.as_bytes());
    out.extend_from_slice(b"\":\"");
    out.extend_from_slice(prefix.as_bytes());
    corecast::chat::json::write_u64(out, owner);
    out.extend_from_slice(b"\",\"data\":");
    write_data(out, owner, n, sent_ns, size);
    out.push(b'}');
}

/// An upper bound of [`write_body`]'s length, for the buffer.
pub fn body_len(field: &str, prefix: &str, size: usize) -> usize {
    field.len() + prefix.len() + 20 + size.max(DATA_MIN) + 16
}

/// What every delivered frame must be, but for the stamp.
#[derive(Debug, Clone)]
pub struct Expect {
    /// `{"type":"KEY","data":{"s":"`.
    head: Vec<u8>,
    /// `","p":"xx..x"}}`.
    tail: Vec<u8>,
}

impl Expect {
    /// For events with routing key `key` (plain) and `data` of `size` bytes.
    pub fn new(key: &str, size: usize) -> Self {
        let mut head = b"{\"type\":\"".to_vec();
        head.extend_from_slice(key.as_bytes());
        head.extend_from_slice(b"\",\"data\":{\"s\":\"");
        let mut tail = b"\",\"p\":\"".to_vec();
        tail.resize(tail.len() + size.saturating_sub(DATA_MIN), b'x');
        tail.extend_from_slice(b"\"}}");
        Expect { head, tail }
    }

    /// The stamp of `frame` if it is exactly an event frame of this run.
    pub fn check(&self, frame: &[u8]) -> Option<Stamp> {
        let rest = frame.strip_prefix(self.head.as_slice())?;
        let (st, tail) = (rest.get(..stamp::LEN)?, rest.get(stamp::LEN..)?);
        if tail != self.tail.as_slice() {
            return None;
        }
        Stamp::read(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_frames_agree_byte_for_byte() {
        for size in [DATA_MIN, DATA_MIN + 1, 128, 1000] {
            let mut body = Vec::new();
            write_body(&mut body, "ownerId", "owner-", 17, 12_345, 999, size);
            assert!(body.len() <= body_len("ownerId", "owner-", size));
            let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
            assert_eq!(v["ownerId"], "owner-17");
            // What corecast sends: the routing key as type, data verbatim.
            let data_at = body
                .windows(8)
                .position(|w| w == b"\"data\":{")
                .expect("data")
                + 7;
            let data = &body[data_at..body.len() - 1];
            assert_eq!(data.len(), size);
            let mut frame = b"{\"type\":\"bench.event.created\",\"data\":".to_vec();
            frame.extend_from_slice(data);
            frame.push(b'}');
            let e = Expect::new("bench.event.created", size);
            let st = e.check(&frame).expect("an event frame");
            assert_eq!((st.sender, st.counter, st.sent_ns), (17, 12_345, 999));
            // Any other byte, length or key is not.
            let mut bad = frame.clone();
            let last = bad.len() - 4;
            bad[last] = b'y';
            assert!(e.check(&bad).is_none());
            assert!(e.check(&frame[..frame.len() - 1]).is_none());
            assert!(Expect::new("bench.event.other", size)
                .check(&frame)
                .is_none());
            assert!(Expect::new("bench.event.created", size + 1)
                .check(&frame)
                .is_none());
        }
    }

    #[test]
    fn plain_names() {
        assert!(is_plain("owner-"));
        assert!(is_plain("bench.event.created"));
        for bad in ["", "a\"b", "a b", "a\\b", "é", "a?b", &"x".repeat(129)] {
            assert!(!is_plain(bad), "{bad:?}");
        }
    }
}
