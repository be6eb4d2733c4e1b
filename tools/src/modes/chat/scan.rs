//! A one-pass scanner for the top-level fields of the chat protocol's server messages, cheap
//! enough for the delivery path (~1-2M messages/s over the tool's processes): no allocation,
//! no escape decoding, and it stops as soon as it has the fields the message's type needs
//! (a 100 KB `user.list` costs its first two fields). Nested values are skipped. It is not a
//! validator: JSON after the last needed field is not looked at (the server's own tests check
//! its JSON); malformed input up to there gives `None`, never a panic.

/// Strings up to this long are searched byte by byte, longer ones with `memchr`.
const SHORT_STRING: usize = 16;

/// A field value as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raw<'a> {
    /// A string's bytes between the quotes, escapes not decoded.
    Str(&'a [u8]),
    /// A number, `true`, `false` or `null`, as written.
    Lit(&'a [u8]),
    /// An object or array (skipped).
    Nested,
}

impl<'a> Raw<'a> {
    pub fn as_str(self) -> Option<&'a [u8]> {
        match self {
            Raw::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A non-negative integer literal.
    pub fn as_u64(self) -> Option<u64> {
        let Raw::Lit(digits) = self else {
            return None;
        };
        if digits.is_empty() {
            return None;
        }
        digits.iter().try_fold(0u64, |v, &d| {
            d.is_ascii_digit().then_some(())?;
            v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
    }
}

/// The fields the chat mode reads. A field the message does not carry (or that the scan did
/// not reach because the type did not need it) is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    /// `type`.
    pub kind: Option<&'a [u8]>,
    pub room: Option<&'a [u8]>,
    pub content: Option<&'a [u8]>,
    pub seq: Option<u64>,
    /// `code` of an error.
    pub code: Option<&'a [u8]>,
    pub id: Option<Raw<'a>>,
}

impl Fields<'_> {
    /// Whether every field that the message's type needs is known.
    fn is_complete(&self) -> bool {
        match self.kind {
            None => false,
            Some(b"chat") => self.room.is_some() && self.content.is_some() && self.seq.is_some(),
            Some(b"ack") => self.id.is_some(),
            Some(b"error") => self.code.is_some() && self.id.is_some(),
            Some(b"user.list") => self.room.is_some(),
            Some(_) => true,
        }
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn next(&mut self) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    /// Consumes `lit` exactly.
    fn expect(&mut self, lit: &[u8]) -> Option<()> {
        let end = self.i.checked_add(lit.len())?;
        (self.b.get(self.i..end)? == lit).then(|| self.i = end)
    }

    /// The rest of a short string without escapes (a room name) whose opening quote was
    /// consumed; `None` on an escape.
    fn short_string_body(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        loop {
            match self.next()? {
                b'"' => return Some(&self.b[start..self.i - 1]),
                b'\\' => return None,
                _ => {}
            }
        }
    }

    /// A string; the opening quote is the next byte.
    fn string(&mut self) -> Option<&'a [u8]> {
        if self.next()? != b'"' {
            return None;
        }
        let start = self.i;
        loop {
            // The closing quote or an escape: byte by byte for short strings (keys, names),
            // then a SIMD search (contents are the bulk of a message).
            let rest = self.b.get(self.i..)?;
            let short = rest.len().min(SHORT_STRING);
            let at = match rest[..short].iter().position(|&b| b == b'"' || b == b'\\') {
                Some(p) => p,
                None => short + memchr::memchr2(b'"', b'\\', &rest[short..])?,
            };
            self.i += at + 1;
            if rest[at] == b'"' {
                return Some(&self.b[start..self.i - 1]);
            }
            self.next()?; // the escaped byte
        }
    }

    /// Skips an object or array whose opening bracket is the next byte.
    fn skip_nested(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match self.b.get(self.i)? {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        self.i += 1;
                        return Some(());
                    }
                }
                _ => {}
            }
            self.i += 1;
        }
    }

    fn value(&mut self) -> Option<Raw<'a>> {
        match self.b.get(self.i)? {
            b'"' => self.string().map(Raw::Str),
            b'{' | b'[' => self.skip_nested().map(|()| Raw::Nested),
            _ => {
                let start = self.i;
                while !matches!(
                    self.b.get(self.i),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')
                ) {
                    self.i += 1;
                }
                // A literal cut by the end of the input may be a longer one (`4` of `42`).
                (self.i > start && self.i < self.b.len()).then(|| Raw::Lit(&self.b[start..self.i]))
            }
        }
    }
}

