//! The test harness: a `corecast` process per test, a hand-written raw WebSocket client, and
//! a tungstenite client for the well-behaved cases.
//!
//! The raw client encodes frames itself (independently of `corecast::ws`) so that a bug in the
//! crate's codec cannot cancel out in the tests, and it can send anything, including frames a
//! real client never would.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::protocol::WebSocketConfig;

/// How long any single read may block before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the server may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Continuation opcode.
pub const CONT: u8 = 0x0;
/// Text opcode.
pub const TEXT: u8 = 0x1;
/// Binary opcode.
pub const BINARY: u8 = 0x2;
/// Close opcode.
pub const CLOSE: u8 = 0x8;
/// Ping opcode.
pub const PING: u8 = 0x9;
/// Pong opcode.
pub const PONG: u8 = 0xA;

/// The key and accept value of RFC 6455 §1.3, computed independently of the server.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A running `corecast` process, killed (SIGKILL) when dropped if it is still alive.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `corecast --listen 127.0.0.1:0 --workers 2 <flags>` and waits for its
    /// `listening on` line. `CORECAST_*` variables of the test environment are not passed on,
    /// so only `flags` configure it. Set `CORECAST_IT_LOG=1` to see the server's logs.
    pub fn start(flags: &[&str]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_corecast"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CORECAST_") {
                cmd.env_remove(k);
            }
        }
        let show_logs = std::env::var_os("CORECAST_IT_LOG").is_some();
        cmd.args(["--listen", "127.0.0.1:0", "--workers", "2"])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if show_logs {
                Stdio::inherit()
            } else {
                Stdio::null()
            });
        if !show_logs {
            cmd.env("RUST_LOG", "warn");
        }
        let mut child = cmd.spawn().expect("spawning corecast");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(e) => panic!(
                "corecast {flags:?} printed no listening line ({e}); exit: {:?}",
                server.child.try_wait()
            ),
        };
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first stdout line {line:?}"));
        server.addr = addr.parse().expect("listening address");
        assert!(
            server.addr.ip().is_loopback() && server.addr.port() != 0,
            "{line}"
        );
        server
    }

    /// Sends SIGTERM (through kill(1): the tests use no libc).
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// SIGKILL (no drain, no goodbye to Redis or peers) and waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit; panics if it is still running after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "corecast still running {within:?} later"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A well-behaved client: tungstenite over a blocking std `TcpStream`.
pub type Ws = tungstenite::WebSocket<TcpStream>;

/// Connects a tungstenite client to `path` (reads time out after [`IO_TIMEOUT`]; messages up
/// to 64 MiB are accepted).
pub fn ws(addr: SocketAddr, path: &str) -> Ws {
    ws_with_timeout(addr, path, IO_TIMEOUT)
}

/// [`ws`] with reads timing out after `timeout` (the chat and gateway clients wait longer).
/// The upgrade must succeed (101).
pub fn ws_with_timeout(addr: SocketAddr, path: &str, timeout: Duration) -> Ws {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream.set_read_timeout(Some(timeout)).expect("timeout");
    let config = WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let (ws, resp) =
        tungstenite::client::client_with_config(format!("ws://{addr}{path}"), stream, Some(config))
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("upgrade of {path}: {e}"));
    assert_eq!(resp.status().as_u16(), 101);
    ws
}

/// A frame as read from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// `(code, reason)` of a close frame; `None` for an empty close payload.
    pub fn close(&self) -> Option<(u16, String)> {
        assert_eq!(self.opcode, CLOSE, "expected a close frame, got {self:?}");
        match self.payload.as_slice() {
            [] => None,
            [_] => panic!("server sent a one-byte close payload"),
            [hi, lo, reason @ ..] => {
                let reason = String::from_utf8(reason.to_vec()).expect("close reason is utf-8");
                Some((u16::from_be_bytes([*hi, *lo]), reason))
            }
        }
    }
}

