//! The close handshake started by the client: the server answers with a close frame echoing
//! the code, discards anything after the client's close, and closes TCP at once.

use std::time::{Duration, Instant};

use crate::harness::{close_frame, frame, Raw, Server, CLOSE, TEXT};

/// Reading the server's close and EOF must not wait for the close timeout (5 s by default).
const PROMPT: Duration = Duration::from_secs(2);

#[test]
fn close_1000_is_answered_with_1000_then_tcp_close() {
    let server = Server::start(&[]);
    let mut c = Raw::upgrade(server.addr, "/echo");
    let start = Instant::now();
    c.send(&close_frame(1000, b"bye"));
    let (code, reason) = c.expect_close().expect("close with a code");
    assert_eq!(code, 1000, "reason {reason:?}");
    c.expect_eof();
    assert!(start.elapsed() < PROMPT, "{:?}", start.elapsed());
}

#[test]
fn empty_close_is_answered_with_empty_close() {
    let server = Server::start(&[]);
    let mut c = Raw::upgrade(server.addr, "/echo");
    let start = Instant::now();
    c.send(&frame(true, CLOSE, b""));
    let f = c.read_frame();
    assert_eq!(
        (f.fin, f.rsv, f.opcode, f.payload.len()),
        (true, 0, CLOSE, 0)
    );
    c.expect_eof();
    assert!(start.elapsed() < PROMPT, "{:?}", start.elapsed());
}

#[test]
fn valid_close_codes_are_echoed() {
    let server = Server::start(&[]);
    for code in [1001, 1003, 1007, 1011, 3000, 4999] {
        let mut c = Raw::upgrade(server.addr, "/echo");
        c.send(&close_frame(code, "é".repeat(61).as_bytes())); // 2 + 122 bytes
        let (got, _) = c.expect_close().expect("close with a code");
        assert_eq!(got, code);
        c.expect_eof();
    }
}

#[test]
fn data_after_close_is_discarded() {
    let server = Server::start(&[]);
    let mut c = Raw::upgrade(server.addr, "/echo");
    // Before the close: echoed. After it, in the same write: ignored.
    let mut wire = frame(true, TEXT, b"before");
    wire.extend(close_frame(1000, b""));
    wire.extend(frame(true, TEXT, b"after"));
    c.send(&wire);
    let f = c.read_frame();
    assert_eq!((f.opcode, &f.payload[..]), (TEXT, &b"before"[..]));
    assert_eq!(c.expect_close().map(|(code, _)| code), Some(1000));
    c.expect_eof();
}

#[test]
fn tungstenite_close_handshake_completes() {
    let server = Server::start(&[]);
    let mut c = crate::harness::ws(server.addr, "/echo");
    c.close(Some(tungstenite::protocol::CloseFrame {
        code: 1000.into(),
        reason: "bye".into(),
    }))
    .unwrap();
    let start = Instant::now();
    // tungstenite reports the server's reply as a close message, then the end of the stream.
    loop {
        match c.read() {
            Ok(tungstenite::Message::Close(Some(f))) => assert_eq!(u16::from(f.code), 1000),
            Ok(m) => panic!("unexpected {m:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("unexpected error {e}"),
        }
        assert!(start.elapsed() < PROMPT);
    }
    assert!(start.elapsed() < PROMPT);
}

#[test]
fn server_initiated_close_ends_promptly_when_answered() {
    // The idle timeout makes the server start the close handshake.
    let server = Server::start(&[
        "--ping-interval",
        "200ms",
        "--idle-timeout",
        "600ms",
        "--close-timeout",
        "5s",
    ]);
    let mut c = Raw::upgrade(server.addr, "/echo");
    let close = loop {
        let f = c.read_frame();
        if f.opcode != crate::harness::PING {
            break f.close();
        }
    };
    assert_eq!(close, Some((1001, "idle timeout".to_string())));
    // "the endpoint MUST send a Close frame in response": we answer, and the server (which
    // has now both sent and received a close) must close TCP, not wait for its close timeout.
    let answered = Instant::now();
    c.send(&close_frame(1001, b""));
    assert!(
        c.eof_within(Duration::from_secs(1)),
        "TCP still open {:?} after we answered the server's close",
        answered.elapsed()
    );
}

#[test]
fn connection_is_freed_once_the_close_handshake_completes() {
    // With room for one connection, a client that finished the close handshake but keeps its
    // socket open (no FIN) must not hold the slot until the close timeout: the server closes
    // TCP as soon as its close frame is out, so the next client gets in at once.
    let server = Server::start(&["--max-connections", "1"]);
    let mut first = Raw::upgrade(server.addr, "/echo");
    first.send(&close_frame(1000, b""));
    assert_eq!(first.expect_close().map(|(code, _)| code), Some(1000));
    first.expect_eof();
    let start = Instant::now();
    let mut second = Raw::upgrade(server.addr, "/echo");
    second.send(&frame(true, TEXT, b"next"));
    let f = second.read_frame();
    assert_eq!((f.opcode, &f.payload[..]), (TEXT, &b"next"[..]));
    assert!(start.elapsed() < PROMPT, "{:?}", start.elapsed());
    drop(first); // held open until here
}
