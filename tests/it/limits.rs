//! --max-connections: connections beyond the limit get HTTP 503; a freed slot is reusable.

use std::time::{Duration, Instant};

use tungstenite::Message;

use crate::harness::{upgrade_request, ws, Raw, Server};

#[test]
fn third_connection_gets_503() {
    let server = Server::start(&["--max-connections", "2"]);
    let mut a = ws(server.addr, "/echo");
    let mut b = ws(server.addr, "/broadcast");

    // The 503 is sent at accept, before any request; the server then closes.
    let mut over = Raw::connect(server.addr);
    let resp = over.read_response_to_eof();
    assert_eq!(resp.status_line, "HTTP/1.1 503 Service Unavailable");
    assert_eq!(resp.body, b"server at connection limit\n");
    assert_eq!(resp.header("content-length"), "27");

    // The two admitted connections are unaffected.
    a.send(Message::text("a")).unwrap();
    assert_eq!(a.read().unwrap(), Message::text("a"));
    b.send(Message::text("b")).unwrap();
    assert_eq!(b.read().unwrap(), Message::text("b"));

    // Once one leaves, its slot is free again.
    a.close(None).unwrap();
    while a.read().is_ok() {}
    drop(a); // our FIN: the server frees the slot now, not at the close timeout
    let start = Instant::now();
    loop {
        let mut c = Raw::connect(server.addr);
        c.send(&upgrade_request("/echo"));
        let head = c.read_head();
        if head.status_line == "HTTP/1.1 101 Switching Protocols" {
            break;
        }
        assert_eq!(head.status_line, "HTTP/1.1 503 Service Unavailable");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "slot not freed after a clean close"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
