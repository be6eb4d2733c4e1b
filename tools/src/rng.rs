//! Mask keys and handshake nonces: a cheap xorshift64* generator. Not cryptographic: a load
//! generator only needs keys that differ per frame and per connection. Knows nothing else.

/// xorshift64*. Invariant: the state is never 0.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A masking key for one client frame (RFC 6455 5.3).
    pub fn mask_key(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }

    /// 16 bytes for a `Sec-WebSocket-Key`.
    pub fn nonce(&mut self) -> [u8; 16] {
        let mut n = [0u8; 16];
        n[..8].copy_from_slice(&self.next_u64().to_ne_bytes());
        n[8..].copy_from_slice(&self.next_u64().to_ne_bytes());
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_nonces_differ() {
        let mut r = XorShift::new(0);
        assert_ne!(r.mask_key(), r.mask_key());
        assert_ne!(r.nonce(), r.nonce());
    }
}
