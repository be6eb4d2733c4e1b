//! One client connection: its socket, where it is in its life (connecting, upgrading, open,
//! closing), its receive state and its outbound queue. The WebSocket rules come from the
//! `corecast` crate's sans-IO codec in the client role: `ws::client` for the upgrade,
//! `Assembler` (unmasked server frames, fragmentation, UTF-8, close payloads) for what arrives
//! and `encode_client_frame` (masked) for what leaves. It hands every completed upgrade and
//! data message to a caller's callback as an [`Input`], answers pings and closes itself, and
//! knows nothing about workloads, phases, rates or other connections (the driver's job).

use crate::rng::XorShift;
use crate::sys::monotonic_ns;
use corecast::ws::client::{
    self, ClientHandshake, ClientKey, RequestError, ResponseError, ResponseStatus, UpgradeRequest,
};
use corecast::ws::frame::MAX_HEADER_LEN;
use corecast::ws::mask::apply_mask;
use corecast::ws::{
    Assembler, CloseCode, DataKind, Event, FrameHeader, HeaderRules, MessageLimits, OpCode,
    ProtocolError,
};
use mio::net::TcpStream;
use std::io::{self, Read, Write};

/// Index of a connection in its worker's slab (doubles as the mio token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnKey(pub usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// `connect` issued, waiting for writability.
    Connecting,
    /// Upgrade request sent, waiting for the 101 response head.
    Handshaking,
    Open,
    /// A close frame was sent; waiting for the server's close and EOF.
    Closing,
}

/// The receive rules of a client: server frames are unmasked (RFC 6455 5.1: "A client MUST
/// close a connection if it detects a masked frame"), no extension is negotiated, and
/// `max_frame` bounds both a frame and a whole message, in bytes.
pub fn client_limits(max_frame: u64) -> MessageLimits {
    MessageLimits {
        header: HeaderRules {
            require_mask: false,
            allowed_rsv: 0,
            max_frame,
        },
        max_message: usize::try_from(max_frame).unwrap_or(usize::MAX),
    }
}

/// Why a connection ended badly. Each kind is one error counter in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Connect(io::ErrorKind),
    ConnectTimeout,
    /// The upgrade request could not be written (a bad path or header).
    Request(RequestError),
    Handshake(ResponseError),
    HandshakeTimeout,
    Protocol(ProtocolError),
    Io(io::ErrorKind),
    /// EOF without a close handshake.
    UnexpectedEof,
    /// Our close was not answered in time.
    CloseTimeout,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Connect(k) => write!(f, "connect: {k}"),
            Fault::ConnectTimeout => write!(f, "connect timed out"),
            Fault::Request(e) => write!(f, "upgrade request: {e}"),
            Fault::Handshake(e) => write!(f, "upgrade refused: {e}"),
            Fault::HandshakeTimeout => write!(f, "no upgrade response in time"),
            Fault::Protocol(e) => write!(f, "protocol error: {e}"),
            Fault::Io(k) => write!(f, "socket error: {k}"),
            Fault::UnexpectedEof => write!(f, "connection closed without a close handshake"),
            Fault::CloseTimeout => write!(f, "close handshake not answered in time"),
        }
    }
}

impl Fault {
    /// The counter this fault is reported under.
    pub fn counter(&self) -> &'static str {
        match self {
            Fault::Connect(io::ErrorKind::ConnectionRefused) => "connect_refused",
            Fault::Connect(io::ErrorKind::AddrNotAvailable) => "connect_no_address",
            Fault::Connect(_) => "connect_failed",
            Fault::ConnectTimeout => "connect_timeout",
            Fault::Request(_) => "bad_request",
            Fault::Handshake(_) => "handshake_rejected",
            Fault::HandshakeTimeout => "handshake_timeout",
            Fault::Protocol(_) => "protocol_error",
            Fault::Io(_) => "io_error",
            Fault::UnexpectedEof => "unexpected_eof",
            Fault::CloseTimeout => "close_timeout",
        }
    }
}

/// Outbound bytes of one connection. Invariant: `pos <= buf.len()`; bytes before `pos` are
/// already written.
#[derive(Debug, Default)]
pub struct Tx {
    buf: Vec<u8>,
    pos: usize,
    /// A close frame has been queued; no data frame may follow it (RFC 6455 5.5.1: "the
    /// endpoint MUST NOT send any more data frames").
    pub sent_close: bool,
    /// On the driver's flush list.
    pub dirty: bool,
}

