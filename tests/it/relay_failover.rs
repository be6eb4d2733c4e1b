//! Relay mode, failures: a node killed with SIGKILL vanishes from the cluster's counts and
//! presence within a few heartbeats; a Redis that dies and comes back empty leaves each node
//! serving its own members meanwhile and joins them again afterwards, with nothing delivered
//! twice and no seq going backwards; behind nginx, the clients of a node stopped with SIGTERM
//! reconnect through the same address to the other node and recover what they missed.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::chat_client::{connect, health, open, Client};
use crate::cluster::{eventually, metric, node, nodes, wait_relay, Nginx, Redis};

/// How long a killed node may stay in the counts: 3 missed 2 s beats, one more beat of the
/// survivor to notice, and slack for a slow machine.
const DEAD_NODE_WITHIN: Duration = Duration::from_secs(20);

fn joined(room: &str, user: &str) -> Value {
    json!({"type":"room.join","room":room,"from":"system","user":user,"content":format!("{user} joined")})
}

fn left(room: &str, user: &str) -> Value {
    json!({"type":"room.leave","room":room,"from":"system","user":user,"content":format!("{user} left")})
}

fn is_presence(m: &Value) -> bool {
    m["from"] == "system" && (m["type"] == "room.join" || m["type"] == "room.leave")
}

/// The members of `room` in `c`'s room list (0 when it is not listed).
fn members(c: &mut Client, room: &str) -> u64 {
    let got = c.ask_all(json!({"type":"room.list"}));
    got.iter()
        .find(|m| m["type"] == "room.list")
        .and_then(|l| l["rooms"].as_array())
        .and_then(|rooms| rooms.iter().find(|r| r["room"] == room))
        .map_or(0, |r| r["members"].as_u64().expect("members"))
}

#[test]
fn a_killed_node_vanishes_from_presence_and_counts() {
    let Some(redis) = Redis::start() else { return };
    let mut n = nodes(&redis, "dead", 2, &[]);
    let a = n[0].addr;
    let (mut ann, _) = connect(a, "ann");
    ann.join("r");
    let (mut kim, _) = connect(n[1].addr, "kim");
    kim.join("r");
    assert_eq!(ann.take(is_presence), joined("general", "kim"));
    assert_eq!(ann.take(is_presence), joined("r", "kim"));
    assert_eq!(members(&mut ann, "general"), 2);

    // No goodbye: the process is gone with its Redis connections.
    let killed = Instant::now();
    n[1].kill();
    let mut notices = vec![ann.take(is_presence), ann.take(is_presence)];
    let took = killed.elapsed();
    assert!(took < DEAD_NODE_WITHIN, "{took:?}");
    notices.sort_by_key(|m| m["room"].to_string());
    assert_eq!(notices, vec![left("general", "kim"), left("r", "kim")]);
    assert_eq!(members(&mut ann, "general"), 1);
    assert_eq!(members(&mut ann, "r"), 1);
    // kim's devices are no longer counted: a notification finds nobody.
    let (_, body, _) = crate::chat_client::api(
        a,
        Some(crate::cluster::KEY),
        "POST",
        "/api/notify",
        Some(&json!({"user":"kim","type":"x"})),
    );
    assert_eq!(body, json!({"delivered":0}));
    // The survivor still works.
    assert_eq!(ann.chat("r", "alone"), 1);
}

/// Reads `c`'s chats in `room` until it has seen every content in `want`; fails on a
/// duplicate or a seq that does not rise. Returns the contents in the order they came.
fn collect_chats(c: &mut Client, room: &str, want: &[&str], last_seq: &mut u64) -> Vec<String> {
    let mut need: HashSet<&str> = want.iter().copied().collect();
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    while !need.is_empty() {
        let m = c.take(|m| m["type"] == "chat" && m["room"] == room);
        let content = m["content"].as_str().expect("content").to_string();
        assert!(seen.insert(content.clone()), "{}: twice: {m}", c.user);
        let seq = m["seq"].as_u64().expect("seq");
        assert!(
            seq > *last_seq,
            "{}: seq {seq} after {last_seq}: {m}",
            c.user
        );
        *last_seq = seq;
        need.remove(content.as_str());
        order.push(content);
    }
    order
}

