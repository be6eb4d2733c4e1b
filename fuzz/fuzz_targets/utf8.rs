//! Fuzzes the incremental UTF-8 validator against `std::str::from_utf8`.
//!
//! Input layout:
//! - byte 0: the number `n` of chunk sizes that follow (low 3 bits).
//! - the next `n` bytes: chunk sizes (`byte`, 0 allowed: empty pieces must be harmless), used
//!   in a cycle.
//! - everything else: the text.
//!
//! After each piece the validator must fail exactly when the bytes so far are no longer a
//! prefix of any valid UTF-8 string (fail fast, but never early), and `finish` must agree with
//! `from_utf8` on the whole input. The same is checked one byte at a time.

#![no_main]

use corecast::ws::utf8::Utf8Validator;
use libfuzzer_sys::fuzz_target;

/// True when `bytes` is valid UTF-8 or a valid UTF-8 string cut inside its last code point.
fn is_valid_prefix(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

/// Feeds `text` in pieces of `sizes` (cycling); checks every step against std.
fn check(text: &[u8], sizes: &[usize]) {
    let expect = std::str::from_utf8(text).is_ok();
    let mut v = Utf8Validator::default();
    let mut end: usize = 0;
    let mut next = 0;
    // At least one feed, so that an empty text is covered too.
    loop {
        let size = sizes[next % sizes.len()];
        next += 1;
        let start = end;
        end = start.saturating_add(size).min(text.len());
        let fed = v.feed(&text[start..end]);
        let prefix = &text[..end];
        assert_eq!(
            fed.is_ok(),
            is_valid_prefix(prefix),
            "feed of {:x?} after {:x?}",
            &text[start..end],
            &text[..start]
        );
        if fed.is_err() {
            assert!(!expect);
            return;
        }
        assert_eq!(
            v.is_at_boundary(),
            std::str::from_utf8(prefix).is_ok(),
            "boundary after {prefix:x?}"
        );
        if end == text.len() {
            break;
        }
    }
    assert_eq!(v.finish().is_ok(), expect, "finish of {text:x?}");
    // finish() resets: the validator is reusable.
    assert!(v.is_at_boundary());
    let again = v.feed(text).and_then(|()| v.finish());
    assert_eq!(again.is_ok(), expect, "second use on {text:x?}");
}

fuzz_target!(|data: &[u8]| {
    let [n, rest @ ..] = data else {
        return;
    };
    let n = usize::from(n & 0b111).min(rest.len());
    let (sizes, text) = rest.split_at(n);
    let mut sizes: Vec<usize> = sizes.iter().map(|&b| usize::from(b)).collect();
    // Only empty pieces would never finish.
    if sizes.iter().all(|&s| s == 0) {
        sizes.push(1);
    }
    check(text, &[usize::MAX]);
    check(text, &sizes);
    check(text, &[1]);
});
