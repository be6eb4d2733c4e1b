//! The RabbitMQ bridge (`corecast::amqp`) against a real `rabbitmq-server`: topology, deliveries
//! byte for byte, unbound keys, Go-style base64 data, malformed bodies dead-lettered, acks only
//! when the application says so, confirmed persistent publishes, QoS and queue depth, and a
//! broker outage (down, backlog, failures beyond it, up again by itself) and a stalled broker
//! (noticed by the heartbeat).
//!
//! Each test starts its own broker (`it/rabbit.rs`, shared with the gateway tests of the `it`
//! binary: Debian's `rabbitmq-server` in the foreground, with its files in a temporary
//! directory, free ports and a private `epmd`, stopped by PID when dropped). A broker takes
//! about 5 s to start on the 2-core machine, so the scenarios share one broker per test. A
//! lapin client in the test (`rabbit::Service`) plays the services (publisher, upstream
//! consumer); the workers are a closure sink that records every event.
//!
//! Without `rabbitmq-server` the tests print `SKIPPED` and return (they check nothing then).
//! CI installs it (`tools/setup.sh`); under `CI=true` a missing one fails the tests instead.

#![allow(clippy::unwrap_used)]

#[path = "it/fixture.rs"]
mod fixture;
#[path = "it/rabbit.rs"]
mod rabbit;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use corecast::amqp::body::{write_body, DataEncoding};
use corecast::amqp::{
    Amqp, AmqpCmd, AmqpConfig, AmqpEvent, AmqpHandle, AmqpState, DeliveryTag, Sink,
};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions, QueuePurgeOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::ExchangeKind;
use rabbit::{Rabbit, Service};

/// How long a test waits for an event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

// ---- the bridge and its workers ---------------------------------------------------------

/// Two workers; an owner's deliveries go to worker `owner.len() % 2`.
const WORKERS: usize = 2;

fn route(owner: &str) -> usize {
    owner.len() % WORKERS
}

/// A running bridge whose workers are a channel of `(worker, event)` and wake counters.
struct Bridge {
    handle: AmqpHandle,
    events: Receiver<(usize, AmqpEvent)>,
    wakes: Arc<[AtomicU64; WORKERS]>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Bridge {
    /// Starts a bridge and waits until it is up.
    fn start(cfg: AmqpConfig) -> Bridge {
        let b = Bridge::spawn(cfg);
        b.expect_all(|e| matches!(e, AmqpEvent::Up), "up");
        assert_eq!(b.handle.shared.state(), AmqpState::Up);
        b
    }

    /// Starts a bridge.
    fn spawn(cfg: AmqpConfig) -> Bridge {
        let amqp = Amqp::new(cfg).unwrap();
        let handle = amqp.handle();
        let (tx, events) = crossbeam_channel::unbounded();
        let wakes: Arc<[AtomicU64; WORKERS]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let w = wakes.clone();
        let sink = Sink {
            deliver: Box::new(move |worker, ev| {
                let _ = tx.send((worker, ev));
            }),
            wake: Box::new(move |worker| {
                w[worker].fetch_add(1, Relaxed);
            }),
            route: Box::new(route),
            workers: WORKERS,
        };
        let thread = amqp.start(sink).unwrap();
        Bridge {
            handle,
            events,
            wakes,
            thread: Some(thread),
        }
    }

    fn next(&self) -> (usize, AmqpEvent) {
        match self.events.recv_timeout(EVENT_TIMEOUT) {
            Ok(e) => e,
            Err(RecvTimeoutError::Timeout) => panic!("no event within {EVENT_TIMEOUT:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the bridge thread ended"),
        }
    }

    /// Whether an event comes within `d`.
    fn quiet_for(&self, d: Duration) -> Option<(usize, AmqpEvent)> {
        self.events.recv_timeout(d).ok()
    }

    /// The next event is `what` for every worker (one each, in any order).
    fn expect_all(&self, is: impl Fn(&AmqpEvent) -> bool, what: &str) {
        let mut seen = [false; WORKERS];
        for _ in 0..WORKERS {
            let (w, e) = self.next();
            assert!(is(&e), "expected {what}, got {e:?}");
            assert!(!seen[w], "{what} twice for worker {w}");
            seen[w] = true;
        }
    }

    /// The next event is a delivery: (routing key, owner, data, tag, message id, redelivered).
    fn delivery(&self) -> (String, String, Vec<u8>, DeliveryTag, Option<String>, bool) {
        let (w, e) = self.next();
        let AmqpEvent::Delivery {
            routing_key,
            owner,
            data,
            tag,
            message_id,
            redelivered,
        } = e
        else {
            panic!("expected a delivery, got {e:?}");
        };
        assert_eq!(w, route(&owner), "delivered to the owner's worker");
        (
            routing_key,
            owner,
            data.to_vec(),
            tag,
            message_id,
            redelivered,
        )
    }

    /// The next event is the confirm of `token`; returns its `ok`.
    fn confirmed(&self, token: u64) -> bool {
        let (w, e) = self.next();
        let AmqpEvent::Confirmed { token: t, ok } = e else {
            panic!("expected a confirm, got {e:?}");
        };
        assert_eq!((w, t), (1, token), "confirm to the publishing worker");
        ok
    }

    fn publish(&self, key: &str, body: Vec<u8>, token: u64) {
        self.handle.send(AmqpCmd::Publish {
            routing_key: key.into(),
            body,
            worker: 1,
            token,
        });
    }

    fn ack(&self, tag: DeliveryTag) {
        self.handle.send(AmqpCmd::Ack { tag });
    }

    fn stat(&self, f: impl Fn(&corecast::amqp::AmqpStats) -> &AtomicU64) -> u64 {
        f(&self.handle.shared.stats).load(Relaxed)
    }

    /// Stops the bridge and joins its thread.
    fn stop(mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Relaxed)
    )
}