/// `prefix 0` .. `prefix n-1`.
fn batch(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix} {i}")).collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_redis_outage_keeps_each_node_serving_and_heals() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let n = nodes(&redis, "outage", 2, &[]);
    let (a, b) = (n[0].addr, n[1].addr);
    let (mut ann, _) = connect(a, "ann");
    let (mut cat, _) = connect(a, "cat");
    let (mut bob, _) = connect(b, "bob");
    for c in [&mut ann, &mut cat, &mut bob] {
        c.join("ops");
    }
    let mut seqs = [0u64; 3];
    ann.chat("ops", "before");
    for (c, s) in [&mut ann, &mut cat, &mut bob].into_iter().zip(&mut seqs) {
        collect_chats(c, "ops", &["before"], s);
    }

    redis.kill();
    for at in [a, b] {
        wait_relay(at, "down");
        assert_eq!(
            health(at)["status"],
            "ok",
            "a node without Redis still serves"
        );
    }
    // Each node orders its rooms itself meanwhile: its own members hear each other, in the
    // order sent.
    let during_a = batch("during a", 20);
    let during_b = batch("during b", 5);
    let first = ann.chat("ops", &during_a[0]);
    assert!(first > seqs[0], "seq {first} went backwards");
    let rest: Vec<Value> = during_a[1..]
        .iter()
        .map(|c| json!({"type":"chat","room":"ops","content":c}))
        .collect();
    ann.send_batch(&rest);
    for c in &during_b {
        bob.chat("ops", c);
    }
    assert_eq!(
        collect_chats(&mut ann, "ops", &strs(&during_a), &mut seqs[0]),
        during_a
    );
    assert_eq!(
        collect_chats(&mut cat, "ops", &strs(&during_a), &mut seqs[1]),
        during_a
    );
    assert_eq!(
        collect_chats(&mut bob, "ops", &strs(&during_b), &mut seqs[2]),
        during_b
    );
    assert_eq!(metric(a, "corecast_relay_up"), 0.0);
    // An API publish on a during the outage: a's members now, b's after.
    let (code, body, _) = crate::chat_client::api(
        a,
        Some(crate::cluster::KEY),
        "POST",
        "/api/publish",
        Some(&json!({"room":"ops","type":"deploy","data":{"v":3}})),
    );
    assert_eq!(code, 200, "{body}");
    for c in [&mut ann, &mut cat] {
        c.take(|m| m["type"] == "deploy");
    }
    assert!(
        metric(a, "corecast_relay_backlog") >= 21.0,
        "the outage messages wait"
    );

    // Back, empty: the nodes re-register, each one's outage messages reach the other node,
    // once, in order, numbered after what its members saw; then chat crosses again.
    redis.restart();
    for at in [a, b] {
        wait_relay(at, "up");
    }
    assert_eq!(
        collect_chats(&mut ann, "ops", &strs(&during_b), &mut seqs[0]),
        during_b
    );
    assert_eq!(
        collect_chats(&mut cat, "ops", &strs(&during_b), &mut seqs[1]),
        during_b
    );
    assert_eq!(
        collect_chats(&mut bob, "ops", &strs(&during_a), &mut seqs[2]),
        during_a
    );
    let event = bob.take(|m| m["type"] == "deploy");
    assert_eq!(event["data"], json!({"v":3}));
    assert_eq!(metric(a, "corecast_relay_backlog"), 0.0);
    assert!(metric(a, "corecast_relay_reconnects_total") >= 1.0);
    let s = bob.chat("ops", "after");
    assert!(s > seqs[2], "seq {s} after {}", seqs[2]);
    for (c, s) in [&mut ann, &mut cat, &mut bob].into_iter().zip(&mut seqs) {
        collect_chats(c, "ops", &["after"], s);
    }
    // The counts were rebuilt from the nodes' registrations.
    eventually(Duration::from_secs(10), "members not re-registered", || {
        (members(&mut ann, "ops") == 3).then_some(())
    });
    assert_eq!(members(&mut bob, "general"), 3);
    // Nothing more came (no duplicate of any outage message).
    for c in [&mut ann, &mut cat, &mut bob] {
        let extra: Vec<Value> = c
            .drain()
            .into_iter()
            .filter(|m| m["type"] == "chat")
            .collect();
        assert!(extra.is_empty(), "{}: {extra:?}", c.user);
    }
}

/// A client through nginx that remembers the last seq it saw in `room`.
struct Reconnecting {
    c: Client,
    last: u64,
}

impl Reconnecting {
    fn connect(proxy: std::net::SocketAddr, user: &str, room: &str) -> Reconnecting {
        let mut c = open(proxy, user);
        assert_eq!(c.recv()["type"], "welcome");
        c.join(room);
        Reconnecting { c, last: 0 }
    }

    /// Reads chats of `room` up to `content`, checking the seqs rise by one.
    fn read_to(&mut self, room: &str, content: &str) {
        loop {
            let m = self.c.take(|m| m["type"] == "chat" && m["room"] == room);
            let seq = m["seq"].as_u64().expect("seq");
            assert_eq!(seq, self.last + 1, "{}: gap or repeat at {m}", self.c.user);
            self.last = seq;
            if m["content"] == content {
                return;
            }
        }
    }
}

