//! The reactor's promise to applications at the upgrade: a client sees the 101 only once
//! `App::on_open` has returned, and frames `on_open` queued come after the 101. A gateway
//! device is owed every event published after its client saw the 101: its registration (in
//! `on_open`) must be in place by then.
//!
//! A test application whose `on_open` takes 300 ms (a stand-in for a worker descheduled at
//! that moment, which is how a 101 written before `on_open` lost events on a busy machine)
//! records when it returns; the client checks the 101 did not come before.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use corecast::http::RequestHead;
use corecast::reactor::{App, ConnId, Cx, Decision};
use corecast::ws::DataKind;
use corecast::{Config, Server};

/// An application whose `on_open` is slow and, for a request to `/hello`, queues a message.
struct SlowOpen {
    opened: Arc<AtomicBool>,
}

impl App for SlowOpen {
    type Conn = bool;
    type PeerMsg = ();

    fn on_request(
        &mut self,
        _id: ConnId,
        head: &RequestHead<'_>,
        _cx: &mut Cx<'_, bool, ()>,
    ) -> Decision<bool> {
        Decision::Upgrade {
            state: head.target == "/hello",
            max_message: 1024,
        }
    }

    fn on_body(
        &mut self,
        _id: ConnId,
        _head: &RequestHead<'_>,
        _body: &[u8],
        _cx: &mut Cx<'_, bool, ()>,
    ) -> Decision<bool> {
        unreachable!("no bodies asked for")
    }

    fn on_open(&mut self, id: ConnId, hello: &mut bool, cx: &mut Cx<'_, bool, ()>) {
        std::thread::sleep(Duration::from_millis(300));
        if *hello {
            let _ = cx.send(id, DataKind::Text, b"hello");
        }
        self.opened.store(true, SeqCst);
    }

    fn on_message(
        &mut self,
        _id: ConnId,
        _c: &mut bool,
        _kind: DataKind,
        _payload: &[u8],
        _cx: &mut Cx<'_, bool, ()>,
    ) {
    }

    fn on_close(&mut self, _id: ConnId, _c: bool, _cx: &mut Cx<'_, bool, ()>) {}

    fn on_peer(&mut self, _msg: (), _cx: &mut Cx<'_, bool, ()>) {}
}

const REQUEST: &str =
    "HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

#[test]
fn the_101_comes_after_on_open_and_before_what_it_queued() {
    let opened = Arc::new(AtomicBool::new(false));
    let cfg = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        ..Config::default()
    };
    let server = Server::bind(cfg).unwrap();
    let addr = server.local_addr();
    let flag = opened.clone();
    let handle = server
        .start(move |_| SlowOpen {
            opened: flag.clone(),
        })
        .unwrap();

    // Nothing queued by on_open (the 101 written straight to the socket), then something.
    for path in ["/plain", "/hello"] {
        opened.store(false, SeqCst);
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(format!("GET {path} {REQUEST}").as_bytes())
            .unwrap();
        let mut first = [0u8; 1];
        s.read_exact(&mut first).unwrap();
        assert!(
            opened.load(SeqCst),
            "{path}: the client saw the 101 before on_open returned"
        );
        let mut rest = Vec::new();
        while !rest.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            rest.push(b[0]);
        }
        assert!(
            [&first[..], &rest].concat().starts_with(b"HTTP/1.1 101 "),
            "{path}: {}",
            String::from_utf8_lossy(&rest)
        );
        if path == "/hello" {
            // One unmasked text frame, after the 101.
            let mut frame = [0u8; 7];
            s.read_exact(&mut frame).unwrap();
            assert_eq!(&frame, b"\x81\x05hello");
        }
    }
    handle.shutdown();
    handle.join();
}
