//! Fan-out of one message to 10,000 local recipients: encode once and queue the same shared
//! bytes for everyone (what the hub does) against encoding a frame per recipient.

use std::collections::VecDeque;

use bytes::Bytes;
use corecast::ws::frame::{encode_frame, OpCode};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const RECIPIENTS: usize = 10_000;

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_10k");
    g.throughput(Throughput::Elements(RECIPIENTS as u64));
    for size in [32usize, 1024, 16 << 10] {
        let payload = vec![b'a'; size];
        let mut shared_queues: Vec<VecDeque<Bytes>> = (0..RECIPIENTS)
            .map(|_| VecDeque::with_capacity(4))
            .collect();
        g.bench_with_input(BenchmarkId::new("encode_once", size), &payload, |b, p| {
            b.iter(|| {
                let mut v = Vec::with_capacity(p.len() + 10);
                encode_frame(&mut v, OpCode::Text, 0, p);
                let frame = Bytes::from(v);
                for q in shared_queues.iter_mut() {
                    q.push_back(frame.clone());
                }
                for q in shared_queues.iter_mut() {
                    black_box(q.pop_front());
                }
            })
        });
        let mut owned_queues: Vec<VecDeque<Vec<u8>>> = (0..RECIPIENTS)
            .map(|_| VecDeque::with_capacity(4))
            .collect();
        g.bench_with_input(BenchmarkId::new("per_recipient", size), &payload, |b, p| {
            b.iter(|| {
                for q in owned_queues.iter_mut() {
                    let mut v = Vec::with_capacity(p.len() + 10);
                    encode_frame(&mut v, OpCode::Text, 0, p);
                    q.push_back(v);
                }
                for q in owned_queues.iter_mut() {
                    black_box(q.pop_front());
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