impl Tx {
    /// Bytes queued and not yet written.
    fn queued(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn compact(&mut self) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos >= 64 * 1024 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Queues one whole masked frame. RFC 6455 5.3: "The masking key is a 32-bit value
    /// chosen at random by the client"; each frame gets a fresh key.
    ///
    /// The same bytes as `encode_client_frame`, written the way the hot path likes: the
    /// header is copied as a whole `MAX_HEADER_LEN` array (a fixed-size copy the compiler
    /// inlines) and cut to its length, instead of a variable-length `memmove` per frame.
    fn push(&mut self, opcode: OpCode, payload: &[u8], rng: &mut XorShift) {
        self.compact();
        let key = rng.mask_key();
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: Some(key),
            payload_len: payload.len() as u64,
        };
        let mut h = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut h);
        self.buf.reserve(MAX_HEADER_LEN + payload.len());
        let start = self.buf.len();
        self.buf.extend_from_slice(&h);
        self.buf.truncate(start + n);
        self.buf.extend_from_slice(payload);
        apply_mask(&mut self.buf[start + n..], key, 0);
    }

    /// Appends raw bytes (the upgrade request).
    fn push_raw(&mut self) -> &mut Vec<u8> {
        self.compact();
        &mut self.buf
    }

    /// Writes until the queue is empty or the socket would block.
    pub fn flush(&mut self, sock: &mut TcpStream) -> io::Result<()> {
        while self.pos < self.buf.len() {
            match sock.write(&self.buf[self.pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.compact();
        Ok(())
    }
}

/// What a workload may do with one open connection: queue frames and start the close.
pub struct ConnIo<'a> {
    pub key: ConnKey,
    /// Index of this connection over the whole run (all processes); decides its role.
    pub global: u64,
    /// When `connect` was issued (monotonic ns).
    pub started_ns: u64,
    tx: &'a mut Tx,
    rng: &'a mut XorShift,
}

impl ConnIo<'_> {
    /// Queues one data message as a single frame (ignored once a close frame was sent).
    pub fn send(&mut self, kind: DataKind, payload: &[u8]) {
        if !self.tx.sent_close {
            self.tx.push(kind.opcode(), payload, self.rng);
        }
    }

    /// Bytes waiting in this connection's outbound queue.
    pub fn queued(&self) -> usize {
        self.tx.queued()
    }

    pub fn is_closing(&self) -> bool {
        self.tx.sent_close
    }

    /// Queues a close frame (status 1000); the driver then waits for the server's close.
    pub fn close(&mut self) {
        if !self.tx.sent_close {
            self.tx.sent_close = true;
            self.tx
                .push(OpCode::Close, &CloseCode::NORMAL.0.to_be_bytes(), self.rng);
        }
    }
}

#[cfg(test)]
impl Tx {
    /// The frames queued so far, unmasked (as a server would read them).
    pub fn frames(&self) -> Vec<(OpCode, Vec<u8>)> {
        use corecast::ws::{FrameHeader, HeaderStatus};
        let mut out = Vec::new();
        let mut rest = &self.buf[self.pos..];
        while let Ok(HeaderStatus::Complete { header, header_len }) =
            FrameHeader::decode(rest, &HeaderRules::default())
        {
            let end = header_len + header.payload_len as usize;
            let mut payload = rest[header_len..end].to_vec();
            if let Some(key) = header.mask {
                corecast::ws::mask::apply_mask(&mut payload, key, 0);
            }
            out.push((header.opcode, payload));
            rest = &rest[end..];
        }
        out
    }
}

#[cfg(test)]
impl<'a> ConnIo<'a> {
    /// A handle on a bare queue, for driving a workload without sockets.
    pub fn for_test(key: ConnKey, global: u64, tx: &'a mut Tx, rng: &'a mut XorShift) -> Self {
        ConnIo {
            key,
            global,
            started_ns: 0,
            tx,
            rng,
        }
    }
}

/// What a connection hands to its caller while reading.
#[derive(Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// The upgrade completed; the connection is open.
    Open,
    /// One complete data message (all fragments).
    Message { kind: DataKind, payload: &'a [u8] },
}

/// What a read pass found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// The socket has no more bytes for now.
    Drained,
    /// The peer closed its side.
    Eof,
}

