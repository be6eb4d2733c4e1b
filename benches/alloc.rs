//! Heap allocations on the hot path, counted by a global allocator.
//!
//! Runs a real server in this process (one worker) and a client that allocates nothing per
//! operation (prebuilt request and frames, fixed read buffers, std sockets), so the counter
//! measures the server: allocations per handshake and per echoed message after warm-up.
//! `cargo bench --bench alloc` prints the figures; the target is zero for both.

// A global allocator cannot be written without `unsafe impl GlobalAlloc`; it only forwards.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use corecast::apps::{AppShared, Corecast};
use corecast::ws::deflate::CompressionMode;
use corecast::ws::frame::{encode_client_frame, OpCode};
use corecast::{Config, Server};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: delegates every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const REQUEST: &[u8] =
    b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Reads until `buf` ends with CRLFCRLF; returns the length.
fn read_head(s: &mut TcpStream, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while !buf[..n].ends_with(b"\r\n\r\n") {
        n += s.read(&mut buf[n..]).expect("read head");
        assert!(n > 0 && n < buf.len(), "bad response");
    }
    n
}

fn handshake(addr: SocketAddr, buf: &mut [u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.write_all(REQUEST).expect("write request");
    let n = read_head(&mut s, buf);
    assert!(buf[..n].starts_with(b"HTTP/1.1 101"), "not upgraded");
    s
}

fn echo(s: &mut TcpStream, frame: &[u8], expect_len: usize, buf: &mut [u8]) {
    s.write_all(frame).expect("write frame");
    s.read_exact(&mut buf[..expect_len]).expect("read echo");
}

fn main() {
    let cfg = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        workers: 1,
        compression: CompressionMode::Off,
        ..Config::default()
    };
    let app_cfg = cfg.clone();
    let server = Server::bind(cfg).expect("bind");
    let addr = server.local_addr();
    let shared =
        AppShared::new(app_cfg, server.shared().clone(), None, None).expect("valid config");
    let handle = server
        .start(move |worker| Corecast::new(worker, &shared))
        .expect("start");

    let mut buf = vec![0u8; 1 << 16];
    let payload = vec![b'x'; 1024];
    let mut frame = Vec::new();
    encode_client_frame(&mut frame, true, OpCode::Text, [1, 2, 3, 4], &payload);
    let echo_len = 4 + payload.len(); // 126 => 2 + 2 extended length bytes

    // Warm-up: pools, slab and queues reach their steady-state capacity.
    let mut conns: Vec<TcpStream> = (0..200).map(|_| handshake(addr, &mut buf)).collect();
    for s in conns.iter_mut() {
        for _ in 0..10 {
            echo(s, &frame, echo_len, &mut buf);
        }
    }
    drop(conns);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut conn = handshake(addr, &mut buf);
    for _ in 0..1000 {
        echo(&mut conn, &frame, echo_len, &mut buf);
    }

    let echoes = 20_000u64;
    let before = ALLOCS.load(Relaxed);
    for _ in 0..echoes {
        echo(&mut conn, &frame, echo_len, &mut buf);
    }
    let echo_allocs = ALLOCS.load(Relaxed) - before;

    // Handshakes: connect, upgrade, close (the slab slot is reused).
    let handshakes = 500u64;
    let mut open = Vec::with_capacity(handshakes as usize);
    let before = ALLOCS.load(Relaxed);
    for _ in 0..handshakes {
        open.push(handshake(addr, &mut buf));
    }
    let handshake_allocs = ALLOCS.load(Relaxed) - before;
    drop(open);

    println!(
        "allocations per echoed 1 KiB message: {:.4} ({echo_allocs} in {echoes})",
        echo_allocs as f64 / echoes as f64
    );
    println!(
        "allocations per handshake: {:.4} ({handshake_allocs} in {handshakes}, client sockets included)",
        handshake_allocs as f64 / handshakes as f64
    );
    handle.shutdown();
    handle.join();
}
