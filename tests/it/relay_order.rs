//! Relay mode, order and recovery: senders on two nodes publishing into one room at once are
//! seen by every member, on either node, in one and the same order with seqs 1, 2, 3 … and no
//! gap; a client that drops off one node and comes back on the other recovers what it missed
//! with `room.join` + `since` from the shared history.

use std::collections::HashMap;
use std::thread;

use serde_json::{json, Value};

use crate::chat_client::{connect, connect_all, strip_timestamp, Client};
use crate::cluster::{nodes, Redis};

/// Messages per sender.
const EACH: usize = 150;

/// The chats `c` receives in `room` until it has `n` of them (anything else is skipped).
fn chats(c: &mut Client, room: &str, n: usize) -> Vec<Value> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let m = c.take(|m| m["type"] == "chat" && m["room"] == room);
        got.push(m);
    }
    got
}

#[test]
fn senders_on_two_nodes_one_order_for_everyone() {
    let Some(redis) = Redis::start() else { return };
    let n = nodes(&redis, "order", 2, &[]);
    let (a, b) = (n[0].addr, n[1].addr);

    // Two observers per node, two senders per node, all in "race".
    let mut observers = connect_all(a, &["oa1", "oa2"]);
    observers.extend(connect_all(b, &["ob1", "ob2"]));
    let mut senders = connect_all(a, &["sa1", "sa2"]);
    senders.extend(connect_all(b, &["sb1", "sb2"]));
    for c in observers.iter_mut().chain(senders.iter_mut()) {
        c.join("race");
    }
    let total = EACH * senders.len();

    // Every sender writes its whole batch at once, from its own thread.
    let handles: Vec<_> = senders
        .into_iter()
        .map(|mut s| {
            thread::spawn(move || {
                let batch: Vec<Value> = (0..EACH)
                    .map(|i| {
                        json!({"type":"chat","room":"race","content":format!("{} {i}", s.user)})
                    })
                    .collect();
                s.send_batch(&batch);
                // Its own copies come back in its own order, with rising seqs.
                let mine = chats(&mut s, "race", total);
                let own: Vec<&Value> = mine.iter().filter(|m| m["from"] == *s.user).collect();
                assert_eq!(own.len(), EACH, "{}", s.user);
                for (i, m) in own.iter().enumerate() {
                    assert_eq!(m["content"], format!("{} {i}", s.user), "{}", s.user);
                }
                (s, mine)
            })
        })
        .collect();
    let mut seen: Vec<(String, Vec<Value>)> = Vec::new();
    for h in handles {
        let (s, got) = h.join().expect("sender thread");
        seen.push((s.user.clone(), got));
    }
    for o in &mut observers {
        let got = chats(o, "race", total);
        seen.push((o.user.clone(), got));
    }

    // Seqs 1..=total in order, for everyone; the same message at each seq everywhere.
    let reference: Vec<Value> = seen[0].1.iter().map(strip_timestamp).collect();
    for (i, m) in reference.iter().enumerate() {
        assert_eq!(m["seq"], json!(i as u64 + 1), "{}: seq at {i}", seen[0].0);
    }
    let mut per_sender: HashMap<String, usize> = HashMap::new();
    for m in &reference {
        let from = m["from"].as_str().expect("from").to_string();
        let k = per_sender.entry(from.clone()).or_default();
        assert_eq!(m["content"], format!("{from} {k}"), "FIFO per sender");
        *k += 1;
    }
    assert_eq!(per_sender.len(), 4);
    for (user, got) in &seen[1..] {
        let got: Vec<Value> = got.iter().map(strip_timestamp).collect();
        assert!(
            got == reference,
            "{user} saw another order than {}",
            seen[0].0
        );
    }
    // Nothing extra anywhere: the next chat in the room is the next seq for everyone.
    let seq = observers[0].chat("race", "end");
    assert_eq!(seq, total as u64 + 1);
    for o in &mut observers {
        let m = o.take(|m| m["type"] == "chat" && m["room"] == "race");
        assert_eq!(
            (&m["content"], &m["seq"]),
            (&json!("end"), &json!(seq)),
            "{}",
            o.user
        );
    }
}

#[test]
fn a_client_that_moves_to_the_other_node_recovers_with_since() {
    let Some(redis) = Redis::start() else { return };
    let n = nodes(&redis, "recover", 2, &["--history", "50"]);
    let (a, b) = (n[0].addr, n[1].addr);

    let (mut bob, _) = connect(b, "bob");
    bob.join("log");
    let (mut kay, _) = connect(a, "kay");
    kay.join("log");
    for i in 1..=5 {
        bob.chat("log", &format!("m{i}"));
    }
    let got = chats(&mut kay, "log", 5);
    let last = got[4]["seq"].as_u64().expect("seq");
    assert_eq!(last, 5);
    kay.close();

    // Missed while away (and more than a page of them).
    for i in 6..=30 {
        bob.chat("log", &format!("m{i}"));
    }

    // Back, on the other node: the history from Redis holds exactly what was missed.
    let (mut kay, _) = connect(b, "kay");
    let answers = kay.ask_all(json!({"type":"room.join","room":"log","since":last}));
    let history = answers
        .iter()
        .find(|m| m["type"] == "history")
        .expect("history");
    assert_eq!(history["complete"], true, "{history}");
    let messages = history["messages"].as_array().expect("messages");
    let contents: Vec<&str> = messages
        .iter()
        .map(|m| m["content"].as_str().expect("content"))
        .collect();
    let expected: Vec<String> = (6..=30).map(|i| format!("m{i}")).collect();
    assert_eq!(contents, expected);
    for (m, seq) in messages.iter().zip(6u64..) {
        assert_eq!(m["seq"], seq);
        assert_eq!(m["from"], "bob");
    }
    // And live from then on, continuing the seq.
    let seq = bob.chat("log", "after");
    assert_eq!(seq, 31);
    let m = kay.take(|m| m["type"] == "chat");
    assert_eq!(m["content"], "after");
    assert_eq!(m["seq"], 31);

    // Beyond what the history keeps (50): complete is false, the kept tail is there.
    for i in 32..=100 {
        bob.chat("log", &format!("m{i}"));
    }
    let (mut old, _) = connect(a, "old");
    let answers = old.ask_all(json!({"type":"room.join","room":"log","since":1}));
    let history = answers
        .iter()
        .find(|m| m["type"] == "history")
        .expect("history");
    assert_eq!(history["complete"], false, "{history}");
    let messages = history["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 50);
    assert_eq!(messages[0]["seq"], 51);
    assert_eq!(messages[49]["seq"], 100);
}
