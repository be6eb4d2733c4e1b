//! Rooms between several users and devices: presence notices (per user, not per device, none
//! for big rooms), typing (to the others only), private messages (every device of the
//! recipient and the sender's other devices), `user.list` and `room.list` contents, the
//! answers to `room.join` in order.

use serde_json::{json, Value};

use crate::chat_client::{connect, connect_all, strip_timestamp, wait_connections, Client};
use crate::harness::Server;

fn joined(room: &str, user: &str) -> Value {
    json!({"type":"room.join","room":room,"from":"system","user":user,"content":format!("{user} joined")})
}

fn left(room: &str, user: &str) -> Value {
    json!({"type":"room.leave","room":room,"from":"system","user":user,"content":format!("{user} left")})
}

/// `c`'s drained messages must be `want`, compared as multisets: notices for different rooms
/// come from different homes, in no defined order.
trait Check {
    fn check(&mut self, want: &[Value]);
}

impl Check for Client {
    fn check(&mut self, want: &[Value]) {
        let mut got = self.drain();
        let mut want = want.to_vec();
        got.sort_by_key(Value::to_string);
        want.sort_by_key(Value::to_string);
        assert_eq!(got, want, "{}", self.user);
    }
}

/// [`check`] for several clients: `expect_each!(a => [..], b => [..])`.
macro_rules! expect_each {
    ($($c:expr => [$($want:expr),* $(,)?]),* $(,)?) => {
        $( $c.check(&[$($want),*]); )*
    };
}

#[test]
fn presence_in_general_is_per_user() {
    let server = Server::start(&[]);
    let (mut amy1, _) = connect(server.addr, "amy");
    let (mut bob, _) = connect(server.addr, "bob");
    assert_eq!(amy1.drain(), vec![joined("general", "bob")]);
    bob.expect_nothing();
    // A second device of amy: nobody hears of it.
    let (mut amy2, _) = connect(server.addr, "amy");
    expect_each!(amy1 => [], bob => [], amy2 => []);
    // Her first device going away is no news either.
    amy1.close();
    wait_connections(server.addr, 2);
    expect_each!(bob => [], amy2 => []);
    // Her last one is.
    amy2.close();
    assert_eq!(
        bob.take(|m| m["type"] == "room.leave"),
        left("general", "amy")
    );
    bob.expect_nothing();
}

#[test]
fn presence_in_a_room_on_first_join_and_last_leave() {
    let server = Server::start(&[]);
    let mut cs = connect_all(server.addr, &["amy", "amy", "bob", "cat"]);
    let [amy1, amy2, bob, cat] = &mut cs[..] else {
        unreachable!()
    };
    bob.join("lobby");
    assert_eq!(
        cat.join("lobby"),
        json!({"type":"user.list","room":"lobby","users":["bob","cat"]})
    );
    expect_each!(bob => [joined("lobby", "cat")], cat => []);

    amy1.join("lobby");
    expect_each!(
        bob => [joined("lobby", "amy")],
        cat => [joined("lobby", "amy")],
        amy1 => [],
        amy2 => [],
    );
    // amy's second device joining, and her first leaving, tell nobody.
    assert_eq!(
        amy2.join("lobby"),
        json!({"type":"user.list","room":"lobby","users":["amy","bob","cat"]})
    );
    expect_each!(bob => [], cat => [], amy1 => [], amy2 => []);
    amy1.ok(json!({"type":"room.leave","room":"lobby"}));
    expect_each!(bob => [], cat => [], amy1 => [], amy2 => []);
    // Her last device leaving does, to the others only.
    amy2.ok(json!({"type":"room.leave","room":"lobby"}));
    expect_each!(
        bob => [left("lobby", "amy")],
        cat => [left("lobby", "amy")],
        amy1 => [],
        amy2 => [],
    );
    // Joining again is a first join again.
    amy2.join("lobby");
    expect_each!(
        bob => [joined("lobby", "amy")],
        cat => [joined("lobby", "amy")],
        amy1 => [],
        amy2 => [],
    );
    // Joining a room one is in again tells nobody.
    let again = amy2.ask_all(json!({"type":"room.join","room":"lobby"}));
    assert_eq!(
        again[0],
        json!({"type":"user.list","room":"lobby","users":["amy","bob","cat"]})
    );
    assert_eq!(again.len(), 2);
    expect_each!(bob => [], cat => [], amy1 => [], amy2 => []);

    // A disconnect leaves every room: cat's last connection goes.
    let cat = cs.remove(3);
    cat.close();
    let [amy1, amy2, bob] = &mut cs[..] else {
        unreachable!()
    };
    for (c, rooms) in [(&mut *bob, 2), (&mut *amy1, 1), (&mut *amy2, 2)] {
        c.await_pending(|m| m["type"] == "room.leave", rooms);
    }
    expect_each!(
        bob => [left("lobby", "cat"), left("general", "cat")],
        amy1 => [left("general", "cat")],
        amy2 => [left("lobby", "cat"), left("general", "cat")],
    );
}

