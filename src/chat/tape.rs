//! Helpers for reading a simd-json tape strictly: the one leniency of the parser fixed up
//! front, and walking an object's top-level fields.
//!
//! Owns nothing but these functions; shared by `command.rs` (client messages) and `api.rs`
//! (HTTP bodies). Must not know any message type.

use simd_json::Node;

/// Whether every `\u` escape in `json` is well-formed UTF-16: a high surrogate
/// (`\uD800`–`\uDBFF`) must be followed by an escaped low surrogate and a low one must follow a
/// high one.
///
/// simd-json 0.14 rejects every other bad escape, but decodes a high surrogate that is not
/// followed by `\u` to U+0000 instead of failing; strict parsers (serde_json, browsers'
/// `JSON.parse` aside) reject it, and so do we, so no text ever changes silently. Backslashes
/// outside strings make the document invalid anyway, so a plain scan is exact.
pub(crate) fn escapes_are_valid(json: &[u8]) -> bool {
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
pub(crate) fn span(node: &Node<'_>) -> usize {
    match node {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        Node::String(_) | Node::Static(_) => 1,
    }
}

/// Calls `field(key, value_nodes)` for each top-level field of the object at `nodes[0]`, in
/// document order; `value_nodes` starts at the field's value. Returns `false` if `nodes[0]` is
/// not an object (or the tape is malformed, which the parser never produces).
pub(crate) fn for_each_field<'t, 'de>(
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

    #[test]
    fn the_parser_leniency_it_guards_against_is_real() {
        // If simd-json starts rejecting this itself, the pre-scan can go.
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
