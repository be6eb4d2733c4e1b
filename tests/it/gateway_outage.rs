//! RabbitMQ killed mid-traffic and restarted: the devices stay connected, `/health` says
//! `"amqp":"down"`, upstream messages wait in the backlog (`--amqp-backlog 2`) and beyond it
//! get `upstream_unavailable`; once the broker is back the node consumes and publishes again by
//! itself, the backlog is published (and acked to the client), and no event the Trip Service
//! had confirmed before the crash is lost.

use std::collections::BTreeSet;
use std::thread;
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::BasicProperties;

use crate::chat_client::health;
use crate::cluster::metric;
use crate::gateway::{body, frame, unique, wait_amqp, wait_for, Node, Ride};
use crate::rabbit::{Rabbit, Service};

#[test]
fn gateway_outage_broker_killed_mid_traffic() {
    // Its own broker: this test kills it.
    let Some(mut rabbit) = Rabbit::start() else {
        return;
    };
    let exchange = unique("trip");
    let node = Node::start(
        &Ride::new(&rabbit.url(), &exchange),
        &unique("outage"),
        &["--amqp-backlog", "2"],
    );
    let addr = node.addr();
    let svc = Service::connect(&rabbit.url());
    let driver_service = unique("driver-service");
    svc.queue(&driver_service, &exchange, &["driver.cmd.trip_accept"]);
    drop(svc);
    let mut rider = node.device("/ws/riders?userID=rider-1");
    let mut driver = node.device("/ws/drivers?userID=driver-1");

    // The Trip Service publishes without pause, persistent, 50 at a time with their
    // confirms awaited, until the broker goes away; it returns the events confirmed.
    let publisher = {
        let (url, exchange) = (rabbit.url(), exchange.clone());
        thread::spawn(move || {
            let svc = Service::connect(&url);
            let mut confirmed = BTreeSet::new();
            for batch in 0u32.. {
                let ok = svc.rt.block_on(async {
                    let mut pending = Vec::new();
                    for i in batch * 50 + 1..=batch * 50 + 50 {
                        let b = body("rider-1", &i.to_string());
                        let props = BasicProperties::default().with_delivery_mode(2);
                        let opts = BasicPublishOptions::default();
                        match svc
                            .ch
                            .basic_publish(
                                &exchange,
                                "trip.event.location",
                                opts,
                                b.as_bytes(),
                                props,
                            )
                            .await
                        {
                            Ok(c) => pending.push((i, c)),
                            Err(_) => break,
                        }
                    }
                    let mut all = pending.len() == 50;
                    for (i, c) in pending {
                        match c.await {
                            Ok(c) if c.is_ack() => {
                                confirmed.insert(i);
                            }
                            _ => all = false,
                        }
                    }
                    all
                });
                if !ok {
                    break;
                }
            }
            confirmed
        })
    };
    // Kill it while the rider is receiving.
    let mut received = BTreeSet::new();
    while received.len() < 100 {
        received.insert(seq(&rider.recv()));
    }
    rabbit.kill();
    let confirmed = publisher.join().expect("publisher");
    eprintln!(
        "broker killed after {} confirmed events, {} received",
        confirmed.len(),
        received.len()
    );
    assert!(!confirmed.is_empty(), "nothing confirmed before the crash");

    // Down: the devices stay, upstream messages wait in the backlog (2), the third is refused
    // at once (the first answer the driver gets: the two before it were not refused).
    wait_amqp(addr, "down");
    assert_eq!(metric(addr, "corecast_amqp_up"), 0.0);
    for id in ["u1", "u2", "u3"] {
        driver.send(&format!(
            r#"{{"type":"driver.cmd.trip_accept","data":{{"tripId":"{id}"}},"id":"{id}"}}"#
        ));
    }
    let v = driver.recv_json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["code"], "upstream_unavailable", "{v}");
    assert_eq!(v["id"], "u3", "{v}");
    assert_eq!(metric(addr, "corecast_amqp_backlog"), 2.0);
    assert_eq!(
        metric(
            addr,
            r#"corecast_gateway_upstream_total{result="unavailable"}"#
        ),
        1.0
    );
    assert_eq!(health(addr)["connections"], 2);

    // Back: the node reconnects by itself, publishes its backlog, consumes again.
    let took = rabbit.restart();
    eprintln!("rabbitmq-server restarted in {took:.1?}");
    let took = wait_amqp(addr, "up");
    eprintln!("the node was up again {took:.1?} later");
    for id in ["u1", "u2"] {
        let a = driver.answer(&format!("\"{id}\""));
        assert_eq!(a["type"], "ack", "{a}");
    }
    let svc = Service::connect(&rabbit.url());
    for id in ["u1", "u2"] {
        let m = svc
            .get(&driver_service, Duration::ZERO)
            .expect("backlogged message in the queue when acked");
        assert_eq!(
            String::from_utf8(m.delivery.data.clone()).unwrap(),
            format!(r#"{{"ownerId":"driver-1","data":{{"tripId":"{id}"}}}}"#)
        );
    }
    assert!(
        svc.get(&driver_service, Duration::ZERO).is_none(),
        "u3 refused"
    );
    // Every event confirmed before the crash reaches the rider (those delivered but not
    // acknowledged when the broker died may come twice).
    svc.publish(
        &exchange,
        "trip.event.after",
        body("rider-1", "\"after\"").as_bytes(),
        None,
    );
    let after = frame("trip.event.after", "\"after\"");
    let mut twice = 0;
    loop {
        let m = rider.recv();
        if m == after {
            break;
        }
        if !received.insert(seq(&m)) {
            twice += 1;
        }
    }
    let lost: Vec<&u32> = confirmed.difference(&received).collect();
    assert!(lost.is_empty(), "confirmed events lost: {lost:?}");
    eprintln!(
        "{} events received, {twice} twice, {} confirmed",
        received.len(),
        confirmed.len()
    );
    // Publishing goes on.
    driver.send(r#"{"type":"driver.cmd.trip_accept","data":{"tripId":"u4"},"id":"u4"}"#);
    assert_eq!(driver.recv(), r#"{"type":"ack","id":"u4"}"#);
    assert!(svc.get(&driver_service, Duration::ZERO).is_some());

    let m = |s: &str| metric(addr, s);
    assert_eq!(m("corecast_amqp_up"), 1.0);
    assert_eq!(m("corecast_amqp_reconnects_total"), 1.0);
    assert_eq!(m("corecast_amqp_backlog"), 0.0);
    wait_for("the queue depth refreshed", || {
        m("corecast_amqp_queue_depth") == 0.0
    });
}

/// The sequence number of a `trip.event.location` frame.
fn seq(frame: &str) -> u32 {
    frame
        .strip_prefix(r#"{"type":"trip.event.location","data":"#)
        .and_then(|r| r.strip_suffix('}'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected {frame}"))
}
