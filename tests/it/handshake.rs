//! The opening handshake over raw TCP: every malformed request gets its exact status line,
//! headers and one-line reason body, then the server closes the socket; odd but valid
//! requests upgrade.

use std::net::SocketAddr;
use std::time::Duration;

use crate::harness::{frame, upgrade_request, Raw, Server, KEY, PING, PONG, TEXT};

/// A request from parts; `headers` replace the default upgrade headers entirely.
fn request(method: &str, path: &str, version: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!("{method} {path} {version}\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// The valid upgrade headers, minus `without`, plus `extra`.
fn headers<'a>(without: &str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut h: Vec<(&str, &str)> = vec![
        ("Host", "localhost"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", "13"),
    ];
    h.retain(|(k, _)| !k.eq_ignore_ascii_case(without));
    h.extend_from_slice(extra);
    h
}

/// Sends `req` and checks the rejection: exact status line, a body that is `reason` plus a
/// newline with a matching Content-Length, `Connection: close`, then EOF.
fn assert_rejected(
    addr: SocketAddr,
    req: &[u8],
    status_line: &str,
    reason: &str,
) -> crate::harness::HttpResponse {
    let mut c = Raw::connect(addr);
    c.send(req);
    let resp = c.read_response_to_eof();
    let req_start = String::from_utf8_lossy(&req[..req.len().min(60)]).into_owned();
    assert_eq!(resp.status_line, status_line, "request {req_start:?}");
    let body = String::from_utf8(resp.body.clone()).expect("utf-8 body");
    assert_eq!(body, format!("{reason}\n"), "request {req_start:?}");
    assert_eq!(resp.header("content-length"), body.len().to_string());
    assert!(resp.header("connection").eq_ignore_ascii_case("close"));
    assert!(resp.header("content-type").starts_with("text/plain"));
    resp
}

#[test]
fn post_is_405_with_allow_get() {
    let server = Server::start(&[]);
    let resp = assert_rejected(
        server.addr,
        &request("POST", "/echo", "HTTP/1.1", &headers("", &[])),
        "HTTP/1.1 405 Method Not Allowed",
        "method not allowed: websocket upgrade requires GET",
    );
    assert_eq!(resp.header("allow"), "GET");
}

#[test]
fn http_1_0_is_400() {
    let server = Server::start(&[]);
    assert_rejected(
        server.addr,
        &request("GET", "/echo", "HTTP/1.0", &headers("", &[])),
        "HTTP/1.1 400 Bad Request",
        "websocket upgrade requires HTTP/1.1",
    );
}

#[test]
fn missing_headers_are_400() {
    let server = Server::start(&[]);
    let cases = [
        ("Host", "missing host header"),
        (
            "Upgrade",
            "missing or invalid upgrade header: expected websocket",
        ),
        ("Connection", "connection header must contain upgrade"),
        ("Sec-WebSocket-Key", "missing or invalid sec-websocket-key"),
    ];
    for (without, reason) in cases {
        assert_rejected(
            server.addr,
            &request("GET", "/echo", "HTTP/1.1", &headers(without, &[])),
            "HTTP/1.1 400 Bad Request",
            reason,
        );
    }
}

#[test]
fn wrong_header_values_are_400() {
    let server = Server::start(&[]);
    let upgrade = "missing or invalid upgrade header: expected websocket";
    let connection = "connection header must contain upgrade";
    let key = "missing or invalid sec-websocket-key";
    let cases = [
        ("Upgrade", "h2c", upgrade),
        ("Connection", "keep-alive", connection),
        ("Sec-WebSocket-Key", "not base64!", key),
        // Valid base64, but of 15 bytes instead of 16.
        ("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAA", key),
        // 24 characters without padding: 18 bytes, not a 16-byte nonce.
        ("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAAAA", key),
    ];
    for (name, value, reason) in cases {
        assert_rejected(
            server.addr,
            &request("GET", "/echo", "HTTP/1.1", &headers(name, &[(name, value)])),
            "HTTP/1.1 400 Bad Request",
            reason,
        );
    }
}

#[test]
fn version_8_is_426_with_supported_version() {
    let server = Server::start(&[]);
    for version in [Some("8"), None] {
        let extra: Vec<(&str, &str)> = version
            .map(|v| vec![("Sec-WebSocket-Version", v)])
            .unwrap_or_default();
        let resp = assert_rejected(
            server.addr,
            &request(
                "GET",
                "/echo",
                "HTTP/1.1",
                &headers("Sec-WebSocket-Version", &extra),
            ),
            "HTTP/1.1 426 Upgrade Required",
            "unsupported websocket version: 13 required",
        );
        assert_eq!(resp.header("sec-websocket-version"), "13");
    }
}

#[test]
fn unknown_path_is_404() {
    let server = Server::start(&[]);
    // "/" is the demo page, "/ws" the chat endpoint.
    for path in [
        "/nope",
        "/echo/",
        "/Echo",
        "/broadcast/x",
        "/ws/",
        "/index.html",
    ] {
        assert_rejected(
            server.addr,
            &request("GET", path, "HTTP/1.1", &headers("", &[])),
            "HTTP/1.1 404 Not Found",
            "not found",
        );
    }
}

#[test]
fn head_over_8_kib_is_431() {
    let server = Server::start(&[]);
    let pad = "a".repeat(9000);
    assert_rejected(
        server.addr,
        &request("GET", "/echo", "HTTP/1.1", &headers("", &[("X-Pad", &pad)])),
        "HTTP/1.1 431 Request Header Fields Too Large",
        "request header fields too large",
    );
    // Too many (small) headers.
    let names: Vec<String> = (0..100).map(|i| format!("X-H{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    assert_rejected(
        server.addr,
        &request("GET", "/echo", "HTTP/1.1", &headers("", &many)),
        "HTTP/1.1 431 Request Header Fields Too Large",
        "request header fields too large",
    );
    // A head that never ends, past the limit.
    let mut endless = b"GET /echo HTTP/1.1\r\nX-Pad: ".to_vec();
    endless.extend(std::iter::repeat_n(b'b', 10_000));
    assert_rejected(
        server.addr,
        &endless,
        "HTTP/1.1 431 Request Header Fields Too Large",
        "request header fields too large",
    );
}

#[test]
fn head_just_under_8_kib_upgrades() {
    let server = Server::start(&[]);
    let base = request("GET", "/echo", "HTTP/1.1", &headers("", &[("X-Pad", "")])).len();
    let pad = "p".repeat(8192 - base);
    let req = request("GET", "/echo", "HTTP/1.1", &headers("", &[("X-Pad", &pad)]));
    assert_eq!(req.len(), 8192);
    let mut c = Raw::connect(server.addr);
    c.send(&req);
    c.expect_101();
}

#[test]
fn garbage_is_400() {
    let server = Server::start(&[]);
    let cases: [&[u8]; 3] = [
        // A TLS ClientHello's first bytes.
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"hello world\r\n\r\n",
        b"GET /echo HTTP/9.9\r\n\r\n",
    ];
    for req in cases {
        assert_rejected(
            server.addr,
            req,
            "HTTP/1.1 400 Bad Request",
            "malformed http request",
        );
    }
}

#[test]
fn request_one_byte_at_a_time_upgrades() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(server.addr);
    for b in upgrade_request("/echo") {
        c.send(&[b]);
        std::thread::sleep(Duration::from_millis(1));
    }
    c.expect_101();
    // The frame one byte at a time too.
    for b in frame(true, TEXT, b"slow") {
        c.send(&[b]);
    }
    let f = c.read_frame();
    assert_eq!((f.opcode, &f.payload[..]), (TEXT, &b"slow"[..]));
}

#[test]
fn frames_in_the_same_packet_as_the_head_are_processed() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(server.addr);
    let mut wire = upgrade_request("/echo");
    wire.extend(frame(true, TEXT, b"early"));
    wire.extend(frame(true, PING, b"p"));
    c.send(&wire);
    c.expect_101();
    let f = c.read_frame();
    assert_eq!((f.opcode, &f.payload[..]), (TEXT, &b"early"[..]));
    let f = c.read_frame();
    assert_eq!((f.opcode, &f.payload[..]), (PONG, &b"p"[..]));
}

#[test]
fn lenient_but_valid_requests_upgrade() {
    let server = Server::start(&[]);
    let variants = [
        request(
            "GET",
            "/echo?room=1",
            "HTTP/1.1",
            &headers("Connection", &[("Connection", "keep-alive, Upgrade")]),
        ),
        request(
            "GET",
            "/echo",
            "HTTP/1.1",
            &headers("Upgrade", &[("Upgrade", "WebSocket")]),
        ),
        b"GET /echo HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
          sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
            .to_vec(),
    ];
    for req in variants {
        let mut c = Raw::connect(server.addr);
        c.send(&req);
        c.expect_101();
        c.send(&frame(true, TEXT, b"ok"));
        let f = c.read_frame();
        assert_eq!((f.opcode, &f.payload[..]), (TEXT, &b"ok"[..]));
    }
}
