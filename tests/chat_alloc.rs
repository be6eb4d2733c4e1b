//! Heap allocations of the chat protocol's hot path, counted by a global allocator: parsing a
//! client message with a warmed-up `CommandParser`, and encoding server messages into a reused
//! buffer. The target is zero for both.
//!
//! One test function only, so that no other test thread allocates while it counts.
//! `cargo test --test chat_alloc -- --nocapture` prints the figures.

// A global allocator cannot be written without `unsafe impl GlobalAlloc`; it only forwards.
#![allow(unsafe_code)]
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use corecast::chat::command::{Command, CommandParser, Id, Limits};
use corecast::chat::error::ErrorCode;
use corecast::chat::json::Number;
use corecast::chat::wire::{self, RoomInfo};

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

fn messages() -> Vec<Vec<u8>> {
    let long = "lorem ipsum \\u00e9 \\n 😀 ".repeat(80);
    [
        r#"{"type":"chat","room":"backend","content":"hi","id":"c1"}"#.to_string(),
        format!(r#"{{"type":"chat","content":"{long}","id":42}}"#),
        r#"{"type":"room.join","room":"backend","since":41,"id":"j"}"#.to_string(),
        r#"{"type":"room.leave","room":"backend"}"#.to_string(),
        r#"{"type":"private","to":"auth0|123","content":"hi \u00e9 there","id":"p1"}"#.to_string(),
        r#"{"type":"typing","room":"backend"}"#.to_string(),
        r#"{"type":"room.list"}"#.to_string(),
        r#"{"type":"user.list","room":"backend","id":1.5}"#.to_string(),
        r#"{"type":"history","room":"backend","limit":50}"#.to_string(),
        r#"{"type":"ping","extra":{"nested":[1,2,{"deep":null}]}}"#.to_string(),
        // Refusals allocate nothing either.
        r#"{"type":"chat""#.to_string(),
        r#"[1,2,3]"#.to_string(),
        r#"{"type":"nope","id":"x"}"#.to_string(),
        format!(r#"{{"type":"chat","content":"{}"}}"#, "a".repeat(2001)),
        format!(
            r#"{{"type":"chat","pad":"{}","content":"x"}}"#,
            "p".repeat(3900)
        ),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

fn count(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.load(Relaxed);
    f();
    ALLOCS.load(Relaxed) - before
}

#[test]
fn hot_path_allocates_nothing() {
    let msgs = messages();
    assert!(msgs.iter().all(|m| m.len() <= 4096));
    let mut parser = CommandParser::new(Limits::default());

    // A cold parser's first message, for the record.
    let first = count(|| {
        std::hint::black_box(parser.parse(&msgs[0]).result.is_ok());
    });
    // Warm up: every message once, so every buffer reaches its size.
    for m in &msgs {
        std::hint::black_box(parser.parse(m).result.is_ok());
    }

    const ROUNDS: u64 = 200;
    let mut outcomes = [0u64; 2];
    let parsing = count(|| {
        for _ in 0..ROUNDS {
            for m in &msgs {
                let parsed = parser.parse(m);
                outcomes[usize::from(parsed.result.is_ok())] += 1;
                std::hint::black_box(&parsed);
            }
        }
    });
    let parsed = ROUNDS * msgs.len() as u64;
    assert_eq!(outcomes, [4 * ROUNDS, 11 * ROUNDS], "refused, accepted");

    let mut out = Vec::with_capacity(16 * 1024);
    let encode = |out: &mut Vec<u8>| {
        out.clear();
        wire::chat(
            out,
            "backend",
            "ali",
            "hi \"there\"\n\u{2028}",
            42,
            1_796_083_200_123,
        );
        wire::private(out, "ali", "vali", "hi", 1_796_083_200_123);
        wire::ack_seq(out, &Id::Str("c1"), 42);
        wire::ack_delivered(out, &Id::Num(Number::from_f64(1.5).unwrap()), 2);
        wire::error(
            out,
            ErrorCode::NotInRoom,
            "not a member",
            Some(&Id::Str("x")),
        );
        wire::presence_join(out, "backend", "ali");
        wire::room_list(
            out,
            [RoomInfo {
                room: "general",
                members: 3,
                joined: true,
            }],
        );
        wire::user_list(out, "backend", ["ali", "vali"]);
        wire::pong(out);
        Command::Chat {
            room: "general",
            content: "x",
        }
        .write_json(Some(&Id::Str("c")), out);
    };
    encode(&mut out);
    let encoding = count(|| {
        for _ in 0..ROUNDS {
            encode(&mut out);
            std::hint::black_box(&out);
        }
    });

    println!(
        "chat_alloc: first parse on a new parser {first} allocations; then {parsing} allocations \
         in {parsed} parses ({:.3}/parse); {encoding} allocations in {} encoder calls",
        parsing as f64 / parsed as f64,
        ROUNDS * 10
    );
    assert_eq!(parsing, 0, "allocations while parsing {parsed} messages");
    assert_eq!(encoding, 0, "allocations while encoding");
}
