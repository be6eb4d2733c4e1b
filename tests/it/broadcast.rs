//! /broadcast across two workers: every message from one client reaches every client,
//! sender included, in order per sender, with its opcode; /echo clients get none of it.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use tungstenite::Message;

use crate::harness::{ws, Server, Ws};

/// With two SO_REUSEPORT workers, 12 clients all landing on one worker has probability 2^-11.
const CLIENTS: usize = 12;
const SENDERS: usize = 3;
const PER_SENDER: usize = 30;

fn message(sender: usize, i: usize) -> Message {
    if i % 2 == 0 {
        Message::text(format!("{sender}:{i}"))
    } else {
        Message::binary(format!("{sender}:{i}").into_bytes())
    }
}

fn parse(m: &Message) -> (usize, usize) {
    let s = match m {
        Message::Text(t) => t.as_str().to_string(),
        Message::Binary(b) => String::from_utf8(b.to_vec()).unwrap(),
        m => panic!("unexpected {m:?}"),
    };
    let (a, b) = s.split_once(':').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

#[test]
fn every_message_reaches_every_member_in_order() {
    let server = Server::start(&[]);
    let mut clients: Vec<Ws> = (0..CLIENTS)
        .map(|_| ws(server.addr, "/broadcast"))
        .collect();
    let mut bystander = ws(server.addr, "/echo");

    // Senders interleave their messages.
    for i in 0..PER_SENDER {
        for (s, c) in clients.iter_mut().take(SENDERS).enumerate() {
            c.send(message(s, i)).unwrap();
        }
    }
    for (n, c) in clients.iter_mut().enumerate() {
        let mut next: HashMap<usize, usize> = HashMap::new();
        for _ in 0..SENDERS * PER_SENDER {
            let m = c.read().unwrap();
            let (s, i) = parse(&m);
            let expected = next.entry(s).or_insert(0);
            assert_eq!(i, *expected, "client {n}: sender {s} out of order");
            assert_eq!(m, message(s, i), "client {n}: opcode or payload changed");
            *expected += 1;
        }
        assert!(
            (0..SENDERS).all(|s| next.get(&s) == Some(&PER_SENDER)),
            "client {n}: {next:?}"
        );
    }
    // Nothing more for anyone, and nothing at all for the /echo client.
    for c in clients.iter_mut().chain(std::iter::once(&mut bystander)) {
        c.get_mut()
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        match c.read() {
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            other => panic!("expected nothing more, got {other:?}"),
        }
    }
}

#[test]
fn members_that_leave_are_skipped() {
    let server = Server::start(&[]);
    let mut clients: Vec<Ws> = (0..8).map(|_| ws(server.addr, "/broadcast")).collect();
    // Half leave: some cleanly, some by dropping the socket.
    for (i, mut c) in clients.drain(4..).enumerate() {
        if i % 2 == 0 {
            c.close(None).unwrap();
            while c.read().is_ok() {}
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    clients[0].send(Message::text("to the rest")).unwrap();
    for c in &mut clients {
        assert_eq!(c.read().unwrap(), Message::text("to the rest"));
    }
}
