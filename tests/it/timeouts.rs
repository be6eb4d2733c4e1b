//! Timers: the handshake timeout (slowloris) and ping/idle detection of dead peers.

use std::io;
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::Message;

use crate::harness::{ws, Raw, Server, IO_TIMEOUT, PING};

const STALLED: usize = 50;
const TRICKLING: usize = 3;

fn assert_408(c: &mut Raw, opened: Instant, what: &str) {
    let resp = c.read_response_to_eof();
    let waited = opened.elapsed();
    assert_eq!(resp.status_line, "HTTP/1.1 408 Request Timeout", "{what}");
    assert_eq!(resp.body, b"handshake timeout\n", "{what}");
    // The deadline is 300 ms after accept; the sweep may add a little.
    assert!(
        waited >= Duration::from_millis(250),
        "{what}: 408 after only {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(1500),
        "{what}: 408 only after {waited:?}"
    );
}

#[test]
fn slowloris_gets_408_while_others_are_served() {
    let server = Server::start(&["--handshake-timeout", "300ms"]);
    let addr = server.addr;

    // Stalled: a partial head, then nothing.
    let mut stalled: Vec<(Raw, Instant)> = (0..STALLED)
        .map(|_| {
            let mut c = Raw::connect(addr);
            c.send(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n");
            (c, Instant::now())
        })
        .collect();

    // Trickling: one byte every 50 ms of a head that never ends. Progress must not extend the
    // deadline.
    let tricklers = thread::spawn(move || {
        let mut conns: Vec<(Raw, Instant, bool)> = (0..TRICKLING)
            .map(|_| (Raw::connect(addr), Instant::now(), false))
            .collect();
        let head = b"GET /echo HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
        for step in 0..60 {
            for (c, _, done) in conns.iter_mut().filter(|(_, _, done)| !*done) {
                let byte = head.get(step).copied().unwrap_or(b'z');
                // The server may already have closed; a failed write shows up as EOF below.
                let _ = io::Write::write_all(&mut c.stream, &[byte]);
                *done = c.eof_within(Duration::from_millis(1));
            }
            if conns.iter().all(|(_, _, done)| *done) {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        for (i, (c, opened, done)) in conns.iter_mut().enumerate() {
            assert!(
                *done,
                "trickler {i} not closed after {:?}: progress extended the deadline",
                opened.elapsed()
            );
            assert_408(c, *opened, &format!("trickler {i}"));
        }
    });

    // Meanwhile new clients connect and echo normally; an upgraded connection is not subject
    // to the handshake timeout.
    let good = thread::spawn(move || {
        let mut long_lived = ws(addr, "/echo");
        let start = Instant::now();
        let mut served = 0;
        while start.elapsed() < Duration::from_secs(1) && served < 100 {
            let t = Instant::now();
            let mut c = ws(addr, "/echo");
            c.send(Message::text(format!("hi {served}"))).unwrap();
            assert_eq!(c.read().unwrap(), Message::text(format!("hi {served}")));
            assert!(
                t.elapsed() < Duration::from_millis(500),
                "connect + echo took {:?} during the slowloris",
                t.elapsed()
            );
            served += 1;
            thread::sleep(Duration::from_millis(20));
        }
        long_lived.send(Message::text("still open")).unwrap();
        assert_eq!(long_lived.read().unwrap(), Message::text("still open"));
        served
    });

    for (i, (c, opened)) in stalled.iter_mut().enumerate() {
        assert_408(c, *opened, &format!("stalled {i}"));
    }
    tricklers.join().unwrap();
    let served = good.join().unwrap();
    assert!(served >= 5, "only {served} clients served in 1 s");
}

#[test]
fn dead_peer_is_pinged_then_closed() {
    let server = Server::start(&[
        "--ping-interval",
        "200ms",
        "--idle-timeout",
        "600ms",
        "--close-timeout",
        "500ms",
    ]);
    let mut c = Raw::upgrade(server.addr, "/echo");
    let start = Instant::now();
    c.set_read_timeout(Duration::from_secs(3));
    let mut pings = 0;
    let close = loop {
        let f = c.read_frame();
        let at = start.elapsed();
        assert!(at < Duration::from_secs(2), "still open after {at:?}");
        match f.opcode {
            PING => {
                assert!(at >= Duration::from_millis(150), "ping after only {at:?}");
                assert!(f.fin && f.payload.len() <= 125);
                pings += 1;
            }
            _ => break f.close(),
        }
    };
    let closed_at = start.elapsed();
    assert!(pings >= 1, "closed without a ping first");
    assert_eq!(close, Some((1001, "idle timeout".to_string())));
    assert!(
        closed_at >= Duration::from_millis(550),
        "idle close after only {closed_at:?}"
    );
    // We do not answer the close either: the server gives up after the close timeout.
    assert!(
        c.eof_within(Duration::from_secs(2)),
        "TCP still open {:?} after start",
        start.elapsed()
    );
    assert!(start.elapsed() < Duration::from_millis(2500));
}

#[test]
fn live_peer_answering_pings_stays_connected() {
    let server = Server::start(&["--ping-interval", "200ms", "--idle-timeout", "600ms"]);
    let mut c = ws(server.addr, "/echo");
    c.get_mut()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let start = Instant::now();
    let mut pings = 0;
    // tungstenite answers each ping with a pong on its next read.
    while start.elapsed() < Duration::from_millis(2500) {
        match c.read() {
            Ok(Message::Ping(_)) => pings += 1,
            Ok(m) => panic!("unexpected {m:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("disconnected after {:?}: {e}", start.elapsed()),
        }
    }
    assert!(pings >= 3, "only {pings} pings in 2.5 s");
    c.get_mut().set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    c.send(Message::text("still here")).unwrap();
    loop {
        match c.read().unwrap() {
            Message::Ping(_) => {}
            m => {
                assert_eq!(m, Message::text("still here"));
                break;
            }
        }
    }
}
