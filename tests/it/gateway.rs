//! Fixtures for the event gateway tests (`gateway_*.rs`): a `corecast` node serving the
//! ride-sharing example of the gateway issue (`/ws/drivers`, `/ws/riders`) on a real RabbitMQ
//! (`rabbit.rs`), a device (a tungstenite client that keeps every message as the exact text the
//! server sent, so data can be compared byte for byte), and a gate (a TCP relay between a node
//! and the broker that can hold the broker's replies).
//!
//! Tests that do not stop the broker share one ([`shared_rabbit`]); each test uses its own
//! exchange, node ids and queues ([`unique`]), so they run in parallel. Owns no assertion
//! about the gateway beyond "the node came up" and "the upgrade was accepted".

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::Message;

use crate::chat_client::{health, READ_TIMEOUT};
use crate::harness::{upgrade_request, Raw, Server};
use crate::rabbit::Rabbit;

/// How long a node may take to reach the broker (or to notice it is gone), and a restarted
/// broker to be reached again (the bridge's backoff grows to 10 s).
pub const AMQP_TIMEOUT: Duration = Duration::from_secs(45);

/// The broker of the tests that do not stop it: started by the first test that asks, stopped
/// when the last one holding it lets go (a test that comes later starts another). `None`
/// (skip) when it is not installed.
pub fn shared_rabbit() -> Option<Arc<Rabbit>> {
    static SHARED: Mutex<Weak<Rabbit>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = slot.upgrade() {
        return Some(r);
    }
    let r = Arc::new(Rabbit::start()?);
    *slot = Arc::downgrade(&r);
    Some(r)
}

/// `prefix-PID-N`: a name no other test uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Relaxed)
    )
}

