//! Protocol violations sent as raw bytes after a valid handshake: each one is answered with a
//! close frame carrying its exact RFC 6455 §7.4.1 code, then the server closes TCP at once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::harness::{
    close_frame, frame, header, masked, raw_frame, Raw, Server, BINARY, CLOSE, CONT, PING, PONG,
    TEXT,
};

const PROTOCOL_ERROR: u16 = 1002;
const INVALID_PAYLOAD: u16 = 1007;
const TOO_BIG: u16 = 1009;

/// The server must close promptly after its close frame, not when a timer fires.
const PROMPT: Duration = Duration::from_secs(2);

/// Upgrades on /echo, sends `wire`, and checks that the next thing from the server is a close
/// frame with `code`, followed by EOF.
fn assert_fails(addr: SocketAddr, what: &str, wire: &[u8], code: u16) {
    let mut c = Raw::upgrade(addr, "/echo");
    let start = Instant::now();
    c.send(wire);
    let f = c.read_frame();
    assert_eq!(f.opcode, CLOSE, "{what}: expected a close frame, got {f:?}");
    let (got, reason) = f
        .close()
        .unwrap_or_else(|| panic!("{what}: close without code"));
    assert_eq!(got, code, "{what}: wrong close code (reason {reason:?})");
    assert!(!reason.is_empty(), "{what}: close reason should say why");
    c.expect_eof();
    assert!(
        start.elapsed() < PROMPT,
        "{what}: TCP closed only after {:?}",
        start.elapsed()
    );
}

#[test]
fn unmasked_frame_is_1002() {
    let server = Server::start(&[]);
    let mut wire = header(0x80 | TEXT, 5, None);
    wire.extend_from_slice(b"hello");
    assert_fails(server.addr, "unmasked text", &wire, PROTOCOL_ERROR);
    let mut wire = header(0x80 | PING, 0, None);
    wire.extend(frame(true, TEXT, b"after"));
    assert_fails(server.addr, "unmasked ping", &wire, PROTOCOL_ERROR);
}

#[test]
fn reserved_bits_are_1002() {
    let server = Server::start(&[]);
    for (name, bit) in [("rsv1", 0x40), ("rsv2", 0x20), ("rsv3", 0x10)] {
        let wire = raw_frame(0x80 | bit | TEXT, b"x");
        assert_fails(
            server.addr,
            &format!("{name} on text"),
            &wire,
            PROTOCOL_ERROR,
        );
        let wire = raw_frame(0x80 | bit | PING, b"");
        assert_fails(
            server.addr,
            &format!("{name} on ping"),
            &wire,
            PROTOCOL_ERROR,
        );
    }
}

#[test]
fn reserved_opcodes_are_1002() {
    let server = Server::start(&[]);
    for op in (0x3..=0x7).chain(0xB..=0xF) {
        let wire = frame(true, op, b"x");
        assert_fails(
            server.addr,
            &format!("opcode {op:#x}"),
            &wire,
            PROTOCOL_ERROR,
        );
    }
}

#[test]
fn oversized_control_frames_are_1002() {
    let server = Server::start(&[]);
    for (name, op) in [("ping", PING), ("pong", PONG), ("close", CLOSE)] {
        let mut payload = vec![b'a'; 126];
        if op == CLOSE {
            payload[..2].copy_from_slice(&1000u16.to_be_bytes());
        }
        let wire = frame(true, op, &payload);
        assert_fails(
            server.addr,
            &format!("126-byte {name}"),
            &wire,
            PROTOCOL_ERROR,
        );
    }
}

#[test]
fn fragmented_control_frames_are_1002() {
    let server = Server::start(&[]);
    assert_fails(
        server.addr,
        "ping without FIN",
        &frame(false, PING, b"x"),
        PROTOCOL_ERROR,
    );
    let mut wire = frame(false, PING, b"a");
    wire.extend(frame(true, CONT, b"b"));
    assert_fails(server.addr, "ping + continuation", &wire, PROTOCOL_ERROR);
}

#[test]
fn continuation_without_start_is_1002() {
    let server = Server::start(&[]);
    for fin in [true, false] {
        let wire = frame(fin, CONT, b"orphan");
        assert_fails(
            server.addr,
            &format!("continuation fin={fin}"),
            &wire,
            PROTOCOL_ERROR,
        );
    }
    // After a complete message, there is no message to continue either.
    let mut wire = frame(true, TEXT, b"done");
    wire.extend(frame(true, CONT, b"more"));
    let mut c = Raw::upgrade(server.addr, "/echo");
    c.send(&wire);
    let echo = c.read_frame();
    assert_eq!((echo.opcode, &echo.payload[..]), (TEXT, &b"done"[..]));
    c.expect_close_code(PROTOCOL_ERROR);
}

#[test]
fn new_data_frame_during_fragmented_message_is_1002() {
    let server = Server::start(&[]);
    for (name, second) in [("text", TEXT), ("binary", BINARY)] {
        let mut wire = frame(false, TEXT, b"first half");
        wire.extend(frame(true, second, b"intruder"));
        assert_fails(
            server.addr,
            &format!("{name} inside text"),
            &wire,
            PROTOCOL_ERROR,
        );
    }
}

