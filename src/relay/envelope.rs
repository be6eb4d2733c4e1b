//! The relay's message envelope: what a node publishes on a Redis channel or stores in a
//! history list, a one-line header followed by the payload bytes.
//!
//! ```text
//! cc1 room node-1 general 42\n{"type":"message",...}
//! cc1 presence node-2 general Ali%20Veli\n{"type":"presence",...}
//! cc1 user node-1 auth0|123\n{"type":"private",...}
//! cc1 notify node-3 alice\n{"type":"order.created",...}
//! cc1 disconnect node-1 alice\n
//! ```
//!
//! `cc1 KIND ORIGIN FIELD...`, single spaces, ended by one LF (no CR). The origin node id and
//! the kind (and the kind's fields: room, seq, user) are readable without touching the payload,
//! which passes through byte for byte, whatever it holds. Every field has one canonical
//! spelling, so a valid envelope written back is the same bytes. A room message's header is
//! plain ASCII tokens, so the Lua script that assigns the seq can build it by concatenation
//! (format the seq with `string.format('%d', seq)`: Lua 5.1's `tostring` writes 1e+15).
//!
//! Owns the byte format only: not which channel an envelope goes to, nor what the payload
//! means. Parsing is strict and never panics; it borrows from the input and allocates only to
//! unescape a user id that has escapes.

use std::borrow::Cow;

use crate::chat::validate::{is_room_name, is_user_id};

/// The first token of every envelope (the format's version).
pub const VERSION: &str = "cc1";
/// Longest node id, in bytes.
pub const MAX_NODE_ID_LEN: usize = 64;
/// Longest header (without its LF) a parser looks for. Every valid header fits: the longest,
/// a presence header with a 64-byte origin, a 64-byte room and a 128-byte user id escaped
/// entirely (`%XX` per byte), is 527 bytes.
pub const MAX_HEADER_LEN: usize = 1024;

/// Why bytes are not a valid envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// No LF within the first [`MAX_HEADER_LEN`] + 1 bytes.
    #[error("envelope header has no newline")]
    MissingNewline,
    /// The header does not start with `cc1 `.
    #[error("not a cc1 envelope")]
    Version,
    /// A kind this node does not know.
    #[error("unknown envelope kind")]
    UnknownKind,
    /// The origin is not 1–64 bytes of `[A-Za-z0-9._:-]`.
    #[error("invalid origin node id")]
    BadOrigin,
    /// Not a room name (`[A-Za-z0-9._-]{1,64}`).
    #[error("invalid room name")]
    BadRoom,
    /// Not a user id (1–128 bytes of printable UTF-8), or not escaped canonically.
    #[error("invalid user id")]
    BadUser,
    /// Not a decimal u64 without leading zeros.
    #[error("invalid sequence number")]
    BadSeq,
    /// Fields missing or extra (or a space too many) for the kind.
    #[error("wrong number of envelope fields")]
    FieldCount,
}

/// What the envelope is for; decides its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `room ROOM SEQ`: a room message, sequenced by Redis.
    Room,
    /// `replay ROOM SEQ`: a room message its origin delivered on its own while Redis was
    /// unreachable, sequenced by Redis when it came back: every node but the origin delivers
    /// it.
    Replay,
    /// `presence ROOM USER`: a presence notice for a room's members about a user.
    Presence,
    /// `user USER`: a message for every connection of a user (private message...).
    User,
    /// `notify USER`: a notification (`POST /api/notify`) for every connection of a user.
    Notify,
    /// `disconnect USER`: close every connection of a user (`POST /api/disconnect`).
    Disconnect,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Self::Room,
        Self::Replay,
        Self::Presence,
        Self::User,
        Self::Notify,
        Self::Disconnect,
    ];

    /// The kind's token in the header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Room => "room",
            Self::Replay => "replay",
            Self::Presence => "presence",
            Self::User => "user",
            Self::Notify => "notify",
            Self::Disconnect => "disconnect",
        }
    }

    /// The kind written as `token` (exactly, case-sensitive).
    pub fn from_token(token: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().as_bytes() == token)
    }
}

