//! Helpers for reading a simd-json tape strictly: the parser's leniencies refused after the
//! parse, and walking an object's top-level fields.
//!
//! Owns nothing but these functions; shared by `command.rs` (client messages) and `api.rs`
//! (HTTP bodies), and usable by anything else that parses JSON with simd-json's tape (call
//! [`make_strict`] after every parse). Must not know any message type.

use simd_json::{Node, StaticNode};

/// Makes the tape simd-json 0.14 just parsed from `json` exactly what a strict RFC 8259
/// parser would give, or returns `false` if `json` is not JSON. Call it after every successful
/// parse.
///
/// simd-json 0.14.3 accepts some inputs that are not JSON and misreads some numbers, each
/// changing the document's meaning silently (found by the `chat_command` fuzz target against
/// serde_json):
/// - A NUL byte. simd-json pads its input with zeros and ends a number or literal at a NUL,
///   skipping what follows up to the next structural character: `{"a":12\0 34}` parses as
///   `{"a":12}`, `[1\02]` as `[1]`. A raw NUL is never valid JSON (not whitespace, and a
///   control character inside strings), so any NUL refuses the document.
/// - A `\u` escape that is not well-formed UTF-16: a high surrogate (`\uD800`–`\uDBFF`) must be
///   followed by an escaped low surrogate, and a low one must follow a high one. simd-json
///   decodes a high surrogate not followed by `\u` as U+0000 instead of failing.
/// - A long number followed by garbage: the slow paths for integers of 19 characters or more
///   and floats of 20 or more do not check what follows, so `[1234567890123456789x]` parses as
///   `[1234567890123456789]`.
/// - A float with 19 or more significant digits can come out wrong:
///   `-95555555.755555522337` parses as `-3321835.387007764` (the digit count is corrected by
///   a byte value instead of an index; compare simd-lite/simd-json#455).
///
/// The last two need the numbers' text, so when the tape holds a float or an integer of
/// magnitude `>= 10^17` (a chat message rarely does), the numbers outside strings are scanned
/// in document order, which is the tape's order: each must match the JSON grammar and be
/// followed by whitespace, `,`, `]`, `}` or the end, and its node is replaced by Rust's own
/// exact parse of the text.
pub fn make_strict(json: &[u8], nodes: &mut [Node<'_>]) -> bool {
    if json.contains(&0) || !escapes_are_valid(json) {
        return false;
    }
    if !nodes.iter().any(is_suspicious_number) {
        return true;
    }
    let mut numbers = nodes.iter_mut().filter(|n| {
        matches!(
            n,
            Node::Static(StaticNode::U64(_) | StaticNode::I64(_) | StaticNode::F64(_))
        )
    });
    let mut i = 0;
    while let Some(&b) = json.get(i) {
        match b {
            b'"' => i = string_end(json, i + 1),
            b'-' | b'0'..=b'9' => {
                let Some(end) = number_end(json, i) else {
                    return false;
                };
                if !matches!(
                    json.get(end),
                    None | Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b']' | b'}')
                ) {
                    return false;
                }
                let exact = json.get(i..end).and_then(exact_number);
                let (Some(node), Some(exact)) = (numbers.next(), exact) else {
                    return false;
                };
                *node = Node::Static(exact);
                i = end;
            }
            _ => i += 1,
        }
    }
    numbers.next().is_none()
}

/// Whether simd-json may have misread this number or not checked what follows it.
fn is_suspicious_number(node: &Node<'_>) -> bool {
    const LONG: u64 = 100_000_000_000_000_000; // 10^17
    match node {
        Node::Static(StaticNode::U64(v)) => *v >= LONG,
        Node::Static(StaticNode::I64(v)) => v.unsigned_abs() >= LONG,
        Node::Static(StaticNode::F64(_)) => true,
        _ => false,
    }
}

/// The value of a JSON number's text (already checked against the grammar), typed as
/// simd-json types it: floats if written with a fraction or exponent, otherwise `U64` for
/// non-negative and `I64` for negative integers. `None` if it does not fit (simd-json refuses
/// those too) or a float overflows to infinity.
fn exact_number(text: &[u8]) -> Option<StaticNode> {
    let text = std::str::from_utf8(text).ok()?;
    if text.contains(['.', 'e', 'E']) {
        let v: f64 = text.parse().ok()?;
        v.is_finite().then_some(StaticNode::F64(v))
    } else if text.starts_with('-') {
        text.parse().ok().map(StaticNode::I64)
    } else {
        text.parse().ok().map(StaticNode::U64)
    }
}

