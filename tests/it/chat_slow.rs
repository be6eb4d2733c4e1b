//! A slow consumer in a chat room: a member that never reads is evicted (1008 "slow
//! consumer", or its socket closed) once its queue passes `--send-buffer-limit` behind full
//! kernel buffers, while another member keeps receiving every message of the room in order.
//! The room is flooded with 60 KB events through `POST /api/publish` until the eviction shows
//! in `/metrics` (the kernel's buffers differ between machines, so no fixed count is assumed).

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use tungstenite::Message;

use crate::chat_client::{api, connect, http, open, status, wait_connections, READ_TIMEOUT};
use crate::harness::Server;

const KEY: &str = "k";
/// Bytes of padding per event (the API takes bodies up to 64 KiB).
const PAD: usize = 60_000;
/// Stop flooding after this many events (60 MB) even without an eviction.
const MAX_EVENTS: u64 = 1000;
/// Events sent after the eviction was seen.
const AFTER: u64 = 10;

fn evictions(addr: std::net::SocketAddr) -> u64 {
    let resp = http(addr, "GET", "/metrics", &[], b"");
    assert_eq!(status(&resp), 200);
    let text = String::from_utf8(resp.body).expect("utf-8");
    text.lines()
        .find_map(|l| l.strip_prefix("corecast_slow_consumer_evictions_total "))
        .and_then(|v| v.parse().ok())
        .expect("evictions sample")
}

#[test]
fn a_member_that_never_reads_is_evicted_the_others_get_everything() {
    let server = Server::start(&[
        "--send-buffer-limit",
        "64KiB",
        "--api-key",
        KEY,
        "--close-timeout",
        "10s",
    ]);
    let addr = server.addr;
    // The stalled member reads its welcome and room.list, then nothing until the end.
    let mut stalled = open(addr, "stalled");
    assert_eq!(stalled.recv()["type"], "welcome");
    assert_eq!(stalled.recv()["type"], "room.list");
    let (mut good, _) = connect(addr, "good");
    good.drain();

    // The good member reads everything in a thread. It hears of every publish (and of the
    // end) through a channel, so it never waits on its socket for an event that will not come.
    let (sent_tx, sent_rx) = mpsc::channel::<Option<u64>>();
    let reader = thread::spawn(move || {
        let mut next = 1;
        let mut published = 0;
        let mut done = false;
        let start = Instant::now();
        loop {
            while let Ok(n) = sent_rx.try_recv() {
                match n {
                    Some(n) => published = n,
                    None => done = true,
                }
            }
            if next > published {
                if done {
                    return good;
                }
                match sent_rx.recv().expect("flood thread alive") {
                    Some(n) => published = n,
                    None => done = true,
                }
                continue;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "good reader at {next}"
            );
            let m = good.recv();
            match m["type"].as_str() {
                Some("flood") => {
                    assert_eq!(m["seq"], next, "good member: out of order or gap");
                    assert_eq!(m["room"], "general");
                    assert_eq!(m["data"]["pad"].as_str().map(str::len), Some(PAD));
                    next += 1;
                }
                Some("room.leave") => assert_eq!(m["user"], "stalled"),
                _ => panic!("good member got {m}"),
            }
        }
    });

    let pad = "p".repeat(PAD);
    let mut sent = 0;
    let mut evicted_at = None;
    let started = Instant::now();
    while sent < MAX_EVENTS && evicted_at.is_none_or(|at| sent < at + AFTER) {
        let ev = json!({"room":"general","type":"flood","data":{"pad":pad}});
        let (code, body, _) = api(addr, Some(KEY), "POST", "/api/publish", Some(&ev));
        sent += 1;
        sent_tx.send(Some(sent)).expect("reader alive");
        assert_eq!(code, 200);
        assert_eq!(body["seq"], sent, "{body}");
        let delivered = body["delivered"].as_u64().expect("delivered");
        assert!(
            delivered == 2 || (evicted_at.is_some() && delivered == 1),
            "{body}"
        );
        if evicted_at.is_none() && sent % 8 == 0 && evictions(addr) == 1 {
            evicted_at = Some(sent);
        }
    }
    let evicted_at = evicted_at.unwrap_or_else(|| panic!("not evicted after {sent} events"));
    eprintln!(
        "chat slow consumer: evicted after {evicted_at} events of {PAD} B, {sent} sent in {:?}",
        started.elapsed()
    );
    sent_tx.send(None).expect("reader alive");
    let mut good = reader.join().expect("good reader");

    // The stalled member now reads: a gapless prefix, then the close (or the socket ends).
    stalled
        .stream()
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("timeout");
    let mut got = 0;
    let reading = Instant::now();
    let end = loop {
        match stalled.read_message() {
            Ok(Message::Text(t)) => {
                let m: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
                if m["type"] == "flood" {
                    got += 1;
                    assert_eq!(m["seq"], got, "stalled member: gap before the eviction");
                }
            }
            Ok(Message::Close(f)) => {
                // Answer it (tungstenite sends its close on the next read), so the server
                // ends the connection now rather than after the close timeout.
                assert!(matches!(
                    stalled.read_message(),
                    Err(tungstenite::Error::ConnectionClosed)
                ));
                break format!("{:?}", f.map(|f| (u16::from(f.code), f.reason.to_string())));
            }
            Ok(m) => panic!("stalled member got {m:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("stalled member: no close after {got} events")
            }
            Err(e) => break format!("socket ended: {e}"),
        }
    };
    eprintln!(
        "chat slow consumer: stalled member got {got} events, then {end} after {:?}",
        reading.elapsed()
    );
    assert!(got < sent, "the stalled member got every event");
    assert!(
        end == r#"Some((1008, "slow consumer"))"# || end.starts_with("socket ended"),
        "{end}"
    );

    // The room goes on without it.
    wait_connections(addr, 1);
    assert_eq!(good.chat("general", "still here"), sent + 1);
    assert_eq!(evictions(addr), 1);
}
