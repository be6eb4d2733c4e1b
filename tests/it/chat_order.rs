//! One order for every member of a busy room: concurrent senders on many connections (with
//! two SO_REUSEPORT workers, 15 connections all landing on one worker has probability 2^-14,
//! so members and senders are on both workers, and the rooms' homes serve remote members).
//! Every member connection sees each room's seq 1, 2, … N with no gap and the same messages
//! in the same order, and every sender's ack carries the seq its message has in the stream.

use std::collections::HashMap;
use std::thread;

use serde_json::json;

use crate::chat_client::{connect_all, Client};
use crate::harness::Server;

const PER_SENDER: usize = 40;
const SENDERS: usize = 4;

/// Who sends what: senders 0 and 1 only to `busy`, 2 and 3 alternate `busy` and `general`.
fn room_of(sender: usize, i: usize) -> &'static str {
    if sender >= 2 && i % 2 == 1 {
        "general"
    } else {
        "busy"
    }
}

/// What one member connection saw.
struct Seen {
    user: String,
    /// Per room: (seq, from, content) in arrival order.
    chats: HashMap<String, Vec<(u64, String, String)>>,
    /// This connection's acks: id → seq.
    acks: HashMap<String, u64>,
}

fn run_member(
    mut c: Client,
    sender: Option<usize>,
    expected: HashMap<&'static str, usize>,
) -> (Seen, Client) {
    let mut acks = HashMap::new();
    if let Some(s) = sender {
        // Pipelined: every chat is sent before any answer is read.
        for i in 0..PER_SENDER {
            let room = room_of(s, i);
            c.send(&json!({"type":"chat","room":room,"content":format!("{s}:{i}"),"id":format!("{s}:{i}")}));
        }
    }
    let mut chats: HashMap<String, Vec<(u64, String, String)>> = HashMap::new();
    let done = |chats: &HashMap<String, Vec<_>>, acks: &HashMap<String, u64>| {
        expected
            .iter()
            .all(|(room, n)| chats.get(*room).map_or(0, Vec::len) == *n)
            && (sender.is_none() || acks.len() == PER_SENDER)
    };
    while !done(&chats, &acks) {
        let m = c.recv();
        match m["type"].as_str() {
            Some("chat") => {
                let room = m["room"].as_str().expect("room").to_string();
                chats.entry(room).or_default().push((
                    m["seq"].as_u64().expect("seq"),
                    m["from"].as_str().expect("from").to_string(),
                    m["content"].as_str().expect("content").to_string(),
                ));
            }
            Some("ack") => {
                let id = m["id"].as_str().expect("string id").to_string();
                let seq = m["seq"].as_u64().expect("ack seq");
                assert_eq!(m, json!({"type":"ack","id":id,"seq":seq}));
                assert!(acks.insert(id, seq).is_none(), "{}: two acks", c.user);
            }
            _ => panic!("{}: unexpected {m}", c.user),
        }
    }
    let seen = Seen {
        user: c.user.clone(),
        chats,
        acks,
    };
    (seen, c)
}

#[test]
fn every_member_sees_one_order_with_concurrent_senders() {
    let server = Server::start(&["--msg-rate", "65535", "--msg-burst", "65535"]);
    let names: Vec<String> = (0..14).map(|i| format!("u{i:02}")).collect();
    let mut users: Vec<&str> = names.iter().map(String::as_str).collect();
    users.push("u00"); // a second device of a sender
    let mut clients = connect_all(server.addr, &users);
    for c in &mut clients {
        c.join("busy");
    }
    for c in &mut clients {
        c.drain(); // presence of the later joins
    }

    let general_total = 2 * (PER_SENDER / 2);
    let busy_total = SENDERS * PER_SENDER - general_total;
    let expected: HashMap<&'static str, usize> =
        [("busy", busy_total), ("general", general_total)].into();
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, c)| {
            let sender = (n < SENDERS).then_some(n);
            let expected = expected.clone();
            thread::spawn(move || run_member(c, sender, expected))
        })
        .collect();
    let (seen, mut clients): (Vec<Seen>, Vec<Client>) = handles
        .into_iter()
        .map(|h| h.join().expect("member thread"))
        .unzip();
    // Nothing more for anyone: no duplicate, no stray answer.
    for c in &mut clients {
        c.expect_nothing();
    }

    let reference = &seen[0];
    for (room, total) in &expected {
        let order = &reference.chats[*room];
        assert_eq!(
            order.iter().map(|c| c.0).collect::<Vec<_>>(),
            (1..=*total as u64).collect::<Vec<_>>(),
            "{}: {room} seqs",
            reference.user
        );
        for s in &seen {
            assert!(
                &s.chats[*room] == order,
                "{} saw another order of {room} than {}",
                s.user,
                reference.user
            );
        }
        // Every message once, each sender's in the order it sent them.
        for sender in 0..SENDERS {
            let mine: Vec<usize> = order
                .iter()
                .filter(|c| c.1 == format!("u{sender:02}"))
                .map(|c| {
                    c.2.split_once(':')
                        .expect("content")
                        .1
                        .parse()
                        .expect("index")
                })
                .collect();
            let sent: Vec<usize> = (0..PER_SENDER)
                .filter(|&i| room_of(sender, i) == *room)
                .collect();
            assert_eq!(mine, sent, "sender {sender} in {room}");
        }
    }
    // Each sender's acks carry the seq its message has in the stream.
    for (sender, s) in seen.iter().take(SENDERS).enumerate() {
        assert_eq!(s.acks.len(), PER_SENDER);
        for i in 0..PER_SENDER {
            let id = format!("{sender}:{i}");
            let room = room_of(sender, i);
            let seq = reference.chats[room]
                .iter()
                .find(|c| c.2 == id)
                .map(|c| c.0)
                .expect("message in stream");
            assert_eq!(s.acks.get(&id), Some(&seq), "{}: ack of {id}", s.user);
        }
    }
    // Only the senders got acks.
    assert!(seen[SENDERS..].iter().all(|s| s.acks.is_empty()));
}