pub struct Conn {
    pub sock: TcpStream,
    pub state: State,
    pub key: ConnKey,
    pub global: u64,
    /// When `connect` was issued (monotonic ns).
    pub started_ns: u64,
    /// When `state` last changed (monotonic ns); drives the timeouts.
    pub since_ns: u64,
    /// What the response must hold, while handshaking.
    handshake: Option<ClientHandshake>,
    /// Unconsumed bytes: an incomplete response head or frame. Usually empty: complete frames
    /// are parsed straight out of the worker's shared read buffer.
    rbuf: Vec<u8>,
    /// Receive state (fragmented message in progress, UTF-8 of text).
    asm: Assembler,
    /// The server's close frame arrived.
    pub got_close: bool,
    pub tx: Tx,
}

impl Conn {
    pub fn new(sock: TcpStream, key: ConnKey, global: u64, now_ns: u64) -> Self {
        Conn {
            sock,
            state: State::Connecting,
            key,
            global,
            started_ns: now_ns,
            since_ns: now_ns,
            handshake: None,
            rbuf: Vec::new(),
            asm: Assembler::default(),
            got_close: false,
            tx: Tx::default(),
        }
    }

    /// Whether a pending non-blocking connect finished. `Ok(false)`: still in progress.
    /// A writable-only event with no socket error means connected; anything else is checked
    /// with `getpeername`.
    pub fn check_connected(&mut self, readable: bool) -> Result<bool, Fault> {
        if let Ok(Some(e)) | Err(e) = self.sock.take_error() {
            return Err(Fault::Connect(e.kind()));
        }
        if !readable {
            return Ok(true);
        }
        match self.sock.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
            Err(e) => Err(Fault::Connect(e.kind())),
        }
    }

    /// Queues the upgrade request for `target` (path and query) and moves to `Handshaking`.
    pub fn start_handshake(
        &mut self,
        host: &str,
        target: &str,
        rng: &mut XorShift,
        now_ns: u64,
    ) -> Result<(), Fault> {
        let key = ClientKey::from_nonce(rng.nonce());
        let req = UpgradeRequest {
            target,
            host,
            key: &key,
            headers: &[],
        };
        let hs = client::write_request(self.tx.push_raw(), &req).map_err(Fault::Request)?;
        self.handshake = Some(hs);
        self.state = State::Handshaking;
        self.since_ns = now_ns;
        Ok(())
    }

    pub fn io<'a>(&'a mut self, rng: &'a mut XorShift) -> ConnIo<'a> {
        ConnIo {
            key: self.key,
            global: self.global,
            started_ns: self.started_ns,
            tx: &mut self.tx,
            rng,
        }
    }

    /// Reads until the socket is drained, handing the upgrade and complete messages to `on`.
    ///
    /// With `to_would_block == false` a short read ends the pass: on Linux a TCP read that
    /// returns less than asked has emptied the receive queue, and new bytes raise a new
    /// edge-triggered event, so the extra `read` that would return `WouldBlock` is skipped.
    /// Pass `true` when the event reported a hang-up, so EOF is seen.
    pub fn handle_readable<F>(
        &mut self,
        scratch: &mut [u8],
        rng: &mut XorShift,
        limits: &MessageLimits,
        to_would_block: bool,
        on: &mut F,
    ) -> Result<ReadEnd, Fault>
    where
        F: FnMut(&mut ConnIo<'_>, Input<'_>, u64),
    {
        loop {
            let n = match self.sock.read(scratch) {
                Ok(0) => return Ok(ReadEnd::Eof),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadEnd::Drained),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Fault::Io(e.kind())),
            };
            self.handle_bytes(&mut scratch[..n], rng, limits, monotonic_ns(), on)?;
            if n < scratch.len() && !to_would_block {
                return Ok(ReadEnd::Drained);
            }
        }
    }

    /// Feeds bytes received from the socket (the buffer is the assembler's to work in).
    pub fn handle_bytes<F>(
        &mut self,
        data: &mut [u8],
        rng: &mut XorShift,
        limits: &MessageLimits,
        now_ns: u64,
        on: &mut F,
    ) -> Result<(), Fault>
    where
        F: FnMut(&mut ConnIo<'_>, Input<'_>, u64),
    {
        if self.got_close {
            return Ok(()); // nothing after the close frame is read
        }
        if self.state == State::Handshaking {
            self.rbuf.extend_from_slice(data);
            let Some(hs) = &self.handshake else {
                return Ok(());
            };
            let head_len = match hs.handle_response(&self.rbuf) {
                Ok(ResponseStatus::Partial) => return Ok(()),
                Ok(ResponseStatus::Complete(head)) => head.head_len,
                Err(e) => return Err(Fault::Handshake(e)),
            };
            self.handshake = None;
            self.rbuf.drain(..head_len);
            self.state = State::Open;
            self.since_ns = now_ns;
            on(&mut self.io(rng), Input::Open, now_ns);
            // Frames may follow the head in the same read.
            let mut rest = std::mem::take(&mut self.rbuf);
            return self.handle_bytes(&mut rest, rng, limits, now_ns, on);
        }
        let Conn {
            rbuf,
            asm,
            got_close,
            key,
            global,
            started_ns,
            tx,
            ..
        } = self;
        let mut io = ConnIo {
            key: *key,
            global: *global,
            started_ns: *started_ns,
            tx,
            rng,
        };
        if rbuf.is_empty() {
            let used = parse(data, asm, limits, got_close, &mut io, now_ns, on)?;
            if used < data.len() && !*got_close {
                // Keep the unconsumed bytes as they are (the assembler's invariant).
                rbuf.extend_from_slice(&data[used..]);
            }
        } else {
            rbuf.extend_from_slice(data);
            let used = parse(rbuf, asm, limits, got_close, &mut io, now_ns, on)?;
            if *got_close {
                rbuf.clear();
            } else {
                rbuf.drain(..used);
            }
        }
        if self.got_close && self.state == State::Open {
            self.state = State::Closing;
            self.since_ns = now_ns;
        }
        Ok(())
    }
}

