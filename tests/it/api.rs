//! The HTTP API on the WebSocket port: off without `--api-key` (403), 401 with
//! `WWW-Authenticate: Bearer` for a missing or wrong key, refused calls without effect;
//! publish (delivered, seq continuing the room's, the event delivered with room and seq and
//! kept in history), notify (every device), disconnect (1008), the room lists, bad bodies
//! (400), a body over 64 KiB (413), wrong methods (405 with Allow), unknown paths (404).

use serde_json::{json, Value};

use crate::chat_client::{
    api, connect, connect_all, http, json_body, status, strip_timestamp, wait_connections, Client,
};
use crate::harness::{Raw, Server};

const KEY: &str = "s3cret-key";

/// Every API call, with a body that would succeed with the key.
fn calls() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        (
            "POST",
            "/api/publish",
            Some(json!({"room":"general","type":"announcement","data":{"x":1}})),
        ),
        (
            "POST",
            "/api/notify",
            Some(json!({"user":"amy","type":"order.created"})),
        ),
        ("POST", "/api/disconnect", Some(json!({"user":"amy"}))),
        ("GET", "/api/rooms", None),
        ("GET", "/api/rooms/general/users", None),
        ("GET", "/api/nope", None),
    ]
}

/// After refused calls: amy got nothing, is still connected, and general's seq did not move.
fn assert_no_effect(amy: &mut Client) {
    amy.expect_nothing();
    assert_eq!(amy.chat("general", "still here"), 1);
}

