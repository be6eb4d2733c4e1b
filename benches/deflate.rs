//! Criterion benchmarks of permessage-deflate (`corecast::ws::deflate`, RFC 7692).
//!
//! - `deflate/compress`, `deflate/decompress`: `Deflater::compress_message` and
//!   `Inflater::inflate_message` on a text-like payload (JSON chat messages with English words)
//!   and a binary-like one (pseudo-random bytes), at 1 KiB, 16 KiB and 1 MiB, levels 1 and 6,
//!   with a reset before every message (`no_takeover`) and with context takeover (`takeover`).
//!   Throughput is uncompressed bytes. Each iteration takes the next of a few distinct messages
//!   of the same kind, so context takeover sees realistic history rather than the same message
//!   again.
//! - `deflate_fanout_10k`: one 1 KiB chat message (level 1, the server's default) to 10,000
//!   recipients (Elements): `plain` encodes one frame and queues clones of it; `compress_once`
//!   compresses once (the shared compressor, no server context takeover) and queues clones of
//!   one RSV1 frame; `per_recipient` compresses the message in each of 10,000 dedicated
//!   `Deflater`s with context takeover (what per-connection compression costs) and queues
//!   10,000 frames. The per-recipient variant keeps 10,000 compressors (~3 GB) alive.
//!
//! The compression ratio of every payload kind, size and level is printed once, before the
//! benchmarks run.
//!
//! Run: `cargo bench --bench deflate -- --warm-up-time 1 --measurement-time 3`.

use std::collections::VecDeque;
use std::hint::black_box;

use bytes::Bytes;
use corecast::ws::deflate::{Deflater, Inflater};
use corecast::ws::frame::{encode_frame, RSV1};
use corecast::ws::OpCode;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const KIB: usize = 1 << 10;
const SIZES: [usize; 3] = [KIB, 16 * KIB, 1 << 20];
const LEVELS: [u8; 2] = [1, 6];
/// Distinct messages per payload kind and size, taken in turn.
const MESSAGES: usize = 8;
const RECIPIENTS: usize = 10_000;
/// The server's default compression level (`Config::compression_level`).
const SERVER_LEVEL: u8 = 1;

/// xorshift64*: deterministic pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for", "on", "are",
    "as", "with", "his", "they", "at", "be", "this", "have", "from", "or", "one", "had", "by",
    "word", "but", "not", "what", "all", "were", "we", "when", "your", "can", "said", "there",
    "use", "an", "each", "which", "she", "do", "how", "their", "if", "will", "up", "other",
    "about", "out", "many", "then", "them", "these", "so", "some", "her", "would", "make", "like",
    "him", "into", "time", "has", "look", "two", "more", "write", "go", "see", "number", "no",
    "way", "could", "people", "my", "than", "first", "water", "been", "call", "who", "oil", "its",
    "now", "find", "long", "down", "day", "did", "get", "come", "made", "may", "part", "meeting",
    "tomorrow", "deploy", "release", "server", "latency", "coffee", "weekend", "thanks", "lunch",
];
const ROOMS: &[&str] = &["lobby", "general", "random", "ops", "dev", "support"];

/// One JSON chat message as the server broadcasts it: `{"type":"message",...}`.
fn chat_message(rng: &mut Rng, seq: u64) -> String {
    let words = 4 + rng.below(20);
    let mut text = String::new();
    for i in 0..words {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(WORDS[rng.below(WORDS.len())]);
    }
    format!(
        r#"{{"type":"message","room":"{}","user":"user{:04}","id":{},"ts":{},"text":"{}"}}"#,
        ROOMS[rng.below(ROOMS.len())],
        rng.below(5000),
        seq,
        1_700_000_000_000u64 + seq * 137 + rng.below(100) as u64,
        text
    )
}

/// Text-like payload: newline-separated JSON chat messages, cut to exactly `len` bytes.
fn text_payload(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 256);
    let mut seq = rng.next() % 1_000_000;
    while v.len() < len {
        v.extend_from_slice(chat_message(rng, seq).as_bytes());
        v.push(b'\n');
        seq += 1;
    }
    v.truncate(len);
    v
}

