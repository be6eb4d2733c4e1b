//! Two gateway nodes on one broker (each with its own queue, bound to the same keys): every
//! device of an owner gets each event exactly once, whichever node it is connected to; and a
//! node that restarts within the queue's `x-expires` gets what was published while it was
//! down, delivered to the devices connected to it when it comes back.

use crate::chat_client::health;
use crate::cluster::metric;
use crate::gateway::{body, frame, shared_rabbit, unique, wait_amqp, wait_for, Gate, Node, Ride};
use crate::rabbit::Service;

#[test]
fn gateway_nodes_each_device_once() {
    let Some(rabbit) = shared_rabbit() else {
        return;
    };
    let exchange = unique("trip");
    let cfg = Ride::new(&rabbit.url(), &exchange);
    let a = Node::start(&cfg, &unique("node-a"), &[]);
    let b = Node::start(&cfg, &unique("node-b"), &[]);
    let svc = Service::connect(&rabbit.url());

    let mut rider1 = vec![
        a.device("/ws/riders?userID=rider-1"),
        a.device("/ws/riders?userID=rider-1"),
        b.device("/ws/riders?userID=rider-1"),
        b.device("/ws/riders?userID=rider-1"),
    ];
    let mut rider2 = b.device("/ws/riders?userID=rider-2");

    let n = 20;
    for i in 1..=n {
        let b = body("rider-1", &format!("{{\"seq\":{i}}}"));
        svc.publish(&exchange, "trip.event.location", b.as_bytes(), None);
    }
    svc.publish(
        &exchange,
        "trip.event.no_drivers_found",
        body("rider-2", "{}").as_bytes(),
        None,
    );
    let sentinel = body("rider-1", "\"end\"");
    svc.publish(&exchange, "trip.event.end", sentinel.as_bytes(), None);
    let want: Vec<String> = (1..=n)
        .map(|i| frame("trip.event.location", &format!("{{\"seq\":{i}}}")))
        .collect();
    for d in &mut rider1 {
        assert_eq!(d.until(&frame("trip.event.end", "\"end\"")), want);
    }
    rider2.expect(&frame("trip.event.no_drivers_found", "{}"));

    // Each node consumed every event from its own queue and delivered what its devices own.
    for (node, delivered, undelivered) in [(&a, n + 1, 1), (&b, n + 2, 0)] {
        let m = |s: &str| metric(node.addr(), s);
        wait_for("every event consumed", || {
            m("corecast_amqp_consumed_total") == f64::from(n + 2)
        });
        wait_for("every event counted", || {
            m("corecast_amqp_delivered_total") + m("corecast_amqp_undelivered_total")
                == f64::from(n + 2)
        });
        assert_eq!(m("corecast_amqp_delivered_total"), f64::from(delivered));
        assert_eq!(m("corecast_amqp_undelivered_total"), f64::from(undelivered));
    }
}

#[test]
fn gateway_nodes_restart_gets_backlog() {
    let Some(rabbit) = shared_rabbit() else {
        return;
    };
    let exchange = unique("trip");
    let svc = Service::connect(&rabbit.url());
    let a = Node::start(&Ride::new(&rabbit.url(), &exchange), &unique("node-a"), &[]);
    // Node b reaches the broker through a gate, closed while b restarts, so that its device is
    // connected before b consumes. (Without it, whether the device or the backlog comes first
    // is a race; a real device that reconnects after a backoff loses it, and the backlog is
    // counted undelivered.)
    let gate = Gate::new(rabbit.port, true);
    let cfg_b = Ride::new(&gate.url(), &exchange);
    let b_id = unique("node-b");
    let mut b = Node::start(&cfg_b, &b_id, &[]);
    let queue_b = b.queue();

    let mut on_a = a.device("/ws/riders?userID=rider-1");
    let mut on_b = b.device("/ws/riders?userID=rider-1");
    svc.publish(
        &exchange,
        "trip.event.x",
        body("rider-1", "0").as_bytes(),
        None,
    );
    on_a.expect(&frame("trip.event.x", "0"));
    on_b.expect(&frame("trip.event.x", "0"));

    // b crashes; events keep coming: a delivers them, b's queue keeps them.
    b.server.kill();
    drop(on_b);
    drop(b);
    for i in 1..=5 {
        svc.publish(
            &exchange,
            "trip.event.x",
            body("rider-1", &i.to_string()).as_bytes(),
            None,
        );
    }
    for i in 1..=5 {
        on_a.expect(&frame("trip.event.x", &i.to_string()));
    }
    wait_for("b's queue holds the five", || svc.ready(&queue_b) == 5);

    // b comes back (same node id: same queue); its device reconnects; then the broker.
    gate.set_open(false);
    let b = Node::spawn(&cfg_b, &b_id, &[]);
    assert_eq!(health(b.addr())["amqp"], "down");
    let mut on_b = b.device("/ws/riders?userID=rider-1");
    gate.set_open(true);
    wait_amqp(b.addr(), "up");
    for i in 1..=5 {
        on_b.expect(&frame("trip.event.x", &i.to_string()));
    }
    // Nothing twice, on either node.
    svc.publish(
        &exchange,
        "trip.event.x",
        body("rider-1", "6").as_bytes(),
        None,
    );
    on_a.expect(&frame("trip.event.x", "6"));
    on_b.expect(&frame("trip.event.x", "6"));
    wait_for("b's queue drained", || svc.ready(&queue_b) == 0);
    assert_eq!(metric(b.addr(), "corecast_amqp_delivered_total"), 6.0);
}
