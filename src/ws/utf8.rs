//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! Owns only the validator state (at most three bytes of an unfinished code point). It fails
//! at the first byte that can no longer begin or continue a valid sequence, even in the middle
//! of a frame, so a peer sending invalid text is rejected before the rest arrives
//! (RFC 6455 §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds that the
//! byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket
//! Connection_").

/// Error: the bytes fed so far are not a prefix of any valid UTF-8 string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid utf-8")]
pub struct Utf8Error;

/// Validates a UTF-8 stream fed in arbitrary pieces.
///
/// Invariant: `pending[..pending_len]` is a proper prefix of one valid code point
/// (`pending_len <= 3`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

impl Utf8Validator {
    /// Feeds the next piece; errors as soon as the stream cannot be valid UTF-8.
    #[inline]
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), Utf8Error> {
        // First finish a code point left unfinished by the previous piece.
        while self.pending_len > 0 {
            let Some((&b, rest)) = data.split_first() else {
                return Ok(());
            };
            data = rest;
            self.pending[self.pending_len as usize] = b;
            self.pending_len += 1;
            match std::str::from_utf8(&self.pending[..self.pending_len as usize]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_some() => return Err(Utf8Error),
                Err(_) => {} // still a valid prefix; needs more bytes
            }
        }
        match std::str::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                Some(_) => Err(Utf8Error),
                None => {
                    // A valid prefix of a code point ends the piece (at most 3 bytes).
                    let tail = &data[e.valid_up_to()..];
                    self.pending[..tail.len()].copy_from_slice(tail);
                    self.pending_len = tail.len() as u8;
                    Ok(())
                }
            },
        }
    }

    /// Checks that the stream ends on a code point boundary and resets the validator.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let complete = self.pending_len == 0;
        *self = Self::default();
        if complete {
            Ok(())
        } else {
            Err(Utf8Error)
        }
    }

    /// True when the stream so far ends on a code point boundary.
    pub fn is_at_boundary(&self) -> bool {
        self.pending_len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_split(data: &[u8], split: usize) -> Result<(), Utf8Error> {
        let mut v = Utf8Validator::default();
        v.feed(&data[..split])?;
        v.feed(&data[split..])?;
        v.finish()
    }

    #[test]
    fn valid_text_at_every_split() {
        let s = "κόσμε ascii 𝄞 \u{10FFFF} end".as_bytes();
        for split in 0..=s.len() {
            assert_eq!(feed_split(s, split), Ok(()), "split {split}");
        }
    }

    #[test]
    fn byte_at_a_time() {
        let s = "Hello-µ@ßöäüàá-UTF-8!! 𝄞".as_bytes();
        let mut v = Utf8Validator::default();
        for b in s {
            v.feed(std::slice::from_ref(b)).expect("valid");
        }
        assert!(v.finish().is_ok());
    }

    #[test]
    fn fails_fast_on_invalid_prefix() {
        // 0xF4 0x90 is already invalid (above U+10FFFF): no need to wait for more bytes.
        let mut v = Utf8Validator::default();
        v.feed(b"ok").expect("valid");
        v.feed(&[0xf4]).expect("valid prefix");
        assert_eq!(v.feed(&[0x90]), Err(Utf8Error));
        // Surrogates (ED A0..) fail at the second byte.
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0xed, 0xa0]), Err(Utf8Error));
        // A lone continuation byte fails immediately.
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0x80]), Err(Utf8Error));
    }

    #[test]
    fn truncated_sequence_fails_at_finish() {
        let mut v = Utf8Validator::default();
        v.feed(&[0xe2, 0x82]).expect("valid prefix");
        assert!(!v.is_at_boundary());
        assert_eq!(v.finish(), Err(Utf8Error));
        // finish() resets.
        assert!(v.feed(b"abc").is_ok());
        assert!(v.finish().is_ok());
    }

    #[test]
    fn matches_std_on_many_inputs() {
        let mut seed = 0x1234_5678u32;
        for _ in 0..2000 {
            let len = (seed % 12) as usize;
            let mut data = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                data.push(if seed & 1 == 0 {
                    0x80 | (seed >> 8) as u8 & 0x7f
                } else {
                    (seed >> 8) as u8
                });
            }
            let expect = std::str::from_utf8(&data).is_ok();
            for split in 0..=data.len() {
                assert_eq!(
                    feed_split(&data, split).is_ok(),
                    expect,
                    "{data:x?} split {split}"
                );
            }
        }
    }
}
