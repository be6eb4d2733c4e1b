//! Who may open a gateway endpoint with `--jwt-secret`: a token holding one of the endpoint's
//! `roles` (the `role` claim or the `roles` array) gets in, any other token gets 403 before the
//! upgrade, no token or a bad one 401; the token's `sub` is the user (the endpoint's
//! `query:userID` is then ignored), for deliveries and upstream alike; an upstream message the
//! broker does not take (no queue bound: returned; a full queue: nacked) is answered
//! `upstream_unavailable`. Without `[amqp]`, `/health` says `"amqp":"off"`.

use std::process::Command;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};

use crate::chat_client::health;
use crate::cluster::metric;
use crate::gateway::{body, frame, shared_rabbit, unique, upgrade_status, Node, Ride};
use crate::harness::Server;
use crate::rabbit::Service;

const SECRET: &str = "a-gateway-secret-of-at-least-32-bytes";

/// A token from `corecast token` (one `--role` gives the `role` claim, several `roles`).
fn token(sub: &str, roles: &[&str], secret: &str) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corecast"));
    cmd.args(["token", "--sub", sub, "--jwt-secret", secret]);
    for r in roles {
        cmd.args(["--role", r]);
    }
    let out = cmd
        .env_remove("CORECAST_JWT_SECRET")
        .output()
        .expect("corecast token");
    assert!(out.status.success(), "{out:?}");
    let t = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    // What the server reads: the claims as the issue names them.
    let claims: serde_json::Value = serde_json::from_slice(
        &B64.decode(t.split('.').nth(1).expect("claims"))
            .expect("base64url"),
    )
    .expect("claims JSON");
    match roles {
        [] => assert!(claims.get("role").is_none() && claims.get("roles").is_none()),
        [one] => assert_eq!(claims["role"], *one),
        many => assert_eq!(claims["roles"], serde_json::json!(many)),
    }
    t
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

    let driver = token("driver-7", &["driver"], SECRET);
    let many = token("driver-8", &["admin", "driver"], SECRET);
    let rider = token("rider-1", &["rider"], SECRET);
    let riders = token("rider-2", &["rider", "premium"], SECRET);
    let plain = token("someone", &[], SECRET);
    let forged = token(
        "driver-7",
        &["driver"],
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
    let lifecycle = unique("lifecycle");
    svc.queue(&lifecycle, &exchange, &["gateway.connected"]);
    let mut d7 = node.device(&format!(
        "/ws/drivers?userID=driver-1&car=blue&token={driver}"
    ));
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
    // Its lifecycle event is driver-7's, and its query leaves out the userID the client
    // added (a service reading it would take driver-1 for the user), as the token.
    let mut events = Vec::new();
    while events.len() < 2 {
        let m = svc
            .get(&lifecycle, Duration::from_secs(10))
            .expect("a connected event for each driver");
        events.push(String::from_utf8(m.delivery.data.clone()).unwrap());
    }
    let d7_event = events
        .iter()
        .find(|e| e.starts_with(r#"{"ownerId":"driver-7""#))
        .unwrap_or_else(|| panic!("no event of driver-7 in {events:?}"));
    assert!(d7_event.contains(r#""query":{"car":"blue"}"#), "{d7_event}");
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

    // A type no queue is bound for: the broker returns it (mandatory), the client hears so.
    d7.send(r#"{"type":"driver.cmd.trip_decline","data":{"tripId":"t1"},"id":"b"}"#);
    let v: serde_json::Value = serde_json::from_str(&d7.recv()).unwrap();
    assert_eq!(
        (&v["type"], &v["code"], &v["id"]),
        (&"error".into(), &"upstream_unavailable".into(), &"b".into()),
        "{v}"
    );
    // Published: the accept and the two drivers' gateway.connected (bound above).
    assert_eq!(metric(addr, "corecast_amqp_published_total"), 3.0);
    assert_eq!(metric(addr, "corecast_amqp_unroutable_total"), 1.0);
    // A queue that refuses it: the broker nacks the publish, the client hears so too.
    let full = unique("full");
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    svc.rt.block_on(async {
        svc.ch
            .queue_declare(&full, QueueDeclareOptions::default(), args)
            .await
            .unwrap();
        svc.ch
            .queue_bind(
                &full,
                &exchange,
                "driver.cmd.trip_decline",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    });
    d7.send(r#"{"type":"driver.cmd.trip_decline","data":{"tripId":"t1"},"id":"n"}"#);
    let v: serde_json::Value = serde_json::from_str(&d7.recv()).unwrap();
    assert_eq!(
        (&v["type"], &v["code"], &v["id"]),
        (&"error".into(), &"upstream_unavailable".into(), &"n".into()),
        "{v}"
    );
    assert_eq!(metric(addr, "corecast_amqp_publish_failed_total"), 2.0);
    assert_eq!(metric(addr, "corecast_amqp_unroutable_total"), 1.0);

    // Without [amqp] there is no bridge.
    let plain_server = Server::start(&[]);
    assert_eq!(health(plain_server.addr)["amqp"], "off");
    assert_eq!(health(addr)["amqp"], "up");
}
