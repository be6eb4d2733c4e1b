//! The reactor's cork: what a connection sends itself while one of its reads is handled is
//! gathered in one worker buffer and written right after the read. These tests hold the
//! promises that buffer must not break, over real sockets with tungstenite as the peer:
//! order against everything else the connection is sent (shared frames, control frames, the
//! 101, messages the worker sent itself), no loss when the socket takes only part of it or
//! more than the cork holds, and a connection that ends with a corked answer (a close
//! frame, a refusal) ends at once.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use corecast::http::RequestHead;
use corecast::reactor::{App, ConnId, Cx, Decision, Outbound};
use corecast::ws::{CloseCode, DataKind};
use corecast::{Config, Server, ServerHandle};
use tungstenite::protocol::frame::coding::CloseCode as TCloseCode;
use tungstenite::Message;

/// Answers commands with several sends of different kinds to the sender itself.
struct Replies {
    /// Set by `on_peer` (after a pause) for a `local` command.
    peer_done: Arc<AtomicBool>,
}

/// Size of each message of a `flood`.
const FLOOD_SIZE: usize = 1000;

impl App for Replies {
    type Conn = ();
    type PeerMsg = ();

    fn on_request(
        &mut self,
        _id: ConnId,
        _head: &RequestHead<'_>,
        _cx: &mut Cx<'_, (), ()>,
    ) -> Decision<()> {
        Decision::Upgrade {
            state: (),
            max_message: 1 << 20,
        }
    }

    fn on_body(
        &mut self,
        _id: ConnId,
        _head: &RequestHead<'_>,
        _body: &[u8],
        _cx: &mut Cx<'_, (), ()>,
    ) -> Decision<()> {
        unreachable!("no bodies asked for")
    }

    fn on_open(&mut self, id: ConnId, _c: &mut (), cx: &mut Cx<'_, (), ()>) {
        let _ = cx.send(id, DataKind::Text, b"welcome");
    }

    fn on_message(
        &mut self,
        id: ConnId,
        _c: &mut (),
        _kind: DataKind,
        payload: &[u8],
        cx: &mut Cx<'_, (), ()>,
    ) {
        let text = std::str::from_utf8(payload).unwrap_or("");
        match text.split_once(' ').unwrap_or((text, "")) {
            ("mix", _) => {
                let _ = cx.send(id, DataKind::Text, b"1 owned");
                let mut shared = Outbound::new(DataKind::Text, b"2 shared");
                let _ = cx.send_shared(id, &mut shared);
                let _ = cx.send(id, DataKind::Text, b"3 owned");
            }
            ("flood", args) => {
                // "flood N [FIRST]": N messages numbered from FIRST.
                let mut args = args.split(' ').map(|a| a.parse::<u32>().unwrap_or(0));
                let (n, first) = (args.next().unwrap_or(0), args.next().unwrap_or(0));
                for i in first..first + n {
                    let mut msg = vec![(i % 251) as u8; FLOOD_SIZE];
                    msg[..4].copy_from_slice(&i.to_be_bytes());
                    let _ = cx.send(id, DataKind::Binary, &msg);
                }
            }
            ("big", n) => {
                let _ = cx.send(id, DataKind::Text, b"small first");
                let big = vec![b'x'; n.parse().unwrap_or(0)];
                let _ = cx.send(id, DataKind::Binary, &big);
                let _ = cx.send(id, DataKind::Text, b"small last");
            }
            ("local", _) => {
                // A message to this worker itself, then the reply that says it is handled.
                self.peer_done.store(false, SeqCst);
                cx.send_peer(0, ());
                let _ = cx.send(id, DataKind::Text, b"handled");
            }
            ("bye", _) => {
                let _ = cx.send(id, DataKind::Text, b"last words");
                cx.close(id, CloseCode::NORMAL, "done");
            }
            _ => {
                let _ = cx.send(id, DataKind::Text, payload);
            }
        }
    }

