//! Who may open a gateway endpoint with `--jwt-secret`: a token holding one of the endpoint's
//! `roles` (the `role` claim or the `roles` array) gets in, any other token gets 403 before the
//! upgrade, no token or a bad one 401; the token's `sub` is the user (the endpoint's
//! `query:userID` is then ignored), for deliveries and upstream alike. Without `[amqp]`,
//! `/health` says `"amqp":"off"`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use corecast::guard::jwt::{sign, Claims};

use crate::chat_client::health;
use crate::cluster::metric;
use crate::gateway::{body, frame, shared_rabbit, unique, upgrade_status, Node, Ride};
use crate::harness::Server;
use crate::rabbit::Service;

const SECRET: &str = "a-gateway-secret-of-at-least-32-bytes";

fn token(sub: &str, role: Option<&str>, roles: Option<&[&str]>, secret: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    let mut c = Claims::new(sub, exp);
    c.role = role.map(str::to_owned);
    c.roles = roles.map(|r| r.iter().map(|s| s.to_string()).collect());
    sign(secret.as_bytes(), &c)
}

#[test]
fn gateway_auth_roles_with_jwt() {
    let Some(rabbit) = shared_rabbit() else {
        return;
    };
    let exchange = unique("trip");
    let node = Node::start(
        &Ride::new(&rabbit.url(), &exchange),
        &unique("auth"),
        &["--jwt-secret", SECRET],
    );
    let addr = node.addr();
    let svc = Service::connect(&rabbit.url());
    let driver_service = unique("driver-service");
    svc.queue(&driver_service, &exchange, &["driver.cmd.trip_accept"]);

    let driver = token("driver-7", Some("driver"), None, SECRET);
    let many = token("driver-8", None, Some(&["admin", "driver"]), SECRET);
    let rider = token("rider-1", Some("rider"), None, SECRET);
    let riders = token("rider-2", None, Some(&["rider", "premium"]), SECRET);
    let plain = token("someone", None, None, SECRET);
    let forged = token(
        "driver-7",
        Some("driver"),
        None,
        "another-secret-of-at-least-32-bytes",
    );

    // Refusals, each before any upgrade.
    let refused = [
        (format!("/ws/drivers?token={rider}"), 403),
        (format!("/ws/drivers?token={riders}"), 403),
        (format!("/ws/drivers?token={plain}"), 403),
        ("/ws/drivers?userID=driver-7".to_owned(), 401),
        (format!("/ws/drivers?token={forged}"), 401),
        (format!("/ws/riders?token={forged}"), 401),
        ("/ws/riders?userID=rider-1".to_owned(), 401),
    ];
    for (path, status) in &refused {
        assert_eq!(upgrade_status(addr, path), *status, "{path}");
    }
    assert_eq!(
        metric(addr, r#"corecast_gateway_refused_total{reason="role"}"#),
        3.0
    );
    assert_eq!(
        metric(addr, r#"corecast_gateway_refused_total{reason="other"}"#),
        4.0
    );

    // Drivers get in with `role` or `roles`; riders on the endpoint without roles. The query's
    // userID is not who they are.
    let mut d7 = node.device(&format!("/ws/drivers?userID=driver-1&token={driver}"));
    let mut d8 = node.device(&format!("/ws/drivers?token={many}"));
    let mut r1 = node.device(&format!("/ws/riders?token={rider}&userID=rider-2"));
    let mut r_plain = node.device(&format!("/ws/riders?token={plain}"));

    for (owner, key) in [
        ("driver-1", "driver.cmd.trip_request"),
        ("rider-2", "trip.event.x"),
        ("driver-7", "driver.cmd.trip_request"),
        ("driver-8", "driver.cmd.trip_request"),
        ("rider-1", "trip.event.x"),
        ("someone", "trip.event.x"),
    ] {
        svc.publish(
            &exchange,
            key,
            body(owner, &format!("\"{owner}\"")).as_bytes(),
            None,
        );
    }
    d7.expect(&frame("driver.cmd.trip_request", "\"driver-7\""));
    d8.expect(&frame("driver.cmd.trip_request", "\"driver-8\""));
    r1.expect(&frame("trip.event.x", "\"rider-1\""));
    r_plain.expect(&frame("trip.event.x", "\"someone\""));

    // Upstream under the token's sub.
    d7.send(r#"{"type":"driver.cmd.trip_accept","data":{"tripId":"t1"},"id":"a"}"#);
    assert_eq!(d7.recv(), r#"{"type":"ack","id":"a"}"#);
    let m = svc
        .get(&driver_service, Duration::ZERO)
        .expect("in the queue when acked");
    assert_eq!(
        String::from_utf8(m.delivery.data.clone()).unwrap(),
        r#"{"ownerId":"driver-7","data":{"tripId":"t1"}}"#
    );

    // Without [amqp] there is no bridge.
    let plain_server = Server::start(&[]);
    assert_eq!(health(plain_server.addr)["amqp"], "off");
    assert_eq!(health(addr)["amqp"], "up");
}
