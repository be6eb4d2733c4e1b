//! Two nodes joined by one Redis behave as one server: room messages with one seq for every
//! member on either node, presence per user across the cluster (first connection anywhere
//! joins, last one anywhere leaves, never to the user's own connections), typing, private
//! messages that find the user on any node (`devices` counts every node, `user_not_found` only
//! when connected nowhere), and `/api/notify`, `/api/publish`, `/api/disconnect` on one node
//! reaching users on the other.
//!
//! Absence is checked with a barrier: a chat published after the event in question through the
//! same room home (hence the same Redis connection) that every observer reads up to.

use std::time::Duration;

use serde_json::{json, Value};

use crate::chat_client::{api, connect, strip_timestamp, wait_connections, Client};
use crate::cluster::{eventually, nodes, quiet_barrier, until_chat, Redis, KEY};

fn joined(room: &str, user: &str) -> Value {
    json!({"type":"room.join","room":room,"from":"system","user":user,"content":format!("{user} joined")})
}

fn left(room: &str, user: &str) -> Value {
    json!({"type":"room.leave","room":room,"from":"system","user":user,"content":format!("{user} left")})
}

fn is_presence(m: &Value) -> bool {
    m["type"] == "room.join" || m["type"] == "room.leave"
}

/// The next presence notice `c` gets (other messages stay pending).
fn presence(c: &mut Client) -> Value {
    c.take(is_presence)
}

#[test]
fn the_room_list_after_welcome_counts_the_new_user() {
    let Some(redis) = Redis::start() else { return };
    let n = nodes(&redis, "welcome", 2, &[]);
    let mut clients = Vec::new();
    for i in 0..6 {
        let user = format!("u{i}");
        let (c, list) = connect(n[i % 2].addr, &user);
        assert_eq!(
            list,
            json!({"type":"room.list","rooms":[{"room":"general","members":i + 1,"joined":true}]}),
            "{user}"
        );
        clients.push(c);
    }
}

#[test]
fn chat_and_presence_across_nodes() {
    let Some(redis) = Redis::start() else { return };
    let n = nodes(&redis, "chat", 2, &[]);
    let (a, b) = (n[0].addr, n[1].addr);

    let (mut ann, _) = connect(a, "ann");
    let (mut bob, _) = connect(b, "bob");
    // ann hears of bob, who is on the other node; the lists count both.
    assert_eq!(presence(&mut ann), joined("general", "bob"));
    let general =
        |n: u64| json!({"type":"room.list","rooms":[{"room":"general","members":n,"joined":true}]});
    for c in [&mut ann, &mut bob] {
        let got = c.ask_all(json!({"type":"room.list"}));
        assert_eq!(got[0], general(2), "{}", c.user);
    }
    let (mut cat, _) = connect(a, "cat");
    assert_eq!(presence(&mut ann), joined("general", "cat"));
    assert_eq!(presence(&mut bob), joined("general", "cat"));
    // Nobody heard of themselves, nothing twice.
    quiet_barrier(&mut ann, &mut [&mut bob, &mut cat], "general");

    // One message, one seq, the same bytes everywhere.
    let seq = ann.chat("general", "hello from a");
    let mine = until_chat(&mut ann, "general", "hello from a");
    assert!(mine.is_empty(), "{mine:?}");
    let mut copies = Vec::new();
    for c in [&mut bob, &mut cat] {
        let m = c.take(|m| m["type"] == "chat");
        copies.push(m);
    }
    let expected =
        json!({"type":"chat","room":"general","from":"ann","content":"hello from a","seq":seq});
    for m in &copies {
        assert_eq!(strip_timestamp(m), expected);
        assert_eq!(m["timestamp"], copies[0]["timestamp"]);
    }
    // The other node's sender takes the next seq.
    let seq2 = bob.chat("general", "hello from b");
    assert_eq!(seq2, seq + 1);
    for c in [&mut ann, &mut bob, &mut cat] {
        let m = c.take(|m| m["type"] == "chat");
        assert_eq!(
            strip_timestamp(&m),
            json!({"type":"chat","room":"general","from":"bob","content":"hello from b","seq":seq2}),
            "{}",
            c.user
        );
    }

    // Another room: the join's user list is the cluster's; presence to the other node.
    let list = ann.join("proj");
    assert_eq!(
        list,
        json!({"type":"user.list","room":"proj","users":["ann"]})
    );
    let list = bob.join("proj");
    assert_eq!(
        list,
        json!({"type":"user.list","room":"proj","users":["ann","bob"]})
    );
    assert_eq!(presence(&mut ann), joined("proj", "bob"));
    let s = bob.chat("proj", "in proj");
    assert_eq!(s, 1, "a new room starts at seq 1");
    for c in [&mut ann, &mut bob] {
        let m = c.take(|m| m["type"] == "chat");
        assert_eq!(
            strip_timestamp(&m),
            json!({"type":"chat","room":"proj","from":"bob","content":"in proj","seq":1})
        );
    }
    quiet_barrier(&mut ann, &mut [&mut bob], "proj");

    // A second device of bob on the other node: no news for anyone (bob is in general already).
    let (mut bob2, _) = connect(a, "bob");
    quiet_barrier(&mut ann, &mut [&mut bob, &mut cat, &mut bob2], "general");
    // It leaves again: bob is still connected elsewhere, so no leave notice either.
    bob2.close();
    wait_connections(a, 2);
    quiet_barrier(&mut ann, &mut [&mut bob, &mut cat], "general");

    // Last connection anywhere leaves: cat (one device) at once; dan only with his second.
    cat.close();
    assert_eq!(presence(&mut ann), left("general", "cat"));
    assert_eq!(presence(&mut bob), left("general", "cat"));
    let (mut dan_a, _) = connect(a, "dan");
    let (dan_b, _) = connect(b, "dan");
    assert_eq!(presence(&mut ann), joined("general", "dan"));
    assert_eq!(presence(&mut bob), joined("general", "dan"));
    quiet_barrier(&mut ann, &mut [&mut bob, &mut dan_a], "general");
    dan_b.close();
    wait_connections(b, 1);
    // dan's leave on b went through b's home: the barrier comes from b.
    quiet_barrier(&mut bob, &mut [&mut ann, &mut dan_a], "general");
    dan_a.close();
    assert_eq!(presence(&mut ann), left("general", "dan"));
    assert_eq!(presence(&mut bob), left("general", "dan"));
    quiet_barrier(&mut ann, &mut [&mut bob], "general");
}