/// Scans a JSON object's top-level fields. `None`: not an object, or malformed before the
/// scan had what the type needs.
pub fn scan(msg: &[u8]) -> Option<Fields<'_>> {
    if let Some(f) = scan_chat_fast(msg) {
        return Some(f);
    }
    scan_any(msg)
}

/// The server's own layout of a chat delivery, compact and in the protocol's field order:
/// `{"type":"chat","room":"R","from":"F","content":"C","seq":S,...`. Anything else (another
/// order, spaces, a field in between) is `None` and goes to [`scan_any`], which reads the same
/// fields from any layout.
fn scan_chat_fast(msg: &[u8]) -> Option<Fields<'_>> {
    let rest = msg.strip_prefix(br#"{"type":"chat","room":""#)?;
    let mut c = Cursor { b: rest, i: 0 };
    let room = c.short_string_body()?;
    c.expect(br#","from":"#)?;
    c.string()?;
    c.expect(br#","content":"#)?;
    let content = c.string()?;
    c.expect(br#","seq":"#)?;
    let seq = c.value()?.as_u64()?;
    if !matches!(c.b.get(c.i), Some(b',' | b'}')) {
        return None;
    }
    Some(Fields {
        kind: Some(b"chat"),
        room: Some(room),
        content: Some(content),
        seq: Some(seq),
        code: None,
        id: None,
    })
}

/// Scans any layout (see [`scan`]).
fn scan_any(msg: &[u8]) -> Option<Fields<'_>> {
    let mut c = Cursor { b: msg, i: 0 };
    let mut f = Fields::default();
    c.ws();
    if c.next()? != b'{' {
        return None;
    }
    c.ws();
    if c.b.get(c.i) == Some(&b'}') {
        return Some(f);
    }
    loop {
        c.ws();
        let key = c.string()?;
        c.ws();
        if c.next()? != b':' {
            return None;
        }
        c.ws();
        let v = c.value()?;
        match key {
            b"type" => f.kind = v.as_str(),
            b"room" => f.room = v.as_str(),
            b"content" => f.content = v.as_str(),
            b"seq" => f.seq = v.as_u64(),
            b"code" => f.code = v.as_str(),
            b"id" => f.id = Some(v),
            _ => {}
        }
        if f.is_complete() {
            return Some(f);
        }
        c.ws();
        match c.next()? {
            b',' => {}
            b'}' => return Some(f),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_chat_delivery_in_any_field_order_and_spacing() {
        let compact = br#"{"type":"chat","room":"room-3","from":"u7","content":"abc","seq":42,"timestamp":"2026-12-01T10:00:00.123Z"}"#;
        let spaced = br#" { "seq" : 42 , "from":"u\"7", "content" : "abc", "extra":{"a":[1,{"b":"}"}]}, "room":"room-3","type":"chat"}"#;
        for m in [&compact[..], &spaced[..]] {
            let f = scan(m).expect("scans");
            assert_eq!(f.kind, Some(&b"chat"[..]));
            assert_eq!(f.room, Some(&b"room-3"[..]));
            assert_eq!(f.content, Some(&b"abc"[..]));
            assert_eq!(f.seq, Some(42));
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_general_scan() {
        let canonical = [
            &br#"{"type":"chat","room":"room-3","from":"u7","content":"abc","seq":42,"timestamp":"t"}"#[..],
            br#"{"type":"chat","room":"r","from":"a\"b","content":"x\\y\"z","seq":0}"#,
            br#"{"type":"chat","room":"general","from":"","content":"","seq":18446744073709551615}"#,
        ];
        for m in canonical {
            let fast = scan_chat_fast(m);
            assert!(fast.is_some(), "{}", String::from_utf8_lossy(m));
            assert_eq!(fast, scan_any(m), "{}", String::from_utf8_lossy(m));
        }
        // Other layouts are left to the general scan, which still reads them.
        let others = [
            &br#"{"type":"chat","room":"r\u0041","from":"u","content":"c","seq":1}"#[..],
            br#"{"type":"chat","room":"r","from":"u","x":1,"content":"c","seq":1}"#,
            br#"{"type":"chat", "room":"r","from":"u","content":"c","seq":1}"#,
            br#"{"type":"chat","room":"r","from":"u","content":"c","seq":1.5}"#,
        ];
        for m in others {
            assert_eq!(scan_chat_fast(m), None, "{}", String::from_utf8_lossy(m));
        }
        assert_eq!(scan(others[2]).and_then(|f| f.seq), Some(1));
        // Truncated canonical messages are never complete.
        let full = canonical[0];
        let complete_at = full.windows(3).position(|w| w == b"42,").expect("seq") + 3;
        for n in 0..full.len() {
            assert_eq!(
                scan_chat_fast(&full[..n]).is_some(),
                n >= complete_at,
                "prefix {n}"
            );
        }
    }

    #[test]
    fn long_strings_with_escapes_anywhere() {
        for n in [0usize, 1, 15, 16, 17, 40, 100] {
            for esc in [None, Some(0), Some(n / 2), Some(n.saturating_sub(1))] {
                let mut body: Vec<u8> = vec![b'a'; n];
                if let Some(at) = esc.filter(|&at| at < n) {
                    body[at] = b'"';
                    body.insert(at, b'\\');
                }
                let mut m = br#"{"type":"chat","room":"r","from":"u","content":""#.to_vec();
                m.extend_from_slice(&body);
                m.extend_from_slice(br#"","seq":7}"#);
                let f = scan(&m).expect("scans");
                assert_eq!(f.content, Some(&body[..]), "n {n} esc {esc:?}");
                assert_eq!(f.seq, Some(7));
            }
        }
    }

    #[test]
    fn acks_errors_and_lists() {
        let f = scan(br#"{"type":"ack","id":17,"seq":5}"#).expect("scans");
        assert_eq!((f.kind, f.id), (Some(&b"ack"[..]), Some(Raw::Lit(b"17"))));
        assert_eq!(f.id.and_then(Raw::as_u64), Some(17));
        let f = scan(br#"{"type":"ack","id":"j"}"#).expect("scans");
        assert_eq!(f.id, Some(Raw::Str(b"j")));
        let f = scan(br#"{"type":"error","code":"rate_limited","content":"slow down","id":3}"#)
            .expect("scans");
        assert_eq!(f.code, Some(&b"rate_limited"[..]));
        assert_eq!(f.id.and_then(Raw::as_u64), Some(3));
        // An error without id: scanned to the end.
        let f = scan(br#"{"type":"error","code":"bad_json","content":"x"}"#).expect("scans");
        assert_eq!((f.code, f.id), (Some(&b"bad_json"[..]), None));
        // A user.list stops after the room: the (possibly huge, here broken) rest is not read.
        let f = scan(br#"{"type":"user.list","room":"room-0","users":["a","b"#).expect("scans");
        assert_eq!(f.room, Some(&b"room-0"[..]));
        let f = scan(br#"{"type":"room.list","rooms":[{"room":"general","members":3}]}"#)
            .expect("scans");
        assert_eq!((f.kind, f.room), (Some(&b"room.list"[..]), None));
        assert_eq!(scan(b"{}"), Some(Fields::default()));
    }

    #[test]
    fn malformed_input_is_none_at_every_truncation() {
        let full = br#"{"type":"chat","room":"room-3","content":"a\"b","seq":42}"#;
        // Every strict prefix lacks something the chat needs, or is cut mid-token.
        for n in 0..full.len() {
            let f = scan(&full[..n]);
            assert!(
                f.is_none() || !f.is_some_and(|f| f.is_complete()),
                "prefix {n}: {f:?}"
            );
        }
        for bad in [
            &b"[1,2]"[..],
            b"\"type\"",
            b"{\"type\" \"chat\"}",
            b"{\"type\":\"chat\";}",
            b"{type:\"chat\"}",
            b"{\"a\":}",
            b"{\"a\":]]]}",
        ] {
            assert_eq!(scan(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(Raw::Lit(b"18446744073709551616").as_u64(), None);
        assert_eq!(Raw::Lit(b"-1").as_u64(), None);
        assert_eq!(Raw::Lit(b"1.5").as_u64(), None);
        assert_eq!(Raw::Str(b"1").as_u64(), None);
    }
}