/// Decodes complete frames from `buf` until it needs more bytes or the close arrives; returns
/// the bytes used.
fn parse<F>(
    buf: &mut [u8],
    asm: &mut Assembler,
    limits: &MessageLimits,
    got_close: &mut bool,
    io: &mut ConnIo<'_>,
    now_ns: u64,
    on: &mut F,
) -> Result<usize, Fault>
where
    F: FnMut(&mut ConnIo<'_>, Input<'_>, u64),
{
    let mut pos = 0;
    while !*got_close {
        let d = asm
            .handle_bytes(&mut buf[pos..], limits)
            .map_err(Fault::Protocol)?;
        if d.consumed == 0 && d.event.is_none() {
            break;
        }
        pos += d.consumed;
        match d.event {
            None | Some(Event::Pong(_)) => {}
            Some(Event::Message { kind, payload, .. }) => {
                on(io, Input::Message { kind, payload }, now_ns);
            }
            Some(Event::Ping(payload)) => {
                // RFC 6455 5.5.2: "an endpoint MUST send a Pong frame in response".
                if !io.tx.sent_close {
                    io.tx.push(OpCode::Pong, payload, io.rng);
                }
            }
            Some(Event::Close(frame)) => {
                *got_close = true;
                // 5.5.1: the endpoint "MUST send a Close frame in response" (echoing the
                // status code) unless it already sent one.
                if !io.tx.sent_close {
                    io.tx.sent_close = true;
                    let code = frame.code.map(|c| c.0.to_be_bytes());
                    io.tx
                        .push(OpCode::Close, code.as_ref().map_or(&[], |c| c), io.rng);
                }
            }
        }
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use corecast::ws::frame::encode_frame;

    /// A connection fed by hand (the socket is never read or written).
    fn open_conn() -> (Conn, XorShift) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let sock = std::net::TcpStream::connect(addr).expect("connect");
        let mut c = Conn::new(TcpStream::from_std(sock), ConnKey(0), 0, 0);
        let mut rng = XorShift::new(1);
        c.start_handshake("h", "/ws?username=u0", &mut rng, 0)
            .expect("valid request");
        (c, rng)
    }

    /// The server's 101 for the key in `c`'s queued request.
    fn accept_for(c: &Conn) -> Vec<u8> {
        let req = String::from_utf8(c.tx.buf.clone()).expect("ascii");
        let key = req
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .expect("key header");
        let accept = corecast::ws::handshake::accept_key(key.as_bytes());
        let mut r = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ".to_vec();
        r.extend_from_slice(&accept);
        r.extend_from_slice(b"\r\n\r\n");
        r
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Open,
        Msg(DataKind, Vec<u8>),
    }

    fn feed(
        c: &mut Conn,
        rng: &mut XorShift,
        bytes: &[u8],
        seen: &mut Vec<Seen>,
    ) -> Result<(), Fault> {
        let mut data = bytes.to_vec();
        c.handle_bytes(
            &mut data,
            rng,
            &client_limits(1 << 20),
            0,
            &mut |_io, input, _| {
                seen.push(match input {
                    Input::Open => Seen::Open,
                    Input::Message { kind, payload } => Seen::Msg(kind, payload.to_vec()),
                })
            },
        )
    }

    #[test]
    fn upgrade_then_messages_at_every_split_point() {
        let (c0, _) = open_conn();
        let mut stream = accept_for(&c0);
        encode_frame(&mut stream, OpCode::Text, 0, b"hello");
        // A fragmented binary message with a ping in the middle.
        stream.extend_from_slice(&[0x02, 0x02, b'a', b'b']);
        encode_frame(&mut stream, OpCode::Ping, 0, b"p");
        stream.extend_from_slice(&[0x80, 0x01, b'c']);
        encode_frame(&mut stream, OpCode::Binary, 0, &[9u8; 300]);
        for split in 0..=stream.len() {
            let (mut c, mut rng) = open_conn();
            let mut seen = Vec::new();
            feed(&mut c, &mut rng, &stream[..split], &mut seen).expect("valid");
            feed(&mut c, &mut rng, &stream[split..], &mut seen).expect("valid");
            assert_eq!(
                seen,
                vec![
                    Seen::Open,
                    Seen::Msg(DataKind::Text, b"hello".to_vec()),
                    Seen::Msg(DataKind::Binary, b"abc".to_vec()),
                    Seen::Msg(DataKind::Binary, vec![9u8; 300]),
                ],
                "split {split}"
            );
            assert_eq!(c.state, State::Open);
            assert!(c.rbuf.is_empty());
        }
    }

    #[test]
    fn queued_frames_are_the_crates_client_frames() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
            let mut tx = Tx::default();
            let mut rng = XorShift::new(9);
            tx.push(OpCode::Binary, &payload, &mut rng);
            let mut want = Vec::new();
            let key = XorShift::new(9).mask_key();
            corecast::ws::frame::encode_client_frame(
                &mut want,
                true,
                OpCode::Binary,
                key,
                &payload,
            );
            assert_eq!(tx.buf, want, "len {len}");
            assert_eq!(tx.frames(), vec![(OpCode::Binary, payload)]);
        }
    }

    #[test]
    fn refused_upgrade_keeps_its_status() {
        let (mut c, mut rng) = open_conn();
        let mut seen = Vec::new();
        let r = feed(
            &mut c,
            &mut rng,
            b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n",
            &mut seen,
        );
        assert_eq!(r, Err(Fault::Handshake(ResponseError::Status(429))));
        assert!(seen.is_empty());
    }

    #[test]
    fn masked_server_frame_is_a_protocol_error() {
        let (mut c, mut rng) = open_conn();
        let mut stream = accept_for(&c);
        stream.extend_from_slice(&[0x81, 0x81, 1, 2, 3, 4, b'x']);
        let mut seen = Vec::new();
        let r = feed(&mut c, &mut rng, &stream, &mut seen);
        assert!(matches!(r, Err(Fault::Protocol(_))), "{r:?}");
        assert_eq!(seen, vec![Seen::Open]);
    }

    #[test]
    fn server_close_is_answered_with_its_code_and_ends_reading() {
        let (mut c, mut rng) = open_conn();
        let mut stream = accept_for(&c);
        encode_frame(&mut stream, OpCode::Close, 0, &1001u16.to_be_bytes());
        encode_frame(&mut stream, OpCode::Text, 0, b"after close");
        let queued_before = c.tx.buf.len();
        let mut seen = Vec::new();
        feed(&mut c, &mut rng, &stream, &mut seen).expect("valid");
        assert_eq!(seen, vec![Seen::Open]);
        assert!(c.got_close && c.tx.sent_close);
        assert_eq!(c.state, State::Closing);
        // Our close: masked, FIN, opcode 8, 2-byte payload 1001 under the mask.
        let frame = &c.tx.buf[queued_before..];
        assert_eq!(&frame[..2], &[0x88, 0x82]);
        let key = [frame[2], frame[3], frame[4], frame[5]];
        let code = [frame[6] ^ key[0], frame[7] ^ key[1]];
        assert_eq!(u16::from_be_bytes(code), 1001);
    }
}
