//! The outgoing JSON writer: escaped strings, numbers, and object/array builders that append
//! to a caller's `Vec<u8>`.
//!
//! Owns the byte-level JSON syntax of everything the server sends. Output is always valid JSON
//! (RFC 8259) that is also safe inside a JavaScript string literal or `<script>`-free JS source:
//! `"` and `\` are escaped, control characters U+0000–U+001F become `\n \r \t \b \f` or `\u00XX`,
//! U+2028 and U+2029 become `\u2028` `\u2029`; every other character is copied as UTF-8.
//! Numbers are integers, or finite floats in Rust's shortest round-trip form ([`Number`] cannot
//! hold NaN or an infinity). Nothing here allocates except the output `Vec` growing; nothing
//! here knows message types (that is `wire.rs`).

use std::io::Write as _;

use simd_json::{Node, StaticNode};

/// What a byte needs when it appears inside a string: 0 = copy as is, `b'u'` = `\u00XX`,
/// `b'E'` = maybe the start of U+2028/U+2029, anything else = `\` followed by that byte.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t[0xe2] = b'E';
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends the body of a JSON string (no quotes) for `s`, escaped as the module describes.
fn write_str_body(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let esc = ESCAPE[b as usize];
        if esc == 0 {
            i += 1;
            continue;
        }
        if esc == b'E' {
            // U+2028 is E2 80 A8, U+2029 is E2 80 A9 in UTF-8.
            match bytes.get(i + 1..i + 3) {
                Some([0x80, 0xa8]) | Some([0x80, 0xa9]) => {}
                _ => {
                    i += 1;
                    continue;
                }
            }
            out.extend_from_slice(&bytes[start..i]);
            let last = if bytes[i + 2] == 0xa8 { b'8' } else { b'9' };
            out.extend_from_slice(&[b'\\', b'u', b'2', b'0', b'2', last]);
            i += 3;
            start = i;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if esc == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', esc]);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends `s` as a quoted, escaped JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    write_str_body(out, s);
    out.push(b'"');
}

/// Appends the concatenation of `parts` as one quoted, escaped JSON string (for texts such as
/// `"ali joined"` built from pieces without a temporary `String`).
pub fn write_str_concat(out: &mut Vec<u8>, parts: &[&str]) {
    out.push(b'"');
    for p in parts {
        write_str_body(out, p);
    }
    out.push(b'"');
}

/// Appends the decimal digits of `v`.
pub fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends `v` as a JSON integer.
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(out, v.unsigned_abs());
}

/// A finite JSON number: an unsigned integer, a negative integer, or a finite float.
///
/// Invariant: a float is never NaN or infinite, and an integer that fits `u64` is always held
/// as unsigned (so `-0` and `0` are the same number). Floats stay floats: `1.0` is written
/// `1.0` and parses back as a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Number(Repr);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Repr {
    /// Any integer in `0..=u64::MAX`.
    Unsigned(u64),
    /// Always `< 0`.
    Negative(i64),
    /// Always finite.
    Float(f64),
}

impl Number {
    /// An unsigned integer.
    #[must_use]
    pub fn from_u64(v: u64) -> Self {
        Self(Repr::Unsigned(v))
    }

    /// A signed integer (held as unsigned when `v >= 0`).
    #[must_use]
    pub fn from_i64(v: i64) -> Self {
        match u64::try_from(v) {
            Ok(u) => Self(Repr::Unsigned(u)),
            Err(_) => Self(Repr::Negative(v)),
        }
    }

    /// A float, or `None` for NaN and the infinities (which JSON cannot express).
    #[must_use]
    pub fn from_f64(v: f64) -> Option<Self> {
        v.is_finite().then_some(Self(Repr::Float(v)))
    }

    /// The number of a parsed simd-json scalar, or `None` if the node is not a number (or is a
    /// non-finite float, which the parser never produces).
    #[must_use]
    pub fn from_static(node: &StaticNode) -> Option<Self> {
        match *node {
            StaticNode::U64(v) => Some(Self::from_u64(v)),
            StaticNode::I64(v) => Some(Self::from_i64(v)),
            StaticNode::F64(v) => Self::from_f64(v),
            _ => None,
        }
    }

    /// The value if it is a non-negative integer.
    #[must_use]
    pub fn as_u64(&self) -> Option<u64> {
        match self.0 {
            Repr::Unsigned(v) => Some(v),
            _ => None,
        }
    }