/// The kind and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// A room message.
    Room {
        /// The room (a valid room name).
        room: &'a str,
        /// The room's sequence number for this message.
        seq: u64,
    },
    /// See [`Kind::Replay`].
    Replay {
        /// The room.
        room: &'a str,
        /// Its seq from Redis.
        seq: u64,
    },
    /// A presence notice.
    Presence {
        /// The room whose members are told.
        room: &'a str,
        /// The user who joined or left (unescaped).
        user: Cow<'a, str>,
    },
    /// A message for a user's connections.
    User {
        /// The user (unescaped).
        user: Cow<'a, str>,
    },
    /// A notification for a user's connections.
    Notify {
        /// The user (unescaped).
        user: Cow<'a, str>,
    },
    /// Close a user's connections.
    Disconnect {
        /// The user (unescaped).
        user: Cow<'a, str>,
    },
}

impl Target<'_> {
    /// The envelope kind this target is written as.
    pub fn kind(&self) -> Kind {
        match self {
            Self::Room { .. } => Kind::Room,
            Self::Replay { .. } => Kind::Replay,
            Self::Presence { .. } => Kind::Presence,
            Self::User { .. } => Kind::User,
            Self::Notify { .. } => Kind::Notify,
            Self::Disconnect { .. } => Kind::Disconnect,
        }
    }
}

/// One relay message: who sent it, what for, and the bytes to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The node that published it (see [`is_node_id`]).
    pub origin: &'a str,
    /// The kind and its fields.
    pub target: Target<'a>,
    /// The bytes after the header, passed through untouched (usually the JSON to deliver).
    pub payload: &'a [u8],
}

/// A node id: 1–64 bytes of `[A-Za-z0-9._:-]` (a hostname, `host-pid`, `host:port`...).
pub fn is_node_id(id: &str) -> bool {
    (1..=MAX_NODE_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

impl<'a> Envelope<'a> {
    /// The envelope's kind.
    pub fn kind(&self) -> Kind {
        self.target.kind()
    }

    /// Parses an envelope (a published message or a history list entry).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, EnvelopeError> {
        let nl = bytes
            .iter()
            .take(MAX_HEADER_LEN + 1)
            .position(|&b| b == b'\n')
            .ok_or(EnvelopeError::MissingNewline)?;
        let (header, payload) = (&bytes[..nl], &bytes[nl + 1..]);
        let mut tokens = header.split(|&b| b == b' ');
        if tokens.next() != Some(VERSION.as_bytes()) {
            return Err(EnvelopeError::Version);
        }
        let mut next = || tokens.next().ok_or(EnvelopeError::FieldCount);
        let kind = Kind::from_token(next()?).ok_or(EnvelopeError::UnknownKind)?;
        let origin = std::str::from_utf8(next()?)
            .ok()
            .filter(|o| is_node_id(o))
            .ok_or(EnvelopeError::BadOrigin)?;
        let target = match kind {
            Kind::Room => Target::Room {
                room: parse_room(next()?)?,
                seq: parse_seq(next()?)?,
            },
            Kind::Replay => Target::Replay {
                room: parse_room(next()?)?,
                seq: parse_seq(next()?)?,
            },
            Kind::Presence => Target::Presence {
                room: parse_room(next()?)?,
                user: parse_user(next()?)?,
            },
            Kind::User => Target::User {
                user: parse_user(next()?)?,
            },
            Kind::Notify => Target::Notify {
                user: parse_user(next()?)?,
            },
            Kind::Disconnect => Target::Disconnect {
                user: parse_user(next()?)?,
            },
        };
        if next().is_ok() {
            return Err(EnvelopeError::FieldCount);
        }
        Ok(Self {
            origin,
            target,
            payload,
        })
    }

    /// Checks every field, as [`parse`](Self::parse) would.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        if !is_node_id(self.origin) {
            return Err(EnvelopeError::BadOrigin);
        }
        let (room, user) = match &self.target {
            Target::Room { room, .. } | Target::Replay { room, .. } => (Some(*room), None),
            Target::Presence { room, user } => (Some(*room), Some(user)),
            Target::User { user } | Target::Notify { user } | Target::Disconnect { user } => {
                (None, Some(user))
            }
        };
        if room.is_some_and(|r| !is_room_name(r)) {
            return Err(EnvelopeError::BadRoom);
        }
        if user.is_some_and(|u| !is_user_id(u)) {
            return Err(EnvelopeError::BadUser);
        }
        Ok(())
    }

    /// Appends the header (with its LF) and the payload. Writes nothing and fails when a
    /// field is invalid, so whatever is written parses back to `self`.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        self.write_header(out)?;
        out.extend_from_slice(self.payload);
        Ok(())
    }

    /// Appends the header and its LF only (for a payload written into `out` afterwards; the
    /// `payload` field is ignored).
    pub fn write_header(&self, out: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        self.validate()?;
        out.extend_from_slice(VERSION.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.kind().as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.origin.as_bytes());
        match &self.target {
            Target::Room { room, seq } | Target::Replay { room, seq } => {
                out.push(b' ');
                out.extend_from_slice(room.as_bytes());
                out.push(b' ');
                // u64::MAX has 20 digits.
                let mut digits = [0u8; 20];
                let mut at = digits.len();
                let mut n = *seq;
                loop {
                    at -= 1;
                    digits[at] = b'0' + (n % 10) as u8;
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                out.extend_from_slice(&digits[at..]);
            }
            Target::Presence { room, user } => {
                out.push(b' ');
                out.extend_from_slice(room.as_bytes());
                out.push(b' ');
                write_escaped(out, user);
            }
            Target::User { user } | Target::Notify { user } | Target::Disconnect { user } => {
                out.push(b' ');
                write_escaped(out, user);
            }
        }
        out.push(b'\n');
        Ok(())
    }
}

