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

/// Eight lowercase hex digits as one number, eight bytes at a time (on the delivery path of
/// every receiver; the scalar reference is `get_hex_scalar`). `None` if any byte is not one.
fn hex8(src: &[u8; 8]) -> Option<u64> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The first digit is the most significant.
    let x = u64::from_be_bytes(*src);
    if x & HIGH != 0 {
        return None; // not ASCII
    }
    // Per byte (all < 0x80): the high bit of (b | 0x80) - c is set iff b >= c, and no byte
    // borrows from its neighbour.
    let at_least = |c: u64| ((x | HIGH) - ONES * c) & HIGH;
    let digit = at_least(0x30) & !at_least(0x3a); // '0'..='9'
    let alpha = at_least(0x61) & !at_least(0x67); // 'a'..='f'
    if digit | alpha != HIGH {
        return None;
    }
    // Low nibble, plus 9 for letters ('a' = 0x61 -> 1 + 9); then pack the eight nibbles.
    let n = (x & 0x0f0f_0f0f_0f0f_0f0f) + (alpha >> 7) * 9;
    let n = (n | (n >> 4)) & 0x00ff_00ff_00ff_00ff;
    let n = (n | (n >> 8)) & 0x0000_ffff_0000_ffff;
    Some((n | (n >> 16)) & 0x0000_0000_ffff_ffff)
}

/// 8 or 16 hex digits (`src.len()` is a multiple of 8).
fn get_hex(src: &[u8]) -> Option<u64> {
    src.chunks_exact(8).try_fold(0u64, |v, c| {
        let c: &[u8; 8] = c.try_into().ok()?;
        Some((v << 32) | hex8(c)?)
    })
}

/// Digit by digit: the reference for [`get_hex`].
#[cfg(test)]
fn get_hex_scalar(src: &[u8]) -> Option<u64> {
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
    fn word_hex_agrees_with_the_scalar_reference_for_every_byte_at_every_position() {
        for base in [
            *b"0123abcd",
            *b"fedcba98",
            *b"00000000",
            *b"ffffffff",
            *b"9a9a9a9a",
        ] {
            assert_eq!(hex8(&base), get_hex_scalar(&base));
            for at in 0..8 {
                for c in 0..=255u8 {
                    let mut d = base;
                    d[at] = c;
                    assert_eq!(hex8(&d), get_hex_scalar(&d), "{c:#x} at {at} in {base:?}");
                }
            }
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let alphabet = b"0123456789abcdefABx:/`g \\";
            let d = x
                .to_le_bytes()
                .map(|b| alphabet[usize::from(b) % alphabet.len()]);
            let d2 = [d, d].concat();
            assert_eq!(
                get_hex(&d2),
                get_hex_scalar(&d2),
                "{:?}",
                String::from_utf8_lossy(&d2)
            );
        }
        assert_eq!(get_hex(b"ffffffffffffffff"), Some(u64::MAX));
    }

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
