//! A chat-protocol client for the `/ws` tests (tungstenite + serde_json) and small HTTP helpers
//! for the side door (`/api/…`, `/health`, `/metrics`).
//!
//! The client keeps messages it has read but not consumed yet, so a test can wait for the
//! answer to one command (matched by `id`) and still look at everything else in arrival order.
//! Every read has a generous timeout ([`READ_TIMEOUT`]); a timeout, a close or a non-JSON
//! message where JSON is expected fails the test. Must not know what a test expects: it only
//! reads, sends and matches ids.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tungstenite::Message;

use crate::harness::{HttpResponse, Raw};

/// How long one read may block before the test fails (the CI box is small and busy).
pub const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// One `/ws` connection of one user.
pub struct Client {
    ws: tungstenite::WebSocket<TcpStream>,
    /// The user id it connected as.
    pub user: String,
    /// Read but not consumed yet, oldest first.
    pending: VecDeque<Value>,
    next_id: u64,
}

/// Opens `/ws?username=<user>` without reading anything.
pub fn open(addr: SocketAddr, user: &str) -> Client {
    let ws = crate::harness::ws_with_timeout(addr, &format!("/ws?username={user}"), READ_TIMEOUT);
    Client {
        ws,
        user: user.to_string(),
        pending: VecDeque::new(),
        next_id: 0,
    }
}

/// Connects as `user`: checks `welcome` is the first message (exactly) and reads up to the
/// `room.list` that follows it, which is returned (other messages stay pending).
pub fn connect(addr: SocketAddr, user: &str) -> (Client, Value) {
    let mut c = open(addr, user);
    let welcome = c.recv();
    assert_eq!(
        welcome,
        json!({"type":"welcome","user":user,"name":user,"rooms":["general"]}),
        "first message of {user}"
    );
    let list = c.take(|m| m["type"] == "room.list");
    (c, list)
}

/// [`connect`] for several users; each one's initial messages are drained, so the clients
/// start with nothing pending (presence notices of the later connections included).
pub fn connect_all(addr: SocketAddr, users: &[&str]) -> Vec<Client> {
    let mut clients: Vec<Client> = users.iter().map(|u| connect(addr, u).0).collect();
    for c in &mut clients {
        c.drain();
    }
    clients
}

impl Client {
    /// The socket (for timeouts).
    pub fn stream(&mut self) -> &mut TcpStream {
        self.ws.get_mut()
    }

    /// The next WebSocket message as tungstenite reads it (pending messages are not looked
    /// at): for tests that expect the connection to end.
    pub fn read_message(&mut self) -> tungstenite::Result<Message> {
        self.ws.read()
    }

    /// Reads one message from the socket (not from the pending ones), skipping pings and
    /// pongs. `None` on timeout; a close frame or an error fails the test.
    fn read_socket(&mut self) -> Option<Value> {
        let t = crate::harness::read_text(&mut self.ws, &self.user, &self.pending)?;
        let v: Value = serde_json::from_str(&t)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {t}", self.user));
        assert!(v.is_object(), "{}: not an object: {t}", self.user);
        Some(v)
    }

    /// The next message (pending first); fails after [`READ_TIMEOUT`].
    pub fn recv(&mut self) -> Value {
        if let Some(v) = self.pending.pop_front() {
            return v;
        }
        self.read_socket()
            .unwrap_or_else(|| panic!("{}: nothing received in {READ_TIMEOUT:?}", self.user))
    }

