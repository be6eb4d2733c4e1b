//! RESP2, the Redis wire protocol (<https://redis.io/docs/latest/develop/reference/protocol-spec/>),
//! sans-IO: commands encoded into the caller's buffer and replies decoded incrementally from the
//! bytes the caller has read so far.
//!
//! Owns the byte format only: no sockets, no clock, no logging of payloads, no knowledge of
//! which commands the relay sends. A connection is one [`Decoder`] plus the caller's receive
//! buffer; commands are appended to the caller's send buffer with [`write_command`] or
//! [`Command`] (pipelining is just appending several before writing). Replies from a hostile or
//! broken server are bounded by [`Limits`] and refused with a typed [`RespError`], never a
//! panic; an unfinished reply is not an error (`Ok(None)`: read more and call again).
//!
//! The decoder keeps what it has parsed of the reply in progress (finished elements of open
//! arrays, the length of a bulk string whose data is still arriving, how far an unterminated
//! line has been searched), so each call only looks at the bytes that arrived since the last
//! one: a 64 MiB bulk string arriving one byte at a time costs O(64 MiB), not O(64 MiB²).

use std::fmt;

/// Default [`Limits::max_bulk`]: 64 MiB (Redis' own `proto-max-bulk-len` is 512 MB).
pub const DEFAULT_MAX_BULK: usize = 64 << 20;
/// Default [`Limits::max_array`]: 1 Mi elements.
pub const DEFAULT_MAX_ARRAY: usize = 1 << 20;
/// Default [`Limits::max_depth`]: 8 nested arrays.
pub const DEFAULT_MAX_DEPTH: usize = 8;
/// Default [`Limits::max_line`]: 64 KiB.
pub const DEFAULT_MAX_LINE: usize = 64 << 10;

/// Elements reserved up front for an array, at most (the rest grow as they arrive): a
/// declared length costs memory only once the elements are there.
const MAX_PREALLOC: usize = 16;
/// The shortest element on the wire: `+\r\n`.
const MIN_ELEMENT_LEN: usize = 3;

/// Bounds on what one reply may make the decoder hold. Replies over a limit are refused as
/// soon as their header says so, before their data arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string, in bytes. Default: [`DEFAULT_MAX_BULK`] (64 MiB).
    pub max_bulk: usize,
    /// Most elements in one array. Default: [`DEFAULT_MAX_ARRAY`] (1 Mi).
    pub max_array: usize,
    /// Most arrays nested in one another: 1 allows arrays of non-arrays, 0 refuses every
    /// array (a nil or empty one counts as a level too). Default: [`DEFAULT_MAX_DEPTH`] (8).
    pub max_depth: usize,
    /// Longest simple string, error, integer or length line, in bytes between the type byte
    /// and the CRLF. Default: [`DEFAULT_MAX_LINE`] (64 KiB).
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bulk: DEFAULT_MAX_BULK,
            max_array: DEFAULT_MAX_ARRAY,
            max_depth: DEFAULT_MAX_DEPTH,
            max_line: DEFAULT_MAX_LINE,
        }
    }
}

/// Which limit a reply exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`Limits::max_bulk`].
    Bulk,
    /// [`Limits::max_array`].
    Array,
    /// [`Limits::max_line`].
    Line,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bulk => "bulk string",
            Self::Array => "array",
            Self::Line => "line",
        })
    }
}

/// Bytes that are not RESP2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// A value starting with a byte other than `+ - : $ *`.
    #[error("bad type byte")]
    TypeByte,
    /// A line ended by anything but CRLF (a bare LF, or a CR not followed by LF).
    #[error("line not ended by crlf")]
    LineEnd,
    /// An integer or length that is not `[+-]digits` within i64.
    #[error("bad integer")]
    Integer,
    /// A bulk string or array length below -1.
    #[error("negative length")]
    Length,
    /// A bulk string's data not followed by CRLF.
    #[error("bulk string not ended by crlf")]
    BulkEnd,
}

/// Why the decoder gave up on the connection. Every error is final: the caller drops the
/// connection (the decoder has already reset itself for the next one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    /// Not RESP2.
    #[error("resp protocol error: {0}")]
    Protocol(#[from] Malformed),
    /// A value over one of the [`Limits`].
    #[error("resp {0} too large")]
    TooLarge(Limit),
    /// Arrays nested deeper than [`Limits::max_depth`].
    #[error("resp arrays nested too deep")]
    TooDeep,
}