/// A parsed HTTP response head (and, when read to EOF, its body).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The value of header `name` (case-insensitive); panics when there is not exactly one.
    pub fn header(&self, name: &str) -> &str {
        let mut found = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name));
        let (_, v) = found
            .next()
            .unwrap_or_else(|| panic!("no {name} header in {self:?}"));
        assert!(found.next().is_none(), "several {name} headers in {self:?}");
        v
    }
}

/// A raw TCP client speaking WebSocket by hand.
pub struct Raw {
    pub stream: TcpStream,
    /// Received bytes not consumed yet.
    buf: Vec<u8>,
}

impl Raw {
    /// Connects without sending anything.
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects and completes the opening handshake on `path`, checking the 101 response.
    pub fn upgrade(addr: SocketAddr, path: &str) -> Raw {
        let mut raw = Raw::connect(addr);
        raw.send(&upgrade_request(path));
        raw.expect_101();
        raw
    }

    /// Reads a response head and checks it is a valid 101 for [`KEY`].
    pub fn expect_101(&mut self) {
        let resp = self.read_head();
        assert_eq!(
            resp.status_line, "HTTP/1.1 101 Switching Protocols",
            "{resp:?}"
        );
        assert!(resp.header("upgrade").eq_ignore_ascii_case("websocket"));
        assert!(resp.header("connection").eq_ignore_ascii_case("upgrade"));
        assert_eq!(resp.header("sec-websocket-accept"), ACCEPT);
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    pub fn set_read_timeout(&self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).expect("timeout");
    }