/// The index after the closing quote of the string whose content starts at `i`.
fn string_end(json: &[u8], mut i: usize) -> usize {
    while let Some(&b) = json.get(i) {
        match b {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// The end of the number starting at `i` by `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn number_end(json: &[u8], mut i: usize) -> Option<usize> {
    let digits = |i: usize| {
        json.get(i..).map_or(0, |rest| {
            rest.iter().take_while(|b| b.is_ascii_digit()).count()
        })
    };
    if json.get(i) == Some(&b'-') {
        i += 1;
    }
    match json.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i += digits(i),
        _ => return None,
    }
    if json.get(i) == Some(&b'.') {
        let n = digits(i + 1);
        if n == 0 {
            return None;
        }
        i += 1 + n;
    }
    if matches!(json.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(json.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let n = digits(i);
        if n == 0 {
            return None;
        }
        i += n;
    }
    Some(i)
}

/// The surrogate rule of [`make_strict`]. Backslashes outside strings make the document
/// invalid anyway, so a plain scan is exact.
fn escapes_are_valid(json: &[u8]) -> bool {
    let mut i = 0;
    while let Some(off) = json
        .get(i..)
        .and_then(|rest| rest.iter().position(|&b| b == b'\\'))
    {
        let at = i + off;
        match json.get(at + 1) {
            Some(b'u') => {
                let Some(unit) = hex4(json, at + 2) else {
                    return false;
                };
                match unit {
                    0xd800..=0xdbff => {
                        let low = match json.get(at + 6..at + 8) {
                            Some(b"\\u") => hex4(json, at + 8),
                            _ => None,
                        };
                        if !matches!(low, Some(0xdc00..=0xdfff)) {
                            return false;
                        }
                        i = at + 12;
                    }
                    0xdc00..=0xdfff => return false,
                    _ => i = at + 6,
                }
            }
            // Any other escaped byte (valid or not: simd-json judges those) is skipped whole,
            // so `\\u` is a backslash followed by `u`.
            Some(_) => i = at + 2,
            None => return true,
        }
    }
    true
}

/// The UTF-16 unit spelled by the four hex digits at `json[at..at + 4]`.
fn hex4(json: &[u8], at: usize) -> Option<u32> {
    let digits = json.get(at..at + 4)?;
    digits.iter().try_fold(0u32, |acc, &b| {
        let d = (b as char).to_digit(16)?;
        Some(acc << 4 | d)
    })
}

/// How many tape nodes the value starting with `node` spans (itself included).
pub fn span(node: &Node<'_>) -> usize {
    match node {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        Node::String(_) | Node::Static(_) => 1,
    }
}

/// Calls `field(key, value_nodes)` for each top-level field of the object at `nodes[0]`, in
/// document order; `value_nodes` starts at the field's value. Returns `false` if `nodes[0]` is
/// not an object (or the tape is malformed, which the parser never produces).
pub fn for_each_field<'t, 'de>(
    nodes: &'t [Node<'de>],
    mut field: impl FnMut(&'de str, &'t [Node<'de>]),
) -> bool {
    let Some(Node::Object { len, .. }) = nodes.first() else {
        return false;
    };
    let mut i = 1;
    for _ in 0..*len {
        let (Some(Node::String(key)), Some(rest)) = (nodes.get(i), nodes.get(i + 1..)) else {
            return false;
        };
        let Some(value) = rest.first() else {
            return false;
        };
        let next = i + 1 + span(value);
        field(key, rest);
        i = next;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surrogate_escapes() {
        let ok = |s: &str| escapes_are_valid(s.as_bytes());
        assert!(ok(r#"{"a":"plain"}"#));
        assert!(ok(r#"{"a":"\u00e9\n\"\\"}"#));
        assert!(ok(r#"{"a":"\ud83d\ude00"}"#));
        assert!(ok(r#"{"a":"\uD834\uDD1E x"}"#));
        assert!(ok(r#"{"a":"\\ud800"}"#)); // an escaped backslash, then text
        assert!(!ok(r#"{"a":"\uzzzz"}"#));
        assert!(!ok(r#"{"a":"\ud800"}"#));
        assert!(!ok(r#"{"a":"\ud800x"}"#));
        assert!(!ok(r#"{"a":"\ud800\n"}"#));
        assert!(!ok(r#"{"a":"\ud800\u0041"}"#));
        assert!(!ok(r#"{"a":"\ud800\ud800"}"#));
        assert!(!ok(r#"{"a":"\udc00"}"#));
        assert!(!ok(r#"{"a":"\ude00\ud83d"}"#));
        assert!(!ok(r#"{"a":"\u12"#));
        assert!(!ok(r#"{"a":"\ud83d\ude"#));
        assert!(ok("\\"));
        assert!(ok(""));
    }

    fn strict(json: &[u8]) -> bool {
        let mut buf = json.to_vec();
        let mut tape = simd_json::to_tape(&mut buf).unwrap();
        make_strict(json, &mut tape.0)
    }

    /// The numbers of the strict tape.
    fn numbers(json: &[u8]) -> Vec<StaticNode> {
        let mut buf = json.to_vec();
        let mut tape = simd_json::to_tape(&mut buf).unwrap();
        assert!(make_strict(json, &mut tape.0));
        tape.0
            .iter()
            .filter_map(|n| match n {
                Node::Static(
                    s @ (StaticNode::U64(_) | StaticNode::I64(_) | StaticNode::F64(_)),
                ) => Some(*s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn nul_bytes() {
        assert!(strict(br#"{"a":"\u0000"}"#));
        assert!(!strict(b"{\"a\":12\x0034}"));
        assert!(!strict(b"{\"a\":true\x00}"));
        assert!(!strict(b"[1\x002]"));
        assert!(!strict(br#"{"a":"\ud800x"}"#));
    }

    #[test]
    fn long_numbers_must_end_where_json_says() {
        assert!(strict(b"[1234567890123456789, -1234567890123456789]"));
        assert!(strict(b"[18446744073709551615]"));
        assert!(strict(b"{\"a\":-9223372036854775808}"));
        assert!(strict(
            b"[0.1,1e5,-1.5E-3,1844674407370955161.5 ,\"12345678901234567890x\"]"
        ));
        assert!(strict(b"[\"\\\"\",123456789012345678901234.5]"));
        assert!(!strict(b"[1234567890123456789x]"));
        assert!(!strict(b"{\"a\":1844674407370955161A5}"));
        assert!(!strict(b"[-1844674407370955161x]"));
        assert!(!strict(b"[18446744073709551615x]"));
        assert!(!strict(b"[1844674407370955161.5x]"));
        assert!(!strict(b"[123456789012345678901234.5x,1]"));
        // Short numbers are checked by simd-json itself (and not scanned here).
        assert!(simd_json::to_tape(&mut b"[123456789012345678x]".to_vec()).is_err());
    }

    #[test]
    fn long_floats_are_read_exactly() {
        use StaticNode::{F64, I64, U64};
        assert_eq!(
            numbers(br#"{"cottAyp>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>e":"p;ng","id":-95555555.755555522337}"#),
            [F64(-95_555_555.755_555_53)]
        );
        // All numbers are re-read once one is suspicious, and keep simd-json's types.
        assert_eq!(
            numbers(
                b"[1, -2, -0, 0.5, \"7\", 18446744073709551615, 3077999.0000000000000000, 1e-400]"
            ),
            [
                U64(1),
                I64(-2),
                I64(0),
                F64(0.5),
                U64(u64::MAX),
                F64(3_077_999.0),
                F64(0.0)
            ]
        );
        assert_eq!(numbers(b"[1, 2]"), [U64(1), U64(2)]);
    }

    #[test]
    fn number_grammar() {
        let end = |s: &str| number_end(s.as_bytes(), 0);
        assert_eq!(end("0"), Some(1));
        assert_eq!(end("-0.5e+10,"), Some(8));
        assert_eq!(end("12E3]"), Some(4));
        assert_eq!(end("01"), Some(1)); // then "1" is not a terminator
        assert_eq!(end("-"), None);
        assert_eq!(end("1."), None);
        assert_eq!(end("1e"), None);
        assert_eq!(end("1e+"), None);
        assert_eq!(end(".5"), None);
        assert_eq!(exact_number(b"1e400"), None);
        assert_eq!(exact_number(b"-9223372036854775809"), None);
        assert_eq!(exact_number(b"18446744073709551616"), None);
    }

    #[test]
    fn the_parser_leniencies_it_guards_against_are_real() {
        // If simd-json starts rejecting these itself, the checks can go.
        let mut input = b"[1234567890123456789x]".to_vec();
        let tape = simd_json::to_tape(&mut input).unwrap();
        assert_eq!(
            tape.0[1],
            Node::Static(StaticNode::U64(1_234_567_890_123_456_789))
        );
        let mut input = b"{\"a\":12\x0034}".to_vec();
        let tape = simd_json::to_tape(&mut input).unwrap();
        assert_eq!(tape.0[2], Node::Static(StaticNode::U64(12)));
        let mut input = br#"{"a":"\ud800x"}"#.to_vec();
        let tape = simd_json::to_tape(&mut input).unwrap();
        assert_eq!(tape.0[2], Node::String("\0x"));
    }

    #[test]
    fn fields_in_order_with_nested_values_skipped() {
        let mut input = br#"{"a":{"x":[1,{"y":2}]},"b":[],"c":"s","d":null}"#.to_vec();
        let tape = simd_json::to_tape(&mut input).unwrap();
        let mut seen = Vec::new();
        assert!(for_each_field(&tape.0, |k, v| seen.push((k, span(&v[0])))));
        assert_eq!(seen, [("a", 7), ("b", 1), ("c", 1), ("d", 1)]);

        let mut input = b"[1]".to_vec();
        let tape = simd_json::to_tape(&mut input).unwrap();
        assert!(!for_each_field(&tape.0, |_, _| {}));
        assert!(!for_each_field(&[], |_, _| {}));
    }
}
