//! Fuzzes the chat layer's client message parser (`corecast::chat::command`).
//!
//! Input layout:
//! - byte 0: limits. Bits 0-1 pick `max_content_chars` (2000, 0, 3, 64); bits 2-3 pick
//!   `max_history` (100, 0, 1, 1000).
//! - everything else: one `/ws` text message (any bytes; the reactor would refuse non-UTF-8,
//!   the parser must not care).
//!
//! Checks, for every input:
//! - no panic; exactly one outcome (by type) and, for an error, one of the codes the parser
//!   may produce (`bad_json`, `bad_request`, `too_long`), with a reason and without an id for
//!   `bad_json`;
//! - a parser reused across inputs gives the same outcome as a fresh one;
//! - serde_json as the strict reference: what it rejects (other than for nesting deeper than
//!   its recursion limit) is `bad_json`; what we accept it parses as an object whose `type`,
//!   fields and `id` hold the same values;
//! - a command re-serialized with `Command::write_json` parses back to the same command and id
//!   (the writer's escaping of quotes, controls, U+2028/2029 and non-BMP characters), and an
//!   error or ack echoing the id is valid JSON holding the same id.

#![no_main]

use std::cell::RefCell;

use corecast::chat::command::{Command, CommandParser, Id, Limits, Parsed};
use corecast::chat::error::ErrorCode;
use corecast::chat::validate::{exceeds_chars, is_room_name, is_user_id};
use corecast::chat::wire;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

thread_local! {
    /// One parser per limits choice, reused across inputs as a worker would.
    static REUSED: RefCell<Vec<(Limits, CommandParser)>> = const { RefCell::new(Vec::new()) };
}

fn limits(b: u8) -> Limits {
    Limits {
        max_content_chars: [2000, 0, 3, 64][usize::from(b & 3)],
        max_history: [100, 0, 1, 1000][usize::from(b >> 2 & 3)],
    }
}

/// The id as serde_json would read it back, for comparison.
fn id_value(id: &Id<'_>) -> Value {
    let mut out = Vec::new();
    id.write(&mut out);
    serde_json::from_slice(&out).expect("an id is written as valid json")
}

/// Numbers compare by value (serde_json may read `-0` or `1.0` as another variant).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        _ => a == b,
    }
}

fn outcome_eq(a: &Parsed<'_>, b: &Parsed<'_>) -> bool {
    a.result == b.result && a.id == b.id
}