#[test]
fn api_is_off_without_a_key() {
    let server = Server::start(&[]);
    let (mut amy, _) = connect(server.addr, "amy");
    for (method, path, req) in calls() {
        let (code, body, resp) = api(server.addr, None, method, path, req.as_ref());
        assert_eq!(code, 403, "{method} {path}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
        assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
        assert!(resp.header("connection").eq_ignore_ascii_case("close"));
        // A key does not switch it on.
        let (code, _, _) = api(server.addr, Some(KEY), method, path, req.as_ref());
        assert_eq!(code, 403, "{method} {path} with a key");
    }
    assert_no_effect(&mut amy);
}

#[test]
fn missing_or_wrong_key_is_401() {
    let server = Server::start(&["--api-key", KEY]);
    let (mut amy, _) = connect(server.addr, "amy");
    for (method, path, body) in calls() {
        let body_text = body.as_ref().map(Value::to_string).unwrap_or_default();
        for auth in [
            None,
            Some("Authorization: Bearer s3cret-ke"),
            Some("Authorization: Bearer s3cret-key2"),
            Some("Authorization: Bearer "),
            Some("Authorization: Basic s3cret-key"),
            Some("Authorization: s3cret-key"),
        ] {
            let mut headers = vec!["Content-Type: application/json"];
            headers.extend(auth);
            let resp = http(server.addr, method, path, &headers, body_text.as_bytes());
            assert_eq!(status(&resp), 401, "{method} {path} {auth:?}");
            assert_eq!(resp.header("www-authenticate"), "Bearer");
            let body = json_body(&resp);
            assert!(body["error"].is_string(), "{body}");
        }
    }
    assert_no_effect(&mut amy);
}

#[test]
fn publish_takes_the_rooms_next_seq_and_enters_history() {
    let server = Server::start(&["--api-key", KEY]);
    let mut cs = connect_all(server.addr, &["amy", "amy", "bob"]);
    let [amy1, amy2, bob] = &mut cs[..] else {
        unreachable!()
    };
    assert_eq!(amy1.chat("general", "before"), 1);
    let ev = json!({"room":"general","type":"announcement","data":{"text":"deploy at 5","n":[1,2.5,null]},"id":"e1"});
    let (code, body, _) = api(server.addr, Some(KEY), "POST", "/api/publish", Some(&ev));
    assert_eq!((code, body), (200, json!({"delivered":3,"seq":2})));
    let expected = json!({"type":"announcement","data":{"text":"deploy at 5","n":[1,2.5,null]},"id":"e1","room":"general","seq":2});
    for c in [&mut *amy1, &mut *amy2, &mut *bob] {
        let m = c.take(|m| m["type"] == "announcement");
        assert_eq!(strip_timestamp(&m), expected, "{}", c.user);
    }
    // It is in the history, between the chats around it.
    assert_eq!(bob.chat("general", "after"), 3);
    let got = bob.ask_all(json!({"type":"history","room":"general"}));
    let h = got
        .iter()
        .find(|m| m["type"] == "history")
        .expect("history");
    let messages = h["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 3);
    assert_eq!(strip_timestamp(&messages[1]), expected);
    assert_eq!(messages[2]["content"], "after");

    // Defaults: data {}, a generated id, unique per event (the authorization scheme is
    // case-insensitive).
    let mut ids = Vec::new();
    for seq in [4, 5] {
        let resp = http(
            server.addr,
            "POST",
            "/api/publish",
            &["authorization: bearer s3cret-key"],
            br#"{"room":"general","type":"tick"}"#,
        );
        assert_eq!(status(&resp), 200);
        assert_eq!(json_body(&resp), json!({"delivered":3,"seq":seq}));
        let m = strip_timestamp(&bob.take(|m| m["type"] == "tick"));
        let id = m["id"].as_str().expect("generated id").to_string();
        assert!(!id.is_empty());
        assert_eq!(
            m,
            json!({"type":"tick","data":{},"id":id,"room":"general","seq":seq})
        );
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1]);

    // A room with members in it only.
    bob.join("ops");
    amy1.drain();
    let ev = json!({"room":"ops","type":"page","data":{"sev":1}});
    let (code, body, _) = api(server.addr, Some(KEY), "POST", "/api/publish", Some(&ev));
    assert_eq!((code, body), (200, json!({"delivered":1,"seq":1})));
    assert_eq!(bob.take(|m| m["type"] == "page")["seq"], 1);
    amy1.expect_nothing();
    amy2.drain();
    amy2.expect_nothing();

    // A room without members: nothing delivered, and the room is not created.
    let ev = json!({"room":"nobody-here","type":"page"});
    let (code, body, _) = api(server.addr, Some(KEY), "POST", "/api/publish", Some(&ev));
    assert_eq!(code, 200);
    assert_eq!(body["delivered"], 0, "{body}");
    assert!(body["seq"].is_u64(), "{body}");
    let (_, rooms, _) = api(server.addr, Some(KEY), "GET", "/api/rooms", None);
    assert!(!rooms.to_string().contains("nobody-here"), "{rooms}");
    let got = bob.ask_all(json!({"type":"room.join","room":"nobody-here","since":0}));
    assert_eq!(
        got[0],
        json!({"type":"history","room":"nobody-here","messages":[],"complete":true})
    );
    assert_eq!(bob.chat("nobody-here", "first"), 1);
}

#[test]
fn notify_reaches_every_device_of_the_user() {
    let server = Server::start(&["--api-key", KEY]);
    let mut cs = connect_all(server.addr, &["amy", "amy", "bob"]);
    let [amy1, amy2, bob] = &mut cs[..] else {
        unreachable!()
    };
    let ev = json!({"user":"amy","type":"order.created","data":{"order":17,"s":"\u{2028}\"x\""}});
    let (code, body, _) = api(server.addr, Some(KEY), "POST", "/api/notify", Some(&ev));
    assert_eq!((code, body), (200, json!({"delivered":2})));
    let m1 = strip_timestamp(&amy1.take(|m| m["type"] == "order.created"));
    let m2 = strip_timestamp(&amy2.take(|m| m["type"] == "order.created"));
    let id = m1["id"].as_str().expect("event id");
    assert_eq!(
        m1,
        json!({"type":"order.created","data":{"order":17,"s":"\u{2028}\"x\""},"id":id})
    );
    assert_eq!(m1, m2, "one event, the same on both devices");
    for c in [&mut *amy1, &mut *amy2, &mut *bob] {
        c.expect_nothing();
    }
    // Not stored, no seq.
    assert_eq!(bob.chat("general", "x"), 1);
    // Nobody connected: delivered 0.
    let ev = json!({"user":"ghost","type":"order.created"});
    let (code, body, _) = api(server.addr, Some(KEY), "POST", "/api/notify", Some(&ev));
    assert_eq!((code, body), (200, json!({"delivered":0})));
}

#[test]
fn disconnect_closes_every_connection_of_the_user_with_1008() {
    let server = Server::start(&["--api-key", KEY]);
    let mut cs = connect_all(server.addr, &["amy", "amy", "bob"]);
    let mut bob = cs.pop().expect("bob");
    let (code, body, _) = api(
        server.addr,
        Some(KEY),
        "POST",
        "/api/disconnect",
        Some(&json!({"user":"amy"})),
    );
    assert_eq!((code, body), (200, json!({"disconnected":2})));
    for mut c in cs {
        let (code, _, before) = c.expect_close();
        assert_eq!(code, 1008);
        assert!(before.is_empty(), "{before:?}");
        c.expect_closed();
    }
    wait_connections(server.addr, 1);
    assert_eq!(
        bob.drain(),
        vec![
            json!({"type":"room.leave","room":"general","from":"system","user":"amy","content":"amy left"})
        ]
    );
    // She may come back at once.
    let (_amy, _) = connect(server.addr, "amy");
    let (code, body, _) = api(
        server.addr,
        Some(KEY),
        "POST",
        "/api/disconnect",
        Some(&json!({"user":"ghost"})),
    );
    assert_eq!((code, body), (200, json!({"disconnected":0})));
}

#[test]
fn room_lists() {
    let server = Server::start(&["--api-key", KEY]);
    let mut cs = connect_all(server.addr, &["amy", "amy", "Bob", "cat"]);
    let [amy1, amy2, bob, _cat] = &mut cs[..] else {
        unreachable!()
    };
    amy1.join("zz");
    amy2.join("zz");
    bob.join("zz");
    bob.join("aa");
    let (code, body, _) = api(server.addr, Some(KEY), "GET", "/api/rooms", None);
    assert_eq!(
        (code, body),
        (
            200,
            json!({"rooms":[
                {"room":"aa","members":1},
                {"room":"general","members":3},
                {"room":"zz","members":2},
            ]})
        )
    );
    let (code, body, _) = api(server.addr, Some(KEY), "GET", "/api/rooms/zz/users", None);
    assert_eq!(
        (code, body),
        (200, json!({"room":"zz","users":["Bob","amy"]}))
    );
    let (code, body, _) = api(
        server.addr,
        Some(KEY),
        "GET",
        "/api/rooms/general/users",
        None,
    );
    assert_eq!(
        (code, body),
        (200, json!({"room":"general","users":["Bob","amy","cat"]}))
    );
    for path in [
        "/api/rooms/empty/users",
        "/api/rooms/bad%20name/users",
        "/api/rooms//users",
    ] {
        let (code, body, _) = api(server.addr, Some(KEY), "GET", path, None);
        assert_eq!(code, 404, "{path}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
    // A room that emptied is gone from both.
    bob.ok(json!({"type":"room.leave","room":"aa"}));
    let (code, _, _) = api(server.addr, Some(KEY), "GET", "/api/rooms/aa/users", None);
    assert_eq!(code, 404);
    let (_, body, _) = api(server.addr, Some(KEY), "GET", "/api/rooms", None);
    assert_eq!(body["rooms"][0], json!({"room":"general","members":3}));
}

#[test]
fn bad_bodies_are_400_without_effect() {
    let server = Server::start(&["--api-key", KEY]);
    let (mut amy, _) = connect(server.addr, "amy");
    let long_type = "t".repeat(65);
    let cases: Vec<(&str, String)> = vec![
        ("/api/publish", "not json".into()),
        ("/api/publish", "".into()),
        ("/api/publish", "[]".into()),
        ("/api/publish", r#"{"room":"general","type":"x""#.into()),
        ("/api/publish", json!({"type":"x"}).to_string()),
        ("/api/publish", json!({"room":"general"}).to_string()),
        ("/api/publish", json!({"room":5,"type":"x"}).to_string()),
        (
            "/api/publish",
            json!({"room":"bad room","type":"x"}).to_string(),
        ),
        (
            "/api/publish",
            json!({"room":"general","type":""}).to_string(),
        ),
        (
            "/api/publish",
            json!({"room":"general","type":long_type}).to_string(),
        ),
        (
            "/api/publish",
            json!({"room":"general","type":7}).to_string(),
        ),
        (
            "/api/publish",
            json!({"room":"general","type":"chat"}).to_string(),
        ),
        (
            "/api/publish",
            json!({"room":"general","type":"x","data":[1]}).to_string(),
        ),
        (
            "/api/publish",
            json!({"room":"general","type":"x","data":"s"}).to_string(),
        ),
        (
            "/api/publish",
            json!({"room":"general","type":"x","data":3}).to_string(),
        ),
        (
            "/api/publish",
            json!({"room":"general","type":"x","id":""}).to_string(),
        ),
        (
            "/api/publish",
            json!({"room":"general","type":"x","id":5}).to_string(),
        ),
        (
            "/api/publish",
            r#"{"room":"general","type":"x","type":"y"}"#.into(),
        ),
        ("/api/notify", json!({"type":"x"}).to_string()),
        ("/api/notify", json!({"user":"amy"}).to_string()),
        ("/api/notify", json!({"user":5,"type":"x"}).to_string()),
        ("/api/notify", json!({"user":"","type":"x"}).to_string()),
        (
            "/api/notify",
            json!({"user":"amy","type":"x","data":[]}).to_string(),
        ),
        (
            "/api/notify",
            json!({"user":"amy","type":"error"}).to_string(),
        ),
        ("/api/disconnect", json!({}).to_string()),
        ("/api/disconnect", json!({"user":["amy"]}).to_string()),
        ("/api/disconnect", "{".into()),
    ];
    for (path, body) in &cases {
        let resp = http(
            server.addr,
            "POST",
            path,
            &[&format!("Authorization: Bearer {KEY}")],
            body.as_bytes(),
        );
        assert_eq!(status(&resp), 400, "{path} {body}");
        let err = json_body(&resp);
        assert!(
            err["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path} {body}: {err}"
        );
        assert_eq!(err.as_object().map(|o| o.len()), Some(1), "{err}");
    }
    assert_no_effect(&mut amy);
}

#[test]
fn body_size_methods_and_paths() {
    let server = Server::start(&["--api-key", KEY]);
    let (mut amy, _) = connect(server.addr, "amy");
    let auth = format!("Authorization: Bearer {KEY}");
    // Exactly 64 KiB is accepted.
    let base = json!({"room":"general","type":"big","data":{"p":""}}).to_string();
    let body = json!({"room":"general","type":"big","data":{"p":"x".repeat(65536 - base.len())}})
        .to_string();
    assert_eq!(body.len(), 65536);
    let resp = http(
        server.addr,
        "POST",
        "/api/publish",
        &[&auth],
        body.as_bytes(),
    );
    assert_eq!(status(&resp), 200);
    assert_eq!(json_body(&resp), json!({"delivered":1,"seq":1}));
    let m = amy.take(|m| m["type"] == "big");
    assert_eq!(
        m["data"]["p"].as_str().map(str::len),
        Some(65536 - base.len())
    );
    // One byte more is 413, answered from the head alone.
    let mut raw = Raw::connect(server.addr);
    raw.send(
        format!(
            "POST /api/publish HTTP/1.1\r\nHost: localhost\r\n{auth}\r\nContent-Length: 65537\r\n\r\n"
        )
        .as_bytes(),
    );
    let resp = raw.read_response_to_eof();
    assert_eq!(status(&resp), 413, "{resp:?}");

    // Wrong methods: 405 with Allow.
    for (method, path, allow) in [
        ("GET", "/api/publish", "POST"),
        ("PUT", "/api/notify", "POST"),
        ("GET", "/api/disconnect", "POST"),
        ("POST", "/api/rooms", "GET"),
        ("DELETE", "/api/rooms/general/users", "GET"),
        ("POST", "/health", "GET"),
        ("POST", "/metrics", "GET"),
    ] {
        let resp = http(server.addr, method, path, &[&auth], b"");
        assert_eq!(status(&resp), 405, "{method} {path}");
        assert_eq!(resp.header("allow"), allow, "{method} {path}");
    }
    // Unknown paths: 404.
    for path in [
        "/api",
        "/api/",
        "/api/nope",
        "/api/rooms/general",
        "/api/publish/x",
    ] {
        let resp = http(server.addr, "GET", path, &[&auth], b"");
        assert_eq!(status(&resp), 404, "{path}");
        assert!(json_body(&resp)["error"].is_string());
    }
    let resp = http(server.addr, "GET", "/nope", &[], b"");
    assert_eq!(status(&resp), 404);
    // None of it reached amy, who is still connected.
    amy.expect_nothing();
    assert_eq!(amy.chat("general", "x"), 2);
}

#[test]
fn general_exists_before_anyone_connects() {
    let server = Server::start(&["--api-key", KEY]);
    // Nobody is connected: `general` still takes the publish into its order and history.
    let ev = json!({"room":"general","type":"welcome-banner","data":{"text":"hello"}});
    let (code, body, _) = api(server.addr, Some(KEY), "POST", "/api/publish", Some(&ev));
    assert_eq!((code, body), (200, json!({"delivered":0,"seq":1})));
    let (mut amy, _) = connect(server.addr, "amy");
    let got = amy.ask_all(json!({"type":"room.join","room":"general","since":0}));
    let h = got
        .iter()
        .find(|m| m["type"] == "history")
        .expect("history");
    assert_eq!(h["complete"], true);
    let messages = h["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["type"], "welcome-banner");
    assert_eq!(messages[0]["seq"], 1);
    assert_eq!(amy.chat("general", "next"), 2);
}
