//! The gateway's message body, sans-IO: `{"ownerId":"rider-1","data":<any JSON>}` as the
//! services publish it, read once for the owner, with `data` handed on byte for byte.
//!
//! [`parse`] checks the whole body is strict JSON (RFC 8259: UTF-8, no trailing commas, no
//! comments, no lone surrogate escapes, nesting at most [`MAX_DEPTH`] deep, like serde_json)
//! and finds two top-level members: the owner field (name configurable, `ownerId` by default),
//! which must be a string holding a user id, and `data`, whose value is never rewritten:
//! - [`DataEncoding::Json`]: `data` is any JSON value; the result is the exact byte range of
//!   that value in the body (big integers, key order, escapes and inner whitespace survive).
//! - [`DataEncoding::Base64`]: the Go convention for a `[]byte` field: `data` is a base64 string
//!   (standard alphabet, padded); the decoded bytes are the data and must be one JSON value.
//!
//! Either member twice is refused (which one would count?); other members are ignored. The
//! upstream direction, [`write_body`], builds the same shape for a client's command.
//!
//! Owns the byte format only: no AMQP, no sockets, no clock, no logging. Never panics on input;
//! allocates only to unescape an owner written with escapes and to decode base64.

use std::borrow::Cow;
use std::ops::Range;

use base64::Engine as _;

use crate::chat::json::write_str;
use crate::chat::validate::is_user_id;

/// Deepest nesting of arrays and objects accepted in a body, the body object itself included
/// (serde_json's default limit: 128 refuses the 128th level). Base64-decoded data, a
/// document of its own, gets the same limit.
pub const MAX_DEPTH: usize = 127;

/// The owner field's name when the configuration does not say (the Go services' `ownerId`).
pub const DEFAULT_OWNER_FIELD: &str = "ownerId";

/// How `data` is written in a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataEncoding {
    /// `data` is any JSON value, passed through verbatim. The default.
    #[default]
    Json,
    /// `data` is a base64 string (standard alphabet, with padding) of a JSON document: what
    /// Go's `encoding/json` makes of a `[]byte` field.
    Base64,
}

impl DataEncoding {
    /// `json` or `base64`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Base64 => "base64",
        }
    }
}

impl std::str::FromStr for DataEncoding {
    type Err = BodyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "base64" => Ok(Self::Base64),
            _ => Err(BodyError::UnknownEncoding),
        }
    }
}

/// Why a body was refused (each one dead-letters the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not UTF-8.
    #[error("body is not utf-8")]
    NotUtf8,
    /// Not JSON: the first offending byte.
    #[error("invalid json at byte {0}")]
    Syntax(usize),
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("json nested too deeply")]
    TooDeep,
    /// Valid JSON, but not an object.
    #[error("body is not a json object")]
    NotObject,
    /// No owner member.
    #[error("body has no owner")]
    NoOwner,
    /// The owner member twice.
    #[error("body has two owners")]
    DuplicateOwner,
    /// The owner is not a string.
    #[error("owner is not a string")]
    OwnerNotString,
    /// The owner is not a user id (1–128 bytes, no control characters).
    #[error("owner is not a valid user id")]
    BadOwner,
    /// No `data` member.
    #[error("body has no data")]
    NoData,
    /// `data` twice.
    #[error("body has two data members")]
    DuplicateData,
    /// Base64 encoding, and `data` is not a string.
    #[error("data is not a base64 string")]
    DataNotString,
    /// Base64 encoding, and the string is not padded standard base64.
    #[error("data is not valid base64")]
    BadBase64,
    /// The decoded base64 is not one JSON value.
    #[error("decoded data is not json")]
    DecodedNotJson,
    /// A `data_encoding` other than `json` or `base64` (configuration).
    #[error("unknown data encoding (json or base64)")]
    UnknownEncoding,
}

/// Where the data of a parsed body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// These bytes of the body (the value's exact text: [`DataEncoding::Json`]).
    Span(Range<usize>),
    /// Decoded from base64 ([`DataEncoding::Base64`]).
    Decoded(Vec<u8>),
}

impl Data {
    /// The data's bytes, given the body it was parsed from.
    pub fn bytes<'b>(&'b self, body: &'b [u8]) -> &'b [u8] {
        match self {
            Self::Span(r) => body.get(r.clone()).unwrap_or_default(),
            Self::Decoded(v) => v,
        }
    }
}

