//! Who may open `/ws`: every refusal with its exact status before any upgrade — 503 at the
//! connection limit, 429 over the per-IP upgrade rate (with and without trusted proxies), 403
//! for a foreign Origin, 401 for each token fault, 400 for a bad development username — and
//! the identities that get in (JWT `sub`/`name` from the query, a cookie or a bearer header).

use std::net::SocketAddr;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use corecast::guard::jwt::{sign, Claims};

use crate::harness::{upgrade_request_with, HttpResponse, Raw, Server, TEXT};

const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";

/// Sends an upgrade request for `path` with `extra` header lines; the response head (and, for a
/// refusal, its body).
fn attempt(addr: SocketAddr, path: &str, extra: &str) -> (Raw, HttpResponse) {
    let mut c = Raw::connect(addr);
    c.send(&upgrade_request_with(path, extra));
    let head = c.read_head();
    (c, head)
}

/// The status code of an upgrade attempt.
fn status(addr: SocketAddr, path: &str, extra: &str) -> u16 {
    let (_, head) = attempt(addr, path, extra);
    head.status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code")
}

/// Upgrades and returns the welcome message.
fn welcome(addr: SocketAddr, path: &str, extra: &str) -> serde_json::Value {
    let (mut c, head) = attempt(addr, path, extra);
    assert_eq!(
        head.status_line, "HTTP/1.1 101 Switching Protocols",
        "{head:?}"
    );
    let f = c.read_frame();
    assert_eq!(f.opcode, TEXT);
    serde_json::from_slice(&f.payload).expect("json")
}