/// Binary-like payload: pseudo-random bytes (incompressible).
fn binary_payload(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Binary,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Binary => "binary",
        }
    }

    /// A few distinct messages of this kind, each `len` bytes.
    fn messages(self, len: usize) -> Vec<Vec<u8>> {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ len as u64);
        (0..MESSAGES)
            .map(|_| match self {
                Kind::Text => text_payload(&mut rng, len),
                Kind::Binary => binary_payload(&mut rng, len),
            })
            .collect()
    }
}

const KINDS: [Kind; 2] = [Kind::Text, Kind::Binary];

/// Compresses `msgs` in order with one deflater (window 15, as negotiated by default).
fn compress_all(msgs: &[Vec<u8>], level: u8, takeover: bool) -> Vec<Vec<u8>> {
    let mut d = Deflater::new(level, 15);
    msgs.iter()
        .map(|m| {
            let mut out = Vec::new();
            assert!(d.compress_message(m, &mut out, !takeover));
            out
        })
        .collect()
}

fn takeover_name(takeover: bool) -> &'static str {
    if takeover {
        "takeover"
    } else {
        "no_takeover"
    }
}

/// Prints uncompressed / compressed for every kind, size and level.
fn print_ratios() {
    eprintln!("permessage-deflate compression ratio (uncompressed / compressed, window 15):");
    for kind in KINDS {
        for size in SIZES {
            let msgs = kind.messages(size);
            let total: usize = msgs.iter().map(Vec::len).sum();
            let mut line = format!("  {:<6} {:>8} B:", kind.name(), size);
            for level in LEVELS {
                for takeover in [false, true] {
                    let wire: usize = compress_all(&msgs, level, takeover)
                        .iter()
                        .map(Vec::len)
                        .sum();
                    line.push_str(&format!(
                        "  level {level} {}: {:.2}",
                        takeover_name(takeover),
                        total as f64 / wire as f64
                    ));
                }
            }
            eprintln!("{line}");
        }
    }
    for takeover in [false, true] {
        let msgs = chat_1k();
        let total: usize = msgs.iter().map(Vec::len).sum();
        let wire: usize = compress_all(&msgs, SERVER_LEVEL, takeover)
            .iter()
            .map(Vec::len)
            .sum();
        eprintln!(
            "  fan-out 1 KiB chat message at level {SERVER_LEVEL} {}: {} B on average, ratio {:.2}",
            takeover_name(takeover),
            wire / msgs.len(),
            total as f64 / wire as f64
        );
    }
    let mut rng = Rng(7);
    let chat = chat_message(&mut rng, 1);
    let mut wire = Vec::new();
    assert!(Deflater::new(SERVER_LEVEL, 15).compress_message(chat.as_bytes(), &mut wire, true));
    eprintln!(
        "  one chat message ({} B) at level {SERVER_LEVEL}: {} B, ratio {:.2}",
        chat.len(),
        wire.len(),
        chat.len() as f64 / wire.len() as f64
    );
}

fn compress(c: &mut Criterion) {
    print_ratios();
    let mut g = c.benchmark_group("deflate/compress");
    for kind in KINDS {
        for size in SIZES {
            let msgs = kind.messages(size);
            g.throughput(Throughput::Bytes(size as u64));
            for level in LEVELS {
                for takeover in [false, true] {
                    let id = BenchmarkId::new(
                        format!("{}/level{level}/{}", kind.name(), takeover_name(takeover)),
                        size,
                    );
                    let mut d = Deflater::new(level, 15);
                    let mut out = Vec::with_capacity(size + size / 16 + 64);
                    let mut next = 0;
                    g.bench_function(id, |b| {
                        b.iter(|| {
                            out.clear();
                            let ok = d.compress_message(&msgs[next], &mut out, !takeover);
                            next = (next + 1) % msgs.len();
                            black_box((ok, out.len()))
                        })
                    });
                }
            }
        }
    }
    g.finish();
}