/// One decoded reply. Nil bulk strings and nil arrays are kept apart, as on the wire, so a
/// reply written back with [`Reply::write`] decodes to itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`: a simple string (never contains CR or LF).
    Simple(Vec<u8>),
    /// `-ERR message`: an error reply, the whole message (never contains CR or LF); see
    /// [`Reply::error_code`].
    Error(Vec<u8>),
    /// `:42`.
    Integer(i64),
    /// `$5\r\nhello`, or `$-1` (nil: `None`).
    Bulk(Option<Vec<u8>>),
    /// `*2\r\n...`, or `*-1` (nil: `None`).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// A nil bulk string or nil array.
    pub fn is_nil(&self) -> bool {
        matches!(self, Self::Bulk(None) | Self::Array(None))
    }

    /// The bytes of a simple string or non-nil bulk string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Simple(s) | Self::Bulk(Some(s)) => Some(s),
            _ => None,
        }
    }

    /// The value of an integer reply.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Integer(n) => Some(*n),
            _ => None,
        }
    }

    /// The elements of a non-nil array.
    pub fn as_array(&self) -> Option<&[Reply]> {
        match self {
            Self::Array(Some(items)) => Some(items),
            _ => None,
        }
    }

    /// The bytes of a simple string or non-nil bulk string, without a copy.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Self::Simple(s) | Self::Bulk(Some(s)) => Some(s),
            _ => None,
        }
    }

    /// The elements of a non-nil array, without a copy.
    pub fn into_array(self) -> Option<Vec<Reply>> {
        match self {
            Self::Array(Some(items)) => Some(items),
            _ => None,
        }
    }

    /// The first word of an error reply, by Redis' convention its kind: `ERR`, `WRONGTYPE`,
    /// `NOSCRIPT` (an `EVALSHA` of a script the server does not have), `BUSY`, `LOADING`...
    pub fn error_code(&self) -> Option<&[u8]> {
        match self {
            Self::Error(msg) => msg.split(|&b| b == b' ').next(),
            _ => None,
        }
    }

    /// Appends the reply in RESP2 (as a server would send it). Simple strings and errors must
    /// not contain CR or LF (decoded ones never do). For tests, the fuzz target and fake
    /// servers: the relay itself only writes commands.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Self::Simple(s) => write_line(out, b'+', s),
            Self::Error(e) => write_line(out, b'-', e),
            Self::Integer(n) => {
                out.push(b':');
                write_i64(out, *n);
                out.extend_from_slice(b"\r\n");
            }
            Self::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
            Self::Bulk(Some(data)) => write_bulk(out, data),
            Self::Array(None) => out.extend_from_slice(b"*-1\r\n"),
            Self::Array(Some(items)) => {
                write_header(out, b'*', items.len());
                for item in items {
                    item.write(out);
                }
            }
        }
    }

    /// Reads a reply on a subscriber connection as a pub/sub event. `None` for anything else
    /// (an error reply, a malformed or unknown event); `message` and `pmessage` must have
    /// exactly their three or four bulk strings, the (un)subscribe confirmations a channel and
    /// an integer count.
    pub fn pubsub(&self) -> Option<PubSub<'_>> {
        let (kind, rest) = self.as_array()?.split_first()?;
        let Self::Bulk(Some(kind)) = kind else {
            return None;
        };
        fn bulk(r: &Reply) -> Option<&[u8]> {
            match r {
                Reply::Bulk(Some(b)) => Some(b),
                _ => None,
            }
        }
        // UNSUBSCRIBE without subscriptions answers a nil channel.
        fn maybe_bulk(r: &Reply) -> Option<Option<&[u8]>> {
            match r {
                Reply::Bulk(b) => Some(b.as_deref()),
                _ => None,
            }
        }
        Some(match (kind.as_slice(), rest) {
            (b"message", [channel, payload]) => PubSub::Message {
                channel: bulk(channel)?,
                payload: bulk(payload)?,
            },
            (b"pmessage", [pattern, channel, payload]) => PubSub::PMessage {
                pattern: bulk(pattern)?,
                channel: bulk(channel)?,
                payload: bulk(payload)?,
            },
            (b"subscribe", [channel, Self::Integer(count)]) => PubSub::Subscribed {
                channel: bulk(channel)?,
                count: *count,
            },
            (b"unsubscribe", [channel, Self::Integer(count)]) => PubSub::Unsubscribed {
                channel: maybe_bulk(channel)?,
                count: *count,
            },
            (b"psubscribe", [pattern, Self::Integer(count)]) => PubSub::PSubscribed {
                pattern: bulk(pattern)?,
                count: *count,
            },
            (b"punsubscribe", [pattern, Self::Integer(count)]) => PubSub::PUnsubscribed {
                pattern: maybe_bulk(pattern)?,
                count: *count,
            },
            (b"pong", [payload]) => PubSub::Pong {
                payload: bulk(payload)?,
            },
            _ => return None,
        })
    }
}

/// What a subscriber connection receives (in RESP2, arrays whose first element names the
/// event). Borrowed from the [`Reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PubSub<'a> {
    /// `PUBLISH channel payload` reached this subscriber.
    Message {
        /// The channel it was published to.
        channel: &'a [u8],
        /// The published bytes.
        payload: &'a [u8],
    },
    /// A message matched a pattern subscription.
    PMessage {
        /// The pattern subscribed to.
        pattern: &'a [u8],
        /// The channel it was published to.
        channel: &'a [u8],
        /// The published bytes.
        payload: &'a [u8],
    },
    /// `SUBSCRIBE` confirmed, one per channel.
    Subscribed {
        /// The channel.
        channel: &'a [u8],
        /// Subscriptions (channels and patterns) this connection now has.
        count: i64,
    },
    /// `UNSUBSCRIBE` confirmed, one per channel.
    Unsubscribed {
        /// The channel (`None` when there was no subscription to remove).
        channel: Option<&'a [u8]>,
        /// Subscriptions this connection still has; 0 ends subscriber mode.
        count: i64,
    },
    /// `PSUBSCRIBE` confirmed.
    PSubscribed {
        /// The pattern.
        pattern: &'a [u8],
        /// Subscriptions this connection now has.
        count: i64,
    },
    /// `PUNSUBSCRIBE` confirmed.
    PUnsubscribed {
        /// The pattern (`None` when there was none to remove).
        pattern: Option<&'a [u8]>,
        /// Subscriptions this connection still has.
        count: i64,
    },
    /// The answer to `PING` in subscriber mode.
    Pong {
        /// The PING's argument (empty without one).
        payload: &'a [u8],
    },
}

/// Appends one command: an array of bulk strings, `args[0]` being the command's name.
/// Allocates nothing but `out`'s growth.
///
/// ```
/// # use corecast::relay::resp::write_command;
/// let mut out = Vec::new();
/// write_command(&mut out, &[b"SET", b"k", b"v"]);
/// assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
/// ```
pub fn write_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    let len: usize = args.iter().map(|a| a.len() + 16).sum();
    out.reserve(len + 16);
    write_header(out, b'*', args.len());
    for arg in args {
        write_bulk(out, arg);
    }
}

/// Room before the arguments for the array header `*N\r\n`: exact for 1 to 9 arguments; more
/// shift the arguments once, when the command is finished.
const HEADER_ROOM: usize = 4;

/// A command built one argument at a time, for arguments that are numbers or come from a loop.
/// Writes straight into the caller's buffer (no allocation of its own); the array header is
/// filled in when the builder is dropped (or [`finish`](Self::finish)ed), so the command is
/// complete at the end of the statement that builds it.
///
/// ```
/// # use corecast::relay::resp::Command;
/// let mut out = Vec::new();
/// Command::new(&mut out, "EVALSHA").arg("a1b2").arg_u64(1).arg("room:x").arg_i64(-5);
/// let mut sub = Command::new(&mut out, "SUBSCRIBE");
/// for channel in ["a", "b"] {
///     sub.arg(channel);
/// }
/// sub.finish();
/// assert_eq!(
///     out,
///     b"*5\r\n$7\r\nEVALSHA\r\n$4\r\na1b2\r\n$1\r\n1\r\n$6\r\nroom:x\r\n$2\r\n-5\r\n\
///       *3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$1\r\nb\r\n"
/// );
/// ```
#[derive(Debug)]
pub struct Command<'a> {
    out: &'a mut Vec<u8>,
    /// Where the command starts in `out`; its arguments start [`HEADER_ROOM`] bytes later.
    start: usize,
    /// Arguments written so far, the name included (always >= 1).
    count: usize,
}