    /// The value if it is an integer that fits `i64`.
    #[must_use]
    pub fn as_i64(&self) -> Option<i64> {
        match self.0 {
            Repr::Unsigned(v) => i64::try_from(v).ok(),
            Repr::Negative(v) => Some(v),
            Repr::Float(_) => None,
        }
    }

    /// The value if it was written as a float (with a fraction or an exponent).
    #[must_use]
    pub fn as_f64(&self) -> Option<f64> {
        match self.0 {
            Repr::Float(v) => Some(v),
            _ => None,
        }
    }

    /// Appends the number's JSON text: integers in decimal, floats in Rust's shortest
    /// round-trip form (`1.0`, `0.1`, `1e300`, `5e-324`), which parses back to the same `f64`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self.0 {
            Repr::Unsigned(v) => write_u64(out, v),
            Repr::Negative(v) => write_i64(out, v),
            // `{:?}` is the shortest representation that round-trips, with an exponent for
            // very large or small magnitudes; it is valid JSON for every finite value. Writing
            // to a Vec cannot fail.
            Repr::Float(v) => {
                let _ = write!(out, "{v:?}");
            }
        }
    }
}

/// Why a simd-json value could not be re-serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The tape ended inside a value (a tape from the parser is always complete).
    #[error("truncated json tape")]
    Truncated,
    /// An object key that is not a string (never produced by the parser).
    #[error("object key is not a string")]
    KeyNotString,
    /// A number JSON cannot express (NaN, infinity, or a 128-bit integer).
    #[error("number cannot be written as json")]
    BadNumber,
}

/// Appends one scalar of a simd-json tape.
fn write_static(out: &mut Vec<u8>, node: &StaticNode) -> Result<(), ValueError> {
    match node {
        StaticNode::Null => out.extend_from_slice(b"null"),
        StaticNode::Bool(true) => out.extend_from_slice(b"true"),
        StaticNode::Bool(false) => out.extend_from_slice(b"false"),
        other => Number::from_static(other)
            .ok_or(ValueError::BadNumber)?
            .write(out),
    }
    Ok(())
}

/// One open container while writing a tape.
struct Open {
    /// Elements (or key/value pairs) still to write; always >= 1 while on the stack.
    left: usize,
    is_object: bool,
}

