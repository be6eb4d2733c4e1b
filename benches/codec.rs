//! Criterion benchmarks of the sans-IO codec's hot paths (`corecast::ws`).
//!
//! - `frame_header/decode`: one header in each length form (Elements: headers/s).
//! - `unmask/{word,scalar}`: `apply_mask` (8 bytes per step) against the byte-loop reference
//!   `apply_mask_scalar` at 64 B, 4 KiB and 1 MiB (Bytes).
//! - `frame_encode`: `encode_frame` of a whole server frame into a reused `Vec` (Elements).
//! - `assemble`: a 4 KiB masked text frame through `Assembler::handle_bytes`: unmask in place,
//!   UTF-8 validation and the message event (Bytes).
//! - `handshake`: `parse_head` + `validate_upgrade` + `write_accept` of a browser request
//!   (Elements: handshakes/s).
//!
//! Run: `cargo bench --bench codec -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use corecast::http::{parse_head, DEFAULT_MAX_HEAD};
use corecast::ws::frame::{encode_client_frame, encode_frame};
use corecast::ws::handshake::{validate_upgrade, write_accept};
use corecast::ws::mask::{apply_mask, apply_mask_scalar};
use corecast::ws::{Assembler, Event, FrameHeader, HeaderRules, HeaderStatus, MessageLimits};
use corecast::ws::{DataKind, OpCode};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// What Chrome sends (minus cookies) to open a WebSocket.
const BROWSER_REQUEST: &[u8] = b"GET /ws?room=lobby HTTP/1.1\r\n\
Host: chat.example.com\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: https://chat.example.com\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

fn masked_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    encode_client_frame(&mut v, true, opcode, KEY, payload);
    v
}

fn frame_header(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_header/decode");
    g.throughput(Throughput::Elements(1));
    let rules = HeaderRules::default();
    let cases = [
        ("7bit", masked_frame(OpCode::Text, b"Hello")),
        ("16bit", masked_frame(OpCode::Binary, &[0; 4096])),
        ("64bit", masked_frame(OpCode::Binary, &[0; 70_000])),
    ];
    for (name, wire) in &cases {
        let head = &wire[..wire.len().min(14)];
        g.bench_function(*name, |b| {
            b.iter(|| {
                let status = FrameHeader::decode(black_box(head), &rules);
                match status {
                    Ok(HeaderStatus::Complete { header_len, .. }) => header_len,
                    other => panic!("{other:?}"),
                }
            })
        });
    }
    g.finish();
}

fn unmask(c: &mut Criterion) {
    let mut g = c.benchmark_group("unmask");
    for size in [64usize, 4 << 10, 1 << 20] {
        let mut buf: Vec<u8> = (0..size).map(|i| i as u8).collect();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("word", size), &size, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf), black_box(KEY), 0))
        });
        g.bench_with_input(BenchmarkId::new("scalar", size), &size, |b, _| {
            b.iter(|| apply_mask_scalar(black_box(&mut buf), black_box(KEY), 0))
        });
    }
    g.finish();
}

fn frame_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_encode");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(8 << 10);
    for size in [16usize, 125, 4 << 10] {
        let payload = vec![b'x'; size];
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| {
                out.clear();
                encode_frame(&mut out, OpCode::Text, 0, black_box(&payload));
                out.len()
            })
        });
    }
    g.finish();
}

fn assemble(c: &mut Criterion) {
    let mut g = c.benchmark_group("assemble");
    // Chat-like JSON text, mostly ASCII with some two- and three-byte characters.
    let unit = r#"{"room":"lobby","from":"zoë","text":"naïve café → ok"},"#;
    let mut text = unit.repeat(4096 / unit.len() + 1);
    while text.len() > 4096 {
        text.pop();
    }
    let wire = masked_frame(OpCode::Text, text.as_bytes());
    let limits = MessageLimits::default();
    let mut asm = Assembler::default();
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("text_4k_masked", |b| {
        b.iter_batched_ref(
            || wire.clone(),
            |buf| match asm.handle_bytes(buf, &limits) {
                Ok(d) => match d.event {
                    Some(Event::Message {
                        kind: DataKind::Text,
                        payload,
                        ..
                    }) => payload.len(),
                    other => panic!("{other:?}"),
                },
                Err(e) => panic!("{e}"),
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn handshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(256);
    g.bench_function("parse_validate_accept", |b| {
        b.iter(|| {
            let head = match parse_head(black_box(BROWSER_REQUEST), DEFAULT_MAX_HEAD) {
                Ok(Some(head)) => head,
                other => panic!("{other:?}"),
            };
            let upgrade = validate_upgrade(&head).expect("valid request");
            out.clear();
            write_accept(&mut out, &upgrade, None, None);
            out.len()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    frame_header,
    unmask,
    frame_encode,
    assemble,
    handshake
);
criterion_main!(benches);