impl<'a> Command<'a> {
    /// Starts the command `name` at the end of `out`.
    pub fn new(out: &'a mut Vec<u8>, name: &str) -> Self {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_ROOM]);
        let mut cmd = Self {
            out,
            start,
            count: 0,
        };
        cmd.arg(name);
        cmd
    }

    /// Appends an argument (any bytes).
    pub fn arg(&mut self, arg: impl AsRef<[u8]>) -> &mut Self {
        write_bulk(self.out, arg.as_ref());
        self.count += 1;
        self
    }

    /// Appends a number as its decimal digits.
    pub fn arg_u64(&mut self, n: u64) -> &mut Self {
        let digits = Digits::new(n);
        self.arg(digits.as_bytes())
    }

    /// Appends a signed number as its decimal digits.
    pub fn arg_i64(&mut self, n: i64) -> &mut Self {
        if n >= 0 {
            return self.arg_u64(n.unsigned_abs());
        }
        let digits = Digits::new(n.unsigned_abs());
        let digits = digits.as_bytes();
        write_header(self.out, b'$', digits.len() + 1);
        self.out.push(b'-');
        self.out.extend_from_slice(digits);
        self.out.extend_from_slice(b"\r\n");
        self.count += 1;
        self
    }

    /// Completes the command (the same as dropping the builder).
    pub fn finish(self) {}
}

/// Appends `EVALSHA sha <number of keys> keys... args...`.
pub fn evalsha(out: &mut Vec<u8>, sha: &str, keys: &[&str], args: &[&[u8]]) {
    let mut c = Command::new(out, "EVALSHA");
    c.arg(sha).arg_u64(keys.len() as u64);
    for k in keys {
        c.arg(k);
    }
    for a in args {
        c.arg(a);
    }
}

impl Drop for Command<'_> {
    fn drop(&mut self) {
        let mut header = [0u8; 24];
        header[0] = b'*';
        let digits = Digits::new(self.count as u64);
        let digits = digits.as_bytes();
        header[1..=digits.len()].copy_from_slice(digits);
        header[digits.len() + 1..digits.len() + 3].copy_from_slice(b"\r\n");
        let header = &header[..digits.len() + 3];
        let args = self.start + HEADER_ROOM..self.out.len();
        let args_len = args.len();
        if header.len() > HEADER_ROOM {
            self.out
                .resize(self.out.len() + header.len() - HEADER_ROOM, 0);
        }
        self.out.copy_within(args, self.start + header.len());
        self.out.truncate(self.start + header.len() + args_len);
        self.out[self.start..self.start + header.len()].copy_from_slice(header);
    }
}