/// Re-serializes the value that starts at `nodes[0]` (a simd-json tape, as in
/// `simd_json::Tape::0`, or any slice of it starting at a value), compactly, with this
/// module's escaping. Returns how many nodes the value spans.
///
/// Iterative (no recursion), so any nesting depth is safe; the stack of open containers is the
/// only allocation besides the output, and only for nested values. Used to pass an API call's
/// `data` object through unchanged in meaning.
///
/// # Errors
/// [`ValueError`] for a malformed tape; on error `out` holds a partial value.
pub fn write_value(out: &mut Vec<u8>, nodes: &[Node<'_>]) -> Result<usize, ValueError> {
    let mut stack: Vec<Open> = Vec::new();
    let mut i = 0;
    loop {
        let node = nodes.get(i).ok_or(ValueError::Truncated)?;
        i += 1;
        match *node {
            Node::String(s) => write_str(out, s),
            Node::Static(ref s) => write_static(out, s)?,
            Node::Object { len, .. } => {
                out.push(b'{');
                if len > 0 {
                    stack.push(Open {
                        left: len,
                        is_object: true,
                    });
                    i = write_key(out, nodes, i)?;
                    continue;
                }
                out.push(b'}');
            }
            Node::Array { len, .. } => {
                out.push(b'[');
                if len > 0 {
                    stack.push(Open {
                        left: len,
                        is_object: false,
                    });
                    continue;
                }
                out.push(b']');
            }
        }
        // A value is complete: close every container it completes, then move to the next
        // element of the innermost open one.
        loop {
            let Some(top) = stack.last_mut() else {
                return Ok(i);
            };
            top.left -= 1;
            if top.left > 0 {
                out.push(b',');
                if top.is_object {
                    i = write_key(out, nodes, i)?;
                }
                break;
            }
            out.push(if top.is_object { b'}' } else { b']' });
            stack.pop();
        }
    }
}

/// Writes the key at `nodes[i]` and the colon; returns the index of its value.
fn write_key(out: &mut Vec<u8>, nodes: &[Node<'_>], i: usize) -> Result<usize, ValueError> {
    match nodes.get(i) {
        Some(Node::String(k)) => {
            write_str(out, k);
            out.push(b':');
            Ok(i + 1)
        }
        Some(_) => Err(ValueError::KeyNotString),
        None => Err(ValueError::Truncated),
    }
}

/// Builds one JSON object in place: `{` on creation, `"key":value` pairs separated by commas,
/// `}` when finished or dropped (so the output is well-formed even on early return).
///
/// Keys are escaped like values. Duplicate keys are the caller's business. Nested writers
/// borrow this one; finish (or drop) them before writing the next field.
#[derive(Debug)]
pub struct ObjectWriter<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> ObjectWriter<'o> {
    /// Starts an object at the end of `out`.
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        write_str(self.out, key);
        self.out.push(b':');
    }

    /// A string field.
    pub fn str(&mut self, key: &str, v: &str) -> &mut Self {
        self.key(key);
        write_str(self.out, v);
        self
    }

    /// A string field whose value is the concatenation of `parts`.
    pub fn str_concat(&mut self, key: &str, parts: &[&str]) -> &mut Self {
        self.key(key);
        write_str_concat(self.out, parts);
        self
    }

    /// An unsigned integer field.
    pub fn u64(&mut self, key: &str, v: u64) -> &mut Self {
        self.key(key);
        write_u64(self.out, v);
        self
    }

    /// A signed integer field.
    pub fn i64(&mut self, key: &str, v: i64) -> &mut Self {
        self.key(key);
        write_i64(self.out, v);
        self
    }

    /// A number field (integer or finite float).
    pub fn number(&mut self, key: &str, v: Number) -> &mut Self {
        self.key(key);
        v.write(self.out);
        self
    }

    /// A boolean field.
    pub fn bool(&mut self, key: &str, v: bool) -> &mut Self {
        self.key(key);
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        self
    }

    /// A field whose value is `json`, copied verbatim. The caller guarantees `json` is one
    /// complete, valid JSON value (for example bytes this module wrote earlier).
    pub fn raw(&mut self, key: &str, json: &[u8]) -> &mut Self {
        self.key(key);
        self.out.extend_from_slice(json);
        self
    }

    /// A field whose value `write` appends; it must append exactly one valid JSON value
    /// (for example with [`write_str`] or [`Number::write`]).
    pub fn value(&mut self, key: &str, write: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        self.key(key);
        write(self.out);
        self
    }

    /// An array-of-strings field.
    pub fn str_array<I, S>(&mut self, key: &str, items: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut a = self.array(key);
        a.strs(items);
        a.finish();
        self
    }

    /// Starts a nested array field; finish it before the next field.
    pub fn array(&mut self, key: &str) -> ArrayWriter<'_> {
        self.key(key);
        ArrayWriter::new(self.out)
    }

    /// Starts a nested object field; finish it before the next field.
    pub fn object(&mut self, key: &str) -> ObjectWriter<'_> {
        self.key(key);
        ObjectWriter::new(self.out)
    }

    /// Closes the object (same as dropping it; reads better at the end of a builder).
    pub fn finish(self) {}
}

impl Drop for ObjectWriter<'_> {
    fn drop(&mut self) {
        self.out.push(b'}');
    }
}

/// Builds one JSON array in place: `[` on creation, elements separated by commas, `]` when
/// finished or dropped.
#[derive(Debug)]
pub struct ArrayWriter<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> ArrayWriter<'o> {
    /// Starts an array at the end of `out`.
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        out.push(b'[');
        Self { out, first: true }
    }

    fn sep(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    /// A string element.
    pub fn str(&mut self, v: &str) -> &mut Self {
        self.sep();
        write_str(self.out, v);
        self
    }

    /// One string element per item.
    pub fn strs<I, S>(&mut self, items: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for s in items {
            self.str(s.as_ref());
        }
        self
    }

    /// An unsigned integer element.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.sep();
        write_u64(self.out, v);
        self
    }

    /// An element copied verbatim; the caller guarantees `json` is one valid JSON value.
    pub fn raw(&mut self, json: &[u8]) -> &mut Self {
        self.sep();
        self.out.extend_from_slice(json);
        self
    }

    /// Starts a nested object element; finish it before the next element.
    pub fn object(&mut self) -> ObjectWriter<'_> {
        self.sep();
        ObjectWriter::new(self.out)
    }

    /// Starts a nested array element; finish it before the next element.
    pub fn array(&mut self) -> ArrayWriter<'_> {
        self.sep();
        ArrayWriter::new(self.out)
    }

    /// Closes the array (same as dropping it).
    pub fn finish(self) {}
}

