//! `/echo`: every message comes back intact, with its opcode, in order.

use std::time::Duration;

use tungstenite::Message;

use crate::harness::{frame, pattern, ws, Raw, Server, BINARY, CONT, PING, PONG, TEXT};

#[test]
fn text_and_binary_round_trip() {
    let server = Server::start(&[]);
    let mut c = ws(server.addr, "/echo");
    let cases = [
        Message::text("hello"),
        Message::text("κόσμε ✓ 𝄞"),
        Message::binary(vec![0u8, 1, 2, 0xfe, 0xff]),
        // 126 and 65536 bytes: the 16-bit and 64-bit length forms.
        Message::binary(pattern(126, 1)),
        Message::text("x".repeat(65_536)),
        Message::text(""),
        Message::binary(Vec::new()),
    ];
    for m in cases {
        c.send(m.clone()).unwrap();
        assert_eq!(c.read().unwrap(), m);
    }
}

#[test]
fn empty_messages_keep_their_opcode() {
    let server = Server::start(&[]);
    let mut c = Raw::upgrade(server.addr, "/echo");
    c.send(&frame(true, TEXT, b""));
    c.send(&frame(true, BINARY, b""));
    for opcode in [TEXT, BINARY] {
        let f = c.read_frame();
        assert_eq!(
            (f.fin, f.rsv, f.opcode, f.payload.len()),
            (true, 0, opcode, 0)
        );
    }
}

#[test]
fn sixteen_mib_binary_round_trips_intact() {
    let server = Server::start(&[]);
    let mut c = ws(server.addr, "/echo");
    c.get_mut()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let data = pattern(16 << 20, 7);
    c.send(Message::binary(data.clone())).unwrap();
    match c.read().unwrap() {
        Message::Binary(got) => {
            assert_eq!(got.len(), data.len());
            assert!(got[..] == data[..], "16 MiB payload corrupted");
        }
        m => panic!("expected binary, got {:?}", m.len()),
    }
}

#[test]
fn fragmented_messages_are_reassembled_around_control_frames() {
    let server = Server::start(&[]);
    let mut c = Raw::upgrade(server.addr, "/echo");
    // Text in four fragments (one empty) with a ping between them; all in one write.
    let mut wire = frame(false, TEXT, b"Hel");
    wire.extend(frame(false, CONT, b""));
    wire.extend(frame(true, PING, b"mid"));
    wire.extend(frame(false, CONT, b"lo, "));
    wire.extend(frame(true, CONT, b"world"));
    c.send(&wire);
    let pong = c.read_frame();
    assert_eq!(
        (pong.fin, pong.opcode, &pong.payload[..]),
        (true, PONG, &b"mid"[..])
    );
    let text = c.read_frame();
    assert_eq!(
        (text.fin, text.rsv, text.opcode, &text.payload[..]),
        (true, 0, TEXT, &b"Hello, world"[..])
    );

    // Binary in fragments sent in separate writes, with a pause between them.
    let data = pattern(70_000, 3);
    c.send(&frame(false, BINARY, &data[..1]));
    std::thread::sleep(Duration::from_millis(20));
    c.send(&frame(false, CONT, &data[1..40_000]));
    std::thread::sleep(Duration::from_millis(20));
    c.send(&frame(true, CONT, &data[40_000..]));
    let bin = c.read_frame();
    assert_eq!(
        (bin.fin, bin.opcode, bin.payload.len()),
        (true, BINARY, data.len())
    );
    assert!(bin.payload == data);

    // A codepoint split across fragments is valid.
    let s = "κόσμε".as_bytes();
    c.send(&frame(false, TEXT, &s[..3]));
    c.send(&frame(true, CONT, &s[3..]));
    let t = c.read_frame();
    assert_eq!((t.opcode, &t.payload[..]), (TEXT, s));
}

#[test]
fn pipelined_messages_come_back_in_order() {
    let server = Server::start(&[]);
    let mut c = ws(server.addr, "/echo");
    let msgs: Vec<Message> = (0..100)
        .map(|i| {
            if i % 3 == 0 {
                Message::binary(pattern(i * 37, i as u8))
            } else {
                Message::text(format!("message {i}"))
            }
        })
        .collect();
    for m in &msgs {
        c.write(m.clone()).unwrap();
    }
    c.flush().unwrap();
    for m in &msgs {
        assert_eq!(&c.read().unwrap(), m);
    }
}

#[test]
fn pipelined_raw_frames_in_one_write_come_back_in_order() {
    let server = Server::start(&[]);
    let mut c = Raw::upgrade(server.addr, "/echo");
    let mut wire = Vec::new();
    for i in 0..100u32 {
        wire.extend(frame(true, TEXT, format!("#{i}").as_bytes()));
    }
    c.send(&wire);
    for i in 0..100u32 {
        let f = c.read_frame();
        assert_eq!((f.opcode, f.payload), (TEXT, format!("#{i}").into_bytes()));
    }
}

#[test]
fn ping_gets_pong_with_same_payload() {
    let server = Server::start(&[]);
    let mut c = ws(server.addr, "/echo");
    c.send(Message::Ping(b"are you there?".to_vec().into()))
        .unwrap();
    assert_eq!(
        c.read().unwrap(),
        Message::Pong(b"are you there?".to_vec().into())
    );

    // Raw: empty and maximal (125-byte) payloads.
    let mut r = Raw::upgrade(server.addr, "/echo");
    for payload in [Vec::new(), pattern(125, 9)] {
        r.send(&frame(true, PING, &payload));
        let f = r.read_frame();
        assert_eq!((f.fin, f.opcode, f.payload), (true, PONG, payload));
    }
}

#[test]
fn unsolicited_pong_is_ignored() {
    let server = Server::start(&[]);
    let mut c = Raw::upgrade(server.addr, "/echo");
    c.send(&frame(true, PONG, b"unsolicited"));
    c.send(&frame(true, TEXT, b"after"));
    let f = c.read_frame();
    assert_eq!((f.opcode, &f.payload[..]), (TEXT, &b"after"[..]));
}