#[test]
fn behind_nginx_clients_of_a_stopped_node_resume_on_the_other() {
    let Some(redis) = Redis::start() else { return };
    let mut a = node(&redis, "nginx", "a", &[]);
    let b = node(&redis, "nginx", "b", &[]);
    let Some(proxy) = Nginx::start(&[a.addr, b.addr]) else {
        return;
    };
    let p = proxy.addr;
    let conns = |at| health(at)["connections"].as_u64().expect("connections");
    // Enough clients that least_conn puts some on each node; where each one is, from the
    // nodes' connection counts.
    let mut moved = Vec::new();
    let mut stayed = Vec::new();
    for i in 0..6 {
        let before = conns(a.addr);
        let r = Reconnecting::connect(p, &format!("u{i}"), "hall");
        if conns(a.addr) > before {
            moved.push(r);
        } else {
            stayed.push(r);
        }
    }
    assert!(!moved.is_empty(), "nginx put nobody on node a");
    assert!(!stayed.is_empty(), "nginx put nobody on node b");
    for i in 0..10 {
        let all = moved.len() + stayed.len();
        let r = if i % all < moved.len() {
            &mut moved[i % all]
        } else {
            &mut stayed[i % all - moved.len()]
        };
        r.c.chat("hall", &format!("m{i}"));
    }
    for r in moved.iter_mut().chain(stayed.iter_mut()) {
        r.read_to("hall", "m9");
    }

    // Node a stops: its clients are told 1001 and come back through nginx (to b).
    a.sigterm();
    for r in &mut moved {
        let (code, reason, _) = r.c.expect_close();
        assert_eq!((code, reason.as_str()), (1001, "going away"));
    }
    a.wait_exit(Duration::from_secs(20));
    for (i, r) in stayed.iter_mut().enumerate() {
        r.c.chat("hall", &format!("while away {i}"));
    }
    let last_content = format!("while away {}", stayed.len() - 1);
    for r in &mut stayed {
        r.read_to("hall", &last_content);
    }
    for r in &mut moved {
        let user = r.c.user.clone();
        let mut c = open(p, &user);
        assert_eq!(c.recv()["type"], "welcome");
        let got = c.ask_all(json!({"type":"room.join","room":"hall","since":r.last}));
        let history = got
            .iter()
            .find(|m| m["type"] == "history")
            .expect("history");
        assert_eq!(history["complete"], true, "{history}");
        let msgs = history["messages"].as_array().expect("messages");
        assert_eq!(msgs.len(), stayed.len(), "{user}: {history}");
        for m in msgs {
            assert_eq!(m["seq"].as_u64(), Some(r.last + 1), "{user}: {m}");
            r.last += 1;
        }
        r.c = c;
    }
    assert_eq!(health(b.addr)["relay"], "up");
    // Everyone is on b now and hears everyone.
    let mut clients: Vec<Reconnecting> = moved.into_iter().chain(stayed).collect();
    clients[0].c.chat("hall", "all here");
    for r in &mut clients {
        r.read_to("hall", "all here");
    }
    drop(proxy);
}

#[test]
fn a_full_backlog_drops_the_oldest_and_counts_them() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let n = nodes(&redis, "backlog", 2, &["--relay-backlog", "8"]);
    let (a, b) = (n[0].addr, n[1].addr);
    let (mut ann, _) = connect(a, "ann");
    let (mut bob, _) = connect(b, "bob");
    ann.join("ops");
    bob.join("ops");
    redis.kill();
    wait_relay(a, "down");
    let sent = batch("m", 20);
    let mut last = 0;
    for c in &sent {
        ann.chat("ops", c);
    }
    // Locally nothing is lost.
    assert_eq!(
        collect_chats(&mut ann, "ops", &strs(&sent), &mut last),
        sent
    );
    let dropped = metric(a, "corecast_relay_dropped_total{reason=\"backlog_full\"}");
    assert!(dropped >= 12.0, "dropped {dropped}");
    assert!(metric(a, "corecast_relay_backlog") <= 8.0);
    redis.restart();
    wait_relay(a, "up");
    wait_relay(b, "up");
    // The other node gets the newest that were kept, in order, once: a tail of the batch
    // (the backlog holds commands, and a slot may hold another kind than a message).
    let mut got: Vec<String> = Vec::new();
    let mut last = 0;
    while got.last().map(String::as_str) != Some("m 19") {
        let m = bob.take(|m| m["type"] == "chat" && m["room"] == "ops");
        let seq = m["seq"].as_u64().expect("seq");
        assert!(seq > last, "seq {seq} after {last}");
        last = seq;
        got.push(m["content"].as_str().expect("content").to_string());
    }
    assert!((6..=8).contains(&got.len()), "{got:?}");
    assert_eq!(
        got,
        sent[sent.len() - got.len()..],
        "not the newest, in order"
    );
    let extra: Vec<Value> = bob
        .drain()
        .into_iter()
        .filter(|m| m["type"] == "chat")
        .collect();
    assert!(extra.is_empty(), "{extra:?}");
}

