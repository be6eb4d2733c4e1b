//! Owners connected nowhere (`store_offline = true`, two nodes joined by a real Redis): each
//! of their events is stored once cluster-wide although both nodes consume it (marked by its
//! message id, or a digest of key, owner and data without one), handed to the owner's next
//! device oldest first and to no later one; an event for an owner connected to the other node
//! is delivered there and stored nowhere.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::{metric, wait_relay, Redis};
use crate::gateway::{body, frame, shared_rabbit, unique, wait_for, Node, Ride};
use crate::rabbit::{Rabbit, Service};

/// `HGET key field` on `redis` as an integer (`None` when absent).
fn hget(redis: &Redis, key: &str, field: &str) -> Option<i64> {
    let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, redis.port)).expect("redis");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let cmd = format!(
        "*3\r\n$4\r\nHGET\r\n${}\r\n{key}\r\n${}\r\n{field}\r\n",
        key.len(),
        field.len()
    );
    s.write_all(cmd.as_bytes()).expect("write");
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    // `$-1\r\n`, or `$N\r\n<N bytes>\r\n`.
    loop {
        let n = match s.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => r.expect("read"),
        };
        assert!(n > 0, "redis closed");
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply).into_owned();
        if text == "$-1\r\n" {
            return None;
        }
        let mut lines = text.split("\r\n");
        if let (Some(_), Some(v), Some("")) = (lines.next(), lines.next(), lines.next()) {
            return Some(v.parse().expect("an integer"));
        }
    }
}

/// A broker (shared), a fresh Redis and the ride-sharing configuration with `store_offline`,
/// under a prefix of its own; `None` (skip) when a server is not installed.
struct Offline {
    rabbit: Arc<Rabbit>,
    exchange: String,
    redis: Redis,
    cfg: Ride,
    url: String,
    prefix: String,
}

impl Offline {
    fn start() -> Option<Offline> {
        let rabbit = shared_rabbit()?;
        let redis = Redis::start()?;
        let exchange = unique("trip");
        let mut cfg = Ride::new(&rabbit.url(), &exchange);
        cfg.store_offline = true;
        Some(Offline {
            rabbit,
            exchange,
            url: redis.url(),
            redis,
            cfg,
            prefix: unique("gw"),
        })
    }

    /// A node `id` of this setup, joined to its Redis.
    fn node(&self, id: &str) -> Node {
        let flags = [
            "--redis-url",
            self.url.as_str(),
            "--redis-prefix",
            self.prefix.as_str(),
        ];
        Node::start(&self.cfg, id, &flags)
    }
}

