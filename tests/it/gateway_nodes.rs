//! Two gateway nodes on one broker (each with its own queue, bound to the same keys): every
//! device of an owner gets each event exactly once, whichever node it is connected to; and a
//! node that restarts within the queue's `x-expires` gets what was published while it was
//! down, and holds it for the devices that reconnect within its start grace
//! (`--amqp-grace`).

use crate::cluster::metric;
use crate::gateway::{body, frame, shared_rabbit, unique, wait_for, Node, Ride};
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
    let cfg = Ride::new(&rabbit.url(), &exchange);
    let a = Node::start(&cfg, &unique("node-a"), &[]);
    let b_id = unique("node-b");
    let mut b = Node::start(&cfg, &b_id, &[]);
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
    // (And the 0 again if b's ack for it was still on its way: at least once.)
    wait_for("b's queue holds the five", || svc.ready(&queue_b) >= 5);

    // b comes back under its id (same queue) with a start grace: it takes its backlog from
    // the broker at once but holds it; the device that reconnects meanwhile gets it.
    let b = Node::start(&cfg, &b_id, &["--amqp-grace", "8s"]);
    wait_for("b took its backlog", || svc.ready(&queue_b) == 0);
    assert_eq!(metric(b.addr(), "corecast_amqp_consumed_total"), 0.0);
    let mut on_b = b.device("/ws/riders?userID=rider-1");
    let mut got = on_b.until(&frame("trip.event.x", "5"));
    if got.first() == Some(&frame("trip.event.x", "0")) {
        got.remove(0);
    }
    let want: Vec<String> = (1..5)
        .map(|i| frame("trip.event.x", &i.to_string()))
        .collect();
    assert_eq!(got, want);
    // Nothing twice, on either node.
    svc.publish(
        &exchange,
        "trip.event.x",
        body("rider-1", "6").as_bytes(),
        None,
    );
    on_a.expect(&frame("trip.event.x", "6"));
    on_b.expect(&frame("trip.event.x", "6"));
    let delivered = metric(b.addr(), "corecast_amqp_delivered_total");
    assert!(delivered == 6.0 || delivered == 7.0, "{delivered}");
    assert_eq!(metric(b.addr(), "corecast_amqp_undelivered_total"), 0.0);
}