fn parse_room(token: &[u8]) -> Result<&str, EnvelopeError> {
    std::str::from_utf8(token)
        .ok()
        .filter(|r| is_room_name(r))
        .ok_or(EnvelopeError::BadRoom)
}

/// Decimal digits without a leading zero (bar `0` itself), within u64.
fn parse_seq(token: &[u8]) -> Result<u64, EnvelopeError> {
    if token.is_empty() || token.len() > 20 || (token[0] == b'0' && token.len() > 1) {
        return Err(EnvelopeError::BadSeq);
    }
    token.iter().try_fold(0u64, |n, &d| {
        if !d.is_ascii_digit() {
            return Err(EnvelopeError::BadSeq);
        }
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(EnvelopeError::BadSeq)
    })
}

/// Bytes written as themselves in a user id; every other byte is `%XX` (uppercase hex).
fn is_plain(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b'%'
}

fn write_escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if is_plain(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// A user id token: plain bytes and canonical escapes only (an escape of a plain byte, or
/// in lowercase hex, would spell the same id two ways).
fn parse_user(token: &[u8]) -> Result<Cow<'_, str>, EnvelopeError> {
    let user = if token.contains(&b'%') {
        let mut bytes = Vec::with_capacity(token.len());
        let mut rest = token;
        while let Some((&b, tail)) = rest.split_first() {
            if b != b'%' {
                bytes.push(b);
                rest = tail;
                continue;
            }
            let [hi, lo, tail @ ..] = tail else {
                return Err(EnvelopeError::BadUser);
            };
            let byte = (hex(*hi)? << 4) | hex(*lo)?;
            if is_plain(byte) {
                return Err(EnvelopeError::BadUser);
            }
            bytes.push(byte);
            rest = tail;
        }
        Cow::Owned(String::from_utf8(bytes).map_err(|_| EnvelopeError::BadUser)?)
    } else {
        Cow::Borrowed(std::str::from_utf8(token).map_err(|_| EnvelopeError::BadUser)?)
    };
    // Plain bytes must be plain: a raw space cannot be in a token, but raw non-ASCII can.
    if !token.iter().all(|&b| is_plain(b) || b == b'%') || !is_user_id(&user) {
        return Err(EnvelopeError::BadUser);
    }
    Ok(user)
}