impl Drop for ArrayWriter<'_> {
    fn drop(&mut self) {
        self.out.push(b']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_text_is_copied() {
        assert_eq!(s(""), r#""""#);
        assert_eq!(s("hi there/é😀"), "\"hi there/é😀\"");
    }

    #[test]
    fn quotes_backslash_and_named_controls() {
        assert_eq!(s(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(s("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
    }

    #[test]
    fn other_controls_are_u_escaped() {
        assert_eq!(s("\u{0}"), r#""\u0000""#);
        assert_eq!(s("\u{1}\u{b}\u{1f}"), r#""\u0001\u000b\u001f""#);
        // DEL and C1 controls are not JSON controls: copied verbatim.
        assert_eq!(s("\u{7f}\u{85}"), "\"\u{7f}\u{85}\"");
    }

    #[test]
    fn line_and_paragraph_separators_are_escaped() {
        assert_eq!(s("a\u{2028}b\u{2029}c"), r#""a\u2028b\u2029c""#);
        // Neighbours sharing the E2 80 prefix are not.
        assert_eq!(
            s("\u{2027}\u{202a}\u{2020}"),
            "\"\u{2027}\u{202a}\u{2020}\""
        );
        // E2 at the very end of a prefix check (other 3-byte chars starting with E2).
        assert_eq!(s("x\u{2190}"), "\"x\u{2190}\"");
    }

    #[test]
    fn every_control_character_round_trips_through_serde_json() {
        let all: String = (0u32..0x80)
            .chain([0x2028, 0x2029, 0x1f600])
            .filter_map(char::from_u32)
            .collect();
        let out = s(&all);
        assert!(out.bytes().all(|b| b >= 0x20));
        assert!(!out.contains('\u{2028}') && !out.contains('\u{2029}'));
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, all);
    }

    #[test]
    fn concat_escapes_each_part() {
        let mut out = Vec::new();
        write_str_concat(&mut out, &["a\"", "\u{2028}", " joined"]);
        assert_eq!(out, br#""a\"\u2028 joined""#);
    }

    #[test]
    fn integers() {
        let mut out = Vec::new();
        write_u64(&mut out, 0);
        out.push(b' ');
        write_u64(&mut out, u64::MAX);
        out.push(b' ');
        write_i64(&mut out, i64::MIN);
        out.push(b' ');
        write_i64(&mut out, -7);
        assert_eq!(out, b"0 18446744073709551615 -9223372036854775808 -7");
    }

    fn num(n: Number) -> String {
        let mut out = Vec::new();
        n.write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn numbers_write_and_normalise() {
        assert_eq!(num(Number::from_i64(5)), "5");
        assert_eq!(Number::from_i64(5), Number::from_u64(5));
        assert_eq!(Number::from_i64(0).as_u64(), Some(0));
        assert_eq!(num(Number::from_i64(-5)), "-5");
        assert_eq!(Number::from_u64(u64::MAX).as_i64(), None);
        let f = |v: f64| num(Number::from_f64(v).unwrap());
        assert_eq!(f(1.0), "1.0");
        assert_eq!(f(0.1), "0.1");
        assert_eq!(f(-0.0), "-0.0");
        assert_eq!(f(1e300), "1e300");
        assert_eq!(f(1e-7), "1e-7");
        assert_eq!(f(5e-324), "5e-324");
        assert_eq!(f(f64::MAX), "1.7976931348623157e308");
        assert_eq!(Number::from_f64(f64::NAN), None);
        assert_eq!(Number::from_f64(f64::INFINITY), None);
        assert_eq!(Number::from_f64(f64::NEG_INFINITY), None);
        assert_eq!(Number::from_f64(2.5).unwrap().as_f64(), Some(2.5));
        assert_eq!(Number::from_f64(2.0).unwrap().as_u64(), None);
    }

    #[test]
    fn floats_round_trip_through_both_parsers() {
        for v in [
            1.0,
            0.1,
            1e16,
            1e15,
            123.456e-300,
            f64::MIN_POSITIVE,
            -f64::MAX,
            5e-324,
        ] {
            let text = num(Number::from_f64(v).unwrap());
            let back: f64 = serde_json::from_str(&text).unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{text}");
            let mut bytes = text.clone().into_bytes();
            let tape = simd_json::to_tape(&mut bytes).unwrap();
            assert_eq!(tape.0[0], Node::Static(StaticNode::F64(v)), "{text}");
        }
    }

    #[test]
    fn object_builder() {
        let mut out = b"x".to_vec();
        let mut o = ObjectWriter::new(&mut out);
        o.str("type", "chat")
            .u64("seq", 42)
            .i64("d", -1)
            .bool("ok", true)
            .bool("no", false)
            .raw("data", br#"{"a":[1]}"#)
            .str_array("users", ["ali", "v\"ali"])
            .str_array("none", [""; 0])
            .number("n", Number::from_f64(0.5).unwrap())
            .str_concat("content", &["ali", " joined"]);
        {
            let mut rooms = o.array("rooms");
            rooms
                .object()
                .str("room", "general")
                .u64("members", 3)
                .bool("joined", true);
            rooms.u64(7).raw(b"null").str("s");
            rooms.array().u64(1);
        }
        o.object("empty");
        o.finish();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"x{"type":"chat","seq":42,"d":-1,"ok":true,"no":false,"data":{"a":[1]},"users":["ali","v\"ali"],"none":[],"n":0.5,"content":"ali joined","rooms":[{"room":"general","members":3,"joined":true},7,null,"s",[1]],"empty":{}}"#
        );
    }

    #[test]
    fn empty_containers() {
        let mut out = Vec::new();
        ObjectWriter::new(&mut out).finish();
        ArrayWriter::new(&mut out).finish();
        assert_eq!(out, b"{}[]");
    }

    fn rewrite(json: &str) -> (String, usize) {
        let mut input = json.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut input).unwrap();
        let mut out = Vec::new();
        let n = write_value(&mut out, &tape.0).unwrap();
        assert_eq!(n, tape.0.len(), "the whole tape is one value");
        (String::from_utf8(out).unwrap(), n)
    }

    #[test]
    fn write_value_reserializes_compactly() {
        let (out, n) = rewrite(
            r#" { "a" : [ 1 , -2 , 2.5 , true , false , null , "x\u2028\n" ] ,
                "b" : { } , "c" : [ ] , "d" : { "e" : { "f" : [ [ ] , { } ] } } , "g" : 1E2 } "#,
        );
        assert_eq!(
            out,
            r#"{"a":[1,-2,2.5,true,false,null,"x\u2028\n"],"b":{},"c":[],"d":{"e":{"f":[[],{}]}},"g":100.0}"#
        );
        assert_eq!(n, 24);
        assert_eq!(rewrite("\"s\"").0, "\"s\"");
        assert_eq!(rewrite("[]").0, "[]");
        assert_eq!(rewrite("-0").0, "0");
    }

    #[test]
    fn write_value_handles_deep_nesting_without_recursion() {
        let depth = 100_000;
        let json = "[".repeat(depth) + &"]".repeat(depth);
        assert_eq!(rewrite(&json).0, json);
        let json = "{\"a\":".repeat(depth) + "1" + &"}".repeat(depth);
        assert_eq!(rewrite(&json).0, json);
    }

    #[test]
    fn write_value_counts_only_its_value() {
        let mut input = br#"{"a":{"b":[1,2]},"c":3}"#.to_vec();
        let tape = simd_json::to_tape(&mut input).unwrap();
        let mut out = Vec::new();
        // nodes[2] is the value of "a".
        let n = write_value(&mut out, &tape.0[2..]).unwrap();
        assert_eq!((out.as_slice(), n), (&br#"{"b":[1,2]}"#[..], 5));
    }

    #[test]
    fn write_value_rejects_malformed_tapes() {
        let mut out = Vec::new();
        let truncated = [
            Node::Array { len: 2, count: 2 },
            Node::Static(StaticNode::Null),
        ];
        assert_eq!(
            write_value(&mut out, &truncated),
            Err(ValueError::Truncated)
        );
        let bad_key = [
            Node::Object { len: 1, count: 2 },
            Node::Static(StaticNode::Null),
            Node::Static(StaticNode::Null),
        ];
        assert_eq!(
            write_value(&mut out, &bad_key),
            Err(ValueError::KeyNotString)
        );
        let nan = [Node::Static(StaticNode::F64(f64::NAN))];
        assert_eq!(write_value(&mut out, &nan), Err(ValueError::BadNumber));
        assert_eq!(write_value(&mut out, &[]), Err(ValueError::Truncated));
    }
}
