//! Client messages on gateway endpoints: only the endpoint's `upstream` types are published
//! (others get `forbidden`, nothing reaches the broker), malformed ones get `bad_json` or
//! `bad_request`, the owner is always the authenticated user (a client's `ownerId`, at the top
//! or inside `data`, changes nothing), `id`s are echoed as written, and the `ack` comes only
//! once the broker has confirmed the message: while a gate holds the broker's replies, the
//! message is already in the queue and still no ack.

use std::time::Duration;

use serde_json::Value;
use tungstenite::Message;

use crate::cluster::metric;
use crate::gateway::{shared_rabbit, unique, wait_for, Device, Gate, Node, Ride};
use crate::rabbit::Service;

/// The next message is an `error` with `code` (and `id` when given, as JSON text).
fn expect_error(d: &mut Device, code: &str, id: Option<&str>) {
    let v = d.recv_json();
    let obj = v.as_object().expect("an object");
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["code"], code, "{v}");
    assert!(v["content"].as_str().is_some_and(|c| !c.is_empty()), "{v}");
    match id {
        Some(id) => assert_eq!(v["id"], serde_json::from_str::<Value>(id).unwrap(), "{v}"),
        None => assert!(!obj.contains_key("id"), "{v}"),
    }
    assert_eq!(obj.len(), 3 + usize::from(id.is_some()), "{v}");
}

