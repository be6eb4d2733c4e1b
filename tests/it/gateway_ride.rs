//! The ride-sharing example end to end through `/ws/riders` and `/ws/drivers`: the Trip
//! Service's request reaches the chosen driver only, the driver's accept goes upstream with the
//! driver as owner (persistent, confirmed before the client's ack), the assignment reaches
//! every device of the rider (on both workers), `no_drivers_found` its rider only.

use std::time::Duration;

use crate::cluster::metric;
use crate::gateway::{body, frame, shared_rabbit, unique, Node, Ride};
use crate::rabbit::Service;

#[test]
fn gateway_ride_flow() {
    let Some(rabbit) = shared_rabbit() else {
        return;
    };
    let exchange = unique("trip");
    let node = Node::start(&Ride::new(&rabbit.url(), &exchange), &unique("ride"), &[]);
    // The Driver Service's queue for what drivers send.
    let svc = Service::connect(&rabbit.url());
    let driver_service = unique("driver-service");
    svc.queue(
        &driver_service,
        &exchange,
        &["driver.cmd.trip_accept", "driver.cmd.trip_decline"],
    );

    let mut driver1 = node.device("/ws/drivers?userID=driver-1&packageSlug=sedan");
    let mut driver2 = node.device("/ws/drivers?userID=driver-2&packageSlug=sedan");
    // Six devices of the rider: the kernel spreads them over the two workers (all six on one
    // worker: 1 time in 32).
    let mut rider1: Vec<_> = (0..6)
        .map(|_| node.device("/ws/riders?userID=rider-1"))
        .collect();
    let mut rider2 = node.device("/ws/riders?userID=rider-2");

    // The Trip Service asks driver-1.
    let request = r#"{"tripId":"t1","rider":{"id":"rider-1","name":"Ay\u015fe"},"pickup":{"lat":41.0082,"lng":28.9784},"fare":{"amount":12.5,"currency":"EUR"}}"#;
    svc.publish(
        &exchange,
        "driver.cmd.trip_request",
        body("driver-1", request).as_bytes(),
        None,
    );
    driver1.expect(&frame("driver.cmd.trip_request", request));

    // driver-1 accepts: published with driver-1 as owner; acked once the broker has it.
    driver1.send(r#"{"type":"driver.cmd.trip_accept","data":{"tripId":"t1","eta":240},"id":"c1"}"#);
    assert_eq!(driver1.recv(), r#"{"type":"ack","id":"c1"}"#);
    let m = svc
        .get(&driver_service, Duration::ZERO)
        .expect("the accept is in the Driver Service's queue when the ack arrives");
    assert_eq!(m.delivery.routing_key.as_str(), "driver.cmd.trip_accept");
    assert_eq!(
        String::from_utf8(m.delivery.data.clone()).unwrap(),
        r#"{"ownerId":"driver-1","data":{"tripId":"t1","eta":240}}"#
    );
    crate::rabbit::assert_persistent_json(&m);

    // The Trip Service tells the rider: every device.
    let assigned = r#"{"tripId":"t1","driver":{"id":"driver-1","car":{"plate":"34 ABC 12","model":"Tofa\u015f"}},"eta":240}"#;
    svc.publish(
        &exchange,
        "trip.event.driver_assigned",
        body("rider-1", assigned).as_bytes(),
        None,
    );
    for d in &mut rider1 {
        d.expect(&frame("trip.event.driver_assigned", assigned));
    }

    // Another trip finds nobody: its rider only.
    let none = r#"{"tripId":"t2","searched":["driver-3","driver-4"]}"#;
    svc.publish(
        &exchange,
        "trip.event.no_drivers_found",
        body("rider-2", none).as_bytes(),
        None,
    );
    rider2.expect(&frame("trip.event.no_drivers_found", none));

    // Nobody got what was not theirs: each one's next message is a sentinel of its own.
    for (owner, key) in [
        ("rider-1", "trip.event.sentinel"),
        ("rider-2", "trip.event.sentinel"),
        ("driver-1", "driver.cmd.trip_request"),
        ("driver-2", "driver.cmd.trip_request"),
    ] {
        svc.publish(
            &exchange,
            key,
            body(owner, &format!("\"end of {owner}\"")).as_bytes(),
            None,
        );
    }
    for d in &mut rider1 {
        d.expect(&frame("trip.event.sentinel", "\"end of rider-1\""));
    }
    rider2.expect(&frame("trip.event.sentinel", "\"end of rider-2\""));
    driver1.expect(&frame("driver.cmd.trip_request", "\"end of driver-1\""));
    driver2.expect(&frame("driver.cmd.trip_request", "\"end of driver-2\""));

    // Counted: 7 deliveries, each to at least one device; the driver's message upstream.
    let m = |s: &str| metric(node.addr(), s) as u64;
    assert_eq!(m("corecast_amqp_consumed_total"), 7);
    assert_eq!(m("corecast_amqp_delivered_total"), 7);
    assert_eq!(m("corecast_amqp_undelivered_total"), 0);
    assert_eq!(m(r#"corecast_gateway_upstream_total{result="sent"}"#), 1);
}
