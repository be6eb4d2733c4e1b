//! Slow-consumer eviction on /broadcast: a client that stops reading is closed with 1008
//! "slow consumer" once its queue passes --send-buffer-limit, while a well-behaved client keeps
//! receiving everything with low latency and the flooder is unaffected.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::Message;

use crate::harness::{frame, header, masked, pattern, ws, Raw, Server, BINARY, CLOSE, TEXT};

const MSG_LEN: usize = 64 << 10;
/// 200 x 64 KiB = 12.5 MiB: three times what the stalled socket's kernel buffers hold on
/// loopback (about 4 MB).
const FLOOD_COUNT: usize = 200;
/// One message every 3 ms (about 21 MB/s), so a debug-build reader keeps up on a busy machine.
const FLOOD_SPACING: Duration = Duration::from_millis(3);
const FLOOD_MAX_TIME: Duration = Duration::from_secs(10);
const RTT_BOUND: Duration = Duration::from_millis(500);

fn seq_of(data: &[u8]) -> usize {
    u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize
}

#[test]
fn stalled_reader_is_evicted_others_keep_low_latency() {
    let server = Server::start(&["--send-buffer-limit", "256KiB", "--close-timeout", "10s"]);
    let addr = server.addr;
    // Set while the flood is being sent.
    let flooding = Arc::new(AtomicBool::new(false));

    // The stalled client: connected, then reads nothing until the flood is over.
    let mut stalled = ws(addr, "/broadcast");

    // The well-behaved client: measures the round trip of its own messages throughout.
    let probes = Arc::new(AtomicUsize::new(0));
    let well_behaved = {
        let (flooding, probes) = (flooding.clone(), probes.clone());
        let mut c = ws(addr, "/broadcast");
        thread::spawn(move || {
            let start = Instant::now();
            let mut rtts = Vec::new(); // (sent during the flood, round trip)
            let mut seen = 0;
            for i in 0.. {
                if seen == FLOOD_COUNT {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(15),
                    "well-behaved client saw {seen} flood messages in 15 s"
                );
                let probe = format!("probe {i}");
                let during = flooding.load(Ordering::SeqCst);
                let sent = Instant::now();
                c.send(Message::text(probe.clone())).unwrap();
                loop {
                    match c.read().unwrap() {
                        Message::Binary(b) => {
                            assert_eq!(b.len(), MSG_LEN);
                            assert_eq!(seq_of(&b), seen, "flood message out of order");
                            seen += 1;
                        }
                        Message::Text(t) if t.as_str() == probe => break,
                        m => panic!("well-behaved client got {m:?}"),
                    }
                }
                rtts.push((during, sent.elapsed()));
                probes.fetch_add(1, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(10));
            }
            rtts
        })
    };

    // The flooder: writes from one thread, reads everything back (sender included) in another.
    let flooder = Raw::upgrade(addr, "/broadcast");
    let mut writer = flooder.stream.try_clone().unwrap();
    let flooder_reader = {
        let mut r = flooder;
        thread::spawn(move || {
            let mut seen = 0;
            let start = Instant::now();
            while seen < FLOOD_COUNT {
                assert!(start.elapsed() < Duration::from_secs(15));
                let f = r.read_frame();
                match f.opcode {
                    BINARY => {
                        assert_eq!(seq_of(&f.payload), seen);
                        seen += 1;
                    }
                    TEXT => {} // probes
                    CLOSE => panic!("flooder was closed: {:?}", f.close()),
                    op => panic!("flooder got opcode {op}"),
                }
            }
        })
    };

    let start = Instant::now();
    while probes.load(Ordering::SeqCst) < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no probes before the flood"
        );
        thread::sleep(Duration::from_millis(5));
    }

    // One pre-masked frame; only the masked sequence number changes per message.
    let key = [0xa1, 0xb2, 0xc3, 0xd4];
    let mut wire = header(0x80 | BINARY, MSG_LEN as u64, Some(key));
    let at = wire.len();
    wire.extend(masked(&pattern(MSG_LEN, 5), key));
    flooding.store(true, Ordering::SeqCst);
    let flood_start = Instant::now();
    for seq in 0..FLOOD_COUNT {
        assert!(
            flood_start.elapsed() < FLOOD_MAX_TIME,
            "flooded only {seq} messages in {FLOOD_MAX_TIME:?}"
        );
        let seq_bytes = (seq as u32).to_be_bytes();
        for i in 0..4 {
            wire[at + i] = seq_bytes[i] ^ key[i];
        }
        writer.write_all(&wire).unwrap();
        let next = flood_start + FLOOD_SPACING * (seq as u32 + 1);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    }
    let flood_time = flood_start.elapsed();
    flooding.store(false, Ordering::SeqCst);
    let sent = FLOOD_COUNT;

    let rtts = well_behaved.join().unwrap();
    flooder_reader.join().unwrap();

    // The stalled client resumes: the data it had, then 1008 "slow consumer".
    let mut got = 0;
    let resumed = Instant::now();
    let close = loop {
        assert!(resumed.elapsed() < Duration::from_secs(10));
        assert!(
            got < sent,
            "stalled client got every message: not evicted (kernel socket buffers over 12 MiB?)"
        );
        match stalled.read().unwrap() {
            Message::Binary(b) => {
                assert_eq!(seq_of(&b), got, "stalled client got a gap before eviction");
                got += 1;
            }
            Message::Text(_) => {} // probes
            Message::Close(close) => break close,
            m => panic!("stalled client got {m:?}"),
        }
    };
    let close = close.expect("close frame with a code");
    assert_eq!(
        (u16::from(close.code), close.reason.as_str()),
        (1008, "slow consumer"),
        "after {got} messages"
    );
    assert!(got < sent, "evicted, yet got all {sent} messages");

    let outside: Vec<Duration> = rtts.iter().filter(|r| !r.0).map(|r| r.1).collect();
    let during: Vec<Duration> = rtts.iter().filter(|r| r.0).map(|r| r.1).collect();
    eprintln!(
        "slow consumer: flooded {sent} x 64 KiB in {flood_time:?}; stalled client got {got} \
         before eviction; well-behaved RTT max outside the flood {:?}, during it {:?} ({} samples)",
        outside.iter().max(),
        during.iter().max(),
        during.len()
    );
    assert!(
        during.len() >= 5,
        "too few probes during the flood: {during:?}"
    );
    for (phase, samples) in [("outside", &outside), ("during", &during)] {
        let max = samples.iter().max().copied().unwrap_or_default();
        assert!(
            max < RTT_BOUND,
            "RTT {phase} the flood up to {max:?}: {samples:?}"
        );
    }

    // tungstenite answers the close on its next read; the server must then close TCP (the
    // close timeout here is 10 s, so waiting for it would not count).
    stalled
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    match stalled.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        other => panic!(
            "server did not close TCP after the evicted client answered its close: {other:?}"
        ),
    }
}