    /// Removes and returns the first message (pending or new) for which `pred` holds; the
    /// others stay pending in order.
    pub fn take(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i).expect("index in range");
        }
        loop {
            let v = self.read_socket().unwrap_or_else(|| {
                panic!(
                    "{}: the awaited message did not come in {READ_TIMEOUT:?}; got {:?}",
                    self.user, self.pending
                )
            });
            if pred(&v) {
                return v;
            }
            self.pending.push_back(v);
        }
    }

    /// Every message up to and including the first for which `pred` holds (all removed).
    pub fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let v = self.recv();
            let done = pred(&v);
            out.push(v);
            if done {
                return out;
            }
        }
    }

    /// Reads until at least `n` messages for which `pred` holds are pending (nothing is
    /// consumed).
    pub fn await_pending(&mut self, pred: impl Fn(&Value) -> bool, n: usize) {
        while self.pending.iter().filter(|m| pred(m)).count() < n {
            let v = self.read_socket().unwrap_or_else(|| {
                panic!(
                    "{}: {n} awaited messages did not come in {READ_TIMEOUT:?}; got {:?}",
                    self.user, self.pending
                )
            });
            self.pending.push_back(v);
        }
    }

    /// Sends a text message as is.
    pub fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).expect("send");
    }

    /// Sends any message (binary, or text that need not be JSON).
    pub fn send_message(&mut self, m: Message) {
        self.ws.send(m).expect("send");
    }

    /// Sends a JSON value.
    pub fn send(&mut self, v: &Value) {
        self.send_text(&v.to_string());
    }

    /// Queues messages and writes them all at once (one flush), so the server reads them
    /// together.
    pub fn send_batch(&mut self, msgs: &[Value]) {
        for v in msgs {
            self.ws.write(Message::text(v.to_string())).expect("write");
        }
        self.ws.flush().expect("flush");
    }

    /// A fresh string id for this connection.
    pub fn fresh_id(&mut self) -> String {
        self.next_id += 1;
        format!("{}-{}", self.user, self.next_id)
    }

    /// Sends `cmd` with a fresh string id; returns the id.
    pub fn send_with_id(&mut self, mut cmd: Value) -> Value {
        let id = json!(self.fresh_id());
        cmd["id"] = id.clone();
        self.send(&cmd);
        id
    }

    /// The `ack` or `error` answering `id` (other messages stay pending).
    pub fn answer(&mut self, id: &Value) -> Value {
        self.take(|m| is_answer(m, id))
    }

    /// Sends `cmd` with a fresh id and returns its answer (`ack` or `error`).
    pub fn ask(&mut self, cmd: Value) -> Value {
        let id = self.send_with_id(cmd);
        self.answer(&id)
    }

    /// Sends `cmd` with a fresh id and returns every message up to and including its answer.
    pub fn ask_all(&mut self, cmd: Value) -> Vec<Value> {
        let id = self.send_with_id(cmd);
        self.until(|m| is_answer(m, &id))
    }

    /// Sends `cmd` with a fresh id and checks that its answer is a plain ack.
    pub fn ok(&mut self, cmd: Value) {
        let id = self.send_with_id(cmd.clone());
        let a = self.answer(&id);
        assert_eq!(a, json!({"type":"ack","id":id}), "{}: {cmd}", self.user);
    }

    /// Joins `room` (ack awaited); the `user.list` it sends is returned.
    pub fn join(&mut self, room: &str) -> Value {
        let id = self.send_with_id(json!({"type":"room.join","room":room}));
        let a = self.answer(&id);
        assert_eq!(
            a,
            json!({"type":"ack","id":id}),
            "{} joining {room}",
            self.user
        );
        self.take(|m| m["type"] == "user.list" && m["room"] == room)
    }

    /// Sends a chat with an id and returns the seq of its ack (its own copy stays pending).
    pub fn chat(&mut self, room: &str, content: &str) -> u64 {
        let id = self.send_with_id(json!({"type":"chat","room":room,"content":content}));
        let a = self.answer(&id);
        assert_eq!(a["type"], "ack", "{}: chat refused: {a}", self.user);
        let seq = a["seq"].as_u64().expect("ack seq");
        assert_eq!(a, json!({"type":"ack","id":id,"seq":seq}));
        seq
    }

    /// A barrier: every message the server had queued for this connection from earlier
    /// actions (whichever worker they came from) arrives before the answer to a `room.list`,
    /// which visits every worker. Returns everything received before it, in order (the
    /// barrier's own list and ack removed).
    pub fn drain(&mut self) -> Vec<Value> {
        let id = self.send_with_id(json!({"type":"room.list"}));
        let mut got = self.until(|m| is_answer(m, &id));
        let ack = got.pop().expect("answer");
        assert_eq!(ack, json!({"type":"ack","id":id}), "{}: barrier", self.user);
        let list = got.pop().expect("barrier room.list");
        assert_eq!(
            list["type"], "room.list",
            "{}: before the barrier ack",
            self.user
        );
        got
    }

    /// [`Client::drain`], expecting nothing before the barrier.
    pub fn expect_nothing(&mut self) {
        let got = self.drain();
        assert!(got.is_empty(), "{}: unexpected {got:?}", self.user);
    }

    /// Reads until the server's close frame, returning its code and reason and the data
    /// messages that came before it.
    pub fn expect_close(&mut self) -> (u16, String, Vec<Value>) {
        let mut before: Vec<Value> = self.pending.drain(..).collect();
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    before.push(serde_json::from_str(t.as_str()).expect("json"))
                }
                Ok(Message::Close(Some(f))) => {
                    return (u16::from(f.code), f.reason.as_str().to_string(), before)
                }
                Ok(Message::Close(None)) => panic!("{}: close without a code", self.user),
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                Ok(m) => panic!("{}: unexpected {m:?}", self.user),
                Err(e) => panic!("{}: no close frame: {e}; before: {before:?}", self.user),
            }
        }
    }

    /// After [`Client::expect_close`]: the server ends the TCP connection.
    pub fn expect_closed(&mut self) {
        match self.ws.read() {
            Err(tungstenite::Error::ConnectionClosed) => {}
            other => panic!(
                "{}: expected the connection to end, got {other:?}",
                self.user
            ),
        }
    }

    /// Closes cleanly (close handshake completed).
    pub fn close(mut self) {
        self.ws.close(None).expect("close");
        loop {
            match self.ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => return,
                Err(e) => panic!("{}: closing: {e}", self.user),
            }
        }
    }
}

