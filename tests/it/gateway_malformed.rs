//! Bodies the gateway cannot deliver (not JSON, no owner, an owner that is not a string, …)
//! are dead-lettered to the queue's dead-letter exchange byte for byte, counted, and the node
//! goes on delivering the valid events around them, in order.

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::ExchangeKind;

use crate::chat_client::health;
use crate::cluster::metric;
use crate::gateway::{body, frame, shared_rabbit, unique, Node, Ride};
use crate::rabbit::Service;

#[test]
fn gateway_malformed_bodies_dead_lettered() {
    let Some(rabbit) = shared_rabbit() else {
        return;
    };
    let svc = Service::connect(&rabbit.url());
    let exchange = unique("trip");
    // The dead-letter exchange and queue an operator would set up.
    let dlx = unique("dlx");
    let dlq = unique("dlq");
    svc.exchange(&dlx, ExchangeKind::Fanout);
    svc.queue(&dlq, &dlx, &[""]);
    let mut cfg = Ride::new(&rabbit.url(), &exchange);
    cfg.dead_letter_exchange = Some(dlx.clone());
    let node = Node::start(&cfg, &unique("bad"), &[]);
    let mut rider = node.device("/ws/riders?userID=rider-1");

    // The file's dead_letter_exchange is on the node's queue (durable, x-expires 10 min): a
    // declare with exactly these arguments agrees, one without the exchange does not.
    let args = |dlx: Option<&str>| {
        let mut a = FieldTable::default();
        a.insert("x-expires".into(), AMQPValue::LongLongInt(600_000));
        if let Some(d) = dlx {
            a.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(d.into()),
            );
        }
        a
    };
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    assert!(svc.declare_matches(&node.queue(), durable, args(Some(&dlx))));
    assert!(!svc.declare_matches(&node.queue(), durable, args(None)));

    let bad: &[&[u8]] = &[
        b"not json",
        b"",
        br#"{"data":1}"#,
        br#"{"ownerId":5,"data":1}"#,
        br#"{"ownerId":null,"data":1}"#,
        br#"{"ownerId":["rider-1"],"data":1}"#,
        br#"{"ownerId":{"id":"rider-1"},"data":1}"#,
        br#"{"ownerId":"","data":1}"#,
        br#"["rider-1",1]"#,
        br#"{"ownerId":"rider-1"}"#,
        br#"{"ownerId":"rider-1","data":1,"ownerId":"rider-2"}"#,
        br#"{"ownerId":"rider-1","data":{"a":1}"#,
        br#"{"ownerId":"rider-1","data":1} x"#,
        b"{\"ownerId\":\"rider-\xff\",\"data\":1}",
    ];
    // Valid events before, between and after.
    let mut valid = 0;
    let mut publish_valid = |svc: &Service| {
        valid += 1;
        let b = body("rider-1", &valid.to_string());
        svc.publish(&exchange, "trip.event.ok", b.as_bytes(), None);
    };
    publish_valid(&svc);
    for (i, b) in bad.iter().enumerate() {
        svc.publish(&exchange, "trip.event.bad", b, None);
        if i % 5 == 4 {
            publish_valid(&svc);
        }
    }
    publish_valid(&svc);
    let valid = valid;
    for n in 1..=valid {
        rider.expect(&frame("trip.event.ok", &n.to_string()));
    }
    for b in bad {
        let m = svc
            .get(&dlq, Duration::from_secs(15))
            .expect("dead-lettered");
        assert_eq!(&m.delivery.data[..], *b, "{}", String::from_utf8_lossy(b));
        assert_eq!(m.delivery.routing_key.as_str(), "trip.event.bad");
        let headers = m.delivery.properties.headers().clone().unwrap_or_default();
        assert!(
            headers.inner().contains_key("x-death"),
            "dead-lettered by the broker: {headers:?}"
        );
    }
    assert!(svc.get(&dlq, Duration::ZERO).is_none(), "only those");

    // The node is fine and counted them.
    assert_eq!(health(node.addr())["amqp"], "up");
    let m = |s: &str| metric(node.addr(), s);
    assert_eq!(m("corecast_amqp_malformed_total"), bad.len() as f64);
    assert_eq!(m("corecast_amqp_dead_lettered_total"), bad.len() as f64);
    assert_eq!(
        m("corecast_amqp_consumed_total"),
        (bad.len() + valid) as f64
    );
    assert_eq!(m("corecast_amqp_delivered_total"), valid as f64);
    assert_eq!(m("corecast_amqp_reconnects_total"), 0.0);
    // And keeps delivering.
    svc.publish(
        &exchange,
        "trip.event.after",
        body("rider-1", "\"after\"").as_bytes(),
        None,
    );
    rider.expect(&frame("trip.event.after", "\"after\""));
    assert_eq!(
        svc.ready(&node.queue()),
        0,
        "nothing left in the node's queue"
    );
}
