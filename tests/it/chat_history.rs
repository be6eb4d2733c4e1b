//! History and recovery: `history` with and without `limit` against the ring size
//! (`--history`), `room.join` with `since` after a reconnect (exactly the missed messages,
//! `complete` true), when the ring lost some (`complete` false), and after the room was
//! removed and re-created (`--room-ttl`: seq restarts at 1, a `since` beyond it is incomplete).

use std::thread;
use std::time::Duration;

use serde_json::{json, Value};

use crate::chat_client::{assert_error, connect, connect_all, wait_connections, Client};
use crate::harness::Server;

const NO_RATE_LIMIT: [&str; 4] = ["--msg-rate", "65535", "--msg-burst", "65535"];

/// Sends `n` chats to `room` from `c` (acks awaited, seqs checked to continue from `first`)
/// and returns them as `reader` receives them.
fn send_chats(c: &mut Client, reader: &mut Client, room: &str, first: u64, n: u64) -> Vec<Value> {
    for i in 0..n {
        assert_eq!(c.chat(room, &format!("m{}", first + i)), first + i);
    }
    (first..first + n)
        .map(|seq| reader.take(|m| m["type"] == "chat" && m["room"] == room && m["seq"] == seq))
        .collect()
}

/// Sends `n` chats to `room` from `c` (seqs 1..=n) and returns its own copies.
fn own_chats(c: &mut Client, room: &str, n: u64) -> Vec<Value> {
    for i in 1..=n {
        assert_eq!(c.chat(room, &format!("m{i}")), i);
    }
    (1..=n)
        .map(|seq| c.take(|m| m["type"] == "chat" && m["room"] == room && m["seq"] == seq))
        .collect()
}

/// `history` (with `limit` if given) → (messages, complete); the ack is checked too.
fn history(c: &mut Client, room: &str, limit: Option<u64>) -> (Vec<Value>, bool) {
    let mut cmd = json!({"type":"history","room":room});
    if let Some(l) = limit {
        cmd["limit"] = json!(l);
    }
    let got: Vec<Value> = c
        .ask_all(cmd)
        .into_iter()
        .filter(|m| m["type"] == "history" || m["type"] == "ack")
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1], json!({"type":"ack","id":got[1]["id"]}));
    parse_history(&got[0], room)
}

fn parse_history(h: &Value, room: &str) -> (Vec<Value>, bool) {
    assert_eq!(h["type"], "history", "{h}");
    assert_eq!(h["room"], room);
    assert_eq!(h.as_object().map(|o| o.len()), Some(4), "{h}");
    let messages = h["messages"].as_array().expect("messages").clone();
    (messages, h["complete"].as_bool().expect("complete"))
}

/// `room.join` with `since` → (history messages, complete, user.list users), checking the
/// order history → user.list → ack.
fn join_since(c: &mut Client, room: &str, since: u64) -> (Vec<Value>, bool, Value) {
    let got = c.ask_all(json!({"type":"room.join","room":room,"since":since}));
    let got: Vec<Value> = got
        .into_iter()
        .filter(|m| !(m["type"] == "chat" || m["from"] == "system"))
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    let (messages, complete) = parse_history(&got[0], room);
    assert_eq!(got[1]["type"], "user.list", "{got:?}");
    assert_eq!(got[2], json!({"type":"ack","id":got[2]["id"]}));
    (messages, complete, got[1]["users"].clone())
}

fn seqs(messages: &[Value]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect()
}

#[test]
fn history_limit_default_and_ring_size() {
    let server = Server::start(&["--history", "5"]);
    let mut cs = connect_all(server.addr, &["amy", "bob"]);
    let [amy, bob] = &mut cs[..] else {
        unreachable!()
    };
    amy.join("h");
    bob.join("h");
    let seen = send_chats(amy, bob, "h", 1, 8);
    // Presence and typing are not kept.
    bob.ok(json!({"type":"typing","room":"h"}));
    let (_cat, _) = connect(server.addr, "cat");

    let (m, complete) = history(bob, "h", Some(3));
    assert_eq!(m, seen[5..], "the exact objects that were delivered");
    assert!(complete);
    // Default: 50, capped at the ring size.
    let (m, complete) = history(bob, "h", None);
    assert_eq!(m, seen[3..]);
    assert!(complete);
    let (m, _) = history(bob, "h", Some(5));
    assert_eq!(m, seen[3..]);
    let a = bob.ask(json!({"type":"history","room":"h","limit":6}));
    assert_error(&a, "bad_request", a.get("id"));
    // Without an id: the history only.
    bob.send(&json!({"type":"history","room":"h","limit":1}));
    let h = bob.take(|m| m["type"] == "history");
    assert_eq!(parse_history(&h, "h"), (seen[7..].to_vec(), true));
    bob.expect_nothing();
}

#[test]
fn history_default_limit_is_50_of_100() {
    let server = Server::start(&NO_RATE_LIMIT);
    let mut cs = connect_all(server.addr, &["amy", "bob"]);
    let [amy, bob] = &mut cs[..] else {
        unreachable!()
    };
    let seen = send_chats(amy, bob, "general", 1, 60);
    let (m, complete) = history(amy, "general", None);
    assert_eq!(seqs(&m), (11..=60).collect::<Vec<_>>());
    assert_eq!(m, seen[10..]);
    assert!(complete);
    let (m, complete) = history(amy, "general", Some(100));
    assert_eq!(m, seen);
    assert!(complete);
    let a = amy.ask(json!({"type":"history","room":"general","limit":101}));
    assert_error(&a, "bad_request", a.get("id"));
}