fn hex(d: u8) -> Result<u8, EnvelopeError> {
    match d {
        b'0'..=b'9' => Ok(d - b'0'),
        b'A'..=b'F' => Ok(d - b'A' + 10),
        _ => Err(EnvelopeError::BadUser),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
        Envelope::parse(s)
    }

    fn round_trip(wire: &[u8]) -> Envelope<'_> {
        let env =
            parse(wire).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(wire)));
        let mut out = Vec::new();
        env.write(&mut out).unwrap();
        assert_eq!(out, wire);
        env
    }

    #[test]
    fn every_kind() {
        let env = round_trip(b"cc1 room node-1 general 42\n{\"type\":\"message\"}");
        assert_eq!(
            env,
            Envelope {
                origin: "node-1",
                target: Target::Room {
                    room: "general",
                    seq: 42
                },
                payload: b"{\"type\":\"message\"}",
            }
        );
        assert_eq!(env.kind(), Kind::Room);
        let env = round_trip(b"cc1 presence host:7000 a.b_c-D Ali%20Veli\n{}");
        assert_eq!(
            env.target,
            Target::Presence {
                room: "a.b_c-D",
                user: Cow::Borrowed("Ali Veli")
            }
        );
        let env = round_trip(b"cc1 user n auth0|123\n{\"x\":1}\n\n");
        assert_eq!(
            env.target,
            Target::User {
                user: Cow::Borrowed("auth0|123")
            }
        );
        assert!(matches!(
            env.target,
            Target::User {
                user: Cow::Borrowed(_)
            }
        ));
        assert_eq!(env.payload, b"{\"x\":1}\n\n");
        let env = round_trip(b"cc1 notify n.1 %C5%9F%C3%BCkr%C3%BC\n{}");
        assert_eq!(
            env.target,
            Target::Notify {
                user: "şükrü".into()
            }
        );
        let env = round_trip(b"cc1 disconnect N_1 a%25b\n");
        assert_eq!(env.target, Target::Disconnect { user: "a%b".into() });
        assert_eq!(env.payload, b"");
        assert_eq!(
            round_trip(b"cc1 room n r 0\n").target,
            Target::Room { room: "r", seq: 0 }
        );
        assert_eq!(
            round_trip(b"cc1 room n r 18446744073709551615\n").target,
            Target::Room {
                room: "r",
                seq: u64::MAX
            }
        );
        for kind in Kind::ALL {
            assert_eq!(Kind::from_token(kind.as_str().as_bytes()), Some(kind));
        }
    }

    #[test]
    fn payload_passes_through() {
        let mut payload: Vec<u8> = (0..=255).collect();
        payload.extend_from_slice(b"\ncc1 room x y 1\n\r\n\0");
        let mut wire = b"cc1 user node-7 bob\n".to_vec();
        wire.extend_from_slice(&payload);
        let env = round_trip(&wire);
        assert_eq!(env.payload, payload);
        // Borrowed from the input, not copied.
        assert!(std::ptr::eq(env.payload.as_ptr(), wire[20..].as_ptr()));
    }

    #[test]
    fn longest_header() {
        let origin = "o".repeat(64);
        let room = "r".repeat(64);
        let user = " ".repeat(128);
        let env = Envelope {
            origin: &origin,
            target: Target::Presence {
                room: &room,
                user: user.as_str().into(),
            },
            payload: b"p",
        };
        let mut out = Vec::new();
        env.write(&mut out).unwrap();
        assert_eq!(out.len(), 527 + 2);
        assert_eq!(parse(&out), Ok(env));
    }

    #[test]
    fn refused() {
        use EnvelopeError::*;
        let long = [b"cc1 user n ".as_slice(), &[b'u'; 1100], b"\n"].concat();
        let cases: &[(&[u8], EnvelopeError)] = &[
            (b"", MissingNewline),
            (b"cc1 room n r 1", MissingNewline),
            (&long, MissingNewline),
            (b"\n", Version),
            (b"cc2 room n r 1\n", Version),
            (b"CC1 room n r 1\n", Version),
            (b" cc1 room n r 1\n", Version),
            (b"cc1\n", FieldCount),
            (b"cc1 \n", UnknownKind),
            (b"cc1 rooms n r 1\n", UnknownKind),
            (b"cc1 Room n r 1\n", UnknownKind),
            (b"cc1 ping n\n", UnknownKind),
            (b"cc1 room\n", FieldCount),
            (b"cc1 room  r 1\n", BadOrigin),
            (b"cc1 room n/1 r 1\n", BadOrigin),
            (b"cc1 room n\xc3\xa9 r 1\n", BadOrigin),
            (b"cc1 room n\n", FieldCount),
            (b"cc1 room n r\n", FieldCount),
            (b"cc1 room n r 1 \n", FieldCount),
            (b"cc1 room n r 1 x\n", FieldCount),
            (b"cc1 room n r  1\n", BadSeq),
            (b"cc1 room n r:x 1\n", BadRoom),
            (b"cc1 room n  1\n", BadRoom),
            (b"cc1 room n r 01\n", BadSeq),
            (b"cc1 room n r +1\n", BadSeq),
            (b"cc1 room n r -1\n", BadSeq),
            (b"cc1 room n r 1\r\n", BadSeq),
            (b"cc1 room n r 18446744073709551616\n", BadSeq),
            (b"cc1 room n r 999999999999999999999\n", BadSeq),
            (b"cc1 user n\n", FieldCount),
            (b"cc1 user n a b\n", FieldCount),
            (b"cc1 user n \n", BadUser),
            (b"cc1 user n %41\n", BadUser),
            (b"cc1 user n %c3%a9\n", BadUser),
            (b"cc1 user n %C3\n", BadUser),
            (b"cc1 user n %2\n", BadUser),
            (b"cc1 user n %\n", BadUser),
            (b"cc1 user n %ZZ\n", BadUser),
            (b"cc1 user n \xc3\xa9\n", BadUser),
            (b"cc1 user n a\tb\n", BadUser),
            (b"cc1 user n a%09b\n", BadUser),
            (b"cc1 user n a%0Ab\n", BadUser),
            (b"cc1 presence n r\n", FieldCount),
            (b"cc1 presence n r u v\n", FieldCount),
            (b"cc1 notify n u\r\n", BadUser),
            (b"cc1 disconnect n\n", FieldCount),
        ];
        for (wire, want) in cases {
            assert_eq!(
                parse(wire),
                Err(*want),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
        let too_long_user = format!("cc1 user n {}\n", "u".repeat(129));
        assert_eq!(parse(too_long_user.as_bytes()), Err(BadUser));
        let origin = format!("cc1 user {} u\n", "n".repeat(65));
        assert_eq!(parse(origin.as_bytes()), Err(BadOrigin));
        let room = format!("cc1 room n {} 1\n", "r".repeat(65));
        assert_eq!(parse(room.as_bytes()), Err(BadRoom));
        assert_eq!(BadUser.to_string(), "invalid user id");
    }

    #[test]
    fn writing_checks_fields() {
        let mut out = b"keep".to_vec();
        let bad = [
            (
                Envelope {
                    origin: "",
                    target: Target::User { user: "u".into() },
                    payload: b"",
                },
                EnvelopeError::BadOrigin,
            ),
            (
                Envelope {
                    origin: "n",
                    target: Target::Room {
                        room: "a room",
                        seq: 1,
                    },
                    payload: b"",
                },
                EnvelopeError::BadRoom,
            ),
            (
                Envelope {
                    origin: "n",
                    target: Target::Notify {
                        user: "a\nb".into(),
                    },
                    payload: b"",
                },
                EnvelopeError::BadUser,
            ),
            (
                Envelope {
                    origin: "n",
                    target: Target::Presence {
                        room: "r",
                        user: "".into(),
                    },
                    payload: b"",
                },
                EnvelopeError::BadUser,
            ),
        ];
        for (env, want) in bad {
            assert_eq!(env.write(&mut out), Err(want));
            assert_eq!(out, b"keep");
        }
        let env = Envelope {
            origin: "n",
            target: Target::User {
                user: "100% ok".into(),
            },
            payload: b"ignored",
        };
        env.write_header(&mut out).unwrap();
        assert_eq!(out, b"keepcc1 user n 100%25%20ok\n");
        assert!(is_node_id("web-1.eu:8080_a"));
        assert!(!is_node_id("web 1") && !is_node_id("") && !is_node_id(&"x".repeat(65)));
    }
}