/// Four 8 KiB messages as one 32 KiB write: one loopback segment, read by the server at once.
fn burst() -> (Vec<Vec<u8>>, Vec<u8>) {
    let msgs: Vec<Vec<u8>> = (0..4).map(|i| pattern(8 << 10, i)).collect();
    let wire = msgs.iter().flat_map(|m| frame(true, BINARY, m)).collect();
    (msgs, wire)
}

/// Reads the burst back; a close instead means the reader was evicted although it read all.
fn expect_burst(r: &mut Raw, msgs: &[Vec<u8>], who: &str) {
    for (i, m) in msgs.iter().enumerate() {
        let f = r.read_frame();
        assert_eq!(
            f.opcode,
            BINARY,
            "{who}, message {i}: evicted while reading everything: {:?}",
            (f.opcode == CLOSE).then(|| f.close())
        );
        assert!(&f.payload == m, "{who}: message {i} corrupted");
    }
}

/// A client that reads everything at once is not a slow consumer: output produced for it
/// from one read of input has not even been offered to its (empty) socket yet.
#[test]
fn echo_burst_below_socket_capacity_is_not_a_slow_consumer() {
    let server = Server::start(&["--send-buffer-limit", "16KiB"]);
    let mut c = Raw::upgrade(server.addr, "/echo");
    let (msgs, wire) = burst();
    c.send(&wire);
    expect_burst(&mut c, &msgs, "echo");
}

#[test]
fn broadcast_burst_below_socket_capacity_is_not_a_slow_consumer() {
    let server = Server::start(&["--send-buffer-limit", "16KiB"]);
    let mut a = Raw::upgrade(server.addr, "/broadcast");
    let mut b = Raw::upgrade(server.addr, "/broadcast");
    let (msgs, wire) = burst();
    a.send(&wire);
    expect_burst(&mut a, &msgs, "sender");
    expect_burst(&mut b, &msgs, "other member");
}

/// One message larger than the send-buffer limit is accepted into an empty queue even when
/// the reader takes its time (Autobahn 9.1.5/9.1.6 echo 8 and 16 MiB): only a backlog in
/// front of a new message makes a slow consumer.
#[test]
fn one_message_over_the_limit_is_not_a_slow_consumer() {
    let server = Server::start(&["--send-buffer-limit", "16KiB"]);
    let mut c = Raw::upgrade(server.addr, "/echo");
    let msg = pattern(4 << 20, 7);
    c.send(&frame(true, BINARY, &msg));
    // Let the server fill the socket and find most of the message still queued.
    thread::sleep(Duration::from_millis(300));
    let f = c.read_frame();
    assert_eq!(
        f.opcode,
        BINARY,
        "evicted: {:?}",
        (f.opcode == CLOSE).then(|| f.close())
    );
    assert!(f.payload == msg, "echo corrupted");
    // And the connection still works.
    let small = pattern(100, 1);
    c.send(&frame(true, BINARY, &small));
    assert!(c.read_frame().payload == small);
}
