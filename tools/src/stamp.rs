//! The stamp that broadcast payloads and chat contents start with: sender id, the sender's
//! counter and the send time (`CLOCK_MONOTONIC` ns, comparable across the worker processes of
//! one run), as 40 fixed-width lowercase hex digits, so any receiver can measure latency and
//! tell whose message it got. ASCII only: valid as text and as a JSON string without escapes.

/// Stamp length in bytes: 8 hex sender id, 16 hex counter, 16 hex time.
pub const LEN: usize = 40;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// One message's identity and send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub sender: u32,
    pub counter: u64,
    pub sent_ns: u64,
}

fn put_hex(dst: &mut [u8], v: u64) {
    let n = dst.len();
    for (i, b) in dst.iter_mut().enumerate() {
        *b = HEX[((v >> (4 * (n - 1 - i))) & 0xF) as usize];
    }
}

fn get_hex(src: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &c in src {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(d);
    }
    Some(v)
}

impl Stamp {
    /// Writes the stamp into the first `LEN` bytes of `p` (which must be at least that long).
    pub fn write(&self, p: &mut [u8]) {
        put_hex(&mut p[0..8], u64::from(self.sender));
        put_hex(&mut p[8..24], self.counter);
        put_hex(&mut p[24..40], self.sent_ns);
    }

    /// The stamp at the start of `p`, or None if it does not start with one.
    pub fn read(p: &[u8]) -> Option<Stamp> {
        let h = p.get(..LEN)?;
        Some(Stamp {
            sender: get_hex(&h[0..8])? as u32,
            counter: get_hex(&h[8..24])?,
            sent_ns: get_hex(&h[24..40])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_a_stamp() {
        let s = Stamp {
            sender: 0xDEAD_BEEF,
            counter: 123_456_789,
            sent_ns: u64::MAX - 5,
        };
        let mut p = vec![b'x'; 64];
        s.write(&mut p);
        assert!(p.is_ascii());
        assert_eq!(Stamp::read(&p), Some(s));
        assert_eq!(Stamp::read(b"hello"), None);
        assert_eq!(Stamp::read(&[b'z'; 40]), None);
        assert_eq!(Stamp::read(&[b'A'; 40]), None);
    }
}
