//! `GET /health` and `GET /metrics`: the health fields, the Prometheus text format (every
//! sample after its family's `# HELP` and `# TYPE`), and counters that move exactly with
//! traffic: handshakes, messages in and out, deliveries, rate-limited messages.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::chat_client::{connect, health, http, status, wait_connections, READ_TIMEOUT};
use crate::harness::{upgrade_request, upgrade_request_with, Raw, Server};

/// The samples of one scrape: `name{labels}` → value.
struct Scrape(HashMap<String, f64>);

impl Scrape {
    fn get(&self, key: &str) -> f64 {
        *self
            .0
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key} in {:?}", self.0.keys()))
    }
}

/// Scrapes `/metrics`, checking the format on the way.
fn scrape(addr: std::net::SocketAddr) -> Scrape {
    let resp = http(addr, "GET", "/metrics", &[], b"");
    assert_eq!(status(&resp), 200);
    assert_eq!(
        resp.header("content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(resp.body).expect("utf-8");
    assert!(text.ends_with('\n'));
    let mut help: HashMap<String, String> = HashMap::new();
    let mut kind: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').expect("help text");
            assert!(!text.is_empty(), "{line}");
            assert!(
                help.insert(name.into(), text.into()).is_none(),
                "two HELP: {line}"
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, k) = rest.split_once(' ').expect("type");
            assert!(help.contains_key(name), "TYPE before HELP: {line}");
            assert!(
                ["counter", "gauge", "summary", "histogram", "untyped"].contains(&k),
                "{line}"
            );
            assert!(
                kind.insert(name.into(), k.into()).is_none(),
                "two TYPE: {line}"
            );
        } else {
            assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
            let (key, value) = line.rsplit_once(' ').expect("sample");
            let name = key.split('{').next().expect("name");
            let family = [
                name,
                name.trim_end_matches("_sum"),
                name.trim_end_matches("_count"),
            ]
            .into_iter()
            .find(|f| kind.contains_key(*f))
            .unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
            if kind[family] == "counter" {
                assert!(name.ends_with("_total"), "counter {name}");
            }
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
            assert!(
                samples.insert(key.to_string(), value).is_none(),
                "twice: {line}"
            );
        }
    }
    for (name, k) in [
        ("corecast_connections", "gauge"),
        ("corecast_handshakes_total", "counter"),
        ("corecast_messages_total", "counter"),
        ("corecast_bytes_total", "counter"),
        ("corecast_deliveries_total", "counter"),
        ("corecast_slow_consumer_evictions_total", "counter"),
        ("corecast_rate_limited_total", "counter"),
        ("corecast_fanout_latency_seconds", "summary"),
    ] {
        assert_eq!(kind.get(name).map(String::as_str), Some(k), "{name}");
    }
    Scrape(samples)
}

const ACCEPTED: &str = r#"corecast_handshakes_total{result="accepted",reason="ok"}"#;
const BAD_REQUEST: &str = r#"corecast_handshakes_total{result="rejected",reason="bad_request"}"#;
const IN: &str = r#"corecast_messages_total{direction="in"}"#;
const OUT: &str = r#"corecast_messages_total{direction="out"}"#;
const BYTES_IN: &str = r#"corecast_bytes_total{direction="in"}"#;
const BYTES_OUT: &str = r#"corecast_bytes_total{direction="out"}"#;
const DELIVERIES: &str = "corecast_deliveries_total";
const RATE_MSG: &str = r#"corecast_rate_limited_total{kind="message"}"#;
const RATE_CONN: &str = r#"corecast_rate_limited_total{kind="connection"}"#;
const LATENCY_COUNT: &str = "corecast_fanout_latency_seconds_count";