#[test]
fn gateway_upstream_rules() {
    let Some(rabbit) = shared_rabbit() else {
        return;
    };
    let exchange = unique("trip");
    // Through a gate, to hold the broker's confirms later.
    let gate = Gate::new(rabbit.port);
    let node = Node::start(&Ride::new(&gate.url(), &exchange), &unique("up"), &[]);
    let svc = Service::connect(&rabbit.url());
    // Whatever a client could publish lands here.
    let upstream = unique("upstream");
    svc.queue(&upstream, &exchange, &["driver.#", "trip.#", "rider.#"]);

    let mut d1 = node.device("/ws/drivers?userID=driver-1");
    let mut r1 = node.device("/ws/riders?userID=rider-1");

    // Types the endpoint does not allow.
    d1.send(r#"{"type":"driver.cmd.trip_cancel","data":{},"id":"f1"}"#);
    expect_error(&mut d1, "forbidden", Some(r#""f1""#));
    d1.send(r#"{"type":"trip.event.driver_assigned","data":{"tripId":"t1"},"id":2}"#);
    expect_error(&mut d1, "forbidden", Some("2"));
    d1.send(r#"{"type":"driver.cmd.trip_accept.x","data":1}"#);
    expect_error(&mut d1, "forbidden", None);
    r1.send(r#"{"type":"driver.cmd.trip_accept","data":{"tripId":"t1"},"id":"r"}"#);
    expect_error(&mut r1, "forbidden", Some(r#""r""#));
    r1.send(r#"{"type":"rider.cmd.cancel","data":{"tripId":"t1"},"id":"r2"}"#);
    expect_error(&mut r1, "forbidden", Some(r#""r2""#));

    // Messages that are not commands.
    d1.send("not json");
    expect_error(&mut d1, "bad_json", None);
    d1.send(r#"{"type":"driver.cmd.trip_accept","data":{"id":"b0"}"#);
    expect_error(&mut d1, "bad_json", None);
    d1.send_message(Message::binary(
        &br#"{"type":"driver.cmd.trip_accept"}"#[..],
    ));
    expect_error(&mut d1, "bad_json", None);
    d1.send(r#"{"data":1,"id":"b1"}"#);
    expect_error(&mut d1, "bad_request", Some(r#""b1""#));
    d1.send(r#"{"id":"b2","type":5}"#);
    expect_error(&mut d1, "bad_request", Some(r#""b2""#));
    d1.send(r#"{"type":"driver.cmd.trip_accept","id":{"x":1}}"#);
    expect_error(&mut d1, "bad_request", None);

    // Allowed: without an id no answer; ids echoed as written; the owner is driver-1 whatever
    // the client claims.
    let sent = [
        (
            r#"{"type":"driver.cmd.trip_accept","data":{"tripId":"t0"}}"#,
            None,
            r#"{"ownerId":"driver-1","data":{"tripId":"t0"}}"#,
        ),
        (
            r#"{"ownerId":"rider-1","type":"driver.cmd.trip_accept","data":{"tripId":"t9","ownerId":"rider-1"},"id":"s1","ownerId":"rider-2"}"#,
            Some(r#""s1""#),
            r#"{"ownerId":"driver-1","data":{"tripId":"t9","ownerId":"rider-1"}}"#,
        ),
        (
            r#"{"type":"driver.cmd.trip_decline","id":42}"#,
            Some("42"),
            r#"{"ownerId":"driver-1","data":null}"#,
        ),
        (
            r#"{"type":"driver.cmd.trip_decline","data":"x","id":-0.5e-3}"#,
            Some("-0.5e-3"),
            r#"{"ownerId":"driver-1","data":"x"}"#,
        ),
        (
            r#"{"id":"x\"y\u00e9","data":[ 1, {"b":2,"a":1} ],"type":"driver.cmd.trip_accept"}"#,
            Some(r#""x\"y\u00e9""#),
            r#"{"ownerId":"driver-1","data":[ 1, {"b":2,"a":1} ]}"#,
        ),
    ];
    for (msg, id, want) in sent {
        d1.send(msg);
        if let Some(id) = id {
            assert_eq!(d1.recv(), format!(r#"{{"type":"ack","id":{id}}}"#));
        }
        let m = svc
            .get(&upstream, Duration::from_secs(15))
            .unwrap_or_else(|| panic!("{msg} not published"));
        assert_eq!(String::from_utf8(m.delivery.data.clone()).unwrap(), want);
        assert_eq!(*m.delivery.properties.delivery_mode(), Some(2));
    }
    // Nothing refused above reached the broker, nor anything else.
    assert_eq!(svc.ready(&upstream), 0);

    // The ack waits for the broker's confirm: with the broker's replies held, the message is
    // routed into the queue, and the client still has no ack.
    gate.hold_replies(true);
    d1.send(r#"{"type":"driver.cmd.trip_accept","data":{"tripId":"held"},"id":"h1"}"#);
    wait_for("the held message in the queue", || {
        svc.ready(&upstream) == 1
    });
    assert!(
        !d1.gets_within(Duration::from_millis(1500)),
        "an answer before the confirm"
    );
    gate.hold_replies(false);
    assert_eq!(d1.recv(), r#"{"type":"ack","id":"h1"}"#);
    let m = svc.get(&upstream, Duration::ZERO).expect("held message");
    assert_eq!(
        String::from_utf8(m.delivery.data.clone()).unwrap(),
        r#"{"ownerId":"driver-1","data":{"tripId":"held"}}"#
    );

    let m = |s: &str| metric(node.addr(), s);
    assert_eq!(m(r#"corecast_gateway_upstream_total{result="sent"}"#), 6.0);
    assert_eq!(
        m(r#"corecast_gateway_upstream_total{result="forbidden"}"#),
        5.0
    );
    assert_eq!(
        m(r#"corecast_gateway_upstream_total{result="unavailable"}"#),
        0.0
    );
    // The six, and the lifecycle event of driver-1 (nobody binds gateway.#: unroutable).
    assert_eq!(m("corecast_amqp_published_total"), 6.0);
    assert_eq!(m("corecast_amqp_publish_failed_total"), 1.0);
}

#[test]
fn gateway_upstream_rate_limited() {
    let Some(rabbit) = shared_rabbit() else {
        return;
    };
    let exchange = unique("trip");
    let node = Node::start(
        &Ride::new(&rabbit.url(), &exchange),
        &unique("rate"),
        &["--msg-rate", "1", "--msg-burst", "2"],
    );
    let svc = Service::connect(&rabbit.url());
    let upstream = unique("upstream");
    svc.queue(&upstream, &exchange, &["driver.#"]);
    let mut d1 = node.device("/ws/drivers?userID=driver-1");
    // Read together: 2 go upstream, 4 are refused (2 x burst), the 7th closes (as on /ws).
    let batch: Vec<String> = (1..=7)
        .map(|i| format!(r#"{{"type":"driver.cmd.trip_accept","data":{{"n":{i}}},"id":{i}}}"#))
        .collect();
    d1.send_batch(&batch);
    let (code, before) = d1.expect_close();
    assert_eq!(code, 1008, "{before:?}");
    let refused: Vec<Value> = before
        .iter()
        .map(|m| serde_json::from_str::<Value>(m).unwrap())
        .filter(|v| v["type"] == "error")
        .collect();
    assert_eq!(refused.len(), 4, "{before:?}");
    for (v, i) in refused.iter().zip(3..) {
        assert_eq!(
            (&v["code"], &v["id"]),
            (&"rate_limited".into(), &i.into()),
            "{v}"
        );
    }
    // The acks of the first two may or may not have come before the close; the messages were
    // published all the same, and only they.
    for m in &before {
        let v: Value = serde_json::from_str(m).unwrap();
        assert!(
            v["type"] == "error" || (v["type"] == "ack" && matches!(v["id"].as_u64(), Some(1 | 2))),
            "{v}"
        );
    }
    for i in 1..=2 {
        let m = svc
            .get(&upstream, Duration::from_secs(15))
            .expect("published");
        assert_eq!(
            String::from_utf8(m.delivery.data.clone()).unwrap(),
            format!(r#"{{"ownerId":"driver-1","data":{{"n":{i}}}}}"#)
        );
    }
    assert_eq!(svc.ready(&upstream), 0);
    assert_eq!(
        metric(
            node.addr(),
            r#"corecast_gateway_upstream_total{result="sent"}"#
        ),
        2.0
    );
}