    fn on_close(&mut self, _id: ConnId, _c: (), _cx: &mut Cx<'_, (), ()>) {}

    fn on_peer(&mut self, _msg: (), _cx: &mut Cx<'_, (), ()>) {
        std::thread::sleep(Duration::from_millis(200));
        self.peer_done.store(true, SeqCst);
    }
}

fn start() -> (ServerHandle<()>, SocketAddr) {
    let (handle, addr, _) = start_with_flag();
    (handle, addr)
}

fn start_with_flag() -> (ServerHandle<()>, SocketAddr, Arc<AtomicBool>) {
    let cfg = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        // The clients stay connected at shutdown: do not wait long for their close.
        drain_timeout: Duration::from_millis(300),
        // Large enough that a client not reading for a moment is not a slow consumer here.
        send_buffer_limit: 64 << 20,
        // Long, so that a socket closed or shut down at once is told from one timed out.
        close_timeout: Duration::from_secs(30),
        ..Config::default()
    };
    let server = Server::bind(cfg).unwrap();
    let addr = server.local_addr();
    let flag = Arc::new(AtomicBool::new(false));
    let peer_done = flag.clone();
    let handle = server
        .start(move |_| Replies {
            peer_done: peer_done.clone(),
        })
        .unwrap();
    (handle, addr, flag)
}

type Client = tungstenite::WebSocket<TcpStream>;

fn connect(addr: SocketAddr) -> Client {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}/"), stream).unwrap();
    assert_eq!(next_text(&mut ws), "welcome");
    ws
}

