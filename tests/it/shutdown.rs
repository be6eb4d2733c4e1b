//! SIGTERM: every open connection gets close 1001 "going away", and the process exits 0
//! within the drain timeout.

use std::time::{Duration, Instant};

use tungstenite::Message;

use crate::harness::{ws, Raw, Server, Ws};

fn expect_going_away(c: &mut Ws, n: usize) {
    match c.read() {
        Ok(Message::Close(Some(f))) => assert_eq!(
            (u16::from(f.code), f.reason.as_str()),
            (1001, "going away"),
            "client {n}"
        ),
        other => panic!("client {n}: expected close 1001, got {other:?}"),
    }
}

/// tungstenite sends its close reply on the next read; the server must then close TCP
/// promptly (not when the drain or close timeout fires).
fn expect_prompt_tcp_close(mut c: Ws, n: usize) {
    c.get_mut()
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    match c.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        other => {
            panic!("client {n}: server did not close TCP within 1 s of our close reply: {other:?}")
        }
    }
}

#[test]
fn sigterm_sends_going_away_and_exits_0() {
    let mut server = Server::start(&["--drain-timeout", "3s"]);
    let mut clients: Vec<Ws> = (0..6)
        .map(|i| ws(server.addr, if i % 2 == 0 { "/echo" } else { "/broadcast" }))
        .collect();
    // Every connection is fully open (a broadcast reaches all three members).
    clients[0].send(Message::text("up")).unwrap();
    assert_eq!(clients[0].read().unwrap(), Message::text("up"));
    clients[1].send(Message::text("all")).unwrap();
    for c in clients.iter_mut().skip(1).step_by(2) {
        assert_eq!(c.read().unwrap(), Message::text("all"));
    }

    let start = Instant::now();
    server.sigterm();
    for (n, c) in clients.iter_mut().enumerate() {
        expect_going_away(c, n);
    }
    for (n, c) in clients.into_iter().enumerate() {
        expect_prompt_tcp_close(c, n);
    }
    // Everyone answered and left: no need to wait for the drain timeout.
    let status = server.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "exit took {:?} although every peer closed (drain timeout 3 s)",
        start.elapsed()
    );
}

#[test]
fn sigterm_with_unresponsive_peers_exits_0_at_the_drain_timeout() {
    let mut server = Server::start(&["--drain-timeout", "1s", "--close-timeout", "5s"]);
    // Upgraded, but will never answer the close.
    let mut deaf = Raw::upgrade(server.addr, "/echo");
    // Still in the handshake: closed without a response.
    let mut half = Raw::connect(server.addr);
    half.send(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n");
    let mut good = ws(server.addr, "/broadcast");
    good.send(Message::text("hi")).unwrap();
    assert_eq!(good.read().unwrap(), Message::text("hi"));

    let start = Instant::now();
    server.sigterm();
    expect_going_away(&mut good, 0);
    drop(good); // leaves without waiting for the server's FIN
    assert_eq!(deaf.expect_close(), Some((1001, "going away".to_string())));
    assert!(half.eof_within(Duration::from_secs(2)));
    let status = server.wait_exit(Duration::from_secs(4));
    let took = start.elapsed();
    assert_eq!(status.code(), Some(0), "{status}");
    // The deaf peer holds the drain open until the drain timeout (1 s), not longer.
    assert!(
        took >= Duration::from_millis(900),
        "exited after only {took:?}"
    );
    assert!(
        took < Duration::from_millis(1400),
        "exited {took:?} after SIGTERM with --drain-timeout 1s"
    );
    assert!(deaf.eof_within(Duration::from_secs(1)));
    // No new connections after the drain.
    assert!(std::net::TcpStream::connect(server.addr).is_err());
}

#[test]
fn idle_server_exits_0_promptly_on_sigterm() {
    let mut server = Server::start(&["--drain-timeout", "5s"]);
    let start = Instant::now();
    server.sigterm();
    let status = server.wait_exit(Duration::from_secs(3));
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}