#[test]
fn typing_reaches_members_on_every_node_but_the_typists() {
    let Some(redis) = Redis::start() else { return };
    let n = nodes(&redis, "typing", 2, &[]);
    let (a, b) = (n[0].addr, n[1].addr);
    let (mut ann, _) = connect(a, "ann");
    let (mut bob, _) = connect(b, "bob");
    assert_eq!(presence(&mut ann), joined("general", "bob"));
    let (mut cat, _) = connect(a, "cat");
    assert_eq!(presence(&mut ann), joined("general", "cat"));
    assert_eq!(presence(&mut bob), joined("general", "cat"));
    let (mut ann2, _) = connect(b, "ann");
    quiet_barrier(&mut ann, &mut [&mut bob, &mut cat, &mut ann2], "general");

    // To the other members on both nodes, to none of the typist's connections.
    ann.ok(json!({"type":"typing","room":"general"}));
    let typing = json!({"type":"typing","room":"general","from":"ann"});
    assert_eq!(bob.take(|m| m["type"] == "typing"), typing);
    assert_eq!(cat.take(|m| m["type"] == "typing"), typing);
    // Published before the barrier through the same home: ann2 and ann would have it by then.
    quiet_barrier(&mut ann, &mut [&mut ann2, &mut bob, &mut cat], "general");
    // And from the other node.
    bob.ok(json!({"type":"typing","room":"general"}));
    let typing = json!({"type":"typing","room":"general","from":"bob"});
    for c in [&mut ann, &mut cat, &mut ann2] {
        assert_eq!(c.take(|m| m["type"] == "typing"), typing, "{}", c.user);
    }
    quiet_barrier(&mut bob, &mut [&mut ann, &mut ann2, &mut cat], "general");
}

