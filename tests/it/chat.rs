//! `/ws` chat protocol, one connection at a time: the connect sequence, the refusal of a bad
//! `?username=`, every error code the server produces, the ack rule (one answer per `id`,
//! string and number ids, only errors without an id), and the limits that close a connection
//! (1009 for a message over `--chat-max-message`, 1008 "rate limit").

use serde_json::{json, Value};
use tungstenite::Message;

use crate::chat_client::{assert_error, connect, connect_all, is_answer, open, strip_timestamp};
use crate::harness::{frame, upgrade_request, Raw, Server, CONT, TEXT};

/// Flags that keep the message rate out of the way of tests that send many commands.
const NO_RATE_LIMIT: [&str; 4] = ["--msg-rate", "65535", "--msg-burst", "65535"];

#[test]
fn connect_sends_welcome_then_the_room_list() {
    let server = Server::start(&[]);
    let (mut ali, list) = connect(server.addr, "ali");
    assert_eq!(
        list,
        json!({"type":"room.list","rooms":[{"room":"general","members":1,"joined":true}]})
    );
    ali.expect_nothing();

    let (mut bob, list) = connect(server.addr, "bob");
    assert_eq!(
        list,
        json!({"type":"room.list","rooms":[{"room":"general","members":2,"joined":true}]})
    );
    bob.expect_nothing();
    // ali hears of bob; bob does not hear of himself.
    assert_eq!(
        ali.drain(),
        vec![
            json!({"type":"room.join","room":"general","from":"system","user":"bob","content":"bob joined"})
        ]
    );

    // Rooms are sorted by name, counted in users, and `joined` is per connection.
    ali.join("zeta");
    ali.join("alpha");
    bob.join("alpha");
    let (_ali2, list) = connect(server.addr, "ali");
    assert_eq!(
        list,
        json!({"type":"room.list","rooms":[
            {"room":"alpha","members":2,"joined":false},
            {"room":"general","members":2,"joined":true},
            {"room":"zeta","members":1,"joined":false},
        ]})
    );
    // A second device of ali is not news to anyone.
    assert!(bob
        .drain()
        .iter()
        .all(|m| m["type"] != "room.join" || m["room"] != "general"));
}

#[test]
fn missing_or_invalid_username_is_400_before_the_upgrade() {
    let server = Server::start(&[]);
    let long = format!("/ws?username={}", "a".repeat(65));
    for path in [
        "/ws",
        "/ws?username=",
        "/ws?user=ali",
        "/ws?username=a%20b",
        "/ws?username=ali@example.com",
        "/ws?username=ali/x",
        long.as_str(),
    ] {
        let mut c = Raw::connect(server.addr);
        c.send(&upgrade_request(path));
        let resp = c.read_response_to_eof();
        assert_eq!(resp.status_line, "HTTP/1.1 400 Bad Request", "{path}");
        assert!(
            !resp
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("upgrade")
                    || k.eq_ignore_ascii_case("sec-websocket-accept")),
            "{path}: {resp:?}"
        );
        assert!(resp.header("connection").eq_ignore_ascii_case("close"));
    }
    // The longest valid name and every allowed character are fine.
    let name = format!("{}A-z.0_9", "x".repeat(57));
    assert_eq!(name.len(), 64);
    let (_c, _) = connect(server.addr, &name);
}

