//! permessage-deflate (RFC 7692) over a real socket: compressed frames built by hand (RSV1 set,
//! raw deflate without the `00 00 ff ff` tail), so that streams no compressor writes can be
//! sent.

use std::net::SocketAddr;

use crate::harness::{raw_frame, upgrade_request_with, Raw, Server, BINARY};

const INVALID_PAYLOAD: u16 = 1007;
const RSV1: u8 = 0x40;

/// RFC 7692 §7.2.3.1: "Hello".
const HELLO: &[u8] = &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
/// RFC 7692 §7.2.3.2: "Hello" again with context takeover: 'H', then a match of length 4 at
/// distance 5 (into the previous message).
const HELLO_AGAIN: &[u8] = &[0xf2, 0x00, 0x11, 0x00, 0x00];

/// Upgrades on /echo offering permessage-deflate with `params`; checks it was accepted.
fn upgrade_deflate(addr: SocketAddr, params: &str) -> Raw {
    let mut c = Raw::connect(addr);
    c.send(&upgrade_request_with(
        "/echo",
        &format!("Sec-WebSocket-Extensions: permessage-deflate{params}\r\n"),
    ));
    let resp = c.read_head();
    assert_eq!(
        resp.status_line, "HTTP/1.1 101 Switching Protocols",
        "{resp:?}"
    );
    assert!(
        resp.header("sec-websocket-extensions")
            .starts_with("permessage-deflate"),
        "{resp:?}"
    );
    c
}

/// Sends one compressed binary message and expects it echoed (uncompressed: it is smaller
/// than `--compression-min-size`).
fn echo(c: &mut Raw, deflated: &[u8], want: &[u8]) {
    c.send(&raw_frame(0x80 | RSV1 | BINARY, deflated));
    let f = c.read_frame();
    assert_eq!((f.fin, f.rsv, f.opcode), (true, 0, BINARY), "{f:?}");
    assert_eq!(f.payload, want);
}

/// A back-reference to before the first byte of the data is invalid deflate ("invalid
/// distance too far back" in zlib) and fails the connection with 1007, whether the inflater
/// is the worker's shared one (client without context takeover) or the connection's own.
#[test]
fn match_before_the_data_is_1007() {
    let server = Server::start(&["--compression-min-size", "1024"]);
    for params in ["; client_no_context_takeover", ""] {
        // Fixed Huffman, BFINAL: 'a', then a match of length 3 at distance 5.
        let mut c = upgrade_deflate(server.addr, params);
        c.send(&raw_frame(0x80 | RSV1 | BINARY, &[0x4b, 0x04, 0x12, 0x00]));
        c.expect_close_code(INVALID_PAYLOAD);
        // The first message refers to data before the connection's first byte.
        let mut c = upgrade_deflate(server.addr, params);
        c.send(&raw_frame(0x80 | RSV1 | BINARY, HELLO_AGAIN));
        c.expect_close_code(INVALID_PAYLOAD);
    }

    // Without context takeover the previous message is not history.
    let mut c = upgrade_deflate(server.addr, "; client_no_context_takeover");
    echo(&mut c, HELLO, b"Hello");
    c.send(&raw_frame(0x80 | RSV1 | BINARY, HELLO_AGAIN));
    c.expect_close_code(INVALID_PAYLOAD);

    // With it, matches may reach back to the connection's first byte, and no further.
    let mut c = upgrade_deflate(server.addr, "");
    echo(&mut c, HELLO, b"Hello");
    echo(&mut c, HELLO_AGAIN, b"Hello");
    // A match of length 3 at distance 10: the first 3 bytes of the connection.
    echo(&mut c, &[0x02, 0xb2, 0x00, 0x00], b"Hel");
    // Distance 11, with 13 bytes of history ("HelloHelloHel"): fine.
    echo(&mut c, &[0x02, 0x32, 0x01, 0x00], b"llo");
    let mut c = upgrade_deflate(server.addr, "");
    echo(&mut c, HELLO, b"Hello");
    echo(&mut c, HELLO_AGAIN, b"Hello");
    // Distance 11 with 10 bytes of history.
    c.send(&raw_frame(0x80 | RSV1 | BINARY, &[0x02, 0x32, 0x01, 0x00]));
    c.expect_close_code(INVALID_PAYLOAD);
}

/// An incomplete Huffman code is valid only as a single one-bit code (zlib's rule): a dynamic
/// block whose single distance code has two bits fails with 1007, with the worker's shared
/// inflater and with the connection's own. (That the header is rejected before a size limit
/// applies is a unit test: the wire limits here are never below the compressed size.)
#[test]
fn incomplete_distance_code_is_1007() {
    // Dynamic blocks for "ab" (see ws::deflate's unit tests); they differ only in the length
    // of their single distance code: 1 bit, then 2 bits.
    const ONE_BIT: &[u8] = &[
        0x05, 0xc0, 0x01, 0x09, 0, 0, 0, 0x80, 0xa0, 0xad, 0xf6, 0x7f, 0x44, 0x6a,
    ];
    const TWO_BITS: &[u8] = &[
        0x05, 0xc0, 0x01, 0x09, 0, 0, 0, 0x80, 0xa0, 0xad, 0xf6, 0x7f, 0x44, 0x69,
    ];
    let server = Server::start(&["--compression-min-size", "1024"]);
    for params in ["; client_no_context_takeover", ""] {
        let mut c = upgrade_deflate(server.addr, params);
        echo(&mut c, ONE_BIT, b"ab");
        c.send(&raw_frame(0x80 | RSV1 | BINARY, TWO_BITS));
        c.expect_close_code(INVALID_PAYLOAD);
    }
}