#[test]
fn private_messages_find_the_user_on_any_node() {
    let Some(redis) = Redis::start() else { return };
    let n = nodes(&redis, "private", 2, &[]);
    let (a, b) = (n[0].addr, n[1].addr);
    let (mut ann, _) = connect(a, "ann");
    let (mut bob, _) = connect(b, "bob");

    let private =
        |content: &str, to: &str| json!({"type":"private","from":"ann","to":to,"content":content});
    let ack = ann.ask(json!({"type":"private","to":"bob","content":"psst"}));
    assert_eq!(ack["status"], "delivered", "{ack}");
    assert_eq!(ack["devices"], 1, "{ack}");
    let m = bob.take(|m| m["type"] == "private");
    assert_eq!(strip_timestamp(&m), private("psst", "bob"));

    // devices counts every connection on every node.
    let (mut bob2, _) = connect(a, "bob");
    let (mut bob3, _) = connect(b, "bob");
    let ack = ann.ask(json!({"type":"private","to":"bob","content":"all of you"}));
    assert_eq!(ack["devices"], 3, "{ack}");
    for c in [&mut bob, &mut bob2, &mut bob3] {
        let m = c.take(|m| m["type"] == "private");
        assert_eq!(strip_timestamp(&m), private("all of you", "bob"));
    }

    // The sender's other device on the other node gets a copy; the sending one does not.
    let (mut ann2, _) = connect(b, "ann");
    let ack = ann.ask(json!({"type":"private","to":"bob","content":"synced"}));
    assert_eq!(ack["devices"], 3, "{ack}");
    let m = ann2.take(|m| m["type"] == "private");
    assert_eq!(strip_timestamp(&m), private("synced", "bob"));
    for c in [&mut bob, &mut bob2, &mut bob3] {
        let m = c.take(|m| m["type"] == "private");
        assert_eq!(strip_timestamp(&m), private("synced", "bob"));
    }
    // To oneself: every own connection once, the sending one included.
    let ack = ann.ask(json!({"type":"private","to":"ann","content":"note"}));
    assert_eq!(ack["devices"], 2, "{ack}");
    for c in [&mut ann, &mut ann2] {
        let m = c.take(|m| m["type"] == "private");
        assert_eq!(strip_timestamp(&m), private("note", "ann"), "{}", c.user);
    }
    // A reply from bob (on b) to ann, whose connections are on both nodes.
    let ack = bob2.ask(json!({"type":"private","to":"ann","content":"got it"}));
    assert_eq!(ack["devices"], 2, "{ack}");
    let reply = json!({"type":"private","from":"bob","to":"ann","content":"got it"});
    for c in [&mut ann, &mut ann2] {
        let m = c.take(|m| m["type"] == "private");
        assert_eq!(strip_timestamp(&m), reply, "{}", c.user);
    }
    for c in [&mut bob, &mut bob3] {
        let m = c.take(|m| m["type"] == "private");
        assert_eq!(strip_timestamp(&m), reply, "{}", c.user);
    }

    // Connected nowhere: user_not_found, from either node.
    for c in [&mut ann, &mut ann2] {
        let e = c.ask(json!({"type":"private","to":"nobody","content":"x"}));
        assert_eq!(e["code"], "user_not_found", "{e}");
    }
    // Once bob's last connection anywhere is gone, he is not found any more.
    bob.close();
    bob2.close();
    eventually(
        Duration::from_secs(5),
        "bob's closed devices are still counted",
        || {
            let ack = ann.ask(json!({"type":"private","to":"bob","content":"still?"}));
            (ack["devices"] == 1).then_some(())
        },
    );
    bob3.take(|m| m["type"] == "private" && m["content"] == "still?");
    bob3.close();
    eventually(
        Duration::from_secs(5),
        "bob is still found after closing every connection",
        || {
            let e = ann.ask(json!({"type":"private","to":"bob","content":"gone?"}));
            (e["type"] == "error").then(|| assert_eq!(e["code"], "user_not_found", "{e}"))
        },
    );
    // The sending device never got a copy of its own messages to bob; the other one got a
    // copy of each "still?" (and of a "gone?" that still found bob) and nothing else.
    let rest = ann.drain();
    assert!(
        rest.iter()
            .all(|m| m["type"] != "private" && m["type"] != "error"),
        "ann: {rest:?}"
    );
    let rest = ann2.drain();
    assert!(
        rest.iter().all(|m| m["type"] != "private"
            || strip_timestamp(m) == private("still?", "bob")
            || strip_timestamp(m) == private("gone?", "bob")),
        "ann2: {rest:?}"
    );
}