/// `{"type":"<key>","data":<data>}`: the frame a device must receive, as text.
pub fn frame(key: &str, data: &str) -> String {
    format!(r#"{{"type":"{key}","data":{data}}}"#)
}

/// A body as the services publish it: `{"ownerId":"<owner>","data":<data>}`.
pub fn body(owner: &str, data: &str) -> String {
    format!(r#"{{"ownerId":"{owner}","data":{data}}}"#)
}

// ---- the configuration -------------------------------------------------------------------

/// The `[amqp]` table of the ride-sharing example, pointed at a test broker and exchange, and
/// the example's two endpoints (read from docs/examples/ride-sharing/gateway.toml).
#[derive(Debug, Clone)]
pub struct Ride {
    /// `[amqp] url`.
    pub url: String,
    /// `[amqp] exchange`.
    pub exchange: String,
    /// `[amqp] bind`.
    pub bind: Vec<String>,
    /// `[amqp] owner_field`.
    pub owner_field: String,
    /// `[amqp] data_encoding`.
    pub data_encoding: &'static str,
    /// `[amqp] dead_letter_exchange`.
    pub dead_letter_exchange: Option<String>,
    /// `[amqp] prefetch`.
    pub prefetch: u16,
    /// `[amqp] store_offline`.
    pub store_offline: bool,
}

impl Ride {
    /// The example on `url` with exchange `exchange`: binds `driver.cmd.trip_request` and
    /// `trip.event.*`, owner field `ownerId`, JSON data, prefetch 1000, no dead-letter
    /// exchange, nothing stored for owners connected nowhere.
    pub fn new(url: &str, exchange: &str) -> Ride {
        Ride {
            url: url.to_owned(),
            exchange: exchange.to_owned(),
            bind: vec!["driver.cmd.trip_request".into(), "trip.event.*".into()],
            owner_field: "ownerId".into(),
            data_encoding: "json",
            dead_letter_exchange: None,
            prefetch: 1000,
            store_offline: false,
        }
    }

    /// The file.
    pub fn toml(&self) -> String {
        let list = |v: &[String]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let dlx = self
            .dead_letter_exchange
            .as_ref()
            .map(|d| format!("dead_letter_exchange = {d:?}\n"))
            .unwrap_or_default();
        format!(
            r#"[amqp]
url = {url:?}
exchange = {exchange:?}
bind = [{bind}]
owner_field = {owner:?}
data_encoding = {enc:?}
prefetch = {prefetch}
store_offline = {store}
{dlx}
{endpoints}"#,
            url = self.url,
            exchange = self.exchange,
            bind = list(&self.bind),
            owner = self.owner_field,
            enc = self.data_encoding,
            prefetch = self.prefetch,
            store = self.store_offline,
            endpoints = example_endpoints(),
        )
    }
}

/// The `[[endpoint]]` tables of docs/examples/ride-sharing/gateway.toml, as written there:
/// the tests serve the example's endpoints, so the example cannot drift from what is tested.
fn example_endpoints() -> &'static str {
    let example = include_str!("../../docs/examples/ride-sharing/gateway.toml");
    let at = example
        .find("[[endpoint]]")
        .expect("the example has [[endpoint]] tables");
    &example[at..]
}

// ---- nodes -------------------------------------------------------------------------------

/// A `corecast` node (2 workers) serving a [`Ride`] configuration, its file removed on drop.
pub struct Node {
    /// The process.
    pub server: Server,
    /// `--node-id`.
    pub id: String,
    file: PathBuf,
}

impl Node {
    /// Starts node `id` with `cfg` (written to a file for `--config`), no message rate limit
    /// and no start grace (unless `extra` sets `--msg-rate` or `--amqp-grace`) and `extra`
    /// flags; returns once `/health` says the broker is up.
    pub fn start(cfg: &Ride, id: &str, extra: &[&str]) -> Node {
        let node = Node::spawn(cfg, id, extra);
        wait_amqp(node.addr(), "up");
        node
    }

    /// [`Node::start`] without waiting for the broker.
    pub fn spawn(cfg: &Ride, id: &str, extra: &[&str]) -> Node {
        let file = std::env::temp_dir().join(format!("corecast-it-{}.toml", unique(id)));
        std::fs::write(&file, cfg.toml()).expect("writing the config file");
        let path = file.to_str().expect("utf-8 temp path").to_owned();
        let mut flags = vec!["--config", &path, "--node-id", id];
        if !extra.contains(&"--msg-rate") {
            flags.extend_from_slice(&["--msg-rate", "65535", "--msg-burst", "65535"]);
        }
        if !extra.contains(&"--amqp-grace") {
            flags.extend_from_slice(&["--amqp-grace", "0s"]);
        }
        flags.extend_from_slice(extra);
        Node {
            server: Server::start(&flags),
            id: id.to_owned(),
            file,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// Its queue on the broker.
    pub fn queue(&self) -> String {
        format!("corecast.gateway.{}", self.id)
    }

    /// Opens a device on `path` (with its query).
    pub fn device(&self, path: &str) -> Device {
        device(self.addr(), path)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// Polls `/health` until its `amqp` is `state` (`up`, `down`, `off`); fails after
/// [`AMQP_TIMEOUT`]. Returns how long it took.
pub fn wait_amqp(addr: SocketAddr, state: &str) -> Duration {
    let start = Instant::now();
    loop {
        let h = health(addr);
        if h["amqp"] == state {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < AMQP_TIMEOUT,
            "{addr}: amqp not {state} after {AMQP_TIMEOUT:?}: {h}"
        );
        thread::sleep(Duration::from_millis(25));
    }
}

/// Polls `what` every 20 ms until it holds; fails after [`AMQP_TIMEOUT`] with `msg`.
pub fn wait_for(msg: &str, mut what: impl FnMut() -> bool) {
    let start = Instant::now();
    while !what() {
        assert!(
            start.elapsed() < AMQP_TIMEOUT,
            "{msg} (after {AMQP_TIMEOUT:?})"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The status of an upgrade request for `path` (101 or the refusal's).
pub fn upgrade_status(addr: SocketAddr, path: &str) -> u16 {
    let mut c = Raw::connect(addr);
    c.send(&upgrade_request(path));
    let head = c.read_head();
    head.status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {:?}", head.status_line))
}

// ---- devices -----------------------------------------------------------------------------

/// A device on a gateway endpoint. Messages are kept as the exact text received.
pub struct Device {
    ws: tungstenite::WebSocket<TcpStream>,
    /// The path it opened (for messages).
    pub path: String,
    /// Read but not consumed yet, oldest first.
    pending: VecDeque<String>,
}

/// Opens a device on `path` (with its query); the upgrade must succeed.
pub fn device(addr: SocketAddr, path: &str) -> Device {
    let ws = crate::harness::ws_with_timeout(addr, path, READ_TIMEOUT);
    Device {
        ws,
        path: path.to_owned(),
        pending: VecDeque::new(),
    }
}

impl Device {
    /// One text message from the socket within `timeout` (pings skipped); `None` when none
    /// came. A close or anything but text fails the test.
    fn read_within(&mut self, timeout: Duration) -> Option<String> {
        self.ws
            .get_mut()
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .expect("timeout");
        crate::harness::read_text(&mut self.ws, &self.path, &self.pending)
    }

    /// The next message (pending first); fails after [`READ_TIMEOUT`].
    pub fn recv(&mut self) -> String {
        if let Some(m) = self.pending.pop_front() {
            return m;
        }
        self.read_within(READ_TIMEOUT)
            .unwrap_or_else(|| panic!("{}: nothing received in {READ_TIMEOUT:?}", self.path))
    }

    /// The next message as JSON.
    pub fn recv_json(&mut self) -> Value {
        let t = self.recv();
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {t}", self.path))
    }

    /// Whether a message comes within `d` (it stays pending).
    pub fn gets_within(&mut self, d: Duration) -> bool {
        if !self.pending.is_empty() {
            return true;
        }
        match self.read_within(d) {
            Some(m) => {
                self.pending.push_back(m);
                true
            }
            None => false,
        }
    }

    /// Every message before the exact text `last`, which is consumed too.
    pub fn until(&mut self, last: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            let m = self.recv();
            if m == last {
                return before;
            }
            before.push(m);
        }
    }

    /// The next message is exactly `want`.
    pub fn expect(&mut self, want: &str) {
        let got = self.recv();
        assert_eq!(got, want, "{}", self.path);
    }

    /// The `ack` or `error` whose `id` is the JSON text `id` (other messages stay pending).
    pub fn answer(&mut self, id: &str) -> Value {
        let want: Value = serde_json::from_str(id).expect("id is JSON");
        let is = |m: &str| {
            serde_json::from_str::<Value>(m)
                .is_ok_and(|v| v["id"] == want && (v["type"] == "ack" || v["type"] == "error"))
        };
        if let Some(i) = self.pending.iter().position(|m| is(m)) {
            let m = self.pending.remove(i).expect("index in range");
            return serde_json::from_str(&m).expect("json");
        }
        loop {
            let m = self.read_within(READ_TIMEOUT).unwrap_or_else(|| {
                panic!("{}: no answer to {id}; got {:?}", self.path, self.pending)
            });
            if is(&m) {
                return serde_json::from_str(&m).expect("json");
            }
            self.pending.push_back(m);
        }
    }

    /// Sends a text message as is.
    pub fn send(&mut self, text: &str) {
        self.send_message(Message::text(text));
    }

    /// Sends any message (binary, ping, ...).
    pub fn send_message(&mut self, m: Message) {
        self.ws.send(m).expect("send");
    }

    /// Writes text messages and flushes them at once, so that the server reads them together.
    pub fn send_batch(&mut self, msgs: &[String]) {
        for m in msgs {
            self.ws.write(Message::text(m.as_str())).expect("write");
        }
        self.ws.flush().expect("flush");
    }

    /// Reads until the server's close frame: its code, and the messages before it.
    pub fn expect_close(&mut self) -> (u16, Vec<String>) {
        let mut before: Vec<String> = self.pending.drain(..).collect();
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => before.push(t.as_str().to_owned()),
                Ok(Message::Close(f)) => {
                    return (f.map_or(1005, |f| u16::from(f.code)), before);
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("{}: no close frame: {e} (before: {before:?})", self.path),
            }
        }
    }

    /// Closes the connection and waits until the server has closed it too (the server has
    /// then handled the close: the gateway forgot the device). Unread messages are dropped.
    pub fn close(mut self) {
        let _ = self.ws.close(None);
        self.ws
            .get_mut()
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        loop {
            match self.ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    panic!(
                        "{}: the server did not close in {READ_TIMEOUT:?}",
                        self.path
                    )
                }
                Err(_) => return,
            }
        }
    }
}

// ---- the gate ----------------------------------------------------------------------------

/// A TCP relay from a port of its own to the broker's, for a node whose `[amqp] url` points
/// at [`Gate::url`]; holding, it keeps what the broker sends (confirms, deliveries) until
/// released. Its threads end when it is dropped.
pub struct Gate {
    /// Where it listens.
    pub port: u16,
    hold: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Gate {
    /// A gate to the broker on `target`.
    pub fn new(target: u16) -> Gate {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("gate bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("gate addr").port();
        let gate = Gate {
            port,
            hold: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (hold, stop) = (gate.hold.clone(), gate.stop.clone());
        thread::spawn(move || {
            while !stop.load(Relaxed) {
                let client = match listener.accept() {
                    Ok((s, _)) => s,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => continue,
                };
                let _ = client.set_nonblocking(false);
                let Ok(broker) = TcpStream::connect((Ipv4Addr::LOCALHOST, target)) else {
                    continue;
                };
                let _ = (client.set_nodelay(true), broker.set_nodelay(true));
                let pair = |a: &TcpStream, b: &TcpStream| {
                    a.try_clone().and_then(|a| Ok((a, b.try_clone()?)))
                };
                let (Ok((c1, b1)), Ok((b2, c2))) = (pair(&client, &broker), pair(&broker, &client))
                else {
                    continue;
                };
                let s = stop.clone();
                thread::spawn(move || pump(c1, b1, None, s));
                let (h, s) = (hold.clone(), stop.clone());
                thread::spawn(move || pump(b2, c2, Some(h), s));
            }
        });
        gate
    }

    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Holds what the broker sends (`true`) or lets it and what was held through.
    pub fn hold_replies(&self, hold: bool) {
        self.hold.store(hold, Relaxed);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

/// Copies `from` to `to` until either ends or `stop`; while `hold` is set, what is read is
/// kept back.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    hold: Option<Arc<AtomicBool>>,
    stop: Arc<AtomicBool>,
) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
    let mut held = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    while !stop.load(Relaxed) {
        let holding = hold.as_ref().is_some_and(|h| h.load(Relaxed));
        if !holding && !held.is_empty() {
            if to.write_all(&held).is_err() {
                break;
            }
            held.clear();
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => held.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}
