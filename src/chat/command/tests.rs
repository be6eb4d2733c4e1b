use super::*;
use crate::chat::json::Number;

fn ok(msg: &str) -> Command<'static> {
    ok_with(Limits::default(), msg)
}

/// Parses with a fresh parser; the command is leaked to `'static` to keep the tests short.
fn ok_with(limits: Limits, msg: &str) -> Command<'static> {
    let mut p = CommandParser::new(limits);
    let parsed = p.parse(msg.as_bytes());
    match parsed.result {
        Ok(cmd) => leak(cmd),
        Err(e) => panic!("{msg}: {e}"),
    }
}

fn leak(cmd: Command<'_>) -> Command<'static> {
    let s = |v: &str| -> &'static str { Box::leak(v.to_owned().into_boxed_str()) };
    match cmd {
        Command::Chat { room, content } => Command::Chat {
            room: s(room),
            content: s(content),
        },
        Command::Join { room, since } => Command::Join {
            room: s(room),
            since,
        },
        Command::Leave { room } => Command::Leave { room: s(room) },
        Command::Private { to, content } => Command::Private {
            to: s(to),
            content: s(content),
        },
        Command::Typing { room } => Command::Typing { room: s(room) },
        Command::RoomList => Command::RoomList,
        Command::UserList { room } => Command::UserList { room: s(room) },
        Command::History { room, limit } => Command::History {
            room: s(room),
            limit,
        },
        Command::Ping => Command::Ping,
    }
}

/// Parses a message that must fail; returns the code, reason and echoed id.
fn err(msg: &[u8]) -> (ErrorCode, &'static str, Option<OwnedId>) {
    err_with(Limits::default(), msg)
}

fn err_with(limits: Limits, msg: &[u8]) -> (ErrorCode, &'static str, Option<OwnedId>) {
    let mut p = CommandParser::new(limits);
    let parsed = p.parse(msg);
    match parsed.result {
        Ok(cmd) => panic!("{}: parsed as {cmd:?}", String::from_utf8_lossy(msg)),
        Err(e) => (e.code, e.reason, parsed.id.map(|i| i.to_owned_id())),
    }
}

fn id_of(msg: &str) -> Option<OwnedId> {
    let mut p = CommandParser::new(Limits::default());
    p.parse(msg.as_bytes()).id.map(|i| i.to_owned_id())
}

fn sid(s: &str) -> Option<OwnedId> {
    Some(OwnedId::Str(s.into()))
}

#[test]
fn chat() {
    assert_eq!(
        ok(r#"{"type":"chat","room":"backend","content":"hi","id":"c1"}"#),
        Command::Chat {
            room: "backend",
            content: "hi"
        }
    );
    assert_eq!(
        ok(r#"{"type":"chat","content":"hi"}"#),
        Command::Chat {
            room: "general",
            content: "hi"
        }
    );
    assert_eq!(
        ok(r#"{"content":"hi","room":null,"type":"chat"}"#),
        Command::Chat {
            room: "general",
            content: "hi"
        }
    );
}

#[test]
fn join_with_and_without_since() {
    let join = |since| Command::Join {
        room: "backend",
        since,
    };
    assert_eq!(ok(r#"{"type":"room.join","room":"backend"}"#), join(None));
    assert_eq!(
        ok(r#"{"type":"room.join","room":"backend","since":null}"#),
        join(None)
    );
    assert_eq!(
        ok(r#"{"type":"room.join","room":"backend","since":41}"#),
        join(Some(41))
    );
    assert_eq!(
        ok(r#"{"type":"room.join","room":"backend","since":0}"#),
        join(Some(0))
    );
    assert_eq!(
        ok(r#"{"type":"room.join","room":"backend","since":-0}"#),
        join(Some(0))
    );
    assert_eq!(
        ok(r#"{"type":"room.join","room":"backend","since":18446744073709551615}"#),
        join(Some(u64::MAX))
    );
}

#[test]
fn the_other_commands() {
    assert_eq!(
        ok(r#"{"type":"room.leave","room":"backend"}"#),
        Command::Leave { room: "backend" }
    );
    assert_eq!(
        ok(r#"{"type":"private","to":"auth0|123","content":"hi"}"#),
        Command::Private {
            to: "auth0|123",
            content: "hi"
        }
    );
    assert_eq!(
        ok(r#"{"type":"typing","room":"backend"}"#),
        Command::Typing { room: "backend" }
    );
    assert_eq!(ok(r#"{"type":"room.list"}"#), Command::RoomList);
    assert_eq!(
        ok(r#"{"type":"user.list","room":"backend"}"#),
        Command::UserList { room: "backend" }
    );
    assert_eq!(ok(r#"{"type":"ping"}"#), Command::Ping);
    assert_eq!(ok(" \t\r\n{ \"type\" : \"ping\" } \n"), Command::Ping);
}

#[test]
fn history_limits() {
    let h = |limit| Command::History {
        room: "backend",
        limit,
    };
    assert_eq!(ok(r#"{"type":"history","room":"backend"}"#), h(50));
    assert_eq!(
        ok(r#"{"type":"history","room":"backend","limit":null}"#),
        h(50)
    );
    assert_eq!(ok(r#"{"type":"history","room":"backend","limit":1}"#), h(1));
    assert_eq!(
        ok(r#"{"type":"history","room":"backend","limit":100}"#),
        h(100)
    );
    let small = Limits {
        max_history: 20,
        ..Limits::default()
    };
    assert_eq!(
        ok_with(small, r#"{"type":"history","room":"backend"}"#),
        h(20)
    );
    assert_eq!(
        ok_with(small, r#"{"type":"history","room":"backend","limit":20}"#),
        h(20)
    );
    let big = Limits {
        max_history: 1000,
        ..Limits::default()
    };
    assert_eq!(
        ok_with(big, r#"{"type":"history","room":"backend"}"#),
        h(50)
    );
    assert_eq!(
        ok_with(big, r#"{"type":"history","room":"backend","limit":1000}"#),
        h(1000)
    );
    let none = Limits {
        max_history: 0,
        ..Limits::default()
    };
    assert_eq!(
        ok_with(none, r#"{"type":"history","room":"backend"}"#),
        h(0)
    );
    // ... which round trips by leaving `limit` out.
    let mut out = Vec::new();
    h(0).write_json(None, &mut out);
    assert_eq!(out, br#"{"type":"history","room":"backend"}"#);
    let mut p = CommandParser::new(none);
    assert_eq!(p.parse(&out).result, Ok(h(0)));
}

#[test]
fn unknown_fields_are_ignored_whatever_their_value() {
    assert_eq!(
        ok(r#"{"x":{"type":"chat","room":5,"id":[]},"type":"ping","y":[1,{"a":null}],"z":-1.5e3}"#),
        Command::Ping
    );
    // Fields the command does not use are ignored too, even if ill-typed.
    assert_eq!(
        ok(r#"{"type":"ping","room":5,"content":{},"limit":-1,"since":"x"}"#),
        Command::Ping
    );
    assert_eq!(ok(r#"{"type":"room.list","to":7}"#), Command::RoomList);
}

#[test]
fn escapes_are_decoded_in_keys_and_values() {
    assert_eq!(ok(r#"{"ty\u0070e":"p\u0069ng"}"#), Command::Ping);
    assert_eq!(
        ok(r#"{"type":"chat","content":"a\"b\\c\/d\n\u0000\u2028\ud83d\ude00é😀"}"#),
        Command::Chat {
            room: "general",
            content: "a\"b\\c/d\n\0\u{2028}😀é😀"
        }
    );
}

#[test]
fn ids_of_both_kinds() {
    assert_eq!(id_of(r#"{"type":"ping","id":"c1"}"#), sid("c1"));
    assert_eq!(
        id_of(r#"{"type":"ping","id":"c\"\u2028"}"#),
        sid("c\"\u{2028}")
    );
    assert_eq!(id_of(r#"{"type":"ping","id":""}"#), sid(""));
    let num = |n| Some(OwnedId::Num(n));
    assert_eq!(id_of(r#"{"type":"ping","id":7}"#), num(Number::from_u64(7)));
    assert_eq!(
        id_of(r#"{"type":"ping","id":-0}"#),
        num(Number::from_u64(0))
    );
    assert_eq!(
        id_of(r#"{"type":"ping","id":-3}"#),
        num(Number::from_i64(-3))
    );
    assert_eq!(
        id_of(r#"{"type":"ping","id":1.50}"#),
        num(Number::from_f64(1.5).unwrap())
    );
    assert_eq!(
        id_of(r#"{"type":"ping","id":1e300}"#),
        num(Number::from_f64(1e300).unwrap())
    );
    // simd-json 0.14.3 alone reads this as -3321835.387007764 (see chat::tape).
    assert_eq!(
        id_of(r#"{"type":"ping","id":-95555555.755555522337}"#),
        num(Number::from_f64(-95_555_555.755_555_53).unwrap())
    );
    assert_eq!(id_of(r#"{"type":"ping","id":null}"#), None);
    assert_eq!(id_of(r#"{"type":"ping"}"#), None);
}

#[test]
fn ids_are_written_back_as_json() {
    let text = |msg: &str| {
        let mut p = CommandParser::new(Limits::default());
        let mut out = Vec::new();
        p.parse(msg.as_bytes()).id.unwrap().write(&mut out);
        String::from_utf8(out).unwrap()
    };
    assert_eq!(text(r#"{"id":"c\u0031\n"}"#), r#""c1\n""#);
    assert_eq!(
        text(r#"{"id":12345678901234567890}"#),
        "12345678901234567890"
    );
    assert_eq!(
        text(r#"{"id":-9223372036854775808}"#),
        "-9223372036854775808"
    );
    assert_eq!(text(r#"{"id":2.0}"#), "2.0");
    assert_eq!(text(r#"{"id":1E2}"#), "100.0");
    assert_eq!(text(r#"{"id":0.1}"#), "0.1");
}

#[test]
fn bad_json() {
    let cases: &[&[u8]] = &[
        b"",
        b"   ",
        b"hello",
        b"{",
        b"{\"type\":\"ping\"",
        b"{\"type\":\"ping\"}x",
        b"{\"type\":\"ping\"}{}",
        b"{'type':'ping'}",
        b"{\"type\":\"ping\",}",
        b"{\"type\":\"ping\" \"id\":1}",
        b"{\"type\":\"chat\",\"content\":\"a\tb\"}",
        b"{\"type\":\"chat\",\"content\":\"\\ud800\"}",
        b"{\"type\":\"chat\",\"content\":\"\\ud800x\"}",
        b"{\"type\":\"chat\",\"content\":\"\\udc00\"}",
        b"{\"type\":\"chat\",\"content\":\"\\x\"}",
        b"{\"type\":\"chat\",\"content\":\"\xff\"}",
        b"{\"type\":\"ping\",\"n\":1e400}",
        b"{\"type\":\"ping\",\"n\":18446744073709551616}",
        b"{\"type\":\"ping\",\"n\":01}",
        b"{\"type\":\"ping\",\"n\":NaN}",
        b"\xef\xbb\xbf{\"type\":\"ping\"}",
        // simd-json alone would read these as {"type":"ping","id":12} and [..].
        b"{\"type\":\"ping\",\"id\":12\x0034}",
        b"{\"type\":\"ping\",\"id\":1844674407\x00\x00\x003709551615}",
        b"{\"type\":\"ping\",\"x\":[true\x00,false]}",
        b"{\"type\":\"ping\"}\x00",
        // ... and these as {"type":"ping","id":1844674407370955161}.
        b"{\"type\":\"ping\",\"id\":1844674407370955161A5}",
        b"{\"type\":\"ping\",\"id\":1844674407370955161.5x}",
    ];
    for &msg in cases {
        assert_eq!(
            err(msg),
            (ErrorCode::BadJson, "message is not valid json", None),
            "{}",
            String::from_utf8_lossy(msg)
        );
    }
}

#[test]
fn json_that_is_not_an_object() {
    for msg in [
        "[]",
        "[{\"type\":\"ping\",\"id\":1}]",
        "\"ping\"",
        "1",
        "null",
        "true",
    ] {
        assert_eq!(
            err(msg.as_bytes()),
            (ErrorCode::BadJson, "message must be a json object", None),
            "{msg}"
        );
    }
}

#[test]
fn bad_ids_are_not_echoed() {
    let bad_id = (
        ErrorCode::BadRequest,
        "id must be a string or a number",
        None,
    );
    assert_eq!(err(br#"{"type":"ping","id":true}"#), bad_id);
    assert_eq!(err(br#"{"type":"ping","id":{"a":1}}"#), bad_id);
    assert_eq!(err(br#"{"type":"ping","id":["c1"]}"#), bad_id);
    assert_eq!(
        err(br#"{"type":"ping","id":"a","id":"b"}"#),
        (ErrorCode::BadRequest, "duplicate field: id", None)
    );
}

#[test]
fn bad_request_echoes_the_id() {
    let cases: &[(&str, &str)] = &[
        (r#"{}"#, "missing field: type"),
        (r#"{"type":null}"#, "missing field: type"),
        (r#"{"type":5}"#, "type must be a string"),
        (r#"{"type":["chat"]}"#, "type must be a string"),
        (r#"{"type":"Chat"}"#, "unknown type"),
        (r#"{"type":""}"#, "unknown type"),
        (r#"{"type":"join"}"#, "unknown type"),
        (r#"{"type":"ping","type":"ping"}"#, "duplicate field"),
        (
            r#"{"type":"chat","content":"a","content":"b"}"#,
            "duplicate field",
        ),
        (r#"{"type":"chat"}"#, "missing field: content"),
        (
            r#"{"type":"chat","content":null}"#,
            "missing field: content",
        ),
        (r#"{"type":"chat","content":5}"#, "content must be a string"),
        (r#"{"type":"chat","content":""}"#, "content is empty"),
        (
            r#"{"type":"chat","room":5,"content":"hi"}"#,
            "room must be a string",
        ),
        (
            r#"{"type":"chat","room":"","content":"hi"}"#,
            "invalid room name",
        ),
        (
            r#"{"type":"chat","room":"a b","content":"hi"}"#,
            "invalid room name",
        ),
        (r#"{"type":"room.join"}"#, "missing field: room"),
        (
            r#"{"type":"room.join","room":true}"#,
            "room must be a string",
        ),
        (r#"{"type":"room.join","room":"é"}"#, "invalid room name"),
        (r#"{"type":"room.leave","room":"a/b"}"#, "invalid room name"),
        (r#"{"type":"typing"}"#, "missing field: room"),
        (r#"{"type":"user.list","room":{}}"#, "room must be a string"),
        (r#"{"type":"history"}"#, "missing field: room"),
        (
            r#"{"type":"room.join","room":"r","since":-1}"#,
            "since must be a non-negative integer",
        ),
        (
            r#"{"type":"room.join","room":"r","since":1.5}"#,
            "since must be a non-negative integer",
        ),
        (
            r#"{"type":"room.join","room":"r","since":1.0}"#,
            "since must be a non-negative integer",
        ),
        (
            r#"{"type":"room.join","room":"r","since":"41"}"#,
            "since must be a non-negative integer",
        ),
        (
            r#"{"type":"room.join","room":"r","since":[]}"#,
            "since must be a non-negative integer",
        ),
        (
            r#"{"type":"room.join","room":"r","since":true}"#,
            "since must be a non-negative integer",
        ),
        (r#"{"type":"private","content":"hi"}"#, "missing field: to"),
        (
            r#"{"type":"private","to":7,"content":"hi"}"#,
            "to must be a string",
        ),
        (
            r#"{"type":"private","to":"","content":"hi"}"#,
            "invalid user id",
        ),
        (
            r#"{"type":"private","to":"a\nb","content":"hi"}"#,
            "invalid user id",
        ),
        (
            r#"{"type":"private","to":"vali"}"#,
            "missing field: content",
        ),
    ];
    let limit = "limit must be an integer from 1 to the history size";
    let limits: &[&str] = &["0", "101", "-1", "2.0", "\"5\"", "true", "[]", "4294967297"];
    for (msg, reason) in cases
        .iter()
        .copied()
        .chain(limits.iter().map(|l| -> (&str, &str) {
            (
                Box::leak(format!(r#"{{"type":"history","room":"r","limit":{l}}}"#).into()),
                limit,
            )
        }))
    {
        // Without an id, and with one of each kind added at the end.
        assert_eq!(
            err(msg.as_bytes()),
            (ErrorCode::BadRequest, reason, None),
            "{msg}"
        );
        let base = msg.strip_suffix('}').unwrap();
        let sep = if base.len() > 1 { "," } else { "" };
        let with_str = format!(r#"{base}{sep}"id":"x1"}}"#);
        assert_eq!(
            err(with_str.as_bytes()),
            (ErrorCode::BadRequest, reason, sid("x1")),
            "{with_str}"
        );
        let with_num = format!(r#"{base}{sep}"id":42}}"#);
        assert_eq!(
            err(with_num.as_bytes()),
            (
                ErrorCode::BadRequest,
                reason,
                Some(OwnedId::Num(Number::from_u64(42)))
            ),
            "{with_num}"
        );
    }
    let small = Limits {
        max_history: 20,
        ..Limits::default()
    };
    assert_eq!(
        err_with(
            small,
            br#"{"type":"history","room":"r","limit":21,"id":"h"}"#
        ),
        (ErrorCode::BadRequest, limit, sid("h"))
    );
    let none = Limits {
        max_history: 0,
        ..Limits::default()
    };
    assert_eq!(
        err_with(none, br#"{"type":"history","room":"r","limit":1}"#),
        (ErrorCode::BadRequest, limit, None)
    );
}

#[test]
fn room_and_user_limits() {
    let room64 = "r".repeat(64);
    assert_eq!(
        ok(&format!(r#"{{"type":"typing","room":"{room64}"}}"#)),
        Command::Typing {
            room: Box::leak(room64.into_boxed_str())
        }
    );
    let room65 = "r".repeat(65);
    assert_eq!(
        err(format!(r#"{{"type":"typing","room":"{room65}"}}"#).as_bytes()),
        (ErrorCode::BadRequest, "invalid room name", None)
    );
    let to = "u".repeat(129);
    assert_eq!(
        err(format!(r#"{{"type":"private","to":"{to}","content":"x"}}"#).as_bytes()),
        (ErrorCode::BadRequest, "invalid user id", None)
    );
}

#[test]
fn too_long_counts_unicode_scalar_values() {
    let chat = |content: &str| format!(r#"{{"type":"chat","content":"{content}","id":"t"}}"#);
    let too_long = (
        ErrorCode::TooLong,
        "content is longer than the limit",
        sid("t"),
    );
    assert!(matches!(ok(&chat(&"a".repeat(2000))), Command::Chat { .. }));
    assert_eq!(err(chat(&"a".repeat(2001)).as_bytes()), too_long);
    // 2000 non-BMP characters: 8000 bytes, 4000 UTF-16 units, 2000 characters.
    assert!(matches!(
        ok(&chat(&"😀".repeat(2000))),
        Command::Chat { .. }
    ));
    assert_eq!(err(chat(&"😀".repeat(2001)).as_bytes()), too_long);
    // Escapes count as the character they decode to.
    assert!(matches!(
        ok(&chat(&"\\u00e9".repeat(2000))),
        Command::Chat { .. }
    ));
    assert_eq!(err(chat(&"\\n".repeat(2001)).as_bytes()), too_long);
    let private = format!(
        r#"{{"type":"private","to":"v","content":"{}"}}"#,
        "a".repeat(2001)
    );
    assert_eq!(
        err(private.as_bytes()),
        (ErrorCode::TooLong, too_long.1, None)
    );
    let tight = Limits {
        max_content_chars: 3,
        ..Limits::default()
    };
    assert_eq!(
        ok_with(tight, &chat("abc")),
        Command::Chat {
            room: "general",
            content: "abc"
        }
    );
    assert_eq!(err_with(tight, chat("abcd").as_bytes()), too_long);
}

#[test]
fn bad_request_is_reported_before_too_long() {
    let long = "a".repeat(2001);
    let msg = format!(r#"{{"type":"chat","room":"a b","content":"{long}"}}"#);
    assert_eq!(err(msg.as_bytes()).1, "invalid room name");
    let msg = format!(r#"{{"type":"private","to":"","content":"{long}"}}"#);
    assert_eq!(err(msg.as_bytes()).1, "invalid user id");
}

#[test]
fn type_strings() {
    let all = [
        Command::Chat {
            room: "r",
            content: "c",
        },
        Command::Join {
            room: "r",
            since: None,
        },
        Command::Leave { room: "r" },
        Command::Private {
            to: "u",
            content: "c",
        },
        Command::Typing { room: "r" },
        Command::RoomList,
        Command::UserList { room: "r" },
        Command::History {
            room: "r",
            limit: 5,
        },
        Command::Ping,
    ];
    let names: Vec<_> = all.iter().map(Command::type_str).collect();
    assert_eq!(
        names,
        [
            "chat",
            "room.join",
            "room.leave",
            "private",
            "typing",
            "room.list",
            "user.list",
            "history",
            "ping"
        ]
    );
}

#[test]
fn write_json_client_form() {
    let text = |cmd: Command<'_>, id: Option<Id<'_>>| {
        let mut out = Vec::new();
        cmd.write_json(id.as_ref(), &mut out);
        String::from_utf8(out).unwrap()
    };
    assert_eq!(
        text(
            Command::Chat {
                room: "backend",
                content: "hi"
            },
            Some(Id::Str("c1"))
        ),
        r#"{"type":"chat","room":"backend","content":"hi","id":"c1"}"#
    );
    assert_eq!(
        text(
            Command::Join {
                room: "backend",
                since: Some(41)
            },
            None
        ),
        r#"{"type":"room.join","room":"backend","since":41}"#
    );
    assert_eq!(
        text(
            Command::Private {
                to: "vali",
                content: "hi"
            },
            Some(Id::Num(Number::from_u64(1)))
        ),
        r#"{"type":"private","to":"vali","content":"hi","id":1}"#
    );
    assert_eq!(
        text(
            Command::History {
                room: "backend",
                limit: 50
            },
            None
        ),
        r#"{"type":"history","room":"backend","limit":50}"#
    );
    assert_eq!(text(Command::Ping, None), r#"{"type":"ping"}"#);
}

#[test]
fn write_json_round_trips() {
    let tricky = "\"\\/\u{0}\u{1f}\n\r\t\u{8}\u{c}\u{7f}\u{2028}\u{2029}😀𝄞 é";
    let commands = [
        Command::Chat {
            room: "general",
            content: tricky,
        },
        Command::Chat {
            room: "a.b-c_9",
            content: "x",
        },
        Command::Join {
            room: "backend",
            since: None,
        },
        Command::Join {
            room: "backend",
            since: Some(u64::MAX),
        },
        Command::Leave { room: "backend" },
        Command::Private {
            to: "auth0|\u{2028}é",
            content: tricky,
        },
        Command::Typing { room: "backend" },
        Command::RoomList,
        Command::UserList { room: "backend" },
        Command::History {
            room: "backend",
            limit: 1,
        },
        Command::History {
            room: "backend",
            limit: 100,
        },
        Command::Ping,
    ];
    let ids = [
        None,
        Some(Id::Str(tricky)),
        Some(Id::Str("")),
        Some(Id::Num(Number::from_u64(u64::MAX))),
        Some(Id::Num(Number::from_i64(i64::MIN))),
        Some(Id::Num(Number::from_f64(-0.0).unwrap())),
        Some(Id::Num(Number::from_f64(5e-324).unwrap())),
        Some(Id::Num(Number::from_f64(1.0).unwrap())),
    ];
    let mut p = CommandParser::new(Limits::default());
    for cmd in commands {
        for id in ids {
            let mut out = Vec::new();
            cmd.write_json(id.as_ref(), &mut out);
            let back = p.parse(&out);
            assert_eq!(
                (back.result, back.id),
                (Ok(cmd), id),
                "{}",
                String::from_utf8_lossy(&out)
            );
        }
    }
}

#[test]
fn one_parser_many_messages() {
    let mut p = CommandParser::with_capacity(Limits::default(), 16);
    let big = format!(
        r#"{{"type":"chat","content":"{}","pad":"{}"}}"#,
        "a".repeat(2000),
        "p".repeat(9000)
    );
    for round in 0..3 {
        assert_eq!(
            p.parse(br#"{"type":"ping","id":1}"#).result,
            Ok(Command::Ping)
        );
        assert_eq!(
            p.parse(b"{oops").result.unwrap_err().code,
            ErrorCode::BadJson
        );
        let r = p.parse(big.as_bytes());
        assert!(
            matches!(r.result, Ok(Command::Chat { content, .. }) if content.len() == 2000),
            "{round}"
        );
        assert_eq!(
            p.parse(br#"{"type":"room.leave","room":"x"}"#).result,
            Ok(Command::Leave { room: "x" })
        );
        assert_eq!(p.parse(b"").result.unwrap_err().code, ErrorCode::BadJson);
    }
    assert_eq!(p.limits(), Limits::default());
}

#[test]
fn owned_ids() {
    let id = Id::Str("abc");
    let owned = id.to_owned_id();
    assert_eq!(owned.as_id(), id);
    let n = Id::Num(Number::from_i64(-1));
    assert_eq!(n.to_owned_id().as_id(), n);
}

#[test]
fn a_parser_can_move_to_its_worker_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<CommandParser>();
    assert_send::<OwnedId>();
}