#[test]
fn api_calls_on_one_node_reach_the_other() {
    let Some(redis) = Redis::start() else { return };
    let n = nodes(&redis, "api", 2, &[]);
    let (a, b) = (n[0].addr, n[1].addr);
    let (mut ann, _) = connect(a, "ann");
    let (mut bob, _) = connect(b, "bob");
    let (mut bob2, _) = connect(b, "bob");
    assert_eq!(presence(&mut ann), joined("general", "bob"));
    let post = |at, path: &str, body: Value| {
        let (code, body, _) = api(at, Some(KEY), "POST", path, Some(&body));
        assert_eq!(code, 200, "{path}: {body}");
        body
    };

    // notify: every device of the user, counted on every node.
    let r = post(
        a,
        "/api/notify",
        json!({"user":"bob","type":"order.created","data":{"order":17}}),
    );
    assert_eq!(r, json!({"delivered":2}));
    for c in [&mut bob, &mut bob2] {
        let m = c.take(|m| m["type"] == "order.created");
        let id = m["id"].as_str().expect("event id").to_string();
        assert_eq!(
            strip_timestamp(&m),
            json!({"type":"order.created","data":{"order":17},"id":id})
        );
    }
    let r = post(b, "/api/notify", json!({"user":"ann","type":"ping.me"}));
    assert_eq!(r, json!({"delivered":1}));
    assert_eq!(ann.take(|m| m["type"] == "ping.me")["data"], json!({}));
    let r = post(b, "/api/notify", json!({"user":"nobody","type":"ping.me"}));
    assert_eq!(r, json!({"delivered":0}));

    // publish: sequenced with the room's chats, delivered on both nodes.
    ann.join("proj");
    bob.join("proj");
    assert_eq!(presence(&mut ann), joined("proj", "bob"));
    let s1 = ann.chat("proj", "before");
    let r = post(
        a,
        "/api/publish",
        json!({"room":"proj","type":"deploy","data":{"v":2},"id":"evt-x"}),
    );
    assert_eq!(r["seq"], s1 + 1, "{r}");
    // delivered: at least this node's member connection, at most the cluster's two.
    let d = r["delivered"].as_u64().expect("delivered");
    assert!((1..=2).contains(&d), "{r}");
    let event = json!({"type":"deploy","data":{"v":2},"id":"evt-x","room":"proj","seq":s1 + 1});
    for c in [&mut ann, &mut bob] {
        let m = c.take(|m| m["type"] == "deploy");
        assert_eq!(strip_timestamp(&m), event, "{}", c.user);
    }
    let s3 = bob.chat("proj", "after");
    assert_eq!(s3, s1 + 2);
    // The event is in the history both nodes read.
    for c in [&mut ann, &mut bob] {
        let m = c.take(|m| m["type"] == "chat" && m["content"] == "after");
        assert_eq!(m["seq"], s3, "{}", c.user);
        let mut hist = c.ask_all(json!({"type":"history","room":"proj"}));
        hist.pop(); // the ack
        let h = hist.pop().expect("history");
        assert_eq!(h["type"], "history", "{h}");
        let msgs = h["messages"].as_array().expect("messages");
        let seqs: Vec<u64> = msgs
            .iter()
            .map(|m| m["seq"].as_u64().expect("seq"))
            .collect();
        assert_eq!(seqs, vec![s1, s1 + 1, s1 + 2], "{}", c.user);
        assert_eq!(strip_timestamp(&msgs[1]), event);
    }
    // publish on b to general reaches a; a room that exists nowhere is not created.
    let r = post(b, "/api/publish", json!({"room":"general","type":"hello"}));
    let gseq = r["seq"].as_u64().expect("seq");
    assert!(gseq >= 1, "{r}");
    for c in [&mut ann, &mut bob, &mut bob2] {
        let m = c.take(|m| m["type"] == "hello");
        assert_eq!(m["seq"], gseq, "{}", c.user);
    }
    let r = post(a, "/api/publish", json!({"room":"nowhere","type":"hello"}));
    assert_eq!(r, json!({"delivered":0,"seq":0}));
    // A room joined on b only and never written to exists for a too.
    bob.join("quiet");
    let r = post(a, "/api/publish", json!({"room":"quiet","type":"first"}));
    assert_eq!(
        r,
        json!({"delivered":0,"seq":1}),
        "delivered counts a's connections"
    );
    assert_eq!(bob.take(|m| m["type"] == "first")["seq"], 1);

    // disconnect on a closes bob's connections on b with 1008, counted cluster-wide.
    let r = post(a, "/api/disconnect", json!({"user":"bob"}));
    assert_eq!(r, json!({"disconnected":2}));
    for c in [&mut bob, &mut bob2] {
        let (code, reason, _) = c.expect_close();
        assert_eq!((code, reason.as_str()), (1008, "disconnected by server"));
    }
    // bob is gone from both rooms (the two notices come on two channels: any order).
    let mut notices = vec![presence(&mut ann), presence(&mut ann)];
    notices.sort_by_key(|m| m["room"].to_string());
    assert_eq!(notices, vec![left("general", "bob"), left("proj", "bob")]);
    wait_connections(b, 0);
    eventually(
        Duration::from_secs(5),
        "bob's connections are still counted",
        || {
            let r = post(a, "/api/disconnect", json!({"user":"bob"}));
            (r == json!({"disconnected":0})).then_some(())
        },
    );
    // ann (on a) was not touched.
    assert_eq!(ann.ask(json!({"type":"ping"}))["type"], "ack");
}
