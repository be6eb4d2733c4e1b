//! Lifecycle events (`lifecycle = true` on `/ws/drivers`): `gateway.connected` when a user's
//! first device opens, `gateway.disconnected` when the last one closes — per user, not per
//! device, and not for endpoints without lifecycle — with the endpoint, the connection's query
//! parameters (not the token, not the identity parameter), the node and the devices left.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::cluster::metric;
use crate::gateway::{shared_rabbit, unique, wait_for, Node, Ride};
use crate::rabbit::Service;

#[test]
fn gateway_lifecycle_per_user() {
    let Some(rabbit) = shared_rabbit() else {
        return;
    };
    let exchange = unique("trip");
    let mut node = Node::start(&Ride::new(&rabbit.url(), &exchange), &unique("life"), &[]);
    let svc = Service::connect(&rabbit.url());
    let driver_service = unique("driver-service");
    svc.queue(&driver_service, &exchange, &["gateway.#"]);
    let event = |key: &str, owner: &str, query: &str, devices: u32| {
        (
            key.to_owned(),
            format!(
                r#"{{"ownerId":"{owner}","data":{{"endpoint":"/ws/drivers","query":{query},"node":"{}","devices":{devices}}}}}"#,
                node.id
            ),
        )
    };

    // d1's first device: connected, with its query but not its token or userID.
    let a = node.device("/ws/drivers?userID=d1&packageSlug=sedan&token=not-checked");
    let mut want_d1 = vec![event(
        "gateway.connected",
        "d1",
        r#"{"packageSlug":"sedan"}"#,
        1,
    )];
    // More devices of d1 (spread over the workers), and d1 on an endpoint without lifecycle:
    // nothing.
    let more: Vec<_> = (0..3)
        .map(|i| node.device(&format!("/ws/drivers?packageSlug=xl&userID=d1&n={i}")))
        .collect();
    let rider = node.device("/ws/riders?userID=d1&packageSlug=bike");
    // Another driver meanwhile: events of its own.
    let d2 = node.device("/ws/drivers?userID=d2");
    let want_d2 = vec![
        event("gateway.connected", "d2", "{}", 1),
        event("gateway.disconnected", "d2", "{}", 0),
    ];
    // Every device but the last one leaves: nothing.
    a.close();
    rider.close();
    let mut more = more.into_iter();
    let last = more.next().expect("three");
    for d in more {
        d.close();
    }
    d2.close();
    // The last one: disconnected, with its own query.
    last.close();
    want_d1.push(event(
        "gateway.disconnected",
        "d1",
        r#"{"packageSlug":"xl","n":"0"}"#,
        0,
    ));
    // d1 comes back with a query in UTF-8 and leaves again; then once more: the last event
    // is a barrier (an event caused by anything before would be in d1's sequence before it).
    let c = node.device("/ws/drivers?userID=d1&city=%C4%B0stanbul");
    c.close();
    let back = node.device("/ws/drivers?userID=d1");
    want_d1.extend([
        event("gateway.connected", "d1", r#"{"city":"İstanbul"}"#, 1),
        event("gateway.disconnected", "d1", r#"{"city":"İstanbul"}"#, 0),
        event("gateway.connected", "d1", "{}", 1),
    ]);

    // A node stopped with SIGTERM closes its devices and says goodbye for their users first.
    let d3: Vec<_> = (0..3)
        .map(|_| node.device("/ws/drivers?userID=d3&packageSlug=van"))
        .collect();
    let want_d3 = vec![
        event("gateway.connected", "d3", r#"{"packageSlug":"van"}"#, 1),
        event("gateway.disconnected", "d3", r#"{"packageSlug":"van"}"#, 0),
    ];
    want_d1.push(event("gateway.disconnected", "d1", "{}", 0));
    // All but the two disconnections the stop causes are counted by now.
    let before_stop = (want_d1.len() + want_d2.len() + want_d3.len() - 2) as f64;
    wait_for("the lifecycle events counted", || {
        metric(node.addr(), "corecast_gateway_lifecycle_total") >= before_stop
    });
    node.server.sigterm();
    for d in d3.into_iter().chain([back]) {
        d.close();
    }
    assert!(node.server.wait_exit(Duration::from_secs(30)).success());

    // Each user's events in order (the users' events interleave in any order); nothing else:
    // the node is gone.
    let mut got: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    while let Some(m) = svc.get(&driver_service, Duration::ZERO) {
        assert_eq!(*m.delivery.properties.delivery_mode(), Some(2));
        let data = String::from_utf8(m.delivery.data.clone()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&data).unwrap();
        let owner = v["ownerId"].as_str().expect("owner").to_owned();
        got.entry(owner)
            .or_default()
            .push((m.delivery.routing_key.to_string(), data));
    }
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got["d1"], want_d1);
    assert_eq!(got["d2"], want_d2);
    assert_eq!(got["d3"], want_d3);
}