/// Members who join (with `since: 0`) or leave in the middle of a flood see gapless streams:
/// the joiner's history and live messages together are 1..N, each in order; the leaver sees
/// 1..m and nothing after its leave is acknowledged.
#[test]
fn joining_and_leaving_during_a_flood_leaves_no_gap() {
    const FLOODERS: usize = 3;
    const EACH: usize = 100;
    const TOTAL: u64 = (FLOODERS * EACH) as u64;
    let server = Server::start(&[
        "--msg-rate",
        "65535",
        "--msg-burst",
        "65535",
        "--history",
        "1000",
        // Presence is not under test here.
        "--presence-max-members",
        "0",
    ]);
    let users = ["f0", "f1", "f2", "x0", "x1", "x2", "x3", "leaver", "joiner"];
    let mut clients = connect_all(server.addr, &users);
    for c in clients.iter_mut().take(8) {
        c.join("busy");
    }
    for c in &mut clients {
        c.drain();
    }
    let mut joiner = clients.pop().expect("joiner");
    let mut leaver = clients.pop().expect("leaver");

    // Flooders pace their messages so that the join and the leave land in the middle.
    let handles: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, mut c)| {
            thread::spawn(move || {
                if n < FLOODERS {
                    for i in 0..EACH {
                        c.send(&json!({"type":"chat","room":"busy","content":format!("{n}:{i}")}));
                        thread::sleep(std::time::Duration::from_millis(2));
                    }
                }
                let mut seqs = Vec::new();
                while seqs.len() < TOTAL as usize {
                    let m = c.recv();
                    assert_eq!(m["type"], "chat", "{}: {m}", c.user);
                    seqs.push(m["seq"].as_u64().expect("seq"));
                }
                assert_eq!(seqs, (1..=TOTAL).collect::<Vec<_>>(), "{}", c.user);
                c
            })
        })
        .collect();

    // The leaver leaves after 50 messages.
    let mut seen = Vec::new();
    while seen.len() < 50 {
        let m = leaver.recv();
        assert_eq!(m["type"], "chat", "{m}");
        seen.push(m["seq"].as_u64().expect("seq"));
    }
    let id = leaver.send_with_id(json!({"type":"room.leave","room":"busy"}));
    for m in leaver.until(|m| crate::chat_client::is_answer(m, &id)) {
        match m["type"].as_str() {
            Some("chat") => seen.push(m["seq"].as_u64().expect("seq")),
            Some("ack") => assert_eq!(m, json!({"type":"ack","id":id})),
            _ => panic!("leaver got {m}"),
        }
    }
    let m = seen.len() as u64;
    assert_eq!(seen, (1..=m).collect::<Vec<_>>(), "leaver");

    // The joiner joins now, asking for everything.
    let id = joiner.send_with_id(json!({"type":"room.join","room":"busy","since":0}));
    let answers = joiner.until(|m| crate::chat_client::is_answer(m, &id));
    let history = answers
        .iter()
        .find(|m| m["type"] == "history")
        .unwrap_or_else(|| panic!("no history: {answers:?}"));
    assert_eq!(history["complete"], true);
    let kept: Vec<u64> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect();
    let k = kept.len() as u64;
    assert_eq!(kept, (1..=k).collect::<Vec<_>>(), "joiner's history");
    let mut live: Vec<u64> = answers
        .iter()
        .filter(|m| m["type"] == "chat")
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect();
    while live.last().copied().unwrap_or(k) < TOTAL {
        let m = joiner.recv();
        assert_eq!(m["type"], "chat", "{m}");
        live.push(m["seq"].as_u64().expect("seq"));
    }
    // Live messages continue the history (a message in both is allowed by the protocol,
    // a gap is not).
    let first_live = live.first().copied().unwrap_or(k + 1);
    assert!(
        first_live <= k + 1,
        "gap between history ..{k} and live {first_live}.."
    );
    assert_eq!(
        live,
        (first_live..=TOTAL).collect::<Vec<_>>(),
        "joiner's live messages"
    );
    eprintln!("flood: leaver left after {m} of {TOTAL}, joiner's history held {k}");

    let mut clients: Vec<Client> = handles
        .into_iter()
        .map(|h| h.join().expect("member"))
        .collect();
    clients.push(leaver);
    clients.push(joiner);
    for c in &mut clients {
        c.expect_nothing();
    }
}
