//! Payload masking (RFC 6455 §5.3).
//!
//! Owns the XOR transform only: a scalar reference and a word-at-a-time fast path that must
//! agree byte for byte at every alignment and key offset. No `unsafe`: the fast path works on
//! `chunks_exact_mut` of `u64`s, which the compiler turns into wide loads and stores.

/// Masks or unmasks `buf` in place, one byte at a time. This is the reference the fast path
/// is tested against; `offset` is the index of `buf[0]` within the frame payload.
pub fn apply_mask_scalar(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(i + offset) & 3];
    }
}

/// Masks or unmasks `buf` in place, sixteen bytes per step.
///
/// `offset` is the index of `buf[0]` within the frame payload, so a payload can be unmasked
/// in pieces as it arrives: "octet i of the transformed data is the XOR of octet i of the
/// original data with octet at index i modulo 4 of the masking key" (RFC 6455 §5.3).
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let r = offset & 3;
    // The key as seen from buf[0].
    let k = [key[r], key[(r + 1) & 3], key[(r + 2) & 3], key[(r + 3) & 3]];
    let word = u32::from_ne_bytes(k);
    let wide = u128::from(word) * 0x0000_0001_0000_0001_0000_0001_0000_0001;
    let mut chunks = buf.chunks_exact_mut(16);
    for chunk in &mut chunks {
        let mut w = [0u8; 16];
        w.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u128::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    // Every tail starts at a multiple of 4 from buf[0], so the key phase is unchanged.
    let mut rest = chunks.into_remainder();
    if rest.len() >= 8 {
        let (eight, tail) = rest.split_at_mut(8);
        let mut w = [0u8; 8];
        w.copy_from_slice(eight);
        eight.copy_from_slice(&(u64::from_ne_bytes(w) ^ (wide as u64)).to_ne_bytes());
        rest = tail;
    }
    for (i, b) in rest.iter_mut().enumerate() {
        *b ^= k[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example_hello() {
        // RFC 6455 §5.7: a masked "Hello" with key 37 fa 21 3d.
        let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&payload, b"Hello");
    }

    #[test]
    fn fast_path_matches_scalar_at_every_alignment_and_offset() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..=7 {
            for len in [0usize, 1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 200] {
                for offset in 0..=3 {
                    let mut fast = data[start..start + len].to_vec();
                    let mut slow = fast.clone();
                    apply_mask(&mut fast, key, offset);
                    apply_mask_scalar(&mut slow, key, offset);
                    assert_eq!(fast, slow, "start {start} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn unmasking_in_pieces_equals_unmasking_at_once() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for split in 0..data.len() {
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask(a, key, 0);
            apply_mask(b, key, split);
            assert_eq!(pieces, whole, "split {split}");
        }
    }
}