/// Whether `m` is the `ack` or `error` for `id`.
pub fn is_answer(m: &Value, id: &Value) -> bool {
    (m["type"] == "ack" || m["type"] == "error") && m.get("id") == Some(id)
}

/// Checks `m` is an error with `code` (and `id`, when given) and a non-empty human text, and
/// nothing else.
pub fn assert_error(m: &Value, code: &str, id: Option<&Value>) {
    let content = m["content"].as_str().unwrap_or_default();
    assert!(!content.is_empty(), "error without content: {m}");
    let mut expected = json!({"type":"error","code":code,"content":content});
    if let Some(id) = id {
        expected["id"] = id.clone();
    }
    assert_eq!(m, &expected);
}

/// Removes `timestamp` from `m`, checking it is RFC 3339 UTC with milliseconds
/// (`2026-12-01T10:00:00.123Z`) and within a minute of this machine's clock.
pub fn strip_timestamp(m: &Value) -> Value {
    let mut m = m.clone();
    let ts = m
        .as_object_mut()
        .and_then(|o| o.remove("timestamp"))
        .unwrap_or_else(|| panic!("no timestamp"));
    let ts = ts.as_str().expect("timestamp is a string");
    let ms = parse_timestamp(ts).unwrap_or_else(|| panic!("bad timestamp {ts:?}"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    assert!((now - ms).abs() < 60_000, "timestamp {ts} is not now");
    m
}

/// Unix milliseconds of `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 24 {
        return None;
    }
    let seps = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ];
    if seps.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = &s[r];
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // Days from civil (H. Hinnant).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + ms)
}

// ---- HTTP ---------------------------------------------------------------------------------

/// One HTTP/1.1 request on a fresh connection; the response is read to EOF (the side door
/// closes after every response). `headers` are extra lines without the CRLF.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &[u8],
) -> HttpResponse {
    let mut raw = Raw::connect(addr);
    raw.set_read_timeout(READ_TIMEOUT);
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    raw.send(&bytes);
    let resp = raw.read_response_to_eof();
    assert_eq!(
        resp.header("content-length"),
        resp.body.len().to_string(),
        "{method} {path}: body length"
    );
    resp
}

/// The status code of a response.
pub fn status(resp: &HttpResponse) -> u16 {
    resp.status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {:?}", resp.status_line))
}

/// The body as JSON (checking the content type).
pub fn json_body(resp: &HttpResponse) -> Value {
    assert_eq!(resp.header("content-type"), "application/json", "{resp:?}");
    serde_json::from_slice(&resp.body)
        .unwrap_or_else(|e| panic!("body is not JSON ({e}): {resp:?}"))
}

/// An API call: `key` goes into `Authorization: Bearer`; `body` is sent as JSON. Returns the
/// status and the response (whose body is JSON for every API answer).
pub fn api(
    addr: SocketAddr,
    key: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value, HttpResponse) {
    let auth = key.map(|k| format!("Authorization: Bearer {k}"));
    let mut headers: Vec<&str> = vec!["Content-Type: application/json"];
    if let Some(a) = &auth {
        headers.push(a);
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let resp = http(addr, method, path, &headers, body.as_bytes());
    (status(&resp), json_body(&resp), resp)
}

/// `GET /health` as JSON.
pub fn health(addr: SocketAddr) -> Value {
    let resp = http(addr, "GET", "/health", &[], b"");
    assert_eq!(status(&resp), 200);
    json_body(&resp)
}

/// Polls `/health` until it counts `n` open WebSocket connections: the server has then begun
/// the close of every connection that went away. (Its leaves to the rooms' homes are sent in
/// the same call, an instant later: to see their effect, wait for a presence notice.)
pub fn wait_connections(addr: SocketAddr, n: u64) {
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    loop {
        let h = health(addr);
        if h["connections"] == n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "connections stay at {h}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