/// The decimal digits of a u64, on the stack.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn new(mut n: u64) -> Self {
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        loop {
            start -= 1;
            buf[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Self { buf, start }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn write_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(Digits::new(n.unsigned_abs()).as_bytes());
}

/// `{ty}{len}\r\n`
fn write_header(out: &mut Vec<u8>, ty: u8, len: usize) {
    out.push(ty);
    out.extend_from_slice(Digits::new(len as u64).as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn write_bulk(out: &mut Vec<u8>, data: &[u8]) {
    write_header(out, b'$', data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

fn write_line(out: &mut Vec<u8>, ty: u8, line: &[u8]) {
    out.push(ty);
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
}

/// An array whose elements are still arriving.
#[derive(Debug)]
struct Frame {
    /// The elements decoded so far (fewer than `len`).
    items: Vec<Reply>,
    /// The declared length (>= 1).
    len: usize,
}

/// Decodes one connection's replies.
///
/// Call order: append what the socket gives to a receive buffer, then call
/// [`decode`](Self::decode) on the buffer's unconsumed bytes until it returns `Ok(None)`,
/// skipping `consumed` bytes after each reply. On `Ok(None)` keep the unconsumed bytes exactly
/// as they are and only append to them before the next call: the decoder remembers how far it
/// got into them (if the buffer passed is shorter than what it has seen, it starts the reply
/// over). Replies come out in the order the server sent them, which with pipelining is the
/// order of the commands.
///
/// Each call looks only at the bytes that arrived since the previous one (plus at most one
/// byte of a line end), so decoding is linear in the bytes received however they are split.
/// The caller should drop consumed bytes from its buffer once per read, not once per reply.
///
/// After an error the decoder is reset; the connection cannot be resynchronised and must be
/// closed. On reconnecting, call [`reset`](Self::reset) (or make a new decoder).
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    /// Bytes at the front of the caller's buffer already taken into the state below: the
    /// reply in progress ends before, or starts at, this offset. 0 between replies.
    pos: usize,
    /// The line at `pos` has been searched for its end up to this offset (>= `pos`).
    scan: usize,
    /// The header of a bulk string has been read: this many data bytes, then CRLF, start
    /// at `pos`. Always <= `limits.max_bulk`.
    bulk: Option<usize>,
    /// Arrays in progress, outermost first; never longer than `limits.max_depth`.
    stack: Vec<Frame>,
    /// Bytes looked at, for the tests that check decoding stays linear.
    #[cfg(test)]
    examined: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Decoder {
    /// A decoder with these limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            pos: 0,
            scan: 0,
            bulk: None,
            stack: Vec::new(),
            #[cfg(test)]
            examined: 0,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Forgets the reply in progress (for a new connection).
    pub fn reset(&mut self) {
        self.pos = 0;
        self.scan = 0;
        self.bulk = None;
        self.stack.clear();
    }

    /// No part of a reply has been looked at: the receive buffer may be replaced or cleared.
    pub fn is_idle(&self) -> bool {
        self.pos == 0 && self.scan == 0 && self.bulk.is_none() && self.stack.is_empty()
    }

    /// Decodes the reply at the front of `buf`: `Ok(Some((reply, consumed)))` when all of it
    /// is there (`consumed` bytes long; more replies may follow), `Ok(None)` when more bytes
    /// are needed (see the type's call order).
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(Reply, usize)>, RespError> {
        if buf.len() < self.scan.max(self.pos) {
            // The caller broke the contract: start over rather than index past the end.
            self.reset();
        }
        let result = self.run(buf);
        if result.is_err() {
            self.reset();
        }
        result
    }

    fn run(&mut self, buf: &[u8]) -> Result<Option<(Reply, usize)>, RespError> {
        loop {
            let Some(value) = self.next_value(buf)? else {
                return Ok(None);
            };
            if let Some(reply) = self.finish_value(value) {
                let consumed = self.pos;
                self.pos = 0;
                self.scan = 0;
                return Ok(Some((reply, consumed)));
            }
        }
    }

    /// Puts a finished value into the innermost open array, closing every array that this
    /// completes; returns the whole reply once the outermost one (or a lone value) is done.
    fn finish_value(&mut self, mut value: Reply) -> Option<Reply> {
        loop {
            let Some(top) = self.stack.last_mut() else {
                return Some(value);
            };
            top.items.push(value);
            if top.items.len() < top.len {
                return None;
            }
            let items = std::mem::take(&mut top.items);
            self.stack.pop();
            value = Reply::Array(Some(items));
        }
    }

    /// The next value that is not a non-empty array (those are opened on the way), or `None`
    /// when more bytes are needed.
    fn next_value(&mut self, buf: &[u8]) -> Result<Option<Reply>, RespError> {
        loop {
            if let Some(len) = self.bulk {
                let end = self.pos.saturating_add(len);
                let Some(tail) = buf.get(end..end.saturating_add(2)) else {
                    return Ok(None);
                };
                #[cfg(test)]
                {
                    self.examined += 2;
                }
                if tail != b"\r\n" {
                    return Err(Malformed::BulkEnd.into());
                }
                let data = buf[self.pos..end].to_vec();
                self.bulk = None;
                self.pos = end + 2;
                self.scan = self.pos;
                return Ok(Some(Reply::Bulk(Some(data))));
            }
            let Some((ty, end)) = self.line(buf)? else {
                return Ok(None);
            };
            let line = &buf[self.pos + 1..end];
            self.pos = end + 2;
            self.scan = self.pos;
            match ty {
                b'+' => return Ok(Some(Reply::Simple(line.to_vec()))),
                b'-' => return Ok(Some(Reply::Error(line.to_vec()))),
                b':' => return Ok(Some(Reply::Integer(parse_i64(line)?))),
                b'$' => match parse_len(line)? {
                    None => return Ok(Some(Reply::Bulk(None))),
                    Some(n) if n > self.limits.max_bulk => {
                        return Err(RespError::TooLarge(Limit::Bulk))
                    }
                    Some(n) => self.bulk = Some(n),
                },
                _ => {
                    // b'*', the only type byte left (`line` refuses the others).
                    let len = parse_len(line)?;
                    if self.stack.len() >= self.limits.max_depth {
                        return Err(RespError::TooDeep);
                    }
                    match len {
                        None => return Ok(Some(Reply::Array(None))),
                        Some(n) if n > self.limits.max_array => {
                            return Err(RespError::TooLarge(Limit::Array))
                        }
                        Some(0) => return Ok(Some(Reply::Array(Some(Vec::new())))),
                        Some(n) => {
                            // Reserve no more than the bytes already here could fill.
                            let here = (buf.len() - self.pos) / MIN_ELEMENT_LEN;
                            let items = Vec::with_capacity(n.min(here).min(MAX_PREALLOC));
                            self.stack.push(Frame { items, len: n });
                        }
                    }
                }
            }
        }
    }

    /// The line starting at `pos`: its type byte and where its CRLF starts, once all of it
    /// is there. Searches on from where the previous call stopped.
    fn line(&mut self, buf: &[u8]) -> Result<Option<(u8, usize)>, RespError> {
        let Some(&ty) = buf.get(self.pos) else {
            return Ok(None);
        };
        if !matches!(ty, b'+' | b'-' | b':' | b'$' | b'*') {
            return Err(Malformed::TypeByte.into());
        }
        let start = self.pos + 1;
        // The CR of a line of `max_line` bytes is at `last`; nothing past it is looked at, so
        // the verdict on a byte stream does not depend on how it was split.
        let last = start.saturating_add(self.limits.max_line);
        let window_end = buf.len().min(last.saturating_add(1));
        let from = self.scan.max(start);
        let window = buf.get(from..window_end).unwrap_or_default();
        let found = window.iter().position(|&b| b == b'\r' || b == b'\n');
        #[cfg(test)]
        {
            self.examined += found.map_or(window.len(), |i| i + 1);
        }
        let Some(i) = found else {
            if window_end > last {
                return Err(RespError::TooLarge(Limit::Line));
            }
            self.scan = window_end;
            return Ok(None);
        };
        let cr = from + i;
        if buf[cr] == b'\n' {
            return Err(Malformed::LineEnd.into());
        }
        match buf.get(cr + 1) {
            None => {
                self.scan = cr;
                Ok(None)
            }
            Some(b'\n') => Ok(Some((ty, cr))),
            Some(_) => Err(Malformed::LineEnd.into()),
        }
    }
}

/// `[+-]digits` as an i64, refusing overflow.
fn parse_i64(line: &[u8]) -> Result<i64, Malformed> {
    let (negative, digits) = match line {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, line),
    };
    if digits.is_empty() {
        return Err(Malformed::Integer);
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(Malformed::Integer);
        }
        let d = i64::from(d - b'0');
        // Accumulated with its sign, so i64::MIN parses too.
        n = n
            .checked_mul(10)
            .and_then(|n| {
                if negative {
                    n.checked_sub(d)
                } else {
                    n.checked_add(d)
                }
            })
            .ok_or(Malformed::Integer)?;
    }
    Ok(n)
}

/// A bulk string or array length: `None` for -1 (nil).
fn parse_len(line: &[u8]) -> Result<Option<usize>, Malformed> {
    match parse_i64(line)? {
        -1 => Ok(None),
        n if n < 0 => Err(Malformed::Length),
        // Over the address space is over every limit.
        n => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(b: &[u8]) -> Reply {
        Reply::Bulk(Some(b.to_vec()))
    }

    fn array(items: Vec<Reply>) -> Reply {
        Reply::Array(Some(items))
    }

    /// Decodes every reply of a stream given whole.
    fn decode_all(limits: Limits, stream: &[u8]) -> (Vec<Reply>, Result<usize, RespError>) {
        let mut dec = Decoder::new(limits);
        let mut replies = Vec::new();
        let mut at = 0;
        loop {
            match dec.decode(&stream[at..]) {
                Ok(Some((r, n))) => {
                    assert!(n > 0);
                    replies.push(r);
                    at += n;
                }
                Ok(None) => return (replies, Ok(stream.len() - at)),
                Err(e) => return (replies, Err(e)),
            }
        }
    }

    /// Decodes a stream arriving in pieces ending at `ends` (increasing), as a connection
    /// would: append, decode until `None`, drop what was consumed. Returns the replies and
    /// the error or the number of bytes left over.
    fn decode_pieces(
        limits: Limits,
        stream: &[u8],
        ends: impl IntoIterator<Item = usize>,
        dec: &mut Decoder,
    ) -> (Vec<Reply>, Result<usize, RespError>) {
        let mut buf = Vec::new();
        let mut fed = 0;
        let mut replies = Vec::new();
        *dec = Decoder::new(limits);
        for end in ends.into_iter().chain([stream.len()]) {
            buf.extend_from_slice(&stream[fed..end]);
            fed = end;
            let mut at = 0;
            loop {
                match dec.decode(&buf[at..]) {
                    Ok(Some((r, n))) => {
                        replies.push(r);
                        at += n;
                    }
                    Ok(None) => break,
                    Err(e) => return (replies, Err(e)),
                }
            }
            buf.drain(..at);
        }
        (replies, Ok(buf.len()))
    }

    fn one(stream: &[u8]) -> Result<Option<(Reply, usize)>, RespError> {
        Decoder::default().decode(stream)
    }

    fn err(stream: &[u8]) -> RespError {
        let (_, end) = decode_all(Limits::default(), stream);
        end.expect_err("should fail")
    }

    #[test]
    fn every_type() {
        let cases: &[(&[u8], Reply)] = &[
            (b"+OK\r\n", Reply::Simple(b"OK".to_vec())),
            (b"+\r\n", Reply::Simple(Vec::new())),
            (
                b"-WRONGTYPE Operation against a key\r\n",
                Reply::Error(b"WRONGTYPE Operation against a key".to_vec()),
            ),
            (b":0\r\n", Reply::Integer(0)),
            (b":-42\r\n", Reply::Integer(-42)),
            (b":+7\r\n", Reply::Integer(7)),
            (b":9223372036854775807\r\n", Reply::Integer(i64::MAX)),
            (b":-9223372036854775808\r\n", Reply::Integer(i64::MIN)),
            (b"$5\r\nhello\r\n", bulk(b"hello")),
            (b"$0\r\n\r\n", bulk(b"")),
            (b"$4\r\n\r\n\r\n\r\n", bulk(b"\r\n\r\n")),
            (b"$-1\r\n", Reply::Bulk(None)),
            (b"*-1\r\n", Reply::Array(None)),
            (b"*0\r\n", array(vec![])),
            (
                b"*3\r\n:1\r\n$-1\r\n*2\r\n+a\r\n*1\r\n$1\r\nz\r\n",
                array(vec![
                    Reply::Integer(1),
                    Reply::Bulk(None),
                    array(vec![Reply::Simple(b"a".to_vec()), array(vec![bulk(b"z")])]),
                ]),
            ),
        ];
        for (wire, reply) in cases {
            assert_eq!(
                one(wire),
                Ok(Some((reply.clone(), wire.len()))),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
            // Bytes after the reply are not part of it.
            let mut more = wire.to_vec();
            more.extend_from_slice(b"+next\r\n");
            assert_eq!(one(&more), Ok(Some((reply.clone(), wire.len()))));
            // Every proper prefix is incomplete.
            for cut in 0..wire.len() {
                assert_eq!(one(&wire[..cut]), Ok(None), "cut {cut} of {wire:?}");
            }
            // Written back: the same bytes, except for the integer written with a plus.
            let mut out = Vec::new();
            reply.write(&mut out);
            if wire != b":+7\r\n" {
                assert_eq!(&out, wire);
            }
            assert_eq!(one(&out), Ok(Some((reply.clone(), out.len()))));
        }
    }

    #[test]
    fn malformed() {
        use Malformed::*;
        let cases: &[(&[u8], RespError)] = &[
            (b"!x\r\n", TypeByte.into()),
            (b"\r\n", TypeByte.into()),
            (b"OK\r\n", TypeByte.into()),
            (b"+OK\r\n+OK\r\n#t\r\n", TypeByte.into()),
            (b"*2\r\n:1\r\n%0\r\n", TypeByte.into()),
            (b"+OK\n", LineEnd.into()),
            (b"+OK\rX", LineEnd.into()),
            (b"+O\rK\r\n", LineEnd.into()),
            (b"+O\nK\r\n", LineEnd.into()),
            (b"$3\nabc\r\n", LineEnd.into()),
            (b":\r\n", Integer.into()),
            (b":-\r\n", Integer.into()),
            (b":+\r\n", Integer.into()),
            (b": 1\r\n", Integer.into()),
            (b":1 \r\n", Integer.into()),
            (b":1a\r\n", Integer.into()),
            (b":--1\r\n", Integer.into()),
            (b":0x10\r\n", Integer.into()),
            (b":9223372036854775808\r\n", Integer.into()),
            (b":-9223372036854775809\r\n", Integer.into()),
            (b":99999999999999999999999999\r\n", Integer.into()),
            (b"$abc\r\n", Integer.into()),
            (b"$\r\n", Integer.into()),
            (b"$99999999999999999999\r\n", Integer.into()),
            (b"$-2\r\n", Length.into()),
            (b"*-2\r\n", Length.into()),
            (b"$-9223372036854775808\r\n", Length.into()),
            (b"$3\r\nabcd\r\n", BulkEnd.into()),
            (b"$3\r\nab\r\n\r\n", BulkEnd.into()),
            (b"$3\r\nabc\n\r", BulkEnd.into()),
            (b"$0\r\nXX", BulkEnd.into()),
        ];
        for (wire, want) in cases {
            assert_eq!(err(wire), *want, "{:?}", String::from_utf8_lossy(wire));
        }
        // A bulk string's missing CRLF is noticed once both bytes are there.
        assert_eq!(one(b"$3\r\nabcX"), Ok(None));
        assert_eq!(err(b"$3\r\nabcX\r"), BulkEnd.into());
        // A CR at the end of the input may still be followed by its LF.
        assert_eq!(one(b"+OK\r"), Ok(None));
        assert_eq!(
            RespError::from(LineEnd).to_string(),
            "resp protocol error: line not ended by crlf"
        );
    }

    #[test]
    fn limits() {
        let small = Limits {
            max_bulk: 4,
            max_array: 3,
            max_depth: 2,
            max_line: 8,
        };
        let decode = |wire: &[u8]| Decoder::new(small).decode(wire);
        assert_eq!(decode(b"$4\r\nabcd\r\n"), Ok(Some((bulk(b"abcd"), 10))));
        // Refused from the header, before the data arrives.
        assert_eq!(decode(b"$5\r\n"), Err(RespError::TooLarge(Limit::Bulk)));
        assert_eq!(
            Decoder::new(Limits {
                max_line: 20,
                ..small
            })
            .decode(b"$9223372036854775807\r\n"),
            Err(RespError::TooLarge(Limit::Bulk))
        );
        assert!(decode(b"*3\r\n:1\r\n:2\r\n:3\r\n").is_ok());
        assert_eq!(decode(b"*4\r\n"), Err(RespError::TooLarge(Limit::Array)));
        assert!(matches!(decode(b"*1\r\n*1\r\n:1\r\n"), Ok(Some(_))));
        assert_eq!(decode(b"*1\r\n*1\r\n*0\r\n"), Err(RespError::TooDeep));
        assert_eq!(decode(b"*1\r\n*1\r\n*-1\r\n"), Err(RespError::TooDeep));
        // A malformed length is reported as such, even too deep.
        assert_eq!(
            decode(b"*1\r\n*1\r\n*x\r\n"),
            Err(Malformed::Integer.into())
        );
        assert!(matches!(decode(b"+12345678\r\n"), Ok(Some(_))));
        assert!(matches!(decode(b"-12345678\r\n"), Ok(Some(_))));
        // A line over the limit is refused without waiting for its end.
        assert_eq!(decode(b"+123456789"), Err(RespError::TooLarge(Limit::Line)));
        assert_eq!(decode(b"+12345678"), Ok(None));
        assert_eq!(decode(b"+12345678\r"), Ok(None));
        assert_eq!(
            decode(b":000000001\r\n"),
            Err(RespError::TooLarge(Limit::Line))
        );
        assert_eq!(
            Decoder::new(Limits {
                max_depth: 0,
                ..small
            })
            .decode(b"*0\r\n"),
            Err(RespError::TooDeep)
        );
        // The defaults.
        let d = Limits::default();
        assert_eq!(
            (d.max_bulk, d.max_array, d.max_depth, d.max_line),
            (64 << 20, 1 << 20, 8, 64 << 10)
        );
        let deep = |n: usize| {
            let mut w = b"*1\r\n".repeat(n);
            w.extend_from_slice(b":1\r\n");
            w
        };
        assert!(matches!(one(&deep(8)), Ok(Some(_))));
        assert_eq!(one(&deep(9)), Err(RespError::TooDeep));
        assert_eq!(
            one(format!("${}\r\n", (64 << 20) + 1).as_bytes()),
            Err(RespError::TooLarge(Limit::Bulk))
        );
        assert_eq!(
            one(format!("*{}\r\n", (1 << 20) + 1).as_bytes()),
            Err(RespError::TooLarge(Limit::Array))
        );
        let mut line = vec![b'+'];
        line.extend(std::iter::repeat_n(b'x', 64 << 10));
        assert_eq!(one(&line), Ok(None));
        line.push(b'x');
        assert_eq!(one(&line), Err(RespError::TooLarge(Limit::Line)));
        assert_eq!(
            RespError::TooLarge(Limit::Bulk).to_string(),
            "resp bulk string too large"
        );
    }

    #[test]
    fn declared_lengths_reserve_only_what_arrived() {
        let mut dec = Decoder::default();
        assert_eq!(dec.decode(b"*1000000\r\n*1000000\r\n"), Ok(None));
        // At most what the 10 bytes after the first header could hold, none for the second.
        assert!(dec.stack[0].items.capacity() <= 3);
        assert_eq!(dec.stack[1].items.capacity(), 0);
        let mut wire = b"*1000\r\n".to_vec();
        wire.extend(b":1\r\n".repeat(10));
        let mut dec = Decoder::default();
        assert_eq!(dec.decode(&wire), Ok(None));
        assert!(dec.stack[0].items.capacity() < 100);
    }

    /// A stream of every kind of reply.
    fn stream() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(b"+OK\r\n-ERR unknown command 'X'\r\n:12345\r\n:-1\r\n");
        s.extend_from_slice(b"$-1\r\n*-1\r\n*0\r\n$0\r\n\r\n$6\r\nfoo\r\nb\r\n");
        s.extend_from_slice(
            b"*3\r\n$7\r\nmessage\r\n$7\r\nroom:ab\r\n$11\r\n{\"a\":\"b\"}\r\n\r\n",
        );
        s.extend_from_slice(b"*2\r\n*2\r\n:1\r\n*1\r\n$-1\r\n*3\r\n+x\r\n-e\r\n*0\r\n");
        write_command(&mut s, &[b"not", b"a reply but", b"still resp"]);
        s.extend_from_slice(b"+last\r\n");
        s
    }

    /// A deterministic pseudo-random sequence (xorshift).
    fn rng(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    #[test]
    fn same_replies_at_every_split() {
        let s = stream();
        let limits = Limits::default();
        let (whole, end) = decode_all(limits, &s);
        assert_eq!(end, Ok(0));
        assert_eq!(whole.len(), 13);
        assert_eq!(whole[8], bulk(b"foo\r\nb"));
        let mut dec = Decoder::default();
        for split in 0..=s.len() {
            assert_eq!(
                decode_pieces(limits, &s, [split], &mut dec),
                (whole.clone(), Ok(0)),
                "split {split}"
            );
        }
        for a in 0..s.len() {
            for b in a..s.len() {
                assert_eq!(
                    decode_pieces(limits, &s, [a, b], &mut dec).0.len(),
                    whole.len()
                );
            }
        }
        assert_eq!(
            decode_pieces(limits, &s, 0..s.len(), &mut dec),
            (whole.clone(), Ok(0)),
            "byte by byte"
        );
        let mut next = rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200 {
            let mut ends: Vec<usize> = (0..next() % 12)
                .map(|_| (next() as usize) % s.len())
                .collect();
            ends.sort_unstable();
            assert_eq!(
                decode_pieces(limits, &s, ends.iter().copied(), &mut dec),
                (whole.clone(), Ok(0)),
                "{ends:?}"
            );
        }
        // A truncated stream: the same replies and the same leftover.
        let cut = &s[..s.len() - 3];
        let (whole_cut, left) = decode_all(limits, cut);
        assert_eq!(whole_cut.len(), whole.len() - 1);
        assert_eq!(left, Ok(4));
        assert_eq!(
            decode_pieces(limits, cut, 0..cut.len(), &mut dec),
            (whole_cut, Ok(4))
        );
    }

    #[test]
    fn same_error_at_every_split() {
        let small = Limits {
            max_line: 32,
            ..Limits::default()
        };
        let bad: &[(&[u8], RespError)] = &[
            (b"$1\r\n+1\r\n", Malformed::BulkEnd.into()),
            (b"*1\r\n*1\r\n:1\r\n+1\rx", Malformed::LineEnd.into()),
            (
                b"*2\r\n$-1\r\n:99999999999999999999\r\n",
                Malformed::Integer.into(),
            ),
            (
                b"*2\r\n:1\r\n+0123456789abcdef0123456789abcdefg",
                RespError::TooLarge(Limit::Line),
            ),
            (
                b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*0\r\n",
                RespError::TooDeep,
            ),
            (b"*2\r\n+a\r\n&", Malformed::TypeByte.into()),
        ];
        let mut dec = Decoder::default();
        for (tail, want) in bad {
            // A good stream, then a faulty reply: the good replies come out, then the error.
            let mut s = stream();
            s.extend_from_slice(tail);
            let (whole, end) = decode_all(small, &s);
            assert_eq!(end, Err(*want), "{:?}", String::from_utf8_lossy(tail));
            for split in 0..=s.len() {
                assert_eq!(
                    decode_pieces(small, &s, [split], &mut dec),
                    (whole.clone(), Err(*want)),
                    "split {split}"
                );
            }
            assert_eq!(
                decode_pieces(small, &s, 0..s.len(), &mut dec),
                (whole.clone(), Err(*want))
            );
        }
    }

    #[test]
    fn big_bulk_one_byte_at_a_time_is_linear() {
        let len = 1 << 20;
        let mut wire = format!("${len}\r\n").into_bytes();
        wire.extend(std::iter::repeat_n(b'x', len));
        wire.extend_from_slice(b"\r\n+after\r\n");
        let mut dec = Decoder::default();
        let mut got = None;
        for end in 1..=wire.len() {
            if let Some((r, n)) = dec.decode(&wire[..end]).unwrap() {
                got = Some((r, n));
                break;
            }
        }
        let (reply, n) = got.unwrap();
        assert_eq!(reply.as_bytes().map(<[u8]>::len), Some(len));
        assert_eq!(n, wire.len() - b"+after\r\n".len());
        // The header line is scanned once, and the end of the data is looked at once it is
        // there: nothing is searched or copied per byte of data.
        assert!(dec.examined < 32, "examined {}", dec.examined);
    }

    #[test]
    fn long_lines_and_many_elements_one_byte_at_a_time_are_linear() {
        let mut wire = vec![b'+'];
        wire.extend(std::iter::repeat_n(b'y', 60 << 10));
        wire.extend_from_slice(b"\r\n");
        let n = 20_000;
        wire.extend_from_slice(format!("*{n}\r\n").as_bytes());
        for i in 0..n {
            wire.extend_from_slice(format!(":{i}\r\n").as_bytes());
        }
        let mut dec = Decoder::default();
        let mut at = 0;
        let mut replies = Vec::new();
        for end in 1..=wire.len() {
            while let Some((r, used)) = dec.decode(&wire[at..end]).unwrap() {
                replies.push(r);
                at += used;
            }
        }
        assert_eq!(at, wire.len());
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[1].as_array().map(<[Reply]>::len), Some(n));
        assert_eq!(
            replies[1].as_array().unwrap()[n - 1],
            Reply::Integer(n as i64 - 1)
        );
        // Each byte is searched once (the CR of a line cut after it once more).
        assert!(
            dec.examined <= wire.len() + n + 2,
            "examined {} of {}",
            dec.examined,
            wire.len()
        );
    }

    #[test]
    fn reset_and_broken_contract() {
        let mut dec = Decoder::default();
        assert!(dec.is_idle());
        assert_eq!(dec.decode(b"*2\r\n:1\r\n"), Ok(None));
        assert!(!dec.is_idle());
        dec.reset();
        assert!(dec.is_idle());
        assert_eq!(dec.decode(b":5\r\n"), Ok(Some((Reply::Integer(5), 4))));
        // After an error the decoder starts afresh.
        assert_eq!(dec.decode(b"*2\r\n!"), Err(Malformed::TypeByte.into()));
        assert!(dec.is_idle());
        assert_eq!(
            dec.decode(b"+ok\r\n"),
            Ok(Some((Reply::Simple(b"ok".to_vec()), 5)))
        );
        // A caller that passes fewer bytes than before gets a fresh start, not a panic.
        assert_eq!(dec.decode(b"*2\r\n$5\r\nab"), Ok(None));
        assert_eq!(dec.decode(b":1"), Ok(None));
        assert_eq!(dec.decode(b":1\r\n"), Ok(Some((Reply::Integer(1), 4))));
        assert_eq!(dec.decode(b"+aaaaaaa"), Ok(None));
        assert_eq!(dec.decode(b"+a"), Ok(None));
        assert_eq!(dec.decode(b""), Ok(None));
        assert!(dec.is_idle());
    }

    #[test]
    fn commands() {
        let mut out = Vec::new();
        write_command(&mut out, &[b"PING"]);
        assert_eq!(out, b"*1\r\n$4\r\nPING\r\n");
        out.clear();
        write_command(&mut out, &[b"SET", b"k\r\n", b""]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$0\r\n\r\n");
        out.clear();
        write_command(&mut out, &[]);
        assert_eq!(out, b"*0\r\n");

        // The builder: same bytes as write_command, whatever the argument count.
        for count in [0usize, 1, 8, 9, 10, 99, 100, 1000] {
            let args: Vec<Vec<u8>> = (0..count).map(|i| format!("a{i}").into_bytes()).collect();
            let mut all: Vec<&[u8]> = vec![b"RPUSH"];
            all.extend(args.iter().map(Vec::as_slice));
            let mut want = b"prefix".to_vec();
            write_command(&mut want, &all);
            want.extend_from_slice(b"+");
            let mut out = b"prefix".to_vec();
            let mut cmd = Command::new(&mut out, "RPUSH");
            for a in &args {
                cmd.arg(a);
            }
            drop(cmd);
            out.extend_from_slice(b"+");
            assert_eq!(out, want, "{count} arguments");
        }

        let mut out = Vec::new();
        Command::new(&mut out, "X")
            .arg_u64(0)
            .arg_u64(u64::MAX)
            .arg_i64(i64::MIN)
            .arg_i64(0)
            .arg_i64(-1)
            .arg(b"\x00\xff")
            .arg(String::from("s"));
        let (reply, n) = one(&out).unwrap().unwrap();
        assert_eq!(n, out.len());
        let want: Vec<Reply> = [
            &b"X"[..],
            b"0",
            b"18446744073709551615",
            b"-9223372036854775808",
            b"0",
            b"-1",
            b"\x00\xff",
            b"s",
        ]
        .iter()
        .map(|a| bulk(a))
        .collect();
        assert_eq!(reply, array(want));
    }

    #[test]
    fn pubsub_events() {
        let decode = |w: &[u8]| one(w).unwrap().unwrap().0;
        let r = decode(b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\na\nb\r\n");
        assert_eq!(
            r.pubsub(),
            Some(PubSub::Message {
                channel: b"ch",
                payload: b"a\nb"
            })
        );
        let r = decode(b"*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$0\r\n\r\n");
        assert_eq!(
            r.pubsub(),
            Some(PubSub::PMessage {
                pattern: b"c*",
                channel: b"ch",
                payload: b""
            })
        );
        let r = decode(b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:2\r\n");
        assert_eq!(
            r.pubsub(),
            Some(PubSub::Subscribed {
                channel: b"ch",
                count: 2
            })
        );
        let r = decode(b"*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n");
        assert_eq!(
            r.pubsub(),
            Some(PubSub::Unsubscribed {
                channel: Some(b"ch"),
                count: 0
            })
        );
        let r = decode(b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
        assert_eq!(
            r.pubsub(),
            Some(PubSub::Unsubscribed {
                channel: None,
                count: 0
            })
        );
        let r = decode(b"*3\r\n$10\r\npsubscribe\r\n$2\r\nc*\r\n:1\r\n");
        assert_eq!(
            r.pubsub(),
            Some(PubSub::PSubscribed {
                pattern: b"c*",
                count: 1
            })
        );
        let r = decode(b"*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:0\r\n");
        assert_eq!(
            r.pubsub(),
            Some(PubSub::PUnsubscribed {
                pattern: None,
                count: 0
            })
        );
        let r = decode(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
        assert_eq!(r.pubsub(), Some(PubSub::Pong { payload: b"" }));
        // Not events.
        for w in [
            &b"-ERR only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed\r\n"[..],
            b"+OK\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*3\r\n+message\r\n$2\r\nch\r\n$1\r\np\r\n",
            b"*3\r\n$7\r\nMESSAGE\r\n$2\r\nch\r\n$1\r\np\r\n",
            b"*2\r\n$7\r\nmessage\r\n$2\r\nch\r\n",
            b"*4\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\np\r\n$1\r\np\r\n",
            b"*3\r\n$7\r\nmessage\r\n$-1\r\n$1\r\np\r\n",
            b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n:1\r\n",
            b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n$1\r\n1\r\n",
            b"*3\r\n$9\r\nsubscribe\r\n$-1\r\n:1\r\n",
            b"*3\r\n$11\r\nunsubscribe\r\n:5\r\n:1\r\n",
            b"*3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$1\r\np\r\n",
            b"*1\r\n$4\r\npong\r\n",
        ] {
            assert_eq!(decode(w).pubsub(), None, "{:?}", String::from_utf8_lossy(w));
        }
    }

    #[test]
    fn accessors() {
        let e = Reply::Error(b"NOSCRIPT No matching script.".to_vec());
        assert_eq!(e.error_code(), Some(&b"NOSCRIPT"[..]));
        assert_eq!(Reply::Error(Vec::new()).error_code(), Some(&b""[..]));
        assert_eq!(Reply::Simple(b"OK".to_vec()).error_code(), None);
        assert!(Reply::Bulk(None).is_nil() && Reply::Array(None).is_nil());
        assert!(!bulk(b"").is_nil() && !array(vec![]).is_nil());
        assert_eq!(Reply::Simple(b"OK".to_vec()).as_bytes(), Some(&b"OK"[..]));
        assert_eq!(bulk(b"v").into_bytes(), Some(b"v".to_vec()));
        assert_eq!(Reply::Integer(3).as_bytes(), None);
        assert_eq!(Reply::Integer(3).as_i64(), Some(3));
        assert_eq!(bulk(b"3").as_i64(), None);
        assert_eq!(
            array(vec![Reply::Integer(1)]).into_array(),
            Some(vec![Reply::Integer(1)])
        );
        assert_eq!(Reply::Array(None).as_array(), None);
    }
}