/// Checks what serde_json sees against our command.
fn check_against_serde(msg: &[u8], parsed: &Parsed<'_>, limits: &Limits) {
    let reference: Result<Value, _> = serde_json::from_slice(msg);
    let value = match reference {
        Err(e) => {
            let deep = e.to_string().contains("recursion limit");
            if !deep {
                assert_eq!(
                    parsed.result.map_err(|e| e.code),
                    Err(ErrorCode::BadJson),
                    "serde_json rejects it: {e}"
                );
            }
            return;
        }
        Ok(v) => v,
    };
    if matches!(parsed.result, Err(e) if e.code == ErrorCode::BadJson) {
        // simd-json refuses integers beyond u64/i64 that serde_json reads as floats; anything
        // else it accepts must be an object for us to accept it.
        if let Value::Object(_) = value {
            assert!(
                msg.iter().any(u8::is_ascii_digit),
                "valid json object refused as bad_json"
            );
        }
        return;
    }
    let obj = value.as_object().expect("accepted messages are objects");
    match (&parsed.id, obj.get("id")) {
        (Some(id), Some(v)) => assert!(same_value(&id_value(id), v), "id differs: {v}"),
        (None, None | Some(Value::Null)) => {}
        (None, Some(_)) => assert!(parsed.result.is_err(), "valid command lost its id"),
        (Some(_), None) => panic!("id from nowhere"),
    }
    let Ok(cmd) = parsed.result else { return };
    assert_eq!(
        obj.get("type").and_then(Value::as_str),
        Some(cmd.type_str())
    );
    let field = |k: &str| obj.get(k).and_then(Value::as_str);
    match cmd {
        Command::Chat { room, content } => {
            assert_eq!(field("room").unwrap_or("general"), room);
            assert_eq!(field("content"), Some(content));
        }
        Command::Private { to, content } => {
            assert_eq!(field("to"), Some(to));
            assert!(is_user_id(to));
            assert_eq!(field("content"), Some(content));
        }
        Command::Join { room, since } => {
            assert_eq!(field("room"), Some(room));
            match (since, obj.get("since")) {
                (Some(s), Some(v)) => assert!(same_value(v, &Value::from(s)), "since {v}"),
                (None, None | Some(Value::Null)) => {}
                other => panic!("since differs: {other:?}"),
            }
        }
        Command::History { room, limit } => {
            assert_eq!(field("room"), Some(room));
            assert!(limit <= limits.max_history);
            match obj.get("limit") {
                None | Some(Value::Null) => assert!(limit <= 50),
                Some(v) => assert!(same_value(v, &Value::from(limit)), "limit {v}"),
            }
        }
        Command::Leave { room } | Command::Typing { room } | Command::UserList { room } => {
            assert_eq!(field("room"), Some(room));
        }
        Command::RoomList | Command::Ping => {}
    }
    if let Command::Chat { content, .. } | Command::Private { content, .. } = cmd {
        assert!(!content.is_empty());
        assert!(!exceeds_chars(content, limits.max_content_chars));
    }
    if let Command::Chat { room, .. }
    | Command::Join { room, .. }
    | Command::Leave { room }
    | Command::Typing { room }
    | Command::UserList { room }
    | Command::History { room, .. } = cmd
    {
        assert!(is_room_name(room));
    }
}

/// Round trips through the server's writer.
fn check_round_trip(parsed: &Parsed<'_>, limits: Limits) {
    let mut out = Vec::new();
    match parsed.result {
        Ok(cmd) => {
            cmd.write_json(parsed.id.as_ref(), &mut out);
            let mut fresh = CommandParser::new(limits);
            let back = fresh.parse(&out);
            assert!(
                outcome_eq(&back, parsed),
                "round trip of {}: {:?} became {:?}",
                String::from_utf8_lossy(&out),
                (parsed.result, parsed.id),
                (back.result, back.id)
            );
            out.clear();
            if let Some(id) = &parsed.id {
                wire::ack(&mut out, id);
            } else {
                wire::pong(&mut out);
            }
        }
        Err(e) => wire::command_error(&mut out, &e, parsed.id.as_ref()),
    }
    let v: Value = serde_json::from_slice(&out).expect("server messages are valid json");
    match (&parsed.id, v.get("id")) {
        (Some(id), Some(echo)) => assert!(same_value(&id_value(id), echo)),
        (None, None) => {}
        _ => panic!("id not echoed exactly: {v}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, msg)) = data.split_first() else {
        return;
    };
    let limits = limits(cfg);
    let mut fresh = CommandParser::new(limits);
    let parsed = fresh.parse(msg);

    if let Err(e) = parsed.result {
        assert!(
            matches!(
                e.code,
                ErrorCode::BadJson | ErrorCode::BadRequest | ErrorCode::TooLong
            ),
            "{e}"
        );
        assert!(!e.reason.is_empty());
        if e.code == ErrorCode::BadJson {
            assert!(parsed.id.is_none());
        }
    }

    REUSED.with(|reused| {
        let mut reused = reused.borrow_mut();
        let i = match reused.iter().position(|(l, _)| *l == limits) {
            Some(i) => i,
            None => {
                reused.push((limits, CommandParser::with_capacity(limits, 64)));
                reused.len() - 1
            }
        };
        let again = reused[i].1.parse(msg);
        assert!(outcome_eq(&again, &parsed), "a reused parser disagrees");
    });

    check_against_serde(msg, &parsed, &limits);
    check_round_trip(&parsed, limits);
});