/// A valid body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The owner, unescaped (borrowed unless it was written with escapes).
    pub owner: Cow<'a, str>,
    /// The data: one JSON value.
    pub data: Data,
}

/// Reads `body`: owner from the member named `owner_field`, data from `data` in `encoding`
/// (see the module documentation for every rule).
pub fn parse<'a>(
    body: &'a [u8],
    owner_field: &str,
    encoding: DataEncoding,
) -> Result<Parsed<'a>, BodyError> {
    let text = std::str::from_utf8(body).map_err(|_| BodyError::NotUtf8)?;
    let mut owner: Option<Range<usize>> = None;
    let mut owner_escaped = false;
    let mut owner_is_string = false;
    let mut data: Option<Range<usize>> = None;
    object_members(text, |m| {
        if key_is(text, m.key.clone(), m.key_escaped, owner_field) {
            if owner.is_some() {
                return Err(BodyError::DuplicateOwner);
            }
            owner = Some(m.value.clone());
            owner_escaped = m.escaped;
            owner_is_string = m.is_string();
        }
        if key_is(text, m.key, m.key_escaped, "data") {
            if data.is_some() {
                return Err(BodyError::DuplicateData);
            }
            data = Some(m.value);
        }
        Ok(())
    })?;
    let owner = owner.ok_or(BodyError::NoOwner)?;
    if !owner_is_string {
        return Err(BodyError::OwnerNotString);
    }
    let owner = string_value(text, owner, owner_escaped)?;
    if !is_user_id(&owner) {
        return Err(BodyError::BadOwner);
    }
    let data = data.ok_or(BodyError::NoData)?;
    let data = match encoding {
        DataEncoding::Json => Data::Span(data),
        DataEncoding::Base64 => Data::Decoded(decode_base64_data(text, data)?),
    };
    Ok(Parsed { owner, data })
}

/// One member of a JSON object, as [`members`] finds it.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// The key's text between its quotes.
    pub key: Range<usize>,
    /// The key has escapes.
    pub key_escaped: bool,
    /// The value's exact text.
    pub value: Range<usize>,
    /// The value's first byte.
    pub first: Option<u8>,
    /// The value is a string with escapes.
    pub escaped: bool,
}

impl Member {
    /// The value is a string.
    pub fn is_string(&self) -> bool {
        self.first == Some(b'"')
    }
}

/// Walks the object at the scanner's position (`{`, after whitespace) to its end, calling `f`
/// for each member in order; the scanner stops after the `}`.
fn members(
    s: &mut Scanner<'_>,
    mut f: impl FnMut(Member) -> Result<(), BodyError>,
) -> Result<(), BodyError> {
    s.expect(b'{')?;
    s.ws();
    if s.peek() == Some(b'}') {
        s.pos += 1;
        return Ok(());
    }
    loop {
        s.ws();
        let (key, key_escaped) = s.string()?;
        s.ws();
        s.expect(b':')?;
        s.ws();
        let start = s.pos;
        let first = s.peek();
        let escaped = s.value(MAX_DEPTH - 1)?;
        f(Member {
            key,
            key_escaped,
            value: start..s.pos,
            first,
            escaped,
        })?;
        s.ws();
        match s.peek() {
            Some(b',') => s.pos += 1,
            Some(b'}') => {
                s.pos += 1;
                return Ok(());
            }
            _ => return Err(BodyError::Syntax(s.pos)),
        }
    }
}

/// Reads a JSON object (strict, as [`parse`]) and hands each top-level member to `f`: for the
/// gateway's client messages ([`super::command`]). Errors: not UTF-8, not JSON, not an object.
pub(crate) fn object_members(
    text: &str,
    f: impl FnMut(Member) -> Result<(), BodyError>,
) -> Result<(), BodyError> {
    let mut s = Scanner::new(text);
    s.ws();
    if s.peek() != Some(b'{') {
        // Say "not an object" only for valid JSON that is something else.
        s.value(MAX_DEPTH)?;
        s.end()?;
        return Err(BodyError::NotObject);
    }
    members(&mut s, f)?;
    s.end()
}