#[test]
fn rejoin_with_since_gets_exactly_the_missed_messages() {
    let server = Server::start(&[]);
    let mut cs = connect_all(server.addr, &["amy", "bob", "cat"]);
    let mut cat = cs.pop().expect("cat");
    let mut bob = cs.pop().expect("bob");
    let mut amy = cs.pop().expect("amy");
    for c in [&mut amy, &mut bob, &mut cat] {
        c.join("r");
    }
    let before = send_chats(&mut amy, &mut bob, "r", 1, 3);
    // bob's connection drops; he misses 4..6.
    bob.close();
    wait_connections(server.addr, 2);
    let missed = send_chats(&mut amy, &mut cat, "r", 4, 3);
    let (mut bob, _) = connect(server.addr, "bob");
    let (m, complete, users) = join_since(&mut bob, "r", 3);
    assert_eq!(m, missed);
    assert!(complete);
    assert_eq!(users, json!(["amy", "bob", "cat"]));
    // Live again: the next message arrives once, after the history.
    let live = send_chats(&mut amy, &mut bob, "r", 7, 1);
    assert_eq!(seqs(&live), [7]);
    bob.expect_nothing();

    // since 0: everything kept; since the last seq: nothing, complete.
    let (m, complete, _) = join_since(&mut cat, "r", 0);
    assert_eq!(m[..3], before[..]);
    assert_eq!(m[3..6], missed[..]);
    assert_eq!(seqs(&m), [1, 2, 3, 4, 5, 6, 7]);
    assert!(complete);
    let (m, complete, _) = join_since(&mut cat, "r", 7);
    assert!(m.is_empty());
    assert!(complete);
    // general was joined on connect; a rejoin with since recovers it too, with no notice.
    amy.drain();
    cat.drain();
    let g = send_chats(&mut amy, &mut cat, "general", 1, 2);
    let (m, complete, users) = join_since(&mut bob, "general", 1);
    assert_eq!(m, g[1..]);
    assert!(complete);
    assert_eq!(users, json!(["amy", "bob", "cat"]));
    for c in [&mut amy, &mut cat] {
        let got = c.drain();
        assert!(
            got.iter().all(|m| m["from"] != "system"),
            "{}: {got:?}",
            c.user
        );
    }
}

#[test]
fn since_before_the_ring_is_incomplete() {
    let server = Server::start(&["--history", "5"]);
    let mut cs = connect_all(server.addr, &["amy", "bob"]);
    let [amy, bob] = &mut cs[..] else {
        unreachable!()
    };
    amy.join("r");
    let seen = own_chats(amy, "r", 8);
    // 4..8 are kept: since 3 is complete, since 2, 1 and 0 are not.
    for (since, complete) in [(3, true), (2, false), (1, false), (0, false)] {
        let (m, c, _) = join_since(bob, "r", since);
        assert_eq!(m, seen[3..], "since {since}");
        assert_eq!(c, complete, "since {since}");
    }
    let (m, c, _) = join_since(bob, "r", 6);
    assert_eq!((m, c), (seen[6..].to_vec(), true));
}

#[test]
fn room_removed_after_ttl_restarts_seq() {
    // A 250 ms sweep (a quarter of the shortest timeout) expires the room soon after 1 s.
    let server = Server::start(&["--room-ttl", "1s", "--close-timeout", "1s"]);
    let (mut amy, _) = connect(server.addr, "amy");
    amy.join("tmp");
    for i in 1..=3 {
        assert_eq!(amy.chat("tmp", &format!("m{i}")), i);
    }
    assert_eq!(amy.chat("general", "g1"), 1);
    amy.drain();
    // Empty, but within the TTL: a rejoin continues the seq.
    amy.ok(json!({"type":"room.leave","room":"tmp"}));
    let (m, complete, users) = join_since(&mut amy, "tmp", 3);
    assert_eq!((m, complete, users), (vec![], true, json!(["amy"])));
    assert_eq!(amy.chat("tmp", "m4"), 4);

    // Everyone leaves (the server is empty), and the TTL passes.
    amy.close();
    wait_connections(server.addr, 0);
    thread::sleep(Duration::from_millis(2500));
    let (mut amy, list) = connect(server.addr, "amy");
    assert_eq!(
        list,
        json!({"type":"room.list","rooms":[{"room":"general","members":1,"joined":true}]})
    );
    // general never expires: its seq goes on.
    assert_eq!(amy.chat("general", "g2"), 2);
    // tmp was removed: since 4 is beyond the new room's last seq (0).
    let (m, complete, users) = join_since(&mut amy, "tmp", 4);
    assert_eq!((m, complete, users), (vec![], false, json!(["amy"])));
    assert_eq!(amy.chat("tmp", "new"), 1);
    let (mut bob, _) = connect(server.addr, "bob");
    let (m, complete, _) = join_since(&mut bob, "tmp", 4);
    assert_eq!(seqs(&m), [1]);
    assert_eq!(m[0]["content"], "new");
    assert!(!complete);
}