fn next_text(ws: &mut Client) -> String {
    match ws.read().unwrap() {
        Message::Text(t) => t.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

#[test]
fn own_replies_keep_their_order_around_a_shared_frame() {
    let (handle, addr) = start();
    let mut ws = connect(addr);
    for _ in 0..3 {
        ws.send(Message::text("mix")).unwrap();
        for want in ["1 owned", "2 shared", "3 owned"] {
            assert_eq!(next_text(&mut ws), want);
        }
    }
    // The connection still answers plainly afterwards.
    ws.send(Message::text("ping me")).unwrap();
    assert_eq!(next_text(&mut ws), "ping me");
    handle.shutdown();
    handle.join();
}

#[test]
fn a_reply_before_a_close_comes_before_the_close_frame() {
    let (handle, addr) = start();
    let mut ws = connect(addr);
    ws.send(Message::text("bye")).unwrap();
    assert_eq!(next_text(&mut ws), "last words");
    match ws.read().unwrap() {
        Message::Close(Some(f)) => {
            assert_eq!(f.code, TCloseCode::Normal);
            assert_eq!(f.reason.as_str(), "done");
        }
        other => panic!("expected the close frame, got {other:?}"),
    }
    handle.shutdown();
    handle.join();
}

/// Reads `n` flood messages: numbered 0.., each whole and in order.
fn read_flood(ws: &mut Client, n: u32) {
    for i in 0..n {
        match ws.read().unwrap() {
            Message::Binary(b) => {
                assert_eq!(b.len(), FLOOD_SIZE, "message {i}");
                assert_eq!(&b[..4], &i.to_be_bytes(), "message {i} out of order");
                assert!(b[4..].iter().all(|&x| x == (i % 251) as u8), "message {i}");
            }
            other => panic!("message {i}: expected binary, got {other:?}"),
        }
    }
}

/// 3,000 replies of 1,000 bytes to one message (3 MB: more than the cork holds and more
/// than the socket takes while the client is not reading) all arrive, in order, intact.
#[test]
fn replies_beyond_the_cork_and_the_socket_buffer_all_arrive_in_order() {
    let (handle, addr) = start();
    let mut ws = connect(addr);
    let n = 3000u32;
    ws.send(Message::text(format!("flood {n}"))).unwrap();
    std::thread::sleep(Duration::from_millis(300)); // let the server's socket fill
    read_flood(&mut ws, n);
    ws.send(Message::text("after")).unwrap();
    assert_eq!(next_text(&mut ws), "after");
    handle.shutdown();
    handle.join();
}

/// 400 messages without reading, each answered by 60 replies of 1,000 bytes (each answer
/// fits the cork; 24 MB in all, more than the socket takes): the answer the socket takes
/// only part of is finished from the queue, and everything arrives in order.
#[test]
fn corked_replies_the_socket_takes_only_part_of_all_arrive_in_order() {
    let (handle, addr) = start();
    let mut ws = connect(addr);
    let (commands, per) = (400u32, 60u32);
    for c in 0..commands {
        ws.send(Message::text(format!("flood {per} {}", c * per)))
            .unwrap();
        // Apart, so that each is a read of its own (a corked answer of its own).
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(300)); // let the server's socket fill
    read_flood(&mut ws, commands * per);
    handle.shutdown();
    handle.join();
}

/// A reply larger than the cork goes through the connection's queue, between the small
/// ones sent before and after it.
#[test]
fn a_reply_larger_than_the_cork_stays_between_its_neighbours() {
    let (handle, addr) = start();
    let mut ws = connect(addr);
    let size = 200_000;
    ws.send(Message::text(format!("big {size}"))).unwrap();
    assert_eq!(next_text(&mut ws), "small first");
    match ws.read().unwrap() {
        Message::Binary(b) => {
            assert_eq!(b.len(), size);
            assert!(b.iter().all(|&x| x == b'x'));
        }
        other => panic!("expected the big binary message, got {other:?}"),
    }
    assert_eq!(next_text(&mut ws), "small last");
    handle.shutdown();
    handle.join();
}

/// A request and a frame in one segment: the 101, what `on_open` sent and the reply to the
/// pipelined frame leave in that order.
#[test]
fn a_frame_pipelined_with_the_request_is_answered_after_the_101_and_on_open() {
    let (handle, addr) = start();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n"
        .to_vec();
    // A masked text frame "hi" (mask 1,2,3,4).
    let mask = [1u8, 2, 3, 4];
    req.extend_from_slice(&[0x81, 0x82]);
    req.extend_from_slice(&mask);
    req.extend(b"hi".iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    s.write_all(&req).unwrap();

    let mut got = Vec::new();
    let want_tail: &[u8] = b"\x81\x07welcome\x81\x02hi";
    while !(got.ends_with(want_tail) || got.len() > 4096) {
        let mut b = [0u8; 512];
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&b[..n]);
    }
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        got.starts_with(b"HTTP/1.1 101 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(&got[head_end..], want_tail);
    handle.shutdown();
    handle.join();
}

/// Reads until EOF; fails if it does not come within 5 s (the close timeout is 30 s).
fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("no EOF within 5 s ({e}): {}", String::from_utf8_lossy(&got)));
    got
}

/// The peer's close frame is answered from the cork, and the socket is closed right after
/// (RFC 6455 §7.1.1: the server closes first), not at the close timeout.
#[test]
fn a_close_answered_from_the_cork_closes_the_socket_at_once() {
    let (handle, addr) = start();
    let ws = connect(addr);
    let mut s = ws.into_inner();
    // A masked close frame with code 1000 (mask 0).
    s.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]).unwrap();
    assert_eq!(read_to_eof(&mut s), b"\x88\x02\x03\xe8");
    handle.shutdown();
    handle.join();
}

/// A refused request is answered from the cork, then our side is shut down at once.
#[test]
fn a_refusal_answered_from_the_cork_shuts_down_at_once() {
    let (handle, addr) = start();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let got = read_to_eof(&mut s);
    assert!(
        got.starts_with(b"HTTP/1.1 400 ") || got.starts_with(b"HTTP/1.1 426 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    handle.shutdown();
    handle.join();
}

/// A reply written with the messages the worker sent itself still unhandled could tell the
/// client a thing is done before it is (the chat acks a leave once its request to the room's
/// home is sent; a home on the same worker handles it after the read): such a reply waits
/// for them.
#[test]
fn a_reply_after_a_message_to_the_worker_itself_waits_for_it() {
    let (handle, addr, peer_done) = start_with_flag();
    let mut ws = connect(addr);
    for _ in 0..3 {
        ws.send(Message::text("local")).unwrap();
        assert_eq!(next_text(&mut ws), "handled");
        assert!(
            peer_done.load(SeqCst),
            "the reply came before the worker handled its own message"
        );
    }
    handle.shutdown();
    handle.join();
}
