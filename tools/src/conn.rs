//! One client connection: its socket, where it is in its life (connecting, upgrading, open,
//! closing), the partial bytes of a frame split across reads, and its outbound queue. It turns
//! readable bytes into workload callbacks, answers pings and closes, and knows nothing about
//! phases, rates or other connections (that is the driver's job).

use crate::driver::Workload;
use crate::frame::{self, FrameError, Parsed, XorShift};
use crate::handshake::{self, Accept, HandshakeError};
use crate::sys::monotonic_ns;
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

/// Why a connection ended badly. Each kind is one error counter in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Connect(io::ErrorKind),
    ConnectTimeout,
    Handshake(HandshakeError),
    HandshakeTimeout,
    Protocol(FrameError),
    /// A data frame while a fragmented message was open, or a stray continuation.
    Fragmentation,
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
            Fault::Handshake(e) => write!(f, "upgrade refused: {e}"),
            Fault::HandshakeTimeout => write!(f, "no upgrade response in time"),
            Fault::Protocol(e) => write!(f, "protocol error: {e}"),
            Fault::Fragmentation => write!(f, "protocol error: bad fragmentation"),
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
            Fault::Handshake(_) => "handshake_rejected",
            Fault::HandshakeTimeout => "handshake_timeout",
            Fault::Protocol(_) | Fault::Fragmentation => "protocol_error",
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

    fn push(&mut self, opcode: u8, payload: &[u8], rng: &mut XorShift) {
        self.compact();
        frame::encode_masked(&mut self.buf, opcode, payload, rng.mask_key());
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
    /// Queues one data frame (ignored once a close frame was sent).
    pub fn send(&mut self, opcode: u8, payload: &[u8]) {
        if !self.tx.sent_close {
            self.tx.push(opcode, payload, self.rng);
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
            frame::encode_close(self.tx.push_raw(), frame::CLOSE_NORMAL, self.rng.mask_key());
        }
    }
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
    /// Expected `Sec-WebSocket-Accept` while handshaking.
    accept: Accept,
    /// Bytes of an incomplete frame (or response head). Usually empty: complete frames are
    /// parsed straight out of the worker's shared read buffer.
    rbuf: Vec<u8>,
    /// A fragmented data message is open.
    in_message: bool,
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
            accept: [0; 28],
            rbuf: Vec::new(),
            in_message: false,
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

    /// Queues the upgrade request and moves to `Handshaking`.
    pub fn start_handshake(&mut self, host: &str, path: &str, rng: &mut XorShift, now_ns: u64) {
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&rng.next_u64().to_ne_bytes());
        nonce[8..].copy_from_slice(&rng.next_u64().to_ne_bytes());
        let key = handshake::key_from_nonce(nonce);
        self.accept = handshake::accept_for(&key);
        handshake::write_request(self.tx.push_raw(), host, path, &key);
        self.state = State::Handshaking;
        self.since_ns = now_ns;
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

    /// Reads until the socket is drained, feeding complete frames to `w`.
    ///
    /// With `to_would_block == false` a short read ends the pass: on Linux a TCP read that
    /// returns less than asked has emptied the receive queue, and new bytes raise a new
    /// edge-triggered event, so the extra `read` that would return `WouldBlock` is skipped.
    /// Pass `true` when the event reported a hang-up, so EOF is seen.
    pub fn handle_readable<W: Workload>(
        &mut self,
        scratch: &mut [u8],
        rng: &mut XorShift,
        w: &mut W,
        max_frame: u64,
        to_would_block: bool,
    ) -> Result<ReadEnd, Fault> {
        loop {
            let n = match self.sock.read(scratch) {
                Ok(0) => return Ok(ReadEnd::Eof),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadEnd::Drained),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Fault::Io(e.kind())),
            };
            self.handle_bytes(&scratch[..n], rng, w, monotonic_ns(), max_frame)?;
            if n < scratch.len() && !to_would_block {
                return Ok(ReadEnd::Drained);
            }
        }
    }

    /// Feeds bytes received from the socket.
    pub fn handle_bytes<W: Workload>(
        &mut self,
        data: &[u8],
        rng: &mut XorShift,
        w: &mut W,
        now_ns: u64,
        max_frame: u64,
    ) -> Result<(), Fault> {
        if self.got_close {
            return Ok(()); // nothing after the close frame is read
        }
        if self.state == State::Handshaking {
            self.rbuf.extend_from_slice(data);
            match handshake::check_response(&self.rbuf, &self.accept) {
                Ok(handshake::Status::Partial) => return Ok(()),
                Err(e) => return Err(Fault::Handshake(e)),
                Ok(handshake::Status::Complete { head_len }) => {
                    self.rbuf.drain(..head_len);
                    self.state = State::Open;
                    self.since_ns = now_ns;
                    w.on_open(&mut self.io(rng), now_ns);
                }
            }
            // Frames may follow the head in the same read.
            let rest = std::mem::take(&mut self.rbuf);
            return self.handle_bytes(&rest, rng, w, now_ns, max_frame);
        }
        let Conn {
            rbuf,
            in_message,
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
        let mut rx = Rx {
            in_message,
            got_close,
        };
        if rbuf.is_empty() {
            let used = rx.parse(data, &mut io, w, now_ns, max_frame)?;
            if used < data.len() && !*rx.got_close {
                rbuf.extend_from_slice(&data[used..]);
            }
        } else {
            rbuf.extend_from_slice(data);
            let used = rx.parse(rbuf, &mut io, w, now_ns, max_frame)?;
            if *rx.got_close {
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

/// Receive-side message state, borrowed from the connection for one parse pass.
struct Rx<'a> {
    in_message: &'a mut bool,
    got_close: &'a mut bool,
}

impl Rx<'_> {
    /// Parses complete frames from `buf`; returns the bytes used.
    fn parse<W: Workload>(
        &mut self,
        buf: &[u8],
        io: &mut ConnIo<'_>,
        w: &mut W,
        now_ns: u64,
        max_frame: u64,
    ) -> Result<usize, Fault> {
        let mut pos = 0;
        while !*self.got_close {
            let (f, used) = match frame::parse_server_frame(&buf[pos..], max_frame) {
                Ok(Parsed::Complete { frame, consumed }) => (frame, consumed),
                Ok(Parsed::Partial) => break,
                Err(e) => return Err(Fault::Protocol(e)),
            };
            pos += used;
            match f.opcode {
                frame::OP_PING => {
                    // RFC 6455 5.5.2: "an endpoint MUST send a Pong frame in response".
                    if !io.tx.sent_close {
                        io.tx.push(frame::OP_PONG, f.payload, io.rng);
                    }
                }
                frame::OP_PONG => {}
                frame::OP_CLOSE => {
                    *self.got_close = true;
                    // 5.5.1: the endpoint "MUST send a Close frame in response" (echoing the
                    // status code) unless it already sent one.
                    if !io.tx.sent_close {
                        io.tx.sent_close = true;
                        let code = f.payload.get(..2).unwrap_or(&[]);
                        io.tx.push(frame::OP_CLOSE, code, io.rng);
                    }
                }
                frame::OP_CONTINUATION => {
                    if !*self.in_message {
                        return Err(Fault::Fragmentation);
                    }
                    *self.in_message = !f.fin;
                    w.on_data(io, false, f.fin, f.payload, now_ns);
                }
                _ => {
                    if *self.in_message {
                        return Err(Fault::Fragmentation);
                    }
                    *self.in_message = !f.fin;
                    w.on_data(io, true, f.fin, f.payload, now_ns);
                }
            }
        }
        Ok(pos)
    }
}