#[test]
fn no_presence_in_rooms_over_presence_max_members() {
    let server = Server::start(&["--presence-max-members", "2"]);
    let mut cs = connect_all(server.addr, &["amy", "bob", "cat", "dan"]);
    let [amy, bob, cat, dan] = &mut cs[..] else {
        unreachable!()
    };
    amy.join("big");
    bob.join("big"); // 2 members: announced
    expect_each!(amy => [joined("big", "bob")], bob => []);
    cat.join("big"); // 3: not
    dan.join("big"); // 4: not
    expect_each!(amy => [], bob => [], cat => [], dan => []);
    // Leaves from a room of 4 and of 3 members: not announced; from 2: announced.
    dan.ok(json!({"type":"room.leave","room":"big"}));
    cat.ok(json!({"type":"room.leave","room":"big"}));
    expect_each!(amy => [], bob => [], cat => [], dan => []);
    bob.ok(json!({"type":"room.leave","room":"big"}));
    expect_each!(amy => [left("big", "bob")], bob => []);

    // With 0, never.
    let server = Server::start(&["--presence-max-members", "0"]);
    let (mut amy, _) = connect(server.addr, "amy");
    let (mut bob, _) = connect(server.addr, "bob");
    amy.join("r");
    bob.join("r");
    bob.ok(json!({"type":"room.leave","room":"r"}));
    bob.close();
    wait_connections(server.addr, 1);
    amy.expect_nothing();
}

#[test]
fn typing_goes_to_the_other_users_only() {
    let server = Server::start(&[]);
    let mut cs = connect_all(server.addr, &["amy", "amy", "bob", "cat"]);
    let [amy1, amy2, bob, cat] = &mut cs[..] else {
        unreachable!()
    };
    for c in [&mut *amy1, &mut *amy2, &mut *bob] {
        c.join("t");
    }
    for c in [&mut *amy1, &mut *amy2, &mut *bob] {
        c.drain();
    }
    amy1.ok(json!({"type":"typing","room":"t"}));
    expect_each!(
        bob => [json!({"type":"typing","room":"t","from":"amy"})],
        amy1 => [],
        amy2 => [],
        cat => [],
    );
    // Without an id (the ping's ack tells when bob's worker has passed it on).
    bob.send(&json!({"type":"typing","room":"t"}));
    bob.ok(json!({"type":"ping"}));
    assert_eq!(bob.recv(), json!({"type":"pong"}));
    let typing = || json!({"type":"typing","room":"t","from":"bob"});
    expect_each!(amy1 => [typing()], amy2 => [typing()], bob => [], cat => []);
    // Typing takes no seq and is not kept.
    assert_eq!(bob.chat("t", "hi"), 1);
    let got = bob.ask_all(json!({"type":"history","room":"t"}));
    let messages = got
        .iter()
        .find(|m| m["type"] == "history")
        .map(|h| h["messages"].as_array().expect("messages").len());
    assert_eq!(messages, Some(1), "{got:?}");
}