/// A refusal: status line, the headers the status calls for, a one-line reason.
fn refused(addr: SocketAddr, path: &str, extra: &str, status_line: &str) -> HttpResponse {
    let mut c = Raw::connect(addr);
    c.send(&upgrade_request_with(path, extra));
    let resp = c.read_response_to_eof();
    assert_eq!(resp.status_line, status_line, "{resp:?}");
    assert!(resp.header("connection").eq_ignore_ascii_case("close"));
    let body = String::from_utf8(resp.body.clone()).expect("utf-8");
    assert!(
        body.ends_with('\n') && body.lines().count() == 1,
        "{body:?}"
    );
    resp
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn token(sub: &str, name: Option<&str>, exp: u64, nbf: Option<u64>, secret: &str) -> String {
    let mut c = Claims::new(sub, exp);
    c.name = name.map(str::to_owned);
    c.nbf = nbf;
    sign(secret.as_bytes(), &c)
}

#[test]
fn connection_limit_is_503() {
    let server = Server::start(&["--max-connections", "2"]);
    let _a = Raw::upgrade(server.addr, "/echo");
    let _b = Raw::upgrade(server.addr, "/echo");
    let mut c = Raw::connect(server.addr);
    c.send(&upgrade_request_with("/ws?username=ali", ""));
    let resp = c.read_response_to_eof();
    assert_eq!(resp.status_line, "HTTP/1.1 503 Service Unavailable");
}

#[test]
fn upgrade_rate_per_ip_is_429_and_counts_every_attempt() {
    let server = Server::start(&["--conn-rate", "1", "--conn-burst", "3"]);
    let addr = server.addr;
    // The side door takes no tokens.
    for _ in 0..10 {
        let mut c = Raw::connect(addr);
        c.send(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(c.read_response_to_eof().status_line, "HTTP/1.1 200 OK");
    }
    // Refused attempts take a token too.
    assert_eq!(status(addr, "/ws", ""), 400);
    assert_eq!(
        status(addr, "/ws?username=ali", "Origin: http://evil.example\r\n"),
        403
    );
    assert_eq!(status(addr, "/ws?username=ali", ""), 101);
    let resp = refused(
        addr,
        "/ws?username=ali",
        "",
        "HTTP/1.1 429 Too Many Requests",
    );
    assert_eq!(resp.header("retry-after"), "1");
    // Other endpoints are not limited.
    assert_eq!(status(addr, "/echo", ""), 101);
}

#[test]
fn forwarded_clients_are_limited_apart_only_behind_trusted_proxies() {
    let flags = ["--conn-rate", "1", "--conn-burst", "2"];
    let xff = |ip: &str| format!("X-Forwarded-For: {ip}\r\n");

    // Untrusted peer: X-Forwarded-For is ignored, everyone is 127.0.0.1.
    let server = Server::start(&flags);
    assert_eq!(status(server.addr, "/ws?username=a", &xff("10.0.0.1")), 101);
    assert_eq!(status(server.addr, "/ws?username=a", &xff("10.0.0.2")), 101);
    assert_eq!(status(server.addr, "/ws?username=a", &xff("10.0.0.3")), 429);

    // Trusted proxy: the rightmost untrusted address is the client.
    let mut with_proxy = flags.to_vec();
    with_proxy.extend(["--trusted-proxies", "127.0.0.0/8"]);
    let server = Server::start(&with_proxy);
    let addr = server.addr;
    assert_eq!(status(addr, "/ws?username=a", &xff("10.0.0.1")), 101);
    assert_eq!(status(addr, "/ws?username=a", &xff("10.0.0.1")), 101);
    assert_eq!(status(addr, "/ws?username=a", &xff("10.0.0.1")), 429);
    // A client-supplied address further left does not escape the limit.
    assert_eq!(
        status(addr, "/ws?username=a", &xff("1.2.3.4, 10.0.0.1")),
        429
    );
    // A trusted hop on the right is skipped.
    assert_eq!(
        status(addr, "/ws?username=a", &xff("10.0.0.1, 127.0.0.5")),
        429
    );
    // Another client behind the same proxy has its own bucket.
    assert_eq!(status(addr, "/ws?username=a", &xff("10.0.0.2")), 101);
    // X-Real-IP when there is no X-Forwarded-For.
    assert_eq!(
        status(addr, "/ws?username=a", "X-Real-IP: 10.0.0.3\r\n"),
        101
    );
    assert_eq!(
        status(addr, "/ws?username=a", "X-Real-IP: 10.0.0.3\r\n"),
        101
    );
    assert_eq!(
        status(addr, "/ws?username=a", "X-Real-IP: 10.0.0.3\r\n"),
        429
    );
    // Without either header the proxy itself is the client.
    assert_eq!(status(addr, "/ws?username=a", ""), 101);
}

#[test]
fn foreign_origins_are_403() {
    let server = Server::start(&[]);
    let addr = server.addr;
    // Same-origin only by default (Host is "localhost" in every request here).
    refused(
        addr,
        "/ws?username=a",
        "Origin: http://evil.example\r\n",
        "HTTP/1.1 403 Forbidden",
    );
    refused(
        addr,
        "/ws?username=a",
        "Origin: null\r\n",
        "HTTP/1.1 403 Forbidden",
    );
    refused(
        addr,
        "/ws?username=a",
        "Origin: http://localhost:81\r\n",
        "HTTP/1.1 403 Forbidden",
    );
    assert_eq!(
        status(addr, "/ws?username=a", "Origin: http://localhost\r\n"),
        101
    );
    assert_eq!(
        status(addr, "/ws?username=a", "Origin: http://LOCALHOST:80\r\n"),
        101
    );
    // Non-browser clients send no Origin.
    assert_eq!(status(addr, "/ws?username=a", ""), 101);

    let server = Server::start(&[
        "--allowed-origins",
        "https://app.example,http://localhost:3000",
    ]);
    let addr = server.addr;
    assert_eq!(
        status(addr, "/ws?username=a", "Origin: https://app.example\r\n"),
        101
    );
    assert_eq!(
        status(addr, "/ws?username=a", "Origin: http://localhost:3000\r\n"),
        101
    );
    refused(
        addr,
        "/ws?username=a",
        "Origin: http://localhost\r\n",
        "HTTP/1.1 403 Forbidden",
    );
    refused(
        addr,
        "/ws?username=a",
        "Origin: https://app.example.evil\r\n",
        "HTTP/1.1 403 Forbidden",
    );

    let server = Server::start(&["--allowed-origins", "*"]);
    assert_eq!(
        status(
            server.addr,
            "/ws?username=a",
            "Origin: https://anything.example\r\n"
        ),
        101
    );
}

#[test]
fn every_token_fault_is_401() {
    let server = Server::start(&["--jwt-secret", SECRET]);
    let addr = server.addr;
    let t = now();
    let good = token("alice", Some("Alice"), t + 3600, None, SECRET);
    let unauthorized = |path: &str, extra: &str| {
        let resp = refused(addr, path, extra, "HTTP/1.1 401 Unauthorized");
        assert_eq!(resp.header("www-authenticate"), "Bearer");
    };
    // No token at all (a development username is not enough once a secret is set).
    unauthorized("/ws", "");
    unauthorized("/ws?username=alice", "");
    // Malformed.
    unauthorized("/ws?token=abc", "");
    unauthorized("/ws?token=a.b.c", "");
    // Bad signature: another secret, and a tampered payload.
    let other = token(
        "alice",
        None,
        t + 3600,
        None,
        "another-secret-of-at-least-32-bytes",
    );
    unauthorized(&format!("/ws?token={other}"), "");
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = B64.encode(format!(r#"{{"sub":"mallory","exp":{}}}"#, t + 3600));
    unauthorized(&format!("/ws?token={}", parts.join(".")), "");
    // Expired, not yet valid.
    unauthorized(
        &format!("/ws?token={}", token("alice", None, t - 10, None, SECRET)),
        "",
    );
    unauthorized(
        &format!(
            "/ws?token={}",
            token("alice", None, t + 3600, Some(t + 600), SECRET)
        ),
        "",
    );
    // alg none and HS384 (signed by an independent library) are refused.
    let none = format!(
        "{}.{}.",
        B64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        B64.encode(format!(r#"{{"sub":"alice","exp":{}}}"#, t + 3600))
    );
    unauthorized(&format!("/ws?token={none}"), "");
    let hs384 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS384),
        &serde_json::json!({"sub": "alice", "exp": t + 3600}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("hs384 token");
    unauthorized(&format!("/ws?token={hs384}"), "");
    // Missing sub or exp.
    let hs256 = |claims: serde_json::Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("hs256 token")
    };
    unauthorized(
        &format!("/ws?token={}", hs256(serde_json::json!({"exp": t + 3600}))),
        "",
    );
    unauthorized(
        &format!("/ws?token={}", hs256(serde_json::json!({"sub": "alice"}))),
        "",
    );
    // A bad token in the query is not rescued by a good one elsewhere.
    unauthorized(
        "/ws?token=abc",
        &format!("Authorization: Bearer {good}\r\n"),
    );

    // The good token from each place; an independent library's token works the same.
    for (path, extra) in [
        (format!("/ws?token={good}"), String::new()),
        (
            "/ws".to_owned(),
            format!("Cookie: theme=dark; token={good}\r\n"),
        ),
        (
            "/ws".to_owned(),
            format!("Authorization: Bearer {good}\r\n"),
        ),
    ] {
        let w = welcome(addr, &path, &extra);
        assert_eq!(w["type"], "welcome");
        assert_eq!(w["user"], "alice");
        assert_eq!(w["name"], "Alice");
    }
    let email = hs256(serde_json::json!({"sub": "auth0|123@example.com", "exp": t + 3600}));
    let w = welcome(addr, &format!("/ws?token={email}"), "");
    assert_eq!(w["user"], "auth0|123@example.com");
    assert_eq!(
        w["name"], "auth0|123@example.com",
        "name defaults to the id"
    );
}

#[test]
fn development_usernames_are_checked() {
    let server = Server::start(&[]);
    let addr = server.addr;
    for path in [
        "/ws",
        "/ws?username=",
        "/ws?username=has%20space",
        "/ws?username=%E2%9C%93",
        &format!("/ws?username={}", "a".repeat(65)),
        "/ws?username=a&username=b",
    ] {
        refused(addr, path, "", "HTTP/1.1 400 Bad Request");
    }
    let w = welcome(addr, &format!("/ws?username={}", "a.B_c-9".repeat(9)), "");
    assert_eq!(w["user"], "a.B_c-9".repeat(9));
}

#[test]
fn token_command_prints_a_token_the_server_accepts() {
    let out = Command::new(env!("CARGO_BIN_EXE_corecast"))
        .args(["token", "--sub", "bob", "--name", "Bob B", "--ttl", "1h"])
        .env("CORECAST_JWT_SECRET", SECRET)
        .output()
        .expect("run corecast token");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "only the token: {text:?}");
    let server = Server::start(&["--jwt-secret", SECRET]);
    let w = welcome(server.addr, &format!("/ws?token={}", lines[0]), "");
    assert_eq!(
        (w["user"].as_str(), w["name"].as_str()),
        (Some("bob"), Some("Bob B"))
    );

    let out = Command::new(env!("CARGO_BIN_EXE_corecast"))
        .args(["token", "--sub", "bob"])
        .env_remove("CORECAST_JWT_SECRET")
        .output()
        .expect("run corecast token");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).expect("utf-8");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
}
