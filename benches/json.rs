//! Parsing a chat command: simd-json (borrowed, in place) against serde_json, both into the
//! same typed struct; then the chat layer's own `CommandParser` (simd-json tape, reused
//! buffers, validation included) on the protocol's messages.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // fields are read by black_box only
struct Command<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    room: Option<&'a str>,
    to: Option<&'a str>,
    text: Option<std::borrow::Cow<'a, str>>,
    id: Option<u64>,
}

fn commands() -> Vec<(&'static str, String)> {
    vec![
        (
            "join",
            r#"{"type":"join","room":"lobby","id":1}"#.to_string(),
        ),
        (
            "send_short",
            r#"{"type":"send","room":"lobby","text":"hello everyone","id":42}"#.to_string(),
        ),
        (
            "send_1k",
            format!(
                r#"{{"type":"send","room":"general","text":"{}","id":7}}"#,
                "lorem ipsum ".repeat(85)
            ),
        ),
        (
            "private",
            r#"{"type":"private","to":"user-1234","text":"hi \u00e9 there","id":9}"#.to_string(),
        ),
    ]
}

fn json(c: &mut Criterion) {
    let mut g = c.benchmark_group("json_command");
    for (name, cmd) in commands() {
        g.throughput(Throughput::Bytes(cmd.len() as u64));
        g.bench_with_input(BenchmarkId::new("serde_json", name), &cmd, |b, cmd| {
            b.iter(|| {
                let c: Command<'_> = serde_json::from_str(cmd).expect("valid json");
                black_box(c.id);
            })
        });
        // simd-json parses in place: each iteration copies the message into a reused buffer,
        // as the server would parse the (already owned) payload of a received frame.
        let mut buf = Vec::with_capacity(cmd.len() + 64);
        g.bench_with_input(BenchmarkId::new("simd_json", name), &cmd, |b, cmd| {
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(cmd.as_bytes());
                let c: Command<'_> = simd_json::from_slice(&mut buf).expect("valid json");
                black_box(c.id);
            })
        });
        // What a worker would do: keep simd-json's scratch buffers between messages.
        let mut scratch = simd_json::Buffers::new(2048);
        g.bench_with_input(
            BenchmarkId::new("simd_json_reused_buffers", name),
            &cmd,
            |b, cmd| {
                b.iter(|| {
                    buf.clear();
                    buf.extend_from_slice(cmd.as_bytes());
                    let c: Command<'_> =
                        simd_json::serde::from_slice_with_buffers(&mut buf, &mut scratch)
                            .expect("valid json");
                    black_box(c.id);
                })
            },
        );
    }
    g.finish();
}

/// The chat layer's parser on protocol messages (parse + validate, no allocation once warm).
fn chat_parser(c: &mut Criterion) {
    use corecast::chat::command::{CommandParser, Limits};
    let msgs = [
        (
            "chat_short",
            r#"{"type":"chat","room":"lobby","content":"hello everyone","id":"c42"}"#.to_string(),
        ),
        (
            "chat_1k",
            format!(
                r#"{{"type":"chat","room":"general","content":"{}","id":7}}"#,
                "lorem ipsum ".repeat(85)
            ),
        ),
        (
            "private",
            r#"{"type":"private","to":"user-1234","content":"hi \u00e9 there","id":9}"#.to_string(),
        ),
        (
            "join_since",
            r#"{"type":"room.join","room":"lobby","since":41,"id":1}"#.to_string(),
        ),
        (
            "bad_request",
            r#"{"type":"chat","room":"no spaces","content":"x","id":2}"#.to_string(),
        ),
    ];
    let mut g = c.benchmark_group("chat_command_parser");
    let mut parser = CommandParser::new(Limits::default());
    for (name, msg) in msgs {
        g.throughput(Throughput::Bytes(msg.len() as u64));
        g.bench_with_input(BenchmarkId::new("CommandParser", name), &msg, |b, msg| {
            b.iter(|| black_box(parser.parse(msg.as_bytes()).result.is_ok()))
        });
    }
    g.finish();
}

criterion_group!(benches, json, chat_parser);
criterion_main!(benches);