#[test]
fn not_json_or_not_an_object_is_bad_json_without_id() {
    let server = Server::start(&[]);
    let (mut c, _) = connect(server.addr, "ali");
    for text in [
        "hello",
        r#"{"type":"ping","id":"x""#,
        r#"[{"type":"ping","id":"x"}]"#,
        r#""ping""#,
        "42",
        "null",
        "",
        r#"{"type":"ping","id":"\ud800"}"#,
    ] {
        c.send_text(text);
        let m = c.recv();
        assert_error(&m, "bad_json", None);
    }
    // A binary message is not JSON either, even with JSON inside.
    c.send_message(Message::binary(br#"{"type":"ping","id":"b"}"#.to_vec()));
    assert_error(&c.recv(), "bad_json", None);
    // The connection is still fine.
    let got = c.ask_all(json!({"type":"ping"}));
    assert_eq!(got[0], json!({"type":"pong"}));
    assert_eq!(got.len(), 2);
    c.expect_nothing();
}

#[test]
fn bad_requests_echo_the_id() {
    let server = Server::start(&NO_RATE_LIMIT);
    let (mut c, _) = connect(server.addr, "ali");
    let long_room = "r".repeat(65);
    let cases: Vec<Value> = vec![
        json!({"type":"nope"}),
        json!({"room":"general"}),
        json!({"type":5}),
        json!({"type":null}),
        json!({"type":"room.join"}),
        json!({"type":"room.join","room":""}),
        json!({"type":"room.join","room":"bad room"}),
        json!({"type":"room.join","room":"a/b"}),
        json!({"type":"room.join","room":long_room}),
        json!({"type":"room.join","room":7}),
        json!({"type":"room.join","room":"general","since":-1}),
        json!({"type":"room.join","room":"general","since":1.5}),
        json!({"type":"room.join","room":"general","since":"3"}),
        json!({"type":"room.leave"}),
        json!({"type":"chat","room":"bad room","content":"x"}),
        json!({"type":"chat","room":5,"content":"x"}),
        json!({"type":"chat"}),
        json!({"type":"chat","content":5}),
        json!({"type":"chat","content":["x"]}),
        json!({"type":"chat","content":""}),
        json!({"type":"private","content":"x"}),
        json!({"type":"private","to":5,"content":"x"}),
        json!({"type":"private","to":"","content":"x"}),
        json!({"type":"private","to":"a\u{1}b","content":"x"}),
        json!({"type":"private","to":"bob"}),
        json!({"type":"typing"}),
        json!({"type":"typing","room":"no room"}),
        json!({"type":"user.list"}),
        json!({"type":"user.list","room":["general"]}),
        json!({"type":"history"}),
        json!({"type":"history","room":"general","limit":0}),
        json!({"type":"history","room":"general","limit":101}),
        json!({"type":"history","room":"general","limit":-1}),
        json!({"type":"history","room":"general","limit":1.5}),
        json!({"type":"history","room":"general","limit":"5"}),
    ];
    for cmd in &cases {
        let id = c.send_with_id(cmd.clone());
        let m = c.recv();
        assert!(is_answer(&m, &id), "{cmd}: {m}");
        assert_error(&m, "bad_request", Some(&id));
    }
    // A repeated protocol field is refused, with the id.
    c.send_text(r#"{"type":"ping","type":"ping","id":"dup"}"#);
    assert_error(&c.recv(), "bad_request", Some(&json!("dup")));
    // An unreadable id cannot be echoed.
    for text in [
        r#"{"type":"ping","id":{"a":1}}"#,
        r#"{"type":"ping","id":[1]}"#,
        r#"{"type":"ping","id":true}"#,
        r#"{"type":"ping","id":"a","id":"b"}"#,
    ] {
        c.send_text(text);
        assert_error(&c.recv(), "bad_request", None);
    }
    // None of this closed the connection or had an effect.
    c.expect_nothing();
    let got = c.ask_all(json!({"type":"history","room":"general"}));
    assert_eq!(
        got[0],
        json!({"type":"history","room":"general","messages":[],"complete":true})
    );
    // Unknown fields are ignored.
    let id = c.send_with_id(json!({"type":"ping","extra":{"deep":[1,2]},"content":5}));
    assert_eq!(c.recv(), json!({"type":"pong"}));
    assert_eq!(c.recv(), json!({"type":"ack","id":id}));
}

#[test]
fn commands_for_a_room_not_joined_are_not_in_room() {
    let server = Server::start(&[]);
    let mut cs = connect_all(server.addr, &["ali", "bob"]);
    let (ali, bob) = cs.split_at_mut(1);
    let (ali, bob) = (&mut ali[0], &mut bob[0]);
    bob.join("backend");
    bob.chat("backend", "secret");
    for cmd in [
        json!({"type":"chat","room":"backend","content":"hi"}),
        json!({"type":"typing","room":"backend"}),
        json!({"type":"user.list","room":"backend"}),
        json!({"type":"history","room":"backend"}),
        json!({"type":"room.leave","room":"backend"}),
        json!({"type":"chat","room":"nowhere","content":"hi"}),
        json!({"type":"room.leave","room":"nowhere"}),
    ] {
        let id = ali.send_with_id(cmd.clone());
        let m = ali.recv();
        assert!(is_answer(&m, &id), "{cmd}: {m}");
        assert_error(&m, "not_in_room", Some(&id));
    }
    // Without an id the error still comes, without one.
    ali.send(&json!({"type":"chat","room":"backend","content":"hi"}));
    assert_error(&ali.recv(), "not_in_room", None);
    // After leaving, a member is not one any more.
    ali.join("backend");
    ali.ok(json!({"type":"room.leave","room":"backend"}));
    let a = ali.ask(json!({"type":"chat","room":"backend","content":"late"}));
    assert_error(&a, "not_in_room", a.get("id"));
    ali.expect_nothing();
    // bob saw his own chat and ali's presence, nothing from ali's refused commands.
    let got: Vec<Value> = bob
        .drain()
        .iter()
        .map(|m| {
            if m["type"] == "chat" {
                strip_timestamp(m)
            } else {
                m.clone()
            }
        })
        .collect();
    assert_eq!(
        got,
        vec![
            json!({"type":"chat","room":"backend","from":"bob","content":"secret","seq":1}),
            json!({"type":"room.join","room":"backend","from":"system","user":"ali","content":"ali joined"}),
            json!({"type":"room.leave","room":"backend","from":"system","user":"ali","content":"ali left"}),
        ]
    );
}

#[test]
fn private_to_nobody_is_user_not_found() {
    let server = Server::start(&[]);
    let (mut ali, _) = connect(server.addr, "ali");
    let a = ali.ask(json!({"type":"private","to":"ghost","content":"hi"}));
    assert_error(&a, "user_not_found", a.get("id"));
    // A user who was connected and left is not found either.
    let (bob, _) = connect(server.addr, "bob");
    ali.drain();
    bob.close();
    // Presence tells ali when bob's leave has been counted.
    let left = ali.take(|m| m["type"] == "room.leave");
    assert_eq!(left["user"], "bob");
    let a = ali.ask(json!({"type":"private","to":"bob","content":"hi"}));
    assert_error(&a, "user_not_found", a.get("id"));
    ali.send(&json!({"type":"private","to":"ghost","content":"hi"}));
    assert_error(&ali.recv(), "user_not_found", None);
}

#[test]
fn general_cannot_be_left_and_max_rooms_is_forbidden() {
    let server = Server::start(&["--max-rooms", "3"]);
    let (mut c, _) = connect(server.addr, "ali");
    let a = c.ask(json!({"type":"room.leave","room":"general"}));
    assert_error(&a, "forbidden", a.get("id"));
    c.join("a");
    c.join("b");
    let a = c.ask(json!({"type":"room.join","room":"c"}));
    assert_error(&a, "forbidden", a.get("id"));
    c.send(&json!({"type":"room.join","room":"c"}));
    assert_error(&c.recv(), "forbidden", None);
    // Joining a room one is in is not over the limit.
    c.join("a");
    // Leaving frees a place.
    c.ok(json!({"type":"room.leave","room":"b"}));
    c.join("c");
    c.expect_nothing();
    // Still a member of general, a and c, not of b.
    let (_d, list) = connect(server.addr, "dan");
    assert_eq!(
        list,
        json!({"type":"room.list","rooms":[
            {"room":"a","members":1,"joined":false},
            {"room":"c","members":1,"joined":false},
            {"room":"general","members":2,"joined":true},
        ]})
    );
}

#[test]
fn content_over_2000_characters_is_too_long() {
    let server = Server::start(&[]);
    let (mut c, _) = connect(server.addr, "ali");
    // 2000 characters, 500 of them outside the BMP (2500 UTF-16 units, 3500 bytes).
    let ok: String = "😀a".repeat(500) + &"b".repeat(1000);
    assert_eq!(ok.chars().count(), 2000);
    let seq = c.chat("general", &ok);
    assert_eq!(seq, 1);
    let own = strip_timestamp(&c.recv());
    assert_eq!(
        own,
        json!({"type":"chat","room":"general","from":"ali","content":ok,"seq":1})
    );
    // One more (a non-BMP one) is too long; so is private content.
    let over = format!("{ok}😀");
    let a = c.ask(json!({"type":"chat","content":over}));
    assert_error(&a, "too_long", a.get("id"));
    let a = c.ask(json!({"type":"private","to":"ali","content":over}));
    assert_error(&a, "too_long", a.get("id"));
    c.send(&json!({"type":"chat","content":over}));
    assert_error(&c.recv(), "too_long", None);
    // Nothing was sequenced.
    assert_eq!(c.chat("general", "next"), 2);
}

#[test]
fn rate_limit_refuses_then_closes_with_1008() {
    let server = Server::start(&["--msg-rate", "1", "--msg-burst", "2"]);
    let (mut c, _) = connect(server.addr, "ali");
    // Read together: 2 pass, 4 are refused (2 x burst), the 7th closes.
    let batch: Vec<Value> = (1..=7).map(|i| json!({"type":"ping","id":i})).collect();
    c.send_batch(&batch);
    let (code, reason, before) = c.expect_close();
    let mut expected = Vec::new();
    for i in 1..=2 {
        expected.push(json!({"type":"pong"}));
        expected.push(json!({"type":"ack","id":i}));
    }
    assert_eq!(before[..4], expected[..], "{before:?}");
    assert_eq!(before.len(), 8, "{before:?}");
    for (m, i) in before[4..].iter().zip(3..) {
        assert_error(m, "rate_limited", Some(&json!(i)));
    }
    assert_eq!((code, reason.as_str()), (1008, "rate limit"));
    c.expect_closed();
}

#[test]
fn rate_limited_without_id_and_refill() {
    let server = Server::start(&["--msg-rate", "1", "--msg-burst", "2"]);
    let (mut c, _) = connect(server.addr, "ali");
    c.send_batch(&[
        json!({"type":"ping"}),
        json!({"type":"ping"}),
        json!({"type":"ping"}),
    ]);
    assert_eq!(c.recv(), json!({"type":"pong"}));
    assert_eq!(c.recv(), json!({"type":"pong"}));
    assert_error(&c.recv(), "rate_limited", None);
    // A refused message had no effect: the chat was not sequenced.
    c.send(&json!({"type":"chat","content":"dropped","id":"x"}));
    assert_error(&c.recv(), "rate_limited", Some(&json!("x")));
    // One token per second comes back.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(c.chat("general", "kept"), 1);
}

#[test]
fn message_over_chat_max_message_closes_with_1009() {
    let server = Server::start(&[]);
    let (mut c, _) = connect(server.addr, "ali");
    // Exactly 4096 bytes passes (unknown fields are ignored).
    let base = json!({"type":"ping","id":"big","pad":""}).to_string();
    let fits = json!({"type":"ping","id":"big","pad":"p".repeat(4096 - base.len())}).to_string();
    assert_eq!(fits.len(), 4096);
    c.send_text(&fits);
    assert_eq!(c.recv(), json!({"type":"pong"}));
    assert_eq!(c.recv(), json!({"type":"ack","id":"big"}));
    let over = json!({"type":"ping","id":"big","pad":"p".repeat(4097 - base.len())}).to_string();
    c.send_text(&over);
    let (code, _, before) = c.expect_close();
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(code, 1009);

    // All fragments count: two fragments of 2100 bytes.
    let mut raw = Raw::upgrade(server.addr, "/ws?username=bob");
    let half = vec![b' '; 2100];
    raw.send(&frame(false, TEXT, &half));
    raw.send(&frame(true, CONT, &half));
    loop {
        let f = raw.read_frame();
        if f.opcode == TEXT {
            continue; // welcome, room.list
        }
        assert_eq!(f.close().map(|c| c.0), Some(1009), "{f:?}");
        break;
    }
    // The smaller limit can be raised.
    let server = Server::start(&["--chat-max-message", "8KiB"]);
    let (mut c, _) = connect(server.addr, "ali");
    c.send_text(&over);
    assert_eq!(c.recv(), json!({"type":"pong"}));
}

#[test]
fn ping_is_answered_by_pong() {
    let server = Server::start(&[]);
    let (mut c, _) = connect(server.addr, "ali");
    c.send(&json!({"type":"ping"}));
    assert_eq!(c.recv(), json!({"type":"pong"}));
    c.send(&json!({"type":"ping","id":null}));
    assert_eq!(c.recv(), json!({"type":"pong"}));
    c.expect_nothing();
}

/// Every command with an id gets exactly one `ack` or `error` with that id; without an id,
/// the responses come and no ack.
#[test]
fn every_id_gets_exactly_one_answer() {
    let server = Server::start(&NO_RATE_LIMIT);
    let mut cs = connect_all(server.addr, &["ali", "bob"]);
    let mut bob = cs.pop().expect("bob");
    let mut ali = cs.pop().expect("ali");
    ali.join("r");

    let commands: Vec<(Value, Value, &str)> = vec![
        (json!({"type":"chat","content":"one"}), json!("s1"), "ack"),
        (json!({"type":"room.join","room":"r2"}), json!(2), "ack"),
        (json!({"type":"room.leave","room":"r2"}), json!(3.5), "ack"),
        (
            json!({"type":"private","to":"bob","content":"p"}),
            json!(-4),
            "ack",
        ),
        (
            json!({"type":"typing","room":"r"}),
            json!("t\"\\\u{2028}\u{1}é"),
            "ack",
        ),
        (json!({"type":"room.list"}), json!(6), "ack"),
        (
            json!({"type":"user.list","room":"r"}),
            json!(9_007_199_254_740_993u64),
            "ack",
        ),
        (json!({"type":"history","room":"general"}), json!(0), "ack"),
        (json!({"type":"ping"}), json!(""), "ack"),
        (
            json!({"type":"chat","room":"nope","content":"x"}),
            json!(10),
            "error",
        ),
        (
            json!({"type":"private","to":"ghost","content":"x"}),
            json!(11),
            "error",
        ),
        (json!({"type":"what"}), json!(12), "error"),
        (
            json!({"type":"room.leave","room":"general"}),
            json!(13),
            "error",
        ),
    ];
    for (cmd, id, _) in &commands {
        let mut cmd = cmd.clone();
        cmd["id"] = id.clone();
        ali.send(&cmd);
    }
    let got = ali.drain();
    for (cmd, id, kind) in &commands {
        let answers: Vec<&Value> = got.iter().filter(|m| is_answer(m, id)).collect();
        assert_eq!(answers.len(), 1, "{cmd} id {id}: {got:?}");
        assert_eq!(answers[0]["type"], *kind, "{cmd}: {}", answers[0]);
    }
    let answers = got
        .iter()
        .filter(|m| m["type"] == "ack" || m["type"] == "error");
    assert_eq!(answers.count(), commands.len(), "{got:?}");
    // The specific acks.
    let find = |id: Value| {
        got.iter()
            .find(|m| is_answer(m, &id))
            .cloned()
            .expect("answer")
    };
    assert_eq!(find(json!("s1")), json!({"type":"ack","id":"s1","seq":1}));
    assert_eq!(
        find(json!(-4)),
        json!({"type":"ack","id":-4,"status":"delivered","devices":1})
    );
    assert_eq!(find(json!(3.5)), json!({"type":"ack","id":3.5}));
    // Every other response came before its own ack.
    for (kind, id) in [
        ("user.list", json!(2)),
        ("room.list", json!(6)),
        ("user.list", json!(9_007_199_254_740_993u64)),
        ("history", json!(0)),
        ("pong", json!("")),
    ] {
        let ack = got.iter().position(|m| is_answer(m, &id)).expect("ack");
        assert!(
            got[..ack].iter().any(|m| m["type"] == kind),
            "{kind} before ack {id}: {got:?}"
        );
    }

    // Without ids: the same commands give their responses and errors, no ack.
    for (cmd, _, _) in &commands {
        ali.send(cmd);
    }
    let got = ali.drain();
    assert!(got.iter().all(|m| m["type"] != "ack"), "{got:?}");
    let kinds = |t: &str| got.iter().filter(|m| m["type"] == t).count();
    assert_eq!(kinds("error"), 4, "{got:?}");
    assert!(got
        .iter()
        .filter(|m| m["type"] == "error")
        .all(|m| m.get("id").is_none()));
    assert_eq!(kinds("chat"), 1, "{got:?}");
    assert_eq!(kinds("user.list"), 2, "{got:?}");
    assert_eq!(kinds("room.list"), 1, "{got:?}");
    assert_eq!(kinds("history"), 1, "{got:?}");
    assert_eq!(kinds("pong"), 1, "{got:?}");
    assert_eq!(got.len(), 10, "{got:?}");

    // bob got the two private messages and nothing else from ali (typing was in r).
    let got = bob.drain();
    let privates: Vec<Value> = got
        .iter()
        .filter(|m| m["type"] == "private")
        .map(strip_timestamp)
        .collect();
    assert_eq!(
        privates,
        vec![json!({"type":"private","from":"ali","to":"bob","content":"p"}); 2]
    );
    assert!(
        got.iter()
            .all(|m| m["type"] == "private" || m["type"] == "chat"),
        "{got:?}"
    );
}

#[test]
fn a_second_connection_of_a_user_is_independent() {
    // Ids are per connection: the same id on two devices gets one answer on each.
    let server = Server::start(&[]);
    let mut a1 = open(server.addr, "ali");
    a1.recv();
    a1.take(|m| m["type"] == "room.list");
    let (mut a2, list) = connect(server.addr, "ali");
    assert_eq!(
        list,
        json!({"type":"room.list","rooms":[{"room":"general","members":1,"joined":true}]})
    );
    for c in [&mut a1, &mut a2] {
        c.send(&json!({"type":"ping","id":"same"}));
    }
    for c in [&mut a1, &mut a2] {
        assert_eq!(c.recv(), json!({"type":"pong"}));
        assert_eq!(c.recv(), json!({"type":"ack","id":"same"}));
        c.expect_nothing();
    }
}

/// Messages on one connection are handled in order: a command right after a `room.join`
/// (without waiting for its ack) finds the connection a member of the room.
#[test]
fn commands_pipelined_after_a_join_see_the_membership() {
    let server = Server::start(&[]);
    let (mut c, _) = connect(server.addr, "ali");
    c.send_batch(&[
        json!({"type":"room.join","room":"pipelined","id":"j"}),
        json!({"type":"chat","room":"pipelined","content":"hi","id":"c"}),
        json!({"type":"typing","room":"pipelined","id":"t"}),
        json!({"type":"user.list","room":"pipelined","id":"u"}),
        json!({"type":"history","room":"pipelined","id":"h"}),
    ]);
    let got = c.drain();
    for id in ["j", "t", "u", "h"] {
        let a = got.iter().find(|m| is_answer(m, &json!(id)));
        assert_eq!(a, Some(&json!({"type":"ack","id":id})), "{id}: {got:?}");
    }
    let a = got.iter().find(|m| is_answer(m, &json!("c")));
    assert_eq!(a, Some(&json!({"type":"ack","id":"c","seq":1})), "{got:?}");
}

#[test]
fn content_is_escaped_and_round_trips() {
    let server = Server::start(&[]);
    let (mut c, _) = connect(server.addr, "ali");
    let content = "q\"b\\s/\n\r\t\u{0}\u{1f}\u{7f}\u{2028}\u{2029}é😀</script>";
    c.send(&json!({"type":"chat","content":content}));
    let Message::Text(raw) = c.read_message().expect("chat") else {
        panic!("not text")
    };
    let raw = raw.as_str();
    assert!(raw.contains(r"\u2028") && raw.contains(r"\u2029"), "{raw}");
    assert!(
        !raw.contains('\u{2028}') && !raw.chars().any(|ch| ch < ' '),
        "{raw}"
    );
    let m: Value = serde_json::from_str(raw).expect("json");
    assert_eq!(
        strip_timestamp(&m),
        json!({"type":"chat","room":"general","from":"ali","content":content,"seq":1})
    );
}

#[test]
fn every_message_counts_against_the_rate() {
    let server = Server::start(&["--msg-rate", "1", "--msg-burst", "2"]);
    let (mut c, _) = connect(server.addr, "ali");
    c.send_text("not json");
    c.send_message(Message::binary(vec![1, 2, 3]));
    c.send(&json!({"type":"typing","room":"general","id":"t"}));
    assert_error(&c.recv(), "bad_json", None);
    assert_error(&c.recv(), "bad_json", None);
    assert_error(&c.recv(), "rate_limited", Some(&json!("t")));
}