#[test]
fn gateway_offline_stored_once_cluster_wide() {
    let Some(setup) = Offline::start() else {
        return;
    };
    let (rabbit, exchange, prefix) = (
        setup.rabbit.clone(),
        setup.exchange.clone(),
        setup.prefix.clone(),
    );
    let redis = &setup.redis;
    let a = setup.node(&unique("node-a"));
    let b = setup.node(&unique("node-b"));
    for n in [&a, &b] {
        wait_relay(n.addr(), "up");
    }
    let svc = Service::connect(&rabbit.url());

    // rider-2 on b, counted in Redis (what a tells "connected elsewhere" by).
    let mut rider2 = b.device("/ws/riders?userID=rider-2");
    let counted = |user: &str, n: i64| {
        wait_for(&format!("{user}'s devices counted in Redis"), || {
            hget(redis, &format!("{prefix}:gwconns"), user) == Some(n)
        })
    };
    counted("rider-2", 1);

    // rider-1 is connected nowhere: one event with a message id, two without.
    let events = [
        (Some("m-1"), r#"{"tripId":"t1","n":1}"#),
        (None, r#"{"tripId":"t1","n":2}"#),
        (None, r#"{"tripId":"t1","n":3}"#),
    ];
    for (id, data) in events {
        let b = body("rider-1", data);
        svc.publish(&exchange, "trip.event.driver_assigned", b.as_bytes(), id);
    }
    svc.publish(
        &exchange,
        "trip.event.driver_assigned",
        body("rider-2", "\"live\"").as_bytes(),
        Some("m-2"),
    );
    rider2.expect(&frame("trip.event.driver_assigned", "\"live\""));
    // Both nodes consumed all four and settled them with Redis: three stored, once.
    let sum = |s: &str| metric(a.addr(), s) + metric(b.addr(), s);
    let stored = r#"corecast_gateway_offline_total{result="stored"}"#;
    let elsewhere = r#"corecast_gateway_offline_total{result="elsewhere"}"#;
    wait_for("every event settled", || {
        sum("corecast_amqp_consumed_total") == 8.0 && sum(stored) + sum(elsewhere) == 7.0
    });
    assert_eq!(sum(stored), 3.0);
    assert_eq!(
        sum(r#"corecast_gateway_offline_total{result="failed"}"#),
        0.0
    );

    // rider-1's first device gets them, oldest first, then live events.
    let mut first = a.device("/ws/riders?userID=rider-1");
    for (_, data) in events {
        first.expect(&frame("trip.event.driver_assigned", data));
    }
    // (Once Redis counts it, b leaves rider-1's events to a instead of storing them.)
    counted("rider-1", 1);
    svc.publish(
        &exchange,
        "trip.event.sentinel",
        body("rider-1", "1").as_bytes(),
        None,
    );
    first.expect(&frame("trip.event.sentinel", "1"));
    // The inbox was emptied: a second device (on the other node) gets only what comes next.
    let mut second = b.device("/ws/riders?userID=rider-1");
    counted("rider-1", 2);
    svc.publish(
        &exchange,
        "trip.event.sentinel",
        body("rider-1", "2").as_bytes(),
        None,
    );
    second.expect(&frame("trip.event.sentinel", "2"));
    first.expect(&frame("trip.event.sentinel", "2"));
    assert_eq!(
        sum(r#"corecast_gateway_offline_total{result="replayed"}"#),
        3.0
    );
    // And rider-2 had nothing stored.
    let mut rider2_again = a.device("/ws/riders?userID=rider-2");
    counted("rider-2", 2);
    svc.publish(
        &exchange,
        "trip.event.sentinel",
        body("rider-2", "3").as_bytes(),
        None,
    );
    rider2_again.expect(&frame("trip.event.sentinel", "3"));
    rider2.expect(&frame("trip.event.sentinel", "3"));
}

/// A node that comes back with a backlog finds the marks of what the other node stored while
/// it was down, and stores none of it again.
#[test]
fn gateway_offline_restarted_node_stores_nothing_twice() {
    let Some(setup) = Offline::start() else {
        return;
    };
    let (rabbit, exchange) = (setup.rabbit.clone(), setup.exchange.clone());
    let a = setup.node(&unique("node-a"));
    let b_id = unique("node-b");
    let mut b = setup.node(&b_id);
    let queue_b = b.queue();
    for n in [&a, &b] {
        wait_relay(n.addr(), "up");
    }
    let svc = Service::connect(&rabbit.url());

    b.server.kill();
    drop(b);
    for (i, id) in [(1, Some("r-1")), (2, None)] {
        let data = format!("{{\"n\":{i}}}");
        svc.publish(
            &exchange,
            "trip.event.x",
            body("rider-1", &data).as_bytes(),
            id,
        );
    }
    let stored = r#"corecast_gateway_offline_total{result="stored"}"#;
    wait_for("a stored both", || metric(a.addr(), stored) == 2.0);
    wait_for("b's queue kept both", || svc.ready(&queue_b) == 2);

    let b = setup.node(&b_id);
    wait_relay(b.addr(), "up");
    wait_for("b settled its backlog", || {
        metric(
            b.addr(),
            r#"corecast_gateway_offline_total{result="elsewhere"}"#,
        ) == 2.0
    });
    assert_eq!(metric(b.addr(), stored), 0.0);
    let mut rider = b.device("/ws/riders?userID=rider-1");
    rider.expect(&frame("trip.event.x", r#"{"n":1}"#));
    rider.expect(&frame("trip.event.x", r#"{"n":2}"#));
    svc.publish(
        &exchange,
        "trip.event.x",
        body("rider-1", "\"end\"").as_bytes(),
        None,
    );
    rider.expect(&frame("trip.event.x", "\"end\""));
}