/// Whether `bytes` are exactly one JSON value (with optional whitespace around it), as strict
/// as [`parse`] is.
pub fn validate_value(bytes: &[u8]) -> Result<(), BodyError> {
    let text = std::str::from_utf8(bytes).map_err(|_| BodyError::NotUtf8)?;
    let mut s = Scanner::new(text);
    s.ws();
    s.value(MAX_DEPTH)?;
    s.end()
}

/// Appends the upstream body `{"<owner_field>":"<owner>","data":<data>}`: the owner as an
/// escaped JSON string; `data` verbatim ([`DataEncoding::Json`]: the caller passes one valid
/// JSON value, see [`validate_value`]) or as a padded standard base64 string of those bytes
/// ([`DataEncoding::Base64`], what Go's `json.Unmarshal` decodes into a `[]byte`).
pub fn write_body(
    out: &mut Vec<u8>,
    owner_field: &str,
    owner: &str,
    data: &[u8],
    encoding: DataEncoding,
) {
    out.push(b'{');
    write_str(out, owner_field);
    out.push(b':');
    write_str(out, owner);
    out.extend_from_slice(b",\"data\":");
    match encoding {
        DataEncoding::Json => out.extend_from_slice(data),
        DataEncoding::Base64 => {
            out.push(b'"');
            let start = out.len();
            let len = base64::encoded_len(data.len(), true).unwrap_or(0);
            out.resize(start + len, 0);
            let n = base64::engine::general_purpose::STANDARD
                .encode_slice(data, &mut out[start..])
                .unwrap_or(0);
            out.truncate(start + n);
            out.push(b'"');
        }
    }
    out.push(b'}');
}

/// Whether the key at `key` (the raw text between the quotes) names `name`.
pub(crate) fn key_is(text: &str, key: Range<usize>, escaped: bool, name: &str) -> bool {
    let raw = text.get(key).unwrap_or_default();
    if !escaped {
        return raw == name;
    }
    // Cheap filter before unescaping: an escape is at least as long as what it stands for.
    raw.len() >= name.len() && unescape(raw).is_ok_and(|k| k == name)
}

/// The string value whose text (quotes included) is at `range`.
pub(crate) fn string_value(
    text: &str,
    range: Range<usize>,
    escaped: bool,
) -> Result<Cow<'_, str>, BodyError> {
    let inner = text
        .get(range.start + 1..range.end.saturating_sub(1))
        .ok_or(BodyError::Syntax(range.start))?;
    if escaped {
        unescape(inner).map(Cow::Owned)
    } else {
        Ok(Cow::Borrowed(inner))
    }
}

/// Decodes the base64 string at `range` (quotes included) and checks it holds JSON.
fn decode_base64_data(text: &str, range: Range<usize>) -> Result<Vec<u8>, BodyError> {
    if text.as_bytes().get(range.start) != Some(&b'"') {
        return Err(BodyError::DataNotString);
    }
    // Encoders may write `/` as `\/`; base64 never needs another escape.
    let escaped = text.get(range.clone()).is_some_and(|t| t.contains('\\'));
    let raw = string_value(text, range, escaped)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(raw.as_bytes())
        .map_err(|_| BodyError::BadBase64)?;
    validate_value(&decoded).map_err(|_| BodyError::DecodedNotJson)?;
    Ok(decoded)
}

/// Unescapes the text of a JSON string (between the quotes) that the scanner accepted.
fn unescape(raw: &str) -> Result<String, BodyError> {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    let mut start = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(raw.get(start..i).ok_or(BodyError::Syntax(i))?);
        let esc = *b.get(i + 1).ok_or(BodyError::Syntax(i))?;
        i += 2;
        let c = match esc {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(b, i).ok_or(BodyError::Syntax(i))?;
                i += 4;
                let cp = if (0xd800..0xdc00).contains(&hi) {
                    // A high surrogate: the scanner made sure a `\uDC00`-`\uDFFF` follows.
                    let lo = hex4(b, i + 2).ok_or(BodyError::Syntax(i))?;
                    i += 6;
                    0x10000 + ((hi - 0xd800) << 10) + (lo.wrapping_sub(0xdc00) & 0x3ff)
                } else {
                    hi
                };
                char::from_u32(cp).ok_or(BodyError::Syntax(i))?
            }
            _ => return Err(BodyError::Syntax(i)),
        };
        out.push(c);
        start = i;
    }
    out.push_str(raw.get(start..).ok_or(BodyError::Syntax(start))?);
    Ok(out)
}