#[test]
fn invalid_utf8_text_is_1007() {
    let server = Server::start(&[]);
    let cases: [(&str, &[u8]); 6] = [
        ("0xff", b"abc\xffdef"),
        ("overlong", b"\xc0\x80"),
        ("surrogate", b"\xed\xa0\x80"),
        ("above U+10FFFF", b"\xf4\x90\x80\x80"),
        ("truncated at end", b"a\xce"),
        ("lone continuation byte", b"\x80"),
    ];
    for (name, payload) in cases {
        assert_fails(
            server.addr,
            name,
            &frame(true, TEXT, payload),
            INVALID_PAYLOAD,
        );
    }
}

#[test]
fn invalid_utf8_across_fragments_is_1007() {
    let server = Server::start(&[]);
    // "κό" cut inside ό, then a byte that cannot continue it.
    let mut wire = frame(false, TEXT, &[0xce, 0xba, 0xcf]);
    wire.extend(frame(true, CONT, b" "));
    assert_fails(server.addr, "bad continuation", &wire, INVALID_PAYLOAD);
    // A sequence left incomplete by the final fragment.
    let mut wire = frame(false, TEXT, b"ok");
    wire.extend(frame(true, CONT, &[0xe2, 0x82]));
    assert_fails(
        server.addr,
        "truncated by last fragment",
        &wire,
        INVALID_PAYLOAD,
    );
    // A bad first fragment fails before the message is complete (no more fragments sent).
    assert_fails(
        server.addr,
        "bad first fragment, message unfinished",
        &frame(false, TEXT, b"a\xff"),
        INVALID_PAYLOAD,
    );
}

#[test]
fn invalid_utf8_fails_fast_mid_frame() {
    let server = Server::start(&[]);
    let mut c = Raw::upgrade(server.addr, "/echo");
    // A 1 MiB text frame of which only the first 64 bytes are sent; byte 10 is invalid.
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut payload = vec![b'a'; 64];
    payload[10] = 0xff;
    let mut wire = header(0x80 | TEXT, 1 << 20, Some(key));
    wire.extend(masked(&payload, key));
    let start = Instant::now();
    c.send(&wire);
    c.set_read_timeout(PROMPT);
    // The rest of the frame is never sent: the close must come on the first 64 bytes alone.
    c.expect_close_code(INVALID_PAYLOAD);
    assert!(start.elapsed() < PROMPT);
}

#[test]
fn bad_close_payloads() {
    let server = Server::start(&[]);
    assert_fails(
        server.addr,
        "1-byte close",
        &frame(true, CLOSE, &[0x03]),
        PROTOCOL_ERROR,
    );
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        assert_fails(
            server.addr,
            &format!("close code {code}"),
            &close_frame(code, b""),
            PROTOCOL_ERROR,
        );
    }
    assert_fails(
        server.addr,
        "close reason not utf-8",
        &close_frame(1000, b"bad \xff reason"),
        INVALID_PAYLOAD,
    );
}

#[test]
fn length_with_top_bit_set_is_1002() {
    let server = Server::start(&[]);
    let mut wire = vec![0x80 | BINARY, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1];
    wire.extend_from_slice(&[1, 2, 3, 4]);
    assert_fails(
        server.addr,
        "64-bit length, top bit set",
        &wire,
        PROTOCOL_ERROR,
    );
}

#[test]
fn frame_above_default_max_frame_is_1009_from_header_alone() {
    let server = Server::start(&[]);
    // Only the header of a 16 MiB + 1 frame.
    let wire = header(0x80 | BINARY, (16 << 20) + 1, Some([1, 2, 3, 4]));
    assert_fails(server.addr, "16 MiB + 1 frame header", &wire, TOO_BIG);
}

#[test]
fn message_over_max_message_is_1009() {
    let server = Server::start(&["--max-message", "1KiB", "--max-frame", "1KiB"]);

    // At the limit: accepted.
    let mut c = Raw::upgrade(server.addr, "/echo");
    c.send(&frame(true, TEXT, &[b'a'; 1024]));
    let f = c.read_frame();
    assert_eq!((f.opcode, f.payload.len()), (TEXT, 1024));
    c.send(&frame(false, BINARY, &[1; 512]));
    c.send(&frame(true, CONT, &[2; 512]));
    let f = c.read_frame();
    assert_eq!((f.opcode, f.payload.len()), (BINARY, 1024));
    assert!(f.payload[..512].iter().all(|&b| b == 1) && f.payload[512..].iter().all(|&b| b == 2));

    // One byte over in a single frame.
    assert_fails(
        server.addr,
        "1025-byte frame",
        &frame(true, BINARY, &[0; 1025]),
        TOO_BIG,
    );
    // One byte over in a single frame, only its header sent.
    assert_fails(
        server.addr,
        "1025-byte frame header",
        &header(0x80 | TEXT, 1025, Some([9, 9, 9, 9])),
        TOO_BIG,
    );
    // Over across fragments that are each within the frame limit.
    let mut wire = frame(false, BINARY, &[0; 600]);
    wire.extend(frame(true, CONT, &[0; 600]));
    assert_fails(server.addr, "600 + 600 fragments", &wire, TOO_BIG);
    // The first fragment alone is enough to tell when the second one is not final.
    let mut wire = frame(false, TEXT, &[b'a'; 1000]);
    wire.extend(frame(false, CONT, &[b'a'; 100]));
    assert_fails(
        server.addr,
        "1000 + 100 fragments, unfinished",
        &wire,
        TOO_BIG,
    );
}