    /// Reads more bytes into the buffer; `Ok(0)` at EOF.
    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 64 << 10];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Makes sure `n` bytes are buffered; panics on EOF, error or timeout.
    fn need(&mut self, n: usize) {
        while self.buf.len() < n {
            match self.fill() {
                Ok(0) => panic!(
                    "EOF after {} of {n} bytes (buffered: {:?})",
                    self.buf.len(),
                    String::from_utf8_lossy(&self.buf[..self.buf.len().min(200)])
                ),
                Ok(_) => {}
                Err(e) => panic!(
                    "read failed with {} of {n} bytes buffered: {e}",
                    self.buf.len()
                ),
            }
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        self.need(n);
        let rest = self.buf.split_off(n);
        std::mem::replace(&mut self.buf, rest)
    }

    /// Reads one HTTP response head (up to and including the blank line).
    pub fn read_head(&mut self) -> HttpResponse {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(self.buf.len() < 64 << 10, "response head too long");
            let n = self.buf.len() + 1;
            self.need(n);
        };
        let head = self.take(end);
        let head = String::from_utf8(head).expect("response head is utf-8");
        let mut lines = head.trim_end_matches("\r\n").split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_string();
        let headers = lines
            .map(|l| {
                let (k, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header {l:?}"));
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        HttpResponse {
            status_line,
            headers,
            body: Vec::new(),
        }
    }

    /// Reads a complete response up to EOF: the server must close after it.
    pub fn read_response_to_eof(&mut self) -> HttpResponse {
        let mut resp = self.read_head();
        self.read_to_eof();
        resp.body = std::mem::take(&mut self.buf);
        resp
    }

    /// Reads until EOF, keeping what arrives in the buffer; panics on timeout.
    fn read_to_eof(&mut self) {
        loop {
            match self.fill() {
                Ok(0) => return,
                Ok(_) => assert!(self.buf.len() < 64 << 20, "no EOF after 64 MiB"),
                Err(e) => panic!("expected EOF, read failed: {e}"),
            }
        }
    }

    /// Reads one frame from the server (which must not mask).
    pub fn read_frame(&mut self) -> Frame {
        self.need(2);
        let (b0, b1) = (self.buf[0], self.buf[1]);
        assert_eq!(b1 & 0x80, 0, "server frames must not be masked");
        let (len, header_len) = match b1 & 0x7f {
            126 => {
                self.need(4);
                (u64::from(u16::from_be_bytes([self.buf[2], self.buf[3]])), 4)
            }
            127 => {
                self.need(10);
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.buf[2..10]);
                (u64::from_be_bytes(b), 10)
            }
            n => (u64::from(n), 2),
        };
        let len = usize::try_from(len).expect("frame length");
        self.take(header_len);
        Frame {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x7,
            opcode: b0 & 0x0f,
            payload: self.take(len),
        }
    }

    /// Reads the next frame, which must be a close frame; returns its code and reason.
    pub fn expect_close(&mut self) -> Option<(u16, String)> {
        let f = self.read_frame();
        assert!(f.fin && f.rsv == 0, "{f:?}");
        f.close()
    }

    /// Reads the next frame, which must be a close with `code`; then expects EOF.
    pub fn expect_close_code(&mut self, code: u16) -> String {
        let (got, reason) = self.expect_close().expect("close frame with a code");
        assert_eq!(got, code, "close reason {reason:?}");
        assert!(reason.len() <= 123);
        self.expect_eof();
        reason
    }

    /// Expects the server to close TCP with nothing more to read.
    pub fn expect_eof(&mut self) {
        self.read_to_eof();
        assert!(
            self.buf.is_empty(),
            "unexpected bytes before EOF: {:?}",
            &self.buf[..self.buf.len().min(64)]
        );
    }

    /// Whether the server has closed TCP (or reset) within `within`; bytes read meanwhile are
    /// kept.
    pub fn eof_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.set_read_timeout(left);
            match self.fill() {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }
}

/// A valid upgrade request for `path` with [`KEY`].
pub fn upgrade_request(path: &str) -> Vec<u8> {
    upgrade_request_with(path, "")
}

/// [`upgrade_request`] with `extra` header lines (each ending in `\r\n`) before the blank line.
pub fn upgrade_request_with(path: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// A fresh masking key per frame, so that masking bugs cannot hide behind a fixed key.
fn next_mask() -> [u8; 4] {
    static NEXT: AtomicU32 = AtomicU32::new(0x37fa_213d);
    NEXT.fetch_add(0x9e37_79b9, Ordering::Relaxed).to_be_bytes()
}

/// A frame header with the shortest length form; masked when `mask` is given.
pub fn header(b0: u8, len: u64, mask: Option<[u8; 4]>) -> Vec<u8> {
    let m = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![b0];
    if len < 126 {
        out.push(m | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(m | 126);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    out
}

/// `payload` masked with `key` (RFC 6455 §5.3).
pub fn masked(payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    payload
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 4])
        .collect()
}

/// A masked client frame with first byte `b0` (FIN, RSV and opcode bits as given).
pub fn raw_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let key = next_mask();
    let mut out = header(b0, payload.len() as u64, Some(key));
    out.extend(masked(payload, key));
    out
}

/// A masked client frame.
pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(if fin { 0x80 } else { 0 } | opcode, payload)
}

/// A masked close frame with `code` and `reason` bytes.
pub fn close_frame(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    frame(true, CLOSE, &payload)
}

/// Deterministic test data: `len` bytes that differ with `seed` and position.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed.wrapping_mul(31) ^ (i >> 16) as u8)
        .collect()
}

/// Reads one text message from `ws` (pings and pongs skipped, a read cut short by a signal
/// read again); `None` when the socket's read timeout passed. A close or anything but text
/// fails the test, naming `who` and what it had `pending`.
pub fn read_text(
    ws: &mut tungstenite::WebSocket<std::net::TcpStream>,
    who: &str,
    pending: &dyn std::fmt::Debug,
) -> Option<String> {
    use std::io::ErrorKind;
    use tungstenite::Message;
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return Some(t.as_str().to_owned()),
            Ok(Message::Ping(_) | Message::Pong(_)) => {}
            Ok(m) => panic!("{who}: unexpected {m:?} (pending {pending:?})"),
            // A signal (a child of the test process ending) cut a timed read short.
            Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::Interrupted => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                return None
            }
            Err(e) => panic!("{who}: read failed: {e} (pending {pending:?})"),
        }
    }
}