/// The value of four hex digits at `b[i..i + 4]`.
fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let digits = b.get(i..i + 4)?;
    let mut v = 0u32;
    for &d in digits {
        v = (v << 4) | char::from(d).to_digit(16)?;
    }
    Some(v)
}

/// A strict JSON scanner over validated UTF-8: checks syntax, records nothing but positions.
/// Outside strings only ASCII is valid, so every position it stops at is a char boundary.
struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            b: text.as_bytes(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), BodyError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(BodyError::Syntax(self.pos))
        }
    }

    /// Only whitespace left.
    fn end(&mut self) -> Result<(), BodyError> {
        self.ws();
        if self.pos == self.b.len() {
            Ok(())
        } else {
            Err(BodyError::Syntax(self.pos))
        }
    }

    /// A string at `pos`: returns the range between its quotes and whether it has escapes.
    fn string(&mut self) -> Result<(Range<usize>, bool), BodyError> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            let Some(c) = self.peek() else {
                return Err(BodyError::Syntax(self.pos));
            };
            match c {
                b'"' => {
                    self.pos += 1;
                    return Ok((start..self.pos - 1, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                // "All Unicode characters may be placed within the quotation marks, except
                // for the characters that MUST be escaped: quotation mark, reverse solidus,
                // and the control characters (U+0000 through U+001F)." (RFC 8259, 7)
                0..=0x1f => return Err(BodyError::Syntax(self.pos)),
                _ => self.pos += 1,
            }
        }
    }

    /// An escape at `pos` (the backslash). A `\u` high surrogate must be followed by a `\u`
    /// low surrogate, and a low surrogate must not stand alone (serde_json's rule; the text
    /// could not become a Rust or JavaScript-safe UTF-8 string otherwise).
    fn escape(&mut self) -> Result<(), BodyError> {
        let at = self.pos;
        match self.b.get(self.pos + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'u') => {
                let cp = hex4(self.b, self.pos + 2).ok_or(BodyError::Syntax(at))?;
                self.pos += 6;
                match cp {
                    0xd800..=0xdbff => {
                        if self.b.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(BodyError::Syntax(at));
                        }
                        let lo = hex4(self.b, self.pos + 2).ok_or(BodyError::Syntax(at))?;
                        if !(0xdc00..=0xdfff).contains(&lo) {
                            return Err(BodyError::Syntax(at));
                        }
                        self.pos += 6;
                        Ok(())
                    }
                    0xdc00..=0xdfff => Err(BodyError::Syntax(at)),
                    _ => Ok(()),
                }
            }
            _ => Err(BodyError::Syntax(at)),
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, any length (passed through, never
    /// converted).
    fn number(&mut self) -> Result<(), BodyError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(BodyError::Syntax(self.pos)),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits1()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.digits1()?;
        }
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn digits1(&mut self) -> Result<(), BodyError> {
        let start = self.pos;
        self.digits();
        if self.pos == start {
            Err(BodyError::Syntax(self.pos))
        } else {
            Ok(())
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), BodyError> {
        if self.b.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(BodyError::Syntax(self.pos))
        }
    }

    /// One value at `pos` (no leading whitespace), containers nested at most `max_depth`
    /// deep. Iterative: the nesting is a bit stack (1 = object), so hostile depth costs no
    /// stack. Returns whether the value is a string with escapes.
    fn value(&mut self, max_depth: usize) -> Result<bool, BodyError> {
        // Depth is bounded by MAX_DEPTH < 128, so a u128 holds the whole stack.
        let max_depth = max_depth.min(MAX_DEPTH);
        let mut stack: u128 = 0;
        let mut depth = 0usize;
        loop {
            // A value is expected at `pos`.
            let mut escaped = false;
            match self.peek() {
                Some(open @ (b'{' | b'[')) => {
                    if depth >= max_depth {
                        return Err(BodyError::TooDeep);
                    }
                    self.pos += 1;
                    self.ws();
                    let close = if open == b'{' { b'}' } else { b']' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                    } else {
                        stack = (stack << 1) | u128::from(open == b'{');
                        depth += 1;
                        if open == b'{' {
                            self.member_key()?;
                        }
                        continue;
                    }
                }
                Some(b'"') => escaped = self.string()?.1,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                _ => return Err(BodyError::Syntax(self.pos)),
            }
            // A value ended: close containers until one wants another element.
            loop {
                if depth == 0 {
                    return Ok(escaped);
                }
                self.ws();
                let in_object = stack & 1 == 1;
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.ws();
                        if in_object {
                            self.member_key()?;
                        }
                        break;
                    }
                    Some(b'}') if in_object => {}
                    Some(b']') if !in_object => {}
                    _ => return Err(BodyError::Syntax(self.pos)),
                }
                self.pos += 1;
                stack >>= 1;
                depth -= 1;
                escaped = false;
            }
        }
    }

    /// `"key" :` and the whitespace before the value, inside an object.
    fn member_key(&mut self) -> Result<(), BodyError> {
        self.string()?;
        self.ws();
        self.expect(b':')?;
        self.ws();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> (String, String) {
        let p = parse(body.as_bytes(), "ownerId", DataEncoding::Json)
            .unwrap_or_else(|e| panic!("{body}: {e}"));
        let data = String::from_utf8(p.data.bytes(body.as_bytes()).to_vec()).unwrap();
        (p.owner.into_owned(), data)
    }

    fn err(body: &[u8], enc: DataEncoding) -> BodyError {
        parse(body, "ownerId", enc).expect_err(&String::from_utf8_lossy(body))
    }

    #[test]
    fn data_is_passed_through_byte_for_byte() {
        let cases = [
            r#"{"ownerId":"rider-1","data":{"tripId":"t1"}}"#,
            r#"{"data":{"b":1,"a":[1,2,{"x":null}]},"ownerId":"rider-1"}"#,
            r#"{"ownerId":"r","data":9223372036854775808}"#,
            r#"{"ownerId":"r","data":[18446744073709551616123, -0.0e-0, 1E400]}"#,
            r#"{"ownerId":"r","data":"caf\u00e9 \ud83d\ude00 \"q\" \/"}"#,
            r#"{"ownerId":"r","data":{ "spaced" : [ 1 , 2 ] }}"#,
            r#"{"ownerId":"r","data":null}"#,
            r#"{"ownerId":"r","data":"plain"}"#,
            r#"{"ownerId":"r","data":true,"extra":{"ownerId":"x","data":1}}"#,
        ];
        for body in cases {
            let (owner, data) = ok(body);
            assert!(owner == "rider-1" || owner == "r", "{body}");
            let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
            if !v.is_null() {
                // serde_json's own view of the same member agrees where it can read it.
                let reparsed: serde_json::Value = serde_json::from_str(&data).unwrap();
                assert_eq!(reparsed, v["data"], "{body}");
            }
            let start = body.find(&data).unwrap();
            assert_eq!(&body[start..start + data.len()], data);
        }
        // The exact text, whitespace inside kept, none around.
        let (_, data) = ok("{ \"ownerId\" : \"r\" , \"data\" :\n\t{ \"k\" : [1 ,2] }\r\n }\n");
        assert_eq!(data, "{ \"k\" : [1 ,2] }");
    }

    #[test]
    fn owner_is_unescaped_and_checked() {
        let (owner, _) = ok(r#"{"ownerId":"auth0|caf\u00e9 \ud83d\ude00","data":1}"#);
        assert_eq!(owner, "auth0|café 😀");
        let p = parse(
            br#"{"ownerId":"plain","data":1}"#,
            "ownerId",
            DataEncoding::Json,
        )
        .unwrap();
        assert!(matches!(p.owner, Cow::Borrowed("plain")));
        // An escaped key still names the owner field (and so counts as a duplicate).
        let (owner, _) = ok(r#"{"owner\u0049d":"x","data":1}"#);
        assert_eq!(owner, "x");
        let j = DataEncoding::Json;
        assert_eq!(
            err(br#"{"ownerId":"a","owner\u0049d":"b","data":1}"#, j),
            BodyError::DuplicateOwner
        );
        assert_eq!(err(br#"{"data":1}"#, j), BodyError::NoOwner);
        assert_eq!(err(br#"{"ownerid":"a","data":1}"#, j), BodyError::NoOwner);
        assert_eq!(
            err(br#"{"ownerId":1,"data":1}"#, j),
            BodyError::OwnerNotString
        );
        assert_eq!(
            err(br#"{"ownerId":null,"data":1}"#, j),
            BodyError::OwnerNotString
        );
        assert_eq!(err(br#"{"ownerId":"","data":1}"#, j), BodyError::BadOwner);
        assert_eq!(
            err(br#"{"ownerId":"a\nb","data":1}"#, j),
            BodyError::BadOwner
        );
        let long = format!(r#"{{"ownerId":"{}","data":1}}"#, "x".repeat(129));
        assert_eq!(err(long.as_bytes(), j), BodyError::BadOwner);
        assert_eq!(err(br#"{"ownerId":"a"}"#, j), BodyError::NoData);
        assert_eq!(
            err(br#"{"ownerId":"a","data":1,"data":2}"#, j),
            BodyError::DuplicateData
        );
        // Another owner field name.
        let p = parse(br#"{"user":"u","data":[]}"#, "user", j).unwrap();
        assert_eq!(p.owner, "u");
    }

    #[test]
    fn strict_json_only() {
        let j = DataEncoding::Json;
        let bad: &[&[u8]] = &[
            b"",
            b" ",
            b"{",
            b"{\"ownerId\":\"a\",\"data\":1,}",
            b"{\"ownerId\":\"a\",\"data\":[1,]}",
            b"{\"ownerId\":\"a\",\"data\":01}",
            b"{\"ownerId\":\"a\",\"data\":1.}",
            b"{\"ownerId\":\"a\",\"data\":.5}",
            b"{\"ownerId\":\"a\",\"data\":+1}",
            b"{\"ownerId\":\"a\",\"data\":1e}",
            b"{\"ownerId\":\"a\",\"data\":-}",
            b"{\"ownerId\":\"a\",\"data\":NaN}",
            b"{\"ownerId\":\"a\",\"data\":tru}",
            b"{\"ownerId\":\"a\",\"data\":'x'}",
            b"{\"ownerId\":\"a\",\"data\":\"\\x\"}",
            b"{\"ownerId\":\"a\",\"data\":\"\\ud800\"}",
            b"{\"ownerId\":\"a\",\"data\":\"\\udc00\"}",
            b"{\"ownerId\":\"a\",\"data\":\"\\ud800\\u0041\"}",
            b"{\"ownerId\":\"a\",\"data\":\"\\u12\"}",
            b"{\"ownerId\":\"a\",\"data\":\"tab\there\"}",
            b"{\"ownerId\":\"a\",\"data\":1} x",
            b"{\"ownerId\":\"a\",\"data\":1}{}",
            b"{\"ownerId\":\"a\" \"data\":1}",
            b"{\"ownerId\":\"a\",\"data\":{\"k\"}}",
            b"{\"ownerId\":\"a\",\"data\":{1:2}}",
            b"{\"ownerId\":\"a\",\"data\":[}",
            b"{\"ownerId\":\"a\",\"data\":{]}",
            b"{\"ownerId\":\"a\",/*c*/\"data\":1}",
            b"\xef\xbb\xbf{\"ownerId\":\"a\",\"data\":1}",
            b"{\"ownerId\":\"a\",\"data\":1\x00}",
        ];
        for b in bad {
            assert!(
                matches!(err(b, j), BodyError::Syntax(_)),
                "{:?}: {:?}",
                String::from_utf8_lossy(b),
                err(b, j)
            );
            assert!(serde_json::from_slice::<serde_json::Value>(b).is_err());
        }
        assert_eq!(
            err(b"{\"ownerId\":\"\xff\",\"data\":1}", j),
            BodyError::NotUtf8
        );
        assert_eq!(err(b"[1]", j), BodyError::NotObject);
        assert_eq!(err(b" \"x\" ", j), BodyError::NotObject);
        assert!(matches!(err(b"[1", j), BodyError::Syntax(2)));
    }

    #[test]
    fn depth_matches_serde_json() {
        for depth in [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 10_000] {
            // The body object is one level; `depth - 1` arrays inside.
            let inner = depth - 1;
            let body = format!(
                r#"{{"ownerId":"a","data":{}1{}}}"#,
                "[".repeat(inner),
                "]".repeat(inner)
            );
            let ours = parse(body.as_bytes(), "ownerId", DataEncoding::Json);
            let theirs = serde_json::from_str::<serde_json::Value>(&body);
            assert_eq!(ours.is_ok(), theirs.is_ok(), "depth {depth}");
            if depth > MAX_DEPTH {
                assert_eq!(ours.unwrap_err(), BodyError::TooDeep);
            }
            let doc = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
            let theirs = serde_json::from_str::<serde_json::Value>(&doc);
            assert_eq!(validate_value(doc.as_bytes()).is_ok(), theirs.is_ok());
        }
    }

    #[test]
    fn base64_data_is_decoded_and_must_be_json() {
        let b = DataEncoding::Base64;
        // What Go's json.Marshal writes for Data []byte = `{"tripId":"t1"}`.
        let body = br#"{"ownerId":"rider-1","data":"eyJ0cmlwSWQiOiJ0MSJ9"}"#;
        let p = parse(body, "ownerId", b).unwrap();
        assert_eq!(p.owner, "rider-1");
        assert_eq!(p.data, Data::Decoded(br#"{"tripId":"t1"}"#.to_vec()));
        // `/` escaped by some encoders: "P/8=" is 3f ff... not JSON; use a JSON that encodes
        // with a slash: `"??"` -> ImI/PyI=
        let body = br#"{"ownerId":"r","data":"ImI\/PyI="}"#;
        let p = parse(body, "ownerId", b).unwrap();
        assert_eq!(p.data.bytes(body), br#""b??""#);
        assert_eq!(
            err(br#"{"ownerId":"r","data":{"a":1}}"#, b),
            BodyError::DataNotString
        );
        assert_eq!(
            err(br#"{"ownerId":"r","data":null}"#, b),
            BodyError::DataNotString
        );
        assert_eq!(
            err(br#"{"ownerId":"r","data":"e30"}"#, b),
            BodyError::BadBase64
        );
        assert_eq!(
            err(br#"{"ownerId":"r","data":"e3 0="}"#, b),
            BodyError::BadBase64
        );
        assert_eq!(
            err(br#"{"ownerId":"r","data":"e30-"}"#, b),
            BodyError::BadBase64
        );
        // "hello" is not JSON; neither is nothing.
        assert_eq!(
            err(br#"{"ownerId":"r","data":"aGVsbG8="}"#, b),
            BodyError::DecodedNotJson
        );
        assert_eq!(
            err(br#"{"ownerId":"r","data":""}"#, b),
            BodyError::DecodedNotJson
        );
        // The same body in json mode is a string, passed through.
        let (_, data) = ok(r#"{"ownerId":"r","data":"aGVsbG8="}"#);
        assert_eq!(data, r#""aGVsbG8=""#);
    }

    #[test]
    fn write_body_round_trips() {
        let mut out = Vec::new();
        write_body(
            &mut out,
            "ownerId",
            "dri\"ver\n1",
            br#"{"x":[1,2]}"#,
            DataEncoding::Json,
        );
        assert_eq!(out, br#"{"ownerId":"dri\"ver\n1","data":{"x":[1,2]}}"#);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["ownerId"], "dri\"ver\n1");
        out.clear();
        write_body(
            &mut out,
            "ownerId",
            "driver-1",
            br#"{"tripId":"t1"}"#,
            DataEncoding::Base64,
        );
        assert_eq!(
            out,
            br#"{"ownerId":"driver-1","data":"eyJ0cmlwSWQiOiJ0MSJ9"}"#
        );
        let p = parse(&out, "ownerId", DataEncoding::Base64).unwrap();
        assert_eq!(p.data.bytes(&out), br#"{"tripId":"t1"}"#);
    }

    #[test]
    fn encoding_names() {
        assert_eq!("json".parse(), Ok(DataEncoding::Json));
        assert_eq!("base64".parse(), Ok(DataEncoding::Base64));
        assert_eq!(
            "Base64".parse::<DataEncoding>(),
            Err(BodyError::UnknownEncoding)
        );
        assert_eq!(DataEncoding::default().as_str(), "json");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// JSON text for arbitrary values, written with random whitespace and escapes (what
        /// different encoders produce), so the pass-through is tested on more than one style.
        fn json_text() -> impl Strategy<Value = String> {
            let ws = prop::sample::select(vec!["", " ", "\n", "\t ", "\r\n  "]);
            let leaf = prop_oneof![
                Just("null".to_string()),
                Just("true".to_string()),
                Just("false".to_string()),
                any::<i64>().prop_map(|n| n.to_string()),
                any::<u64>().prop_map(|n| n.to_string()),
                "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
                any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
                "[a-z\u{e9}\u{1F600}\u{2028}]{0,8}".prop_map(|s| {
                    // \u-escape every character, pairs for astral ones.
                    let mut out = String::from("\"");
                    for u in s.encode_utf16() {
                        out.push_str(&format!("\\u{u:04X}"));
                    }
                    out.push('"');
                    out
                }),
            ];
            leaf.prop_recursive(6, 64, 8, move |inner| {
                let ws = ws.clone();
                prop_oneof![
                    (prop::collection::vec((inner.clone(), ws.clone()), 0..6)).prop_map(|v| {
                        let items: Vec<String> =
                            v.into_iter().map(|(x, w)| format!("{w}{x}{w}")).collect();
                        format!("[{}]", items.join(","))
                    }),
                    (prop::collection::vec(("[a-zA-Z_\"\\\\]{0,6}", inner, ws), 0..6)).prop_map(
                        |v| {
                            let items: Vec<String> = v
                                .into_iter()
                                .map(|(k, x, w)| {
                                    format!("{w}{}{w}:{w}{x}", serde_json::to_string(&k).unwrap())
                                })
                                .collect();
                            format!("{{{}}}", items.join(","))
                        }
                    ),
                ]
            })
        }

        proptest! {
            #[test]
            fn json_data_survives_byte_for_byte(
                data in json_text(),
                owner in "[a-zA-Z0-9|@. \u{e9}-]{1,40}",
                extra in json_text(),
                data_first in any::<bool>(),
                escape_key in any::<bool>(),
            ) {
                let owner_json = serde_json::to_string(&owner).unwrap();
                let key = if escape_key { r#""\u006fwnerId""# } else { r#""ownerId""# };
                let body = if data_first {
                    format!(r#"{{"data": {data} ,"x":{extra},{key}:{owner_json}}}"#)
                } else {
                    format!(r#"{{ {key} : {owner_json},"x":{extra},"data":{data}}}"#)
                };
                let p = parse(body.as_bytes(), "ownerId", DataEncoding::Json).unwrap();
                prop_assert_eq!(p.owner.as_ref(), owner.as_str());
                prop_assert_eq!(p.data.bytes(body.as_bytes()), data.as_bytes());
                prop_assert!(validate_value(data.as_bytes()).is_ok());
                // Anything serde_json reads, it reads the same from the passed-through text
                // (numbers beyond f64 aside: those serde_json refuses, and we pass on).
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                    let d: serde_json::Value = serde_json::from_str(&data).unwrap();
                    prop_assert_eq!(&d, &v["data"]);
                }
            }

            #[test]
            fn base64_round_trips(data in json_text(), owner in "[^\u{0}-\u{1f}\u{7f}-\u{9f}]{1,20}") {
                let mut body = Vec::new();
                write_body(&mut body, "ownerId", &owner, data.as_bytes(), DataEncoding::Base64);
                let p = parse(&body, "ownerId", DataEncoding::Base64).unwrap();
                prop_assert_eq!(p.owner.as_ref(), owner.as_str());
                prop_assert_eq!(p.data.bytes(&body), data.as_bytes());
                body.clear();
                write_body(&mut body, "ownerId", &owner, data.as_bytes(), DataEncoding::Json);
                let p = parse(&body, "ownerId", DataEncoding::Json).unwrap();
                prop_assert_eq!(p.data.bytes(&body), data.as_bytes());
            }

            #[test]
            fn arbitrary_bytes_agree_with_serde_json(bytes in prop::collection::vec(
                prop::sample::select(b"{}[]\":,0123456789.-+eEtruefalsn \\u/abd\x01\xc3\xa9".to_vec()),
                0..48,
            )) {
                let ours = validate_value(&bytes);
                match serde_json::from_slice::<serde_json::Value>(&bytes) {
                    Ok(_) => prop_assert!(ours.is_ok(), "{:?}", String::from_utf8_lossy(&bytes)),
                    Err(e) if e.to_string().contains("number out of range") => {}
                    Err(_) => prop_assert!(ours.is_err(), "{:?}", String::from_utf8_lossy(&bytes)),
                }
                let _ = parse(&bytes, "ownerId", DataEncoding::Json);
                let _ = parse(&bytes, "ownerId", DataEncoding::Base64);
            }
        }
    }
}