fn config(rabbit: &Rabbit, exchange: &str, node: &str, bind: &[&str]) -> AmqpConfig {
    let mut cfg = AmqpConfig::new(&rabbit.url(), exchange, node);
    cfg.bind = bind.iter().map(|s| s.to_string()).collect();
    cfg
}

// ---- the tests ---------------------------------------------------------------------------

/// Everything but an outage, on one broker.
#[test]
fn bridge_against_rabbitmq() {
    let Some(rabbit) = Rabbit::start() else {
        return;
    };
    let svc = Service::connect(&rabbit.url());
    let exchange = unique("trip");
    let node = unique("node-a");
    // The dead-letter exchange and queue an operator would set up.
    let dlx = unique("dlx");
    let dlq = unique("dlq");
    svc.exchange(&dlx, ExchangeKind::Fanout);
    svc.queue(&dlq, &dlx, &[""]);

    let mut cfg = config(
        &rabbit,
        &exchange,
        &node,
        &["driver.cmd.trip_request", "trip.event.*"],
    );
    cfg.dead_letter_exchange = Some(dlx.clone());
    let queue = cfg.queue.clone();
    assert_eq!(queue, format!("corecast.gateway.{node}"));
    let bridge = Bridge::start(cfg.clone());

    // Topology: the exchange is a durable topic exchange (a passive declare finds it; an
    // active one with those exact properties agrees), the queue durable with x-expires 10 min
    // and the dead-letter exchange (re-declaring with the same arguments agrees; a transient
    // queue or another expiry does not).
    svc.rt
        .block_on(svc.ch.exchange_declare(
            &exchange,
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        ))
        .unwrap();
    let args = |expires: i64| {
        let mut a = FieldTable::default();
        a.insert("x-expires".into(), AMQPValue::LongLongInt(expires));
        a.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(dlx.as_str().into()),
        );
        a
    };
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    assert!(svc.declare_matches(&queue, durable, args(600_000)));
    assert!(!svc.declare_matches(&queue, durable, args(60_000)));
    assert!(!svc.declare_matches(&queue, QueueDeclareOptions::default(), args(600_000)));

    // Deliveries: routing key, owner (unescaped), data byte for byte, to the owner's worker.
    let bodies: &[(&str, &str, &str, &str)] = &[
        (
            "trip.event.driver_assigned",
            r#"{"ownerId":"rider-1","data":{"tripId":"t1","driver":{"id":"d-9","car":{"plate":"34 ABC 12"}}}}"#,
            "rider-1",
            r#"{"tripId":"t1","driver":{"id":"d-9","car":{"plate":"34 ABC 12"}}}"#,
        ),
        (
            "trip.event.fare",
            r#"{"data":{"z":1,"a":[9223372036854775808,18446744073709551616,-9223372036854775809,1.0e+2]},"ownerId":"rider-2"}"#,
            "rider-2",
            r#"{"z":1,"a":[9223372036854775808,18446744073709551616,-9223372036854775809,1.0e+2]}"#,
        ),
        (
            "driver.cmd.trip_request",
            "{\"ownerId\":\"s\\u00fcr\\u00fcc\\u00fc-7\",\"data\":{\"msg\":\"\\u00c7ay \\ud83d\\ude95 \\\"q\\\" caf\u{e9}\", \"n\" : [ 1 , 2 ]}}",
            "sürücü-7",
            "{\"msg\":\"\\u00c7ay \\ud83d\\ude95 \\\"q\\\" caf\u{e9}\", \"n\" : [ 1 , 2 ]}",
        ),
        (
            "trip.event.no_drivers_found",
            r#"{"ownerId":"auth0|abc","data":null}"#,
            "auth0|abc",
            "null",
        ),
    ];
    let wakes_before: u64 = bridge.wakes.iter().map(|w| w.load(Relaxed)).sum();
    for (i, (key, body, _, _)) in bodies.iter().enumerate() {
        svc.publish(&exchange, key, body.as_bytes(), Some(&format!("m-{i}")));
    }
    for (i, (key, _, owner, data)) in bodies.iter().enumerate() {
        let (k, o, d, tag, id, redelivered) = bridge.delivery();
        assert_eq!(
            (k.as_str(), o.as_str(), d.as_slice()),
            (*key, *owner, data.as_bytes())
        );
        assert_eq!(id.as_deref(), Some(format!("m-{i}").as_str()));
        assert!(!redelivered);
        bridge.ack(tag);
    }
    let wakes_after: u64 = bridge.wakes.iter().map(|w| w.load(Relaxed)).sum();
    assert!(
        wakes_after > wakes_before,
        "workers woken for their deliveries"
    );

    // Unbound keys are not delivered: the sentinel published after them comes first.
    svc.publish(
        &exchange,
        "trip.other.thing",
        br#"{"ownerId":"x","data":1}"#,
        None,
    );
    svc.publish(
        &exchange,
        "trip.event.a.b",
        br#"{"ownerId":"x","data":2}"#,
        None,
    );
    svc.publish(
        &exchange,
        "driver.cmd.trip_accept",
        br#"{"ownerId":"x","data":3}"#,
        None,
    );
    svc.publish(
        &exchange,
        "trip.event.sentinel",
        br#"{"ownerId":"x","data":4}"#,
        None,
    );
    let (k, _, d, tag, _, _) = bridge.delivery();
    assert_eq!(
        (k.as_str(), d.as_slice()),
        ("trip.event.sentinel", &b"4"[..])
    );
    bridge.ack(tag);

    // Malformed bodies: nacked without requeue into the dead-letter queue, byte for byte;
    // counted; the bridge goes on.
    let malformed: &[&[u8]] = &[
        b"not json",
        br#"{"data":1}"#,
        br#"{"ownerId":5,"data":1}"#,
        br#"{"ownerId":"a","data":1,"data":2}"#,
        b"{\"ownerId\":\"\xff\",\"data\":1}",
        br#"{"ownerId":"a","data":[1,]}"#,
    ];
    for m in malformed {
        svc.publish(&exchange, "trip.event.bad", m, None);
    }
    svc.publish(
        &exchange,
        "trip.event.after",
        br#"{"ownerId":"y","data":"ok"}"#,
        None,
    );
    let (k, o, d, tag, _, _) = bridge.delivery();
    assert_eq!(
        (k.as_str(), o.as_str(), d.as_slice()),
        ("trip.event.after", "y", &b"\"ok\""[..])
    );
    bridge.ack(tag);
    for m in malformed {
        let got = svc
            .get(&dlq, Duration::from_secs(10))
            .expect("dead-lettered");
        assert_eq!(got.delivery.data, *m);
        assert_eq!(got.delivery.routing_key.as_str(), "trip.event.bad");
    }
    assert_eq!(bridge.stat(|s| &s.malformed), malformed.len() as u64);
    assert_eq!(bridge.stat(|s| &s.dead_lettered), malformed.len() as u64);
    let consumed = (bodies.len() + 1 + malformed.len() + 1) as u64;
    assert_eq!(bridge.stat(|s| &s.consumed), consumed);

    // Upstream: confirmed, persistent, application/json, in order; unroutable fails.
    let upstream = unique("driver-service");
    svc.queue(&upstream, &exchange, &["driver.cmd.trip_accept"]);
    for i in 0..50u64 {
        let mut body = Vec::new();
        write_body(
            &mut body,
            "ownerId",
            "driver-1",
            format!(r#"{{"tripId":"t{i}"}}"#).as_bytes(),
            DataEncoding::Json,
        );
        bridge.publish("driver.cmd.trip_accept", body, 100 + i);
    }
    // Confirms come back in any order (each is awaited on its own); one per publish.
    let mut tokens = Vec::new();
    for _ in 0..50u64 {
        let (w, e) = bridge.next();
        let AmqpEvent::Confirmed { token, ok } = e else {
            panic!("expected a confirm, got {e:?}");
        };
        assert!(ok && w == 1, "publish {token} confirmed to its worker");
        tokens.push(token);
    }
    tokens.sort_unstable();
    assert_eq!(tokens, (100..150).collect::<Vec<u64>>());
    for i in 0..50u64 {
        let m = svc
            .get(&upstream, Duration::from_secs(5))
            .expect("upstream message");
        let want = format!(r#"{{"ownerId":"driver-1","data":{{"tripId":"t{i}"}}}}"#);
        assert_eq!(String::from_utf8(m.delivery.data.clone()).unwrap(), want);
        rabbit::assert_persistent_json(&m);
    }
    bridge.publish("nobody.listens", b"{}".to_vec(), 7);
    assert!(!bridge.confirmed(7), "an unroutable publish is not ok");
    assert_eq!(bridge.stat(|s| &s.published), 50);
    assert_eq!(bridge.stat(|s| &s.unroutable), 1);
    assert_eq!(bridge.stat(|s| &s.publish_failed), 1);

    // Acks only when the application says so: an unacked delivery comes back after a bridge
    // restart (marked redelivered); an acked one does not.
    svc.publish(
        &exchange,
        "trip.event.keep",
        br#"{"ownerId":"k","data":"kept"}"#,
        None,
    );
    svc.publish(
        &exchange,
        "trip.event.done",
        br#"{"ownerId":"k","data":"done"}"#,
        None,
    );
    let (k1, _, _, _tag_kept, _, _) = bridge.delivery();
    let (k2, _, _, tag_done, _, _) = bridge.delivery();
    assert_eq!(
        (k1.as_str(), k2.as_str()),
        ("trip.event.keep", "trip.event.done")
    );
    bridge.ack(tag_done);
    bridge.stop();
    let bridge = Bridge::start(cfg.clone());
    let (k, _, d, tag, _, redelivered) = bridge.delivery();
    assert_eq!(
        (k.as_str(), d.as_slice()),
        ("trip.event.keep", &b"\"kept\""[..])
    );
    assert!(redelivered);
    bridge.ack(tag);
    assert!(
        bridge.quiet_for(Duration::from_millis(500)).is_none(),
        "the acked one stays acked"
    );
    bridge.stop();
    assert_eq!(svc.ready(&queue), 0);

    // QoS and queue depth: with prefetch 1 only one delivery is out until it is acked; the
    // rest are "ready", which the depth check reports.
    let mut slow = cfg.clone();
    slow.prefetch = 1;
    slow.depth_interval = Duration::from_millis(200);
    let bridge = Bridge::start(slow);
    for i in 0..4 {
        svc.publish(
            &exchange,
            "trip.event.q",
            format!(r#"{{"ownerId":"q","data":{i}}}"#).as_bytes(),
            None,
        );
    }
    let (_, _, d, tag, _, _) = bridge.delivery();
    assert_eq!(d, b"0");
    assert!(
        bridge.quiet_for(Duration::from_millis(300)).is_none(),
        "prefetch 1 holds the rest"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while bridge.stat(|s| &s.queue_depth) != 3 {
        assert!(
            Instant::now() < deadline,
            "queue depth {}",
            bridge.stat(|s| &s.queue_depth)
        );
        thread::sleep(Duration::from_millis(50));
    }
    bridge.ack(tag);
    for i in 1..4 {
        let (_, _, d, tag, _, _) = bridge.delivery();
        assert_eq!(d, i.to_string().as_bytes());
        bridge.ack(tag);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while bridge.stat(|s| &s.queue_depth) != 0 {
        assert!(
            Instant::now() < deadline,
            "queue depth {}",
            bridge.stat(|s| &s.queue_depth)
        );
        thread::sleep(Duration::from_millis(50));
    }
    // A nack from the application dead-letters too.
    svc.publish(
        &exchange,
        "trip.event.refused",
        br#"{"ownerId":"n","data":0}"#,
        None,
    );
    let (_, _, _, tag, _, _) = bridge.delivery();
    bridge.handle.send(AmqpCmd::Nack { tag });
    let got = svc
        .get(&dlq, Duration::from_secs(10))
        .expect("nacked into the dlq");
    assert_eq!(got.delivery.routing_key.as_str(), "trip.event.refused");
    assert_eq!(bridge.stat(|s| &s.dead_lettered), 1);
    bridge.stop();

    // The node's queue declared before with other arguments: the broker refuses the declare,
    // the bridge stays down (retrying, with a warning in its log), publishes wait in the
    // backlog, and stopping it fails them.
    let mut changed = cfg.clone();
    changed.queue_expires = Duration::from_secs(60);
    let bridge = Bridge::spawn(changed);
    bridge.publish("driver.cmd.trip_accept", b"{}".to_vec(), 11);
    assert!(
        bridge.quiet_for(Duration::from_secs(2)).is_none(),
        "never up"
    );
    assert_eq!(bridge.handle.shared.state(), AmqpState::Down);
    assert_eq!(bridge.stat(|s| &s.backlog), 1);
    bridge.handle.stop();
    assert!(!bridge.confirmed(11), "failed when the bridge stops");
    bridge.stop();

    // Go's []byte convention: data base64, decoded into the JSON it holds; base64 of
    // non-JSON dead-lettered; upstream bodies encoded the same way.
    let mut go = config(&rabbit, &exchange, &unique("node-go"), &["go.#"]);
    go.data_encoding = DataEncoding::Base64;
    go.dead_letter_exchange = Some(dlx.clone());
    let bridge = Bridge::start(go);
    // json.Marshal(struct{OwnerID string `json:"ownerId"`; Data []byte `json:"data"`}{
    //     "rider-1", []byte(`{"tripId":"t1","fare":9223372036854775808}`)})
    svc.publish(
        &exchange,
        "go.trip.event.driver_assigned",
        br#"{"ownerId":"rider-1","data":"eyJ0cmlwSWQiOiJ0MSIsImZhcmUiOjkyMjMzNzIwMzY4NTQ3NzU4MDh9"}"#,
        None,
    );
    let (_, o, d, tag, _, _) = bridge.delivery();
    assert_eq!(o, "rider-1");
    assert_eq!(d, br#"{"tripId":"t1","fare":9223372036854775808}"#);
    bridge.ack(tag);
    // base64 of "hello": not JSON.
    svc.publish(
        &exchange,
        "go.bad",
        br#"{"ownerId":"rider-1","data":"aGVsbG8="}"#,
        None,
    );
    let got = svc
        .get(&dlq, Duration::from_secs(10))
        .expect("dead-lettered base64");
    assert_eq!(
        got.delivery.data,
        br#"{"ownerId":"rider-1","data":"aGVsbG8="}"#
    );
    let go_up = unique("go-upstream");
    svc.queue(&go_up, &exchange, &["driver.cmd.#"]);
    let mut body = Vec::new();
    write_body(
        &mut body,
        "ownerId",
        "driver-1",
        br#"{"tripId":"t1"}"#,
        DataEncoding::Base64,
    );
    bridge.publish("driver.cmd.trip_decline", body, 9);
    assert!(bridge.confirmed(9));
    let m = svc.get(&go_up, Duration::from_secs(5)).unwrap();
    // What Go's json.Unmarshal into that struct reads: the owner and the decoded bytes.
    let v: serde_json::Value = serde_json::from_slice(&m.delivery.data).unwrap();
    assert_eq!(v["ownerId"], "driver-1");
    use base64::Engine as _;
    let data = base64::engine::general_purpose::STANDARD
        .decode(v["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(data, br#"{"tripId":"t1"}"#);
    bridge.stop();
    svc.rt
        .block_on(svc.ch.queue_purge(&dlq, QueuePurgeOptions::default()))
        .unwrap();
}

/// The broker crashes and comes back: down, backlog, failures beyond it; then up by itself,
/// consuming and publishing again, stale acks ignored, nothing acknowledged lost.
#[test]
fn broker_outage() {
    let Some(mut rabbit) = Rabbit::start() else {
        return;
    };
    let exchange = unique("ev");
    let upstream = unique("upstream");
    {
        let svc = Service::connect(&rabbit.url());
        svc.exchange(&exchange, ExchangeKind::Topic);
        svc.queue(&upstream, &exchange, &["cmd.#"]);
    }
    let mut cfg = config(&rabbit, &exchange, &unique("node-o"), &["ev.#"]);
    cfg.backlog = 3;
    // A short heartbeat, so that a stalled broker is noticed within 4 s (2 heartbeats).
    cfg.url.push_str("?heartbeat=2");
    let queue = cfg.queue.clone();
    let bridge = Bridge::start(cfg);

    // One delivery, not acked yet.
    let svc = Service::connect(&rabbit.url());
    svc.publish(&exchange, "ev.one", br#"{"ownerId":"o","data":1}"#, None);
    let (_, _, _, old_tag, _, _) = bridge.delivery();
    drop(svc);

    rabbit.kill();
    bridge.expect_all(|e| matches!(e, AmqpEvent::Down), "down");
    assert_eq!(bridge.handle.shared.state(), AmqpState::Down);
    // Publishes wait in the backlog (3); beyond it they fail at once.
    for token in 1..=5 {
        bridge.publish(
            &format!("cmd.{token}"),
            format!("{{\"n\":{token}}}").into_bytes(),
            token,
        );
    }
    assert!(!bridge.confirmed(4));
    assert!(!bridge.confirmed(5));
    assert_eq!(bridge.stat(|s| &s.backlog), 3);
    // An ack for a delivery of the lost connection is ignored (nothing to send it on).
    bridge.ack(old_tag);
    assert!(bridge.quiet_for(Duration::from_millis(300)).is_none());

    let took = rabbit.restart();
    eprintln!("rabbitmq-server restarted in {took:.1?}");
    bridge.expect_all(|e| matches!(e, AmqpEvent::Up), "up again");
    assert_eq!(bridge.handle.shared.state(), AmqpState::Up);
    // The backlog goes out in order and is confirmed; the unacked delivery comes back (it
    // was persistent and confirmed before the crash); an ack with the old tag is ignored.
    let mut confirmed = Vec::new();
    let mut again = None;
    while confirmed.len() < 3 || again.is_none() {
        match bridge.next() {
            (1, AmqpEvent::Confirmed { token, ok }) => {
                assert!(ok, "backlogged publish {token} confirmed");
                confirmed.push(token);
            }
            (
                _,
                AmqpEvent::Delivery {
                    routing_key,
                    data,
                    tag,
                    redelivered,
                    ..
                },
            ) => {
                assert_eq!((routing_key.as_str(), &data[..]), ("ev.one", &b"1"[..]));
                assert!(redelivered);
                assert_ne!(tag, old_tag);
                again = Some(tag);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    confirmed.sort_unstable();
    assert_eq!(confirmed, [1, 2, 3]);
    assert_eq!(bridge.stat(|s| &s.backlog), 0);
    // Were the stale ack applied to the redelivery (same number, new channel), this second
    // ack would be of an unknown tag: the broker would close the channel and the bridge
    // reconnect, which `reconnects == 1` below rules out.
    bridge.ack(old_tag);
    bridge.ack(again.unwrap());
    let svc = Service::connect(&rabbit.url());
    for token in 1..=3 {
        let m = svc
            .get(&upstream, Duration::from_secs(5))
            .expect("backlog delivered");
        assert_eq!(m.delivery.routing_key.to_string(), format!("cmd.{token}"));
    }
    // Consuming and publishing go on.
    svc.publish(&exchange, "ev.two", br#"{"ownerId":"o","data":2}"#, None);
    let (k, _, d, tag, _, redelivered) = bridge.delivery();
    assert_eq!(
        (k.as_str(), &d[..], redelivered),
        ("ev.two", &b"2"[..], false)
    );
    bridge.ack(tag);
    bridge.publish("cmd.after", b"{}".to_vec(), 6);
    assert!(bridge.confirmed(6));
    assert!(svc.get(&upstream, Duration::from_secs(5)).is_some());
    assert_eq!(bridge.stat(|s| &s.reconnects), 1);
    assert_eq!(bridge.stat(|s| &s.publish_failed), 2);
    assert_eq!(bridge.stat(|s| &s.published), 4);

    // A stalled broker (connections open, nothing answers) is noticed by the heartbeat: down,
    // the publish in flight failed (it may still arrive: never resent); up again once it
    // answers.
    rabbit.pause(true);
    let stalled = Instant::now();
    bridge.publish("cmd.stalled", b"{}".to_vec(), 8);
    let (mut downs, mut failed) = (0, false);
    while downs < WORKERS || !failed {
        match bridge.next() {
            (_, AmqpEvent::Down) => downs += 1,
            (
                1,
                AmqpEvent::Confirmed {
                    token: 8,
                    ok: false,
                },
            ) => failed = true,
            other => panic!("unexpected {other:?}"),
        }
    }
    eprintln!("stalled broker noticed in {:.1?}", stalled.elapsed());
    rabbit.pause(false);
    bridge.expect_all(|e| matches!(e, AmqpEvent::Up), "up after the stall");
    bridge.publish("cmd.resumed", b"{}".to_vec(), 9);
    assert!(bridge.confirmed(9));
    assert_eq!(bridge.stat(|s| &s.reconnects), 2);

    // Everything was acknowledged: nothing goes back to the queue when the bridge closes.
    bridge.stop();
    assert_eq!(svc.ready(&queue), 0);
}