#[test]
fn a_node_restarted_under_the_same_id_clears_what_its_predecessor_left() {
    let Some(redis) = Redis::start() else { return };
    let a = node(&redis, "restart", "a", &[]);
    let mut b = node(&redis, "restart", "b", &[]);
    let (mut ann, _) = connect(a.addr, "ann");
    let (_kim, _) = connect(b.addr, "kim");
    assert_eq!(ann.take(is_presence), joined("general", "kim"));
    b.kill();
    // The same id again at once (a container restarting under a fixed id): its first
    // command takes kim out; its own beats would otherwise keep kim counted forever.
    let _b2 = node(&redis, "restart", "b", &[]);
    assert_eq!(ann.take(is_presence), left("general", "kim"));
    assert_eq!(members(&mut ann, "general"), 1);
    let (_, body, _) = crate::chat_client::api(
        a.addr,
        Some(crate::cluster::KEY),
        "POST",
        "/api/notify",
        Some(&json!({"user":"kim","type":"x","store":true})),
    );
    assert_eq!(body, json!({"delivered":0,"stored":true}));
}

#[test]
fn a_node_stopped_with_sigterm_unregisters_its_users_before_it_exits() {
    let Some(redis) = Redis::start() else { return };
    let a = node(&redis, "term", "a", &[]);
    let mut b = node(&redis, "term", "b", &[]);
    let (mut ann, _) = connect(a.addr, "ann");
    let (mut kim, _) = connect(b.addr, "kim");
    kim.join("r");
    assert_eq!(ann.take(is_presence), joined("general", "kim"));
    b.sigterm();
    let (code, _, _) = kim.expect_close();
    assert_eq!(code, 1001);
    b.wait_exit(Duration::from_secs(20));
    // Gone from Redis already (not 6 s later, when the others would reap the node): the
    // relay wrote the drained connections' leaves and counts before the process ended.
    let (_, body, _) = crate::chat_client::api(
        a.addr,
        Some(crate::cluster::KEY),
        "POST",
        "/api/notify",
        Some(&json!({"user":"kim","type":"x"})),
    );
    assert_eq!(body, json!({"delivered":0}));
    assert_eq!(ann.take(is_presence), left("general", "kim"));
    assert_eq!(members(&mut ann, "general"), 1);
}

#[test]
fn a_stalled_redis_is_given_up_and_everything_registers_again() {
    let Some(redis) = Redis::start() else { return };
    let n = nodes(&redis, "stall", 2, &[]);
    let (a, b) = (n[0].addr, n[1].addr);
    let (mut ann, _) = connect(a, "ann");
    let (mut bob, _) = connect(b, "bob");
    assert_eq!(ann.take(is_presence), joined("general", "bob"));
    // Frozen with its connections open: no reset, no reply.
    redis.pause(true);
    for at in [a, b] {
        wait_relay(at, "down");
    }
    // Longer than the 6 s after which a silent node counts as dead.
    std::thread::sleep(Duration::from_secs(3));
    redis.pause(false);
    for at in [a, b] {
        wait_relay(at, "up");
    }
    // Nobody was reaped for Redis' silence, and both nodes are fully registered: bob is
    // found from a, ann from b.
    let id = ann.send_with_id(json!({"type":"private","to":"bob","content":"still there?"}));
    let ack = ann.answer(&id);
    assert_eq!(ack["status"], "delivered", "{ack}");
    assert_eq!(
        bob.take(|m| m["type"] == "private")["content"],
        "still there?"
    );
    let (_, body, _) = crate::chat_client::api(
        b,
        Some(crate::cluster::KEY),
        "POST",
        "/api/notify",
        Some(&json!({"user":"ann","type":"x"})),
    );
    assert_eq!(body, json!({"delivered":1}));
    assert_eq!(members(&mut bob, "general"), 2);
    let notices: Vec<Value> = ann.drain().into_iter().filter(is_presence).collect();
    assert!(notices.is_empty(), "presence flapped: {notices:?}");
}