#[test]
fn health_reports_connections_rooms_workers() {
    let server = Server::start(&[]);
    let h = health(server.addr);
    let uptime = h["uptime_s"].as_u64().expect("uptime_s");
    assert!(uptime < 60);
    assert_eq!(
        h,
        json!({"status":"ok","connections":0,"rooms":0,"workers":2,"uptime_s":uptime,"relay":"off","amqp":"off"})
    );
    let (mut amy, _) = connect(server.addr, "amy");
    let (_amy2, _) = connect(server.addr, "amy");
    let (_bob, _) = connect(server.addr, "bob");
    amy.join("x");
    let h = health(server.addr);
    assert_eq!(
        (&h["connections"], &h["rooms"]),
        (&json!(3), &json!(2)),
        "{h}"
    );
    amy.ok(json!({"type":"room.leave","room":"x"}));
    // The leave reaches the room's home after the ack: poll.
    let deadline = Instant::now() + READ_TIMEOUT;
    while health(server.addr)["rooms"] != 1 {
        assert!(Instant::now() < deadline, "rooms stay at 2");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(amy);
    wait_connections(server.addr, 2);
}

#[test]
fn counters_move_with_traffic() {
    let server = Server::start(&[]);
    let m0 = scrape(server.addr);
    for key in [
        ACCEPTED,
        BAD_REQUEST,
        IN,
        OUT,
        DELIVERIES,
        RATE_MSG,
        RATE_CONN,
        LATENCY_COUNT,
    ] {
        assert_eq!(m0.get(key), 0.0, "{key} at start");
    }
    assert_eq!(m0.get("corecast_connections"), 0.0);

    let (mut amy, _) = connect(server.addr, "amy");
    let (mut bob, _) = connect(server.addr, "bob");
    // amy hears of bob: then every message of the connects has been queued.
    assert_eq!(amy.recv()["type"], "room.join");
    for i in 1..=3 {
        assert_eq!(amy.chat("general", &format!("m{i}")), i);
    }
    for _ in 0..3 {
        bob.take(|m| m["type"] == "chat");
    }
    let m1 = scrape(server.addr);
    let delta = |key: &str| m1.get(key) - m0.get(key);
    assert_eq!(delta(ACCEPTED), 2.0);
    assert_eq!(m1.get("corecast_connections"), 2.0);
    assert_eq!(delta(IN), 3.0, "three chats");
    // welcome + room.list each, the presence notice, 3 chats to 2 members, 3 acks.
    assert_eq!(delta(OUT), 4.0 + 1.0 + 6.0 + 3.0);
    // The presence notice and the chats are deliveries; welcome, lists and acks are not.
    assert_eq!(delta(DELIVERIES), 1.0 + 6.0);
    assert!(delta(BYTES_IN) > 0.0 && delta(BYTES_OUT) > 0.0);

    // The fan-out latency summary is published about once a second.
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let m = scrape(server.addr);
        if m.get(LATENCY_COUNT) > 0.0 {
            let p99 = m.get(r#"corecast_fanout_latency_seconds{quantile="0.99"}"#);
            assert!(p99 > 0.0 && p99 < 10.0, "p99 {p99}");
            assert!(m.get("corecast_fanout_latency_seconds_sum") > 0.0);
            break;
        }
        assert!(Instant::now() < deadline, "no latency samples");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn rate_limited_messages_are_counted() {
    let server = Server::start(&["--msg-rate", "1", "--msg-burst", "1"]);
    let (mut amy, _) = connect(server.addr, "amy");
    let pings: Vec<Value> = (0..3).map(|i| json!({"type":"ping","id":i})).collect();
    amy.send_batch(&pings);
    assert_eq!(amy.recv(), json!({"type":"pong"}));
    assert_eq!(amy.recv(), json!({"type":"ack","id":0}));
    for i in 1..3 {
        assert_eq!(amy.recv()["code"], "rate_limited", "{i}");
    }
    let m = scrape(server.addr);
    assert_eq!(m.get(RATE_MSG), 2.0);
    assert_eq!(m.get(RATE_CONN), 0.0);
    assert_eq!(m.get(IN), 3.0);
}

/// The sum of every `handshakes_total{result="rejected",…}` sample.
fn rejected(m: &Scrape) -> f64 {
    m.0.iter()
        .filter(|(k, _)| k.starts_with(r#"corecast_handshakes_total{result="rejected""#))
        .map(|(_, v)| v)
        .sum()
}

/// Sends one upgrade request and checks its status line; returns the scrape after it.
fn refuse(addr: std::net::SocketAddr, req: &[u8], status_line: &str) -> Scrape {
    let mut raw = Raw::connect(addr);
    raw.send(req);
    assert_eq!(raw.read_response_to_eof().status_line, status_line);
    scrape(addr)
}

/// Checks that exactly `reason` moved by one between `a` and `b`, and the rejections in all
/// by one.
fn one_more(a: &Scrape, b: &Scrape, reason: &str, what: &str) {
    let key = format!(r#"corecast_handshakes_total{{result="rejected",reason="{reason}"}}"#);
    assert_eq!(b.get(&key) - a.get(&key), 1.0, "{what}: {reason}");
    assert_eq!(rejected(b) - rejected(a), 1.0, "{what}: all rejections");
}

#[test]
fn a_refused_upgrade_counts_once_under_its_reason() {
    let server = Server::start(&["--conn-rate", "1", "--conn-burst", "3"]);
    let addr = server.addr;
    let m0 = scrape(addr);
    let m1 = refuse(
        addr,
        &upgrade_request("/ws?username=not%20valid"),
        "HTTP/1.1 400 Bad Request",
    );
    one_more(&m0, &m1, "bad_request", "bad username");
    let m2 = refuse(
        addr,
        &upgrade_request_with("/ws?username=amy", "Origin: http://evil.example\r\n"),
        "HTTP/1.1 403 Forbidden",
    );
    one_more(&m1, &m2, "origin", "foreign origin");
    let m3 = refuse(
        addr,
        b"GET /ws?username=amy HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "HTTP/1.1 400 Bad Request",
    );
    one_more(&m2, &m3, "bad_request", "no Sec-WebSocket-Key");
    let m4 = refuse(
        addr,
        &upgrade_request("/ws?username=amy"),
        "HTTP/1.1 429 Too Many Requests",
    );
    one_more(&m3, &m4, "rate_limit", "over the connection rate");
    assert_eq!(m4.get(ACCEPTED), 0.0);

    let server = Server::start(&["--jwt-secret", "0123456789abcdef0123456789abcdef"]);
    let m0 = scrape(server.addr);
    let m1 = refuse(
        server.addr,
        &upgrade_request("/ws"),
        "HTTP/1.1 401 Unauthorized",
    );
    one_more(&m0, &m1, "auth", "no token");
}

#[test]
fn side_door_answers_are_not_handshakes() {
    let server = Server::start(&[]);
    let m0 = scrape(server.addr);
    for (method, path) in [
        ("POST", "/api/notify"),
        ("GET", "/api/rooms"),
        ("POST", "/health"),
        ("GET", "/nope"),
    ] {
        let resp = http(server.addr, method, path, &[], b"");
        assert!(status(&resp) >= 400, "{method} {path}");
    }
    let m1 = scrape(server.addr);
    assert_eq!(rejected(&m1), rejected(&m0), "no upgrade was requested");
}