fn decompress(c: &mut Criterion) {
    let mut g = c.benchmark_group("deflate/decompress");
    for kind in KINDS {
        for size in SIZES {
            let msgs = kind.messages(size);
            g.throughput(Throughput::Bytes(size as u64));
            for level in LEVELS {
                for takeover in [false, true] {
                    // Messages compressed in order with one context are inflated in the same
                    // cyclic order: the first refers to nothing before it, so each pass is
                    // consistent with the window the previous pass left behind.
                    let wire = compress_all(&msgs, level, takeover);
                    let id = BenchmarkId::new(
                        format!("{}/level{level}/{}", kind.name(), takeover_name(takeover)),
                        size,
                    );
                    let mut inflater = Inflater::default();
                    let mut out = Vec::with_capacity(size);
                    let mut next = 0;
                    g.bench_function(id, |b| {
                        b.iter(|| {
                            let r =
                                inflater.inflate_message(&wire[next], &mut out, size, !takeover);
                            debug_assert!(r.is_ok() && out == msgs[next]);
                            next = (next + 1) % wire.len();
                            black_box((r, out.len()))
                        })
                    });
                }
            }
        }
    }
    g.finish();
}

/// The 1 KiB chat-like messages broadcast in turn.
fn chat_1k() -> Vec<Vec<u8>> {
    let mut rng = Rng(42);
    (0..MESSAGES)
        .map(|i| {
            // Like the text payload, but one JSON message padded with text to 1 KiB.
            let mut m = chat_message(&mut rng, i as u64).into_bytes();
            m.truncate(m.len() - 2);
            while m.len() < KIB - 2 {
                m.push(b' ');
                m.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
            }
            m.truncate(KIB - 2);
            m.extend_from_slice(b"\"}");
            m
        })
        .collect()
}

fn fanout(c: &mut Criterion) {
    let msgs = chat_1k();
    let mut g = c.benchmark_group("deflate_fanout_10k");
    g.throughput(Throughput::Elements(RECIPIENTS as u64));

    let mut queues: Vec<VecDeque<Bytes>> = (0..RECIPIENTS)
        .map(|_| VecDeque::with_capacity(4))
        .collect();
    let mut next = 0;
    g.bench_function("plain", |b| {
        b.iter(|| {
            let m = &msgs[next];
            next = (next + 1) % msgs.len();
            let mut v = Vec::with_capacity(m.len() + 10);
            encode_frame(&mut v, OpCode::Text, 0, m);
            let frame = Bytes::from(v);
            for q in queues.iter_mut() {
                q.push_back(frame.clone());
            }
            for q in queues.iter_mut() {
                black_box(q.pop_front());
            }
        })
    });

    let mut shared = Deflater::new(SERVER_LEVEL, 15);
    let mut scratch = Vec::new();
    g.bench_function("compress_once", |b| {
        b.iter(|| {
            let m = &msgs[next];
            next = (next + 1) % msgs.len();
            scratch.clear();
            assert!(shared.compress_message(m, &mut scratch, true));
            let mut v = Vec::with_capacity(scratch.len() + 10);
            encode_frame(&mut v, OpCode::Text, RSV1, &scratch);
            let frame = Bytes::from(v);
            for q in queues.iter_mut() {
                q.push_back(frame.clone());
            }
            for q in queues.iter_mut() {
                black_box(q.pop_front());
            }
        })
    });

    let mut dedicated: Vec<Deflater> = (0..RECIPIENTS)
        .map(|_| Deflater::new(SERVER_LEVEL, 15))
        .collect();
    // ~0.2 s per iteration: 10 samples keep the group to a few seconds.
    g.sample_size(10);
    g.bench_function("per_recipient", |b| {
        b.iter(|| {
            let m = &msgs[next];
            next = (next + 1) % msgs.len();
            for (d, q) in dedicated.iter_mut().zip(queues.iter_mut()) {
                scratch.clear();
                assert!(d.compress_message(m, &mut scratch, false));
                let mut v = Vec::with_capacity(scratch.len() + 10);
                encode_frame(&mut v, OpCode::Text, RSV1, &scratch);
                q.push_back(Bytes::from(v));
            }
            for q in queues.iter_mut() {
                black_box(q.pop_front());
            }
        })
    });
    drop(dedicated);
    g.finish();
}

criterion_group!(benches, compress, decompress, fanout);
criterion_main!(benches);