#[test]
fn private_reaches_every_device_of_both_users_but_the_sending_one() {
    let server = Server::start(&[]);
    let mut cs = connect_all(server.addr, &["amy", "amy", "amy", "bob", "bob", "cat"]);
    let [amy1, amy2, amy3, bob1, bob2, cat] = &mut cs[..] else {
        unreachable!()
    };
    let a = amy1.ask(json!({"type":"private","to":"bob","content":"hi \"bob\"\n"}));
    let id = a["id"].clone();
    assert_eq!(
        a,
        json!({"type":"ack","id":id,"status":"delivered","devices":2})
    );
    let expected = json!({"type":"private","from":"amy","to":"bob","content":"hi \"bob\"\n"});
    for c in [&mut *bob1, &mut *bob2, &mut *amy2, &mut *amy3] {
        let m = c.take(|m| m["type"] == "private");
        assert_eq!(strip_timestamp(&m), expected, "{}", c.user);
    }
    for c in [
        &mut *bob1, &mut *bob2, &mut *amy2, &mut *amy3, &mut *amy1, &mut *cat,
    ] {
        c.expect_nothing();
    }
    // One device each way; no id, no ack.
    cat.send(&json!({"type":"private","to":"bob","content":"yo"}));
    let expected = json!({"type":"private","from":"cat","to":"bob","content":"yo"});
    for c in [&mut *bob1, &mut *bob2] {
        let m = c.take(|m| m["type"] == "private");
        assert_eq!(strip_timestamp(&m), expected);
    }
    let a = bob2.ask(json!({"type":"private","to":"cat","content":"back"}));
    assert_eq!(a["devices"], 1);
    let m = cat.take(|m| m["type"] == "private");
    assert_eq!(
        strip_timestamp(&m),
        json!({"type":"private","from":"bob","to":"cat","content":"back"})
    );
    let m = bob1.take(|m| m["type"] == "private");
    assert_eq!(
        strip_timestamp(&m),
        json!({"type":"private","from":"bob","to":"cat","content":"back"})
    );
    for c in [
        &mut *bob1, &mut *bob2, &mut *amy1, &mut *amy2, &mut *amy3, &mut *cat,
    ] {
        c.expect_nothing();
    }
    // A device that went away is not counted (once the server has seen it go).
    let bob2 = cs.remove(4);
    bob2.close();
    wait_connections(server.addr, 5);
    let deadline = std::time::Instant::now() + crate::chat_client::READ_TIMEOUT;
    loop {
        let a = cs[0].ask(json!({"type":"private","to":"bob","content":"again"}));
        if a["devices"] == 1 {
            break;
        }
        assert_eq!(a["devices"], 2, "{a}");
        assert!(
            std::time::Instant::now() < deadline,
            "bob's closed device still counted"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn user_list_and_room_list_count_users_and_sort() {
    let server = Server::start(&[]);
    let mut cs = connect_all(server.addr, &["amy", "amy", "Bob", "cat"]);
    let [amy1, amy2, bob, cat] = &mut cs[..] else {
        unreachable!()
    };
    amy1.join("alpha");
    amy2.join("alpha");
    bob.join("alpha");
    cat.join("beta");
    for c in [&mut *amy1, &mut *amy2, &mut *bob, &mut *cat] {
        c.drain();
    }
    let list = |joined: [bool; 2], alpha: u64| {
        json!({"type":"room.list","rooms":[
            {"room":"alpha","members":alpha,"joined":joined[0]},
            {"room":"beta","members":1,"joined":joined[1]},
            {"room":"general","members":3,"joined":true},
        ]})
    };
    let got = amy1.ask_all(json!({"type":"room.list"}));
    assert_eq!(
        got,
        vec![
            list([true, false], 2),
            json!({"type":"ack","id":got[1]["id"]})
        ]
    );
    amy1.send(&json!({"type":"room.list"}));
    assert_eq!(amy1.recv(), list([true, false], 2));
    let got = cat.ask_all(json!({"type":"room.list"}));
    assert_eq!(got[0], list([false, true], 2));

    // One entry per user, sorted by id (bytes: "Bob" < "amy").
    let got = cat.ask_all(json!({"type":"user.list","room":"general"}));
    assert_eq!(
        got,
        vec![
            json!({"type":"user.list","room":"general","users":["Bob","amy","cat"]}),
            json!({"type":"ack","id":got[1]["id"]}),
        ]
    );
    bob.send(&json!({"type":"user.list","room":"alpha"}));
    assert_eq!(
        bob.take(|m| m["type"] == "user.list"),
        json!({"type":"user.list","room":"alpha","users":["Bob","amy"]})
    );
    // amy stays a member while one of her devices is.
    amy1.ok(json!({"type":"room.leave","room":"alpha"}));
    let got = bob.ask_all(json!({"type":"user.list","room":"alpha"}));
    assert_eq!(got[0]["users"], json!(["Bob", "amy"]), "{got:?}");
    let got = amy1.ask_all(json!({"type":"room.list"}));
    assert_eq!(got[0], list([false, false], 2));
    amy2.ok(json!({"type":"room.leave","room":"alpha"}));
    let got = bob.ask_all(json!({"type":"user.list","room":"alpha"}));
    let got: Vec<&Value> = got.iter().filter(|m| m["type"] == "user.list").collect();
    assert_eq!(got[0]["users"], json!(["Bob"]), "{got:?}");
    // An empty room is not listed.
    cat.ok(json!({"type":"room.leave","room":"beta"}));
    let got = amy2.ask_all(json!({"type":"room.list"}));
    assert_eq!(
        got[0],
        json!({"type":"room.list","rooms":[
            {"room":"alpha","members":1,"joined":false},
            {"room":"general","members":3,"joined":true},
        ]})
    );
}

#[test]
fn room_join_answers_in_order() {
    let server = Server::start(&[]);
    let mut cs = connect_all(server.addr, &["amy", "bob"]);
    let [amy, bob] = &mut cs[..] else {
        unreachable!()
    };
    // Without since: user.list, then the ack; the room is created by the join.
    let got = amy.ask_all(json!({"type":"room.join","room":"new"}));
    assert_eq!(
        got,
        vec![
            json!({"type":"user.list","room":"new","users":["amy"]}),
            json!({"type":"ack","id":got[1]["id"]}),
        ]
    );
    amy.chat("new", "first");
    // With since: history first.
    let got = bob.ask_all(json!({"type":"room.join","room":"new","since":0}));
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0]["type"], "history");
    assert_eq!(got[0]["complete"], true);
    assert_eq!(
        strip_timestamp(&got[0]["messages"][0]),
        json!({"type":"chat","room":"new","from":"amy","content":"first","seq":1})
    );
    assert_eq!(
        got[1],
        json!({"type":"user.list","room":"new","users":["amy","bob"]})
    );
    assert_eq!(got[2], json!({"type":"ack","id":got[2]["id"]}));
    // A room name is case-sensitive.
    let got = bob.ask_all(json!({"type":"room.join","room":"NEW"}));
    assert_eq!(
        got[0],
        json!({"type":"user.list","room":"NEW","users":["bob"]})
    );
}
