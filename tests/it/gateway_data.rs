//! What a device receives of an event: the routing key as `type`, `data` byte for byte as
//! published (nested objects, key order, escapes as written, integers beyond 2^63, inner
//! whitespace), to its owner only, nothing for keys the node does not bind; and with
//! `data_encoding = "base64"`, bodies exactly as Go's `json.Marshal` writes them arrive as the
//! JSON they hold, client data goes upstream the same way, and base64 of anything but JSON is
//! dead-lettered.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use lapin::ExchangeKind;
use serde_json::Value;

use crate::cluster::metric;
use crate::gateway::{body, frame, shared_rabbit, unique, wait_for, Node, Ride};
use crate::rabbit::Service;

#[test]
fn gateway_data_byte_for_byte() {
    let Some(rabbit) = shared_rabbit() else {
        return;
    };
    let exchange = unique("trip");
    let node = Node::start(&Ride::new(&rabbit.url(), &exchange), &unique("data"), &[]);
    let svc = Service::connect(&rabbit.url());
    let mut u1 = node.device("/ws/riders?userID=rider-1");
    let mut u2 = node.device("/ws/riders?userID=rider-2");
    // An owner written with escapes is the user they spell (the query is percent-encoded).
    let mut u3 = node.device("/ws/drivers?userID=s%C3%BCr%C3%BCc%C3%BC%20%22q%22");

    // (routing key, body, owner's device, the frame's data)
    let cases: &[(&str, &str, usize, &str)] = &[
        (
            "trip.event.driver_assigned",
            r#"{"ownerId":"rider-1","data":{"tripId":"t1","driver":{"id":"d-9","car":{"plate":"34 ABC 12"}}}}"#,
            1,
            r#"{"tripId":"t1","driver":{"id":"d-9","car":{"plate":"34 ABC 12"}}}"#,
        ),
        // Key order, big and odd numbers, data before the owner, other members ignored.
        (
            "trip.event.fare",
            r#"{"data":{"z":1,"a":[9223372036854775808,18446744073709551616,-9223372036854775809,1.0e+2,0.1000]},"ownerId":"rider-1","other":{"ownerId":"rider-2"}}"#,
            1,
            r#"{"z":1,"a":[9223372036854775808,18446744073709551616,-9223372036854775809,1.0e+2,0.1000]}"#,
        ),
        // Escapes stay as written, raw UTF-8 too, and whitespace inside data.
        (
            "trip.event.message",
            "{\"ownerId\":\"rider-1\",\"data\":{\"msg\":\"caf\\u00e9 \\ud83d\\ude95 \\\"q\\\" caf\u{e9} \\/ \\n\", \"n\" : [ 1 , 2 ] }}",
            1,
            "{\"msg\":\"caf\\u00e9 \\ud83d\\ude95 \\\"q\\\" caf\u{e9} \\/ \\n\", \"n\" : [ 1 , 2 ] }",
        ),
        // Scalars.
        ("trip.event.n", r#"{"ownerId":"rider-1","data":-0.0e-0}"#, 1, "-0.0e-0"),
        ("trip.event.s", r#"{"ownerId":"rider-1","data":"\u0041"}"#, 1, r#""\u0041""#),
        ("trip.event.null", r#"{"ownerId":"rider-1","data":null}"#, 1, "null"),
        ("trip.event.t", r#"{"ownerId":"rider-1","data":true}"#, 1, "true"),
        // A routing key that needs escaping in the frame's type.
        (
            "trip.event.q\"t\\",
            r#"{"ownerId":"rider-1","data":[]}"#,
            1,
            "[]",
        ),
        // The owner as the services' JSON writes it, with escapes.
        (
            "driver.cmd.trip_request",
            r#"{"ownerId":"s\u00fcr\u00fcc\u00fc \"q\"","data":{"tripId":"t7"}}"#,
            3,
            r#"{"tripId":"t7"}"#,
        ),
        ("trip.event.for_two", r#"{"ownerId":"rider-2","data":2}"#, 2, "2"),
    ];
    for (key, b, _, _) in cases {
        svc.publish(&exchange, key, b.as_bytes(), None);
    }
    for (key, _, owner, data) in cases {
        let d = match owner {
            1 => &mut u1,
            2 => &mut u2,
            _ => &mut u3,
        };
        let want = format!(
            "{{\"type\":{},\"data\":{data}}}",
            serde_json::to_string(key).unwrap()
        );
        d.expect(&want);
    }
    // A large event (768 KiB of data, escapes kept) all the same.
    let blob = format!("{{\"blob\":\"{}\",\"n\":1}}", "\\u00e9x".repeat(1 << 17));
    svc.publish(
        &exchange,
        "trip.event.large",
        body("rider-1", &blob).as_bytes(),
        None,
    );
    u1.expect(&frame("trip.event.large", &blob));
    // The frame is JSON whose type is the routing key, whatever it holds.
    let v: Value = serde_json::from_str(&frame("trip.event.x", "{\"a\":1}")).unwrap();
    assert_eq!(v["type"], "trip.event.x");

    // Keys the node does not bind are not delivered: the sentinel published after them is
    // the next message.
    for key in [
        "trip.other.thing",
        "trip.event.a.b",
        "trip.event",
        "driver.cmd.trip_accept",
        "gateway.connected",
    ] {
        svc.publish(
            &exchange,
            key,
            body("rider-1", "\"unbound\"").as_bytes(),
            None,
        );
    }
    // Nor are events of other users: rider-2 and the driver get their own sentinel first.
    for owner in ["rider-1", "rider-2", "s\\u00fcr\\u00fcc\\u00fc \\\"q\\\""] {
        svc.publish(
            &exchange,
            "trip.event.sentinel",
            body(owner, "\"sentinel\"").as_bytes(),
            None,
        );
    }
    for d in [&mut u1, &mut u2, &mut u3] {
        d.expect(&frame("trip.event.sentinel", "\"sentinel\""));
    }

    // An owner with no device here is counted, not delivered.
    svc.publish(
        &exchange,
        "trip.event.x",
        body("rider-9", "1").as_bytes(),
        None,
    );
    let consumed = cases.len() as f64 + 5.0;
    wait_for("the last event consumed", || {
        metric(node.addr(), "corecast_amqp_consumed_total") == consumed
    });
    wait_for("rider-9 counted undelivered", || {
        metric(node.addr(), "corecast_amqp_undelivered_total") == 1.0
    });
    assert_eq!(
        metric(node.addr(), "corecast_amqp_delivered_total"),
        consumed - 1.0
    );
    assert_eq!(
        metric(node.addr(), "corecast_amqp_dead_lettered_total"),
        0.0
    );
}

#[test]
fn gateway_data_owner_field() {
    let Some(rabbit) = shared_rabbit() else {
        return;
    };
    let exchange = unique("trip");
    let mut cfg = Ride::new(&rabbit.url(), &exchange);
    cfg.owner_field = "userId".into();
    let node = Node::start(&cfg, &unique("owner"), &[]);
    let svc = Service::connect(&rabbit.url());
    let upstream = unique("upstream");
    svc.queue(
        &upstream,
        &exchange,
        &["driver.cmd.trip_accept", "gateway.#"],
    );
    let mut rider1 = node.device("/ws/riders?userID=rider-1");
    let mut rider2 = node.device("/ws/riders?userID=rider-2");
    let mut driver = node.device("/ws/drivers?userID=driver-1");
    // The configured member names the owner; an `ownerId` is just another member.
    svc.publish(
        &exchange,
        "trip.event.x",
        br#"{"ownerId":"rider-2","userId":"rider-1","data":{"ownerId":"rider-2"}}"#,
        None,
    );
    svc.publish(
        &exchange,
        "trip.event.x",
        br#"{"userId":"rider-2","data":2}"#,
        None,
    );
    rider1.expect(&frame("trip.event.x", r#"{"ownerId":"rider-2"}"#));
    rider2.expect(&frame("trip.event.x", "2"));
    // Upstream and lifecycle bodies name the owner the same way.
    driver.send(r#"{"type":"driver.cmd.trip_accept","data":1,"id":1}"#);
    assert_eq!(driver.recv(), r#"{"type":"ack","id":1}"#);
    let mut bodies = Vec::new();
    while bodies.len() < 2 {
        let m = svc
            .get(&upstream, Duration::from_secs(15))
            .expect("upstream and lifecycle messages");
        bodies.push(String::from_utf8(m.delivery.data.clone()).unwrap());
    }
    bodies.sort();
    assert_eq!(bodies[0], r#"{"userId":"driver-1","data":1}"#);
    assert!(
        bodies[1].starts_with(r#"{"userId":"driver-1","data":{"endpoint":"/ws/drivers","#),
        "{}",
        bodies[1]
    );
}

/// A device is owed every event published after its client saw the 101: 100 devices, each
/// sent an event the moment its upgrade completes. (Written to the socket before the
/// application's `on_open` had registered the device, the 101 let some events through to
/// nobody: 7 of 1,500 with the CPU contended, counted undelivered. tests/reactor_open.rs
/// checks the order itself, deterministically.)
#[test]
fn gateway_data_from_the_first_moment() {
    let Some(rabbit) = shared_rabbit() else {
        return;
    };
    let exchange = unique("trip");
    let node = Node::start(
        &Ride::new(&rabbit.url(), &exchange),
        &unique("first"),
        &["--conn-rate", "65535", "--conn-burst", "65535"],
    );
    let svc = Service::connect(&rabbit.url());
    let mut open = std::collections::VecDeque::new();
    for i in 0..100 {
        let user = format!("rider-{i}");
        let mut d = node.device(&format!("/ws/riders?userID={user}"));
        svc.publish(&exchange, "trip.event.x", body(&user, "1").as_bytes(), None);
        d.expect(&frame("trip.event.x", "1"));
        open.push_back(d);
        if open.len() > 50 {
            open.pop_front();
        }
    }
    assert_eq!(metric(node.addr(), "corecast_amqp_undelivered_total"), 0.0);
}

/// With prefetch 4 the broker hands out 4 deliveries until they are acknowledged: a delivery
/// whose ack is never sent (say, one waiting for a worker's answer that never comes) stalls
/// the node after four. Devices of each user on both workers.
#[test]
fn gateway_data_acks_keep_flowing() {
    let Some(rabbit) = shared_rabbit() else {
        return;
    };
    let exchange = unique("trip");
    let mut cfg = Ride::new(&rabbit.url(), &exchange);
    cfg.prefetch = 4;
    let node = Node::start(&cfg, &unique("acks"), &[]);
    let svc = Service::connect(&rabbit.url());
    let (users, per_user) = (8, 10);
    let mut devices: Vec<_> = (0..users)
        .flat_map(|u| (0..3).map(move |_| u))
        .map(|u| node.device(&format!("/ws/riders?userID=u{u}")))
        .collect();
    for i in 0..per_user {
        for u in 0..users {
            let b = body(&format!("u{u}"), &i.to_string());
            svc.publish(&exchange, "trip.event.x", b.as_bytes(), None);
        }
    }
    for d in &mut devices {
        for i in 0..per_user {
            d.expect(&frame("trip.event.x", &i.to_string()));
        }
    }
    assert_eq!(
        metric(node.addr(), "corecast_amqp_delivered_total"),
        f64::from(users * per_user)
    );
}

/// A string as Go's `encoding/json` writes it (it escapes `<`, `>` and `&` for HTML, control
/// characters as `\u00XX` but for `\n`, `\r`, `\t`, and U+2028/U+2029).
fn go_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `json.Marshal(Msg{OwnerID: owner, Data: data})` for the services' struct
/// `type Msg struct { OwnerID string `json:"ownerId"`; Data []byte `json:"data"` }`: `nil`
/// data is `null`, bytes are padded standard base64.
fn go_marshal(owner: &str, data: Option<&[u8]>) -> String {
    let data = data.map_or_else(|| "null".to_owned(), |d| format!("\"{}\"", B64.encode(d)));
    format!("{{\"ownerId\":{},\"data\":{data}}}", go_string(owner))
}

#[test]
fn gateway_data_base64_as_go_writes_it() {
    let Some(rabbit) = shared_rabbit() else {
        return;
    };
    let svc = Service::connect(&rabbit.url());
    let exchange = unique("trip-go");
    let dlx = unique("dlx");
    let dlq = unique("dlq");
    svc.exchange(&dlx, ExchangeKind::Fanout);
    svc.queue(&dlq, &dlx, &[""]);
    let mut cfg = Ride::new(&rabbit.url(), &exchange);
    cfg.data_encoding = "base64";
    cfg.dead_letter_exchange = Some(dlx.clone());
    let node = Node::start(&cfg, &unique("go"), &[]);
    let driver_service = unique("driver-service");
    svc.queue(&driver_service, &exchange, &["driver.cmd.trip_accept"]);

    let mut rider = node.device("/ws/riders?userID=rider-1");
    // Go escapes these for HTML: the owner arrives unescaped all the same.
    let mut odd = node.device("/ws/riders?userID=a%3Cb%26c%3E");
    let mut driver = node.device("/ws/drivers?userID=driver-1");

    let assigned =
        r#"{"tripId":"t1","fare":9223372036854775808,"note":"caf\u00e9 é","driver":{"id":"d1"}}"#;
    let go = go_marshal("rider-1", Some(assigned.as_bytes()));
    assert!(go.starts_with(r#"{"ownerId":"rider-1","data":"eyJ0cmlwSWQiOiJ0MSIs"#));
    svc.publish(&exchange, "trip.event.driver_assigned", go.as_bytes(), None);
    rider.expect(&frame("trip.event.driver_assigned", assigned));

    let go = go_marshal("a<b&c>", Some(b"[1, 2]"));
    assert!(go.starts_with(r#"{"ownerId":"a\u003cb\u0026c\u003e","#));
    svc.publish(&exchange, "trip.event.odd", go.as_bytes(), None);
    odd.expect(&frame("trip.event.odd", "[1, 2]"));

    // Upstream: data written as Go's []byte, which Go's json.Unmarshal reads back to the
    // client's exact bytes.
    let data = r#"{"tripId":"t1","at":18446744073709551616,"note":"\u00e7ay"}"#;
    driver.send(&format!(
        r#"{{"type":"driver.cmd.trip_accept","data":{data},"id":7}}"#
    ));
    assert_eq!(driver.recv(), r#"{"type":"ack","id":7}"#);
    let m = svc
        .get(&driver_service, Duration::ZERO)
        .expect("in the queue when acked");
    let text = String::from_utf8(m.delivery.data.clone()).unwrap();
    assert_eq!(text, go_marshal("driver-1", Some(data.as_bytes())));
    let v: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v["ownerId"], "driver-1");
    let decoded = B64.decode(v["data"].as_str().unwrap()).unwrap();
    assert_eq!(decoded, data.as_bytes());

    // Not JSON once decoded, or not Go's []byte at all: dead-lettered as published.
    let bad = [
        go_marshal("rider-1", Some(b"hello")),
        go_marshal("rider-1", Some(b"")),
        go_marshal("rider-1", Some(b"{\"a\":1")),
        go_marshal("rider-1", None),
        r#"{"ownerId":"rider-1","data":{"tripId":"t1"}}"#.to_owned(),
        r#"{"ownerId":"rider-1","data":"eyJ0cmlwSWQiOiJ0MSJ9!"}"#.to_owned(),
    ];
    for b in &bad {
        svc.publish(&exchange, "trip.event.bad", b.as_bytes(), None);
    }
    let after = go_marshal("rider-1", Some(b"\"after\""));
    svc.publish(&exchange, "trip.event.after", after.as_bytes(), None);
    rider.expect(&frame("trip.event.after", "\"after\""));
    for b in &bad {
        let m = svc
            .get(&dlq, Duration::from_secs(15))
            .expect("dead-lettered");
        assert_eq!(String::from_utf8(m.delivery.data.clone()).unwrap(), *b);
        assert_eq!(m.delivery.routing_key.as_str(), "trip.event.bad");
    }
    assert!(svc.get(&dlq, Duration::ZERO).is_none());
    assert_eq!(
        metric(node.addr(), "corecast_amqp_dead_lettered_total"),
        bad.len() as f64
    );
    assert_eq!(
        metric(node.addr(), "corecast_amqp_malformed_total"),
        bad.len() as f64
    );
}
