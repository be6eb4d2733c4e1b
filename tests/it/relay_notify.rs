//! Relay mode, stored notifications: `POST /api/notify` with `"store":true` for a user with no
//! connection anywhere keeps the event in Redis; the user's next connection, on any node, gets
//! each stored event exactly once, right after `welcome` and before the room list, even when
//! two devices connect at the same moment on two nodes. A user who is online is not stored for.

use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use crate::chat_client::{api, open, Client};
use crate::cluster::{eventually, nodes, Redis, KEY};

/// Connects `user` and returns the client and what came between `welcome` and `room.list`.
fn connect_collect(addr: std::net::SocketAddr, user: &str) -> (Client, Vec<Value>) {
    let mut c = open(addr, user);
    let welcome = c.recv();
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let mut before = c.until(|m| m["type"] == "room.list");
    before.pop();
    (c, before)
}

fn notify(at: std::net::SocketAddr, body: Value) -> Value {
    let (code, body, _) = api(at, Some(KEY), "POST", "/api/notify", Some(&body));
    assert_eq!(code, 200, "{body}");
    body
}

#[test]
fn stored_notifications_reach_the_next_connection_exactly_once() {
    let Some(redis) = Redis::start() else { return };
    let n = nodes(&redis, "inbox", 2, &["--inbox-max", "5"]);
    let (a, b) = (n[0].addr, n[1].addr);

    // Offline: stored (the node asked is not where the user will connect).
    for i in 0..3 {
        let r = notify(
            a,
            json!({"user":"zed","type":"order.shipped","data":{"n":i},"store":true}),
        );
        assert_eq!(r, json!({"delivered":0,"stored":true}));
    }
    // Not asked to store: dropped, as without the relay.
    let r = notify(a, json!({"user":"zed","type":"ephemeral"}));
    assert_eq!(r, json!({"delivered":0}));

    // Two devices at the same moment on two nodes: three events in all, each once, in order.
    let ta = thread::spawn(move || connect_collect(a, "zed"));
    let tb = thread::spawn(move || connect_collect(b, "zed"));
    let (mut za, got_a) = ta.join().expect("device a");
    let (mut zb, got_b) = tb.join().expect("device b");
    let (got, other) = if got_a.is_empty() {
        (got_b, got_a)
    } else {
        (got_a, got_b)
    };
    assert!(
        other.is_empty(),
        "both devices got stored events: {other:?}"
    );
    let ns: Vec<&Value> = got.iter().map(|m| &m["data"]["n"]).collect();
    assert_eq!(ns, [&json!(0), &json!(1), &json!(2)], "{got:?}");
    for m in &got {
        assert_eq!(m["type"], "order.shipped");
        assert!(m["id"].is_string() && m["timestamp"].is_string(), "{m}");
    }

    // Online: delivered live to both devices, not stored.
    let r = notify(
        b,
        json!({"user":"zed","type":"live","data":{},"store":true}),
    );
    assert_eq!(r, json!({"delivered":2,"stored":false}));
    for c in [&mut za, &mut zb] {
        c.take(|m| m["type"] == "live");
    }

    // Offline again: the inbox keeps the newest --inbox-max (5) of 7.
    za.close();
    zb.close();
    eventually(Duration::from_secs(10), "zed still counted online", || {
        let (_, body, _) = api(
            a,
            Some(KEY),
            "POST",
            "/api/disconnect",
            Some(&json!({"user":"zed"})),
        );
        (body == json!({"disconnected":0})).then_some(())
    });
    for i in 0..7 {
        let r = notify(
            b,
            json!({"user":"zed","type":"later","data":{"n":i},"store":true}),
        );
        assert_eq!(r, json!({"delivered":0,"stored":true}));
    }
    assert_eq!(
        crate::cluster::metric(b, "corecast_relay_dropped_total{reason=\"inbox_full\"}"),
        2.0,
        "the two oldest were pushed out of the full inbox"
    );
    let (_z, got) = connect_collect(a, "zed");
    let ns: Vec<u64> = got
        .iter()
        .map(|m| m["data"]["n"].as_u64().expect("n"))
        .collect();
    assert_eq!(ns, [2, 3, 4, 5, 6]);
    // Taken: a later connection gets none.
    let (_z2, got) = connect_collect(b, "zed");
    assert!(got.is_empty(), "{got:?}");
}
