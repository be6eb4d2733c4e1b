//! `GET /metrics`: Prometheus text exposition format 0.0.4, from the reactor's and the chat
//! service's counters (summed over workers when scraped) and the fan-out latency histogram.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use super::super::chat::ChatShared;
use super::super::gateway::GatewayShared;
use crate::reactor::Shared;
use crate::relay::RelayShared;

/// The whole exposition.
pub fn render(
    reactor: &Shared,
    chat: &ChatShared,
    relay: Option<&RelayShared>,
    gateway: &GatewayShared,
) -> String {
    let r = reactor.snapshot();
    let c = |f: fn(&super::super::chat::ChatStats) -> &std::sync::atomic::AtomicU64| chat.sum(f);
    let mut out = String::with_capacity(4096);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        write_metric(&mut out, name, kind, help, samples);
    };
    metric(
        "corecast_connections",
        "gauge",
        "Open WebSocket connections.",
        &[("", chat.ws_open.load(Relaxed) as u64)],
    );
    metric(
        "corecast_sockets",
        "gauge",
        "Open TCP connections in any phase (HTTP requests and WebSocket connections).",
        &[("", reactor.open_connections() as u64)],
    );
    metric(
        "corecast_rooms",
        "gauge",
        "Chat rooms that have members.",
        &[("", chat.rooms_active.load(Relaxed) as u64)],
    );
    metric(
        "corecast_handshakes_total",
        "counter",
        "WebSocket upgrade requests by outcome.",
        &[
            (r#"result="accepted",reason="ok""#, r.handshakes),
            (r#"result="rejected",reason="capacity""#, r.over_limit),
            (
                r#"result="rejected",reason="rate_limit""#,
                c(|s| &s.refused_rate),
            ),
            (
                r#"result="rejected",reason="origin""#,
                c(|s| &s.refused_origin),
            ),
            (r#"result="rejected",reason="auth""#, c(|s| &s.refused_auth)),
            (
                r#"result="rejected",reason="bad_request""#,
                r.rejected + c(|s| &s.refused_request),
            ),
        ],
    );
    metric(
        "corecast_messages_total",
        "counter",
        "WebSocket data messages received from clients (in) and queued to clients (out).",
        &[
            (r#"direction="in""#, r.messages_in),
            (r#"direction="out""#, r.messages_out),
        ],
    );
    metric(
        "corecast_bytes_total",
        "counter",
        "Bytes read from and written to sockets.",
        &[
            (r#"direction="in""#, r.bytes_in),
            (r#"direction="out""#, r.bytes_out),
        ],
    );
    metric(
        "corecast_deliveries_total",
        "counter",
        "Chat frames queued to recipients (one per recipient connection).",
        &[("", c(|s| &s.deliveries))],
    );
    metric(
        "corecast_slow_consumer_evictions_total",
        "counter",
        "Connections closed with 1008 because their send buffer was over the limit.",
        &[("", r.slow_consumers)],
    );
    metric(
        "corecast_rate_limited_total",
        "counter",
        "Refused for a rate: upgrade attempts per IP (connection), client messages (message).",
        &[
            (r#"kind="connection""#, c(|s| &s.refused_rate)),
            (r#"kind="message""#, c(|s| &s.rate_limited_messages)),
        ],
    );
    metric(
        "corecast_timeouts_total",
        "counter",
        "Connections ended by a timeout (handshake, idle, close, write stall).",
        &[("", r.timeouts)],
    );
    metric(
        "corecast_protocol_errors_total",
        "counter",
        "Connections failed for a WebSocket protocol violation.",
        &[("", r.protocol_errors)],
    );
    let h = chat.latency();
    let _ = writeln!(
        out,
        "# HELP corecast_fanout_latency_seconds Chat fan-out latency: publish at the room's home to queued on the last local recipient, per worker delivery, since start.\n# TYPE corecast_fanout_latency_seconds summary"
    );
    for q in [0.5, 0.9, 0.99] {
        let v = if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1e6
        };
        let _ = writeln!(
            out,
            "corecast_fanout_latency_seconds{{quantile=\"{q}\"}} {v}"
        );
    }
    let sum = h.mean() * h.len() as f64 / 1e6;
    let _ = writeln!(out, "corecast_fanout_latency_seconds_sum {sum}");
    let _ = writeln!(out, "corecast_fanout_latency_seconds_count {}", h.len());
    if let Some(r) = relay {
        let st = &r.stats;
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            write_metric(&mut out, name, kind, help, samples);
        };
        metric(
            "corecast_relay_up",
            "gauge",
            "1 while the relay is connected to Redis.",
            &[("", u64::from(r.state() == crate::relay::RelayState::Up))],
        );
        metric(
            "corecast_relay_published_total",
            "counter",
            "Room messages this node sent to Redis to be ordered and published.",
            &[("", st.published.load(Relaxed))],
        );
        metric(
            "corecast_relay_received_total",
            "counter",
            "Pub/sub messages this node received from Redis.",
            &[("", st.received.load(Relaxed))],
        );
        metric(
            "corecast_relay_dropped_total",
            "counter",
            "Relay messages dropped: backlog full while Redis was down, in flight when a connection failed, malformed envelopes, stored notifications pushed out of a full inbox.",
            &[
                (r#"reason="backlog_full""#, st.dropped_backlog.load(Relaxed)),
                (r#"reason="in_flight""#, st.dropped_in_flight.load(Relaxed)),
                (r#"reason="malformed""#, st.dropped_malformed.load(Relaxed)),
                (r#"reason="inbox_full""#, st.inbox_dropped.load(Relaxed)),
            ],
        );
        metric(
            "corecast_relay_command_errors_total",
            "counter",
            "Error replies from Redis to commands nobody waited for (heartbeats, registrations, leaves).",
            &[("", st.command_errors.load(Relaxed))],
        );
        metric(
            "corecast_relay_reconnects_total",
            "counter",
            "Times the connection to Redis was lost after being up.",
            &[("", st.reconnects.load(Relaxed))],
        );
        metric(
            "corecast_relay_backlog",
            "gauge",
            "Commands waiting for Redis to come back.",
            &[("", st.backlog.load(Relaxed))],
        );
        let qs = [0.5, 0.9, 0.99];
        let _ = writeln!(
            out,
            "# HELP corecast_relay_rtt_seconds Redis command round trips (pipelined), since start.\n# TYPE corecast_relay_rtt_seconds summary"
        );
        let values = r.rtt_quantiles(&qs).unwrap_or_else(|| vec![0.0; qs.len()]);
        for (q, v) in qs.iter().zip(values) {
            let _ = writeln!(out, "corecast_relay_rtt_seconds{{quantile=\"{q}\"}} {v}");
        }
    }
    render_gateway(&mut out, gateway);
    let _ = writeln!(
        out,
        "# HELP corecast_uptime_seconds Seconds since the server started.\n# TYPE corecast_uptime_seconds gauge\ncorecast_uptime_seconds {}",
        chat.started.elapsed().as_secs()
    );
    out
}

/// One metric family: HELP, TYPE and its samples (`labels` without braces; empty: none).
fn write_metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

/// The gateway's endpoints and its bridge (with `[amqp]`).
fn render_gateway(out: &mut String, g: &GatewayShared) {
    let Some(a) = &g.amqp else { return };
    let st = &a.shared.stats;
    let n = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed);
    write_metric(
        out,
        "corecast_amqp_up",
        "gauge",
        "1 while the gateway is connected to RabbitMQ and consuming.",
        &[(
            "",
            u64::from(a.shared.state() == crate::amqp::AmqpState::Up),
        )],
    );
    for (name, help, v) in [
        ("consumed", "Deliveries received from this node's queue (valid or not).", n(&st.consumed)),
        ("delivered", "Deliveries queued to at least one device of their owner on this node.", n(&st.delivered)),
        ("undelivered", "Deliveries whose owner had no device on this node (acknowledged).", n(&st.undelivered)),
        ("dead_lettered", "Deliveries rejected without requeue (malformed bodies go to the dead-letter exchange, if any).", n(&st.dead_lettered)),
        ("malformed", "Of the dead-lettered, bodies that did not parse (no JSON, no string owner, bad base64).", n(&st.malformed)),
        ("published", "Messages the broker confirmed (client messages upstream and lifecycle events).", n(&st.published)),
        ("publish_failed", "Publishes that failed: nacked, unroutable, lost with the connection or refused by a full backlog.", n(&st.publish_failed)),
        ("unroutable", "Of the failed publishes, those the broker returned because no queue is bound for their routing key.", n(&st.unroutable)),
        ("reconnects", "Times the connection to RabbitMQ was lost after being up.", n(&st.reconnects)),
    ] {
        write_metric(out, &format!("corecast_amqp_{name}_total"), "counter", help, &[("", v)]);
    }
    write_metric(
        out,
        "corecast_amqp_backlog",
        "gauge",
        "Publishes waiting for RabbitMQ to come back.",
        &[("", n(&st.backlog))],
    );
    write_metric(
        out,
        "corecast_amqp_queue_depth",
        "gauge",
        "Messages ready in this node's queue at the last check (every few seconds).",
        &[("", n(&st.queue_depth))],
    );
    let s = |f: fn(&super::super::gateway::GatewayStats) -> &std::sync::atomic::AtomicU64| g.sum(f);
    write_metric(
        out,
        "corecast_gateway_upstream_total",
        "counter",
        "Client messages on gateway endpoints by outcome: handed to the broker, refused for their type, answered upstream_unavailable.",
        &[
            (r#"result="sent""#, s(|x| &x.upstream)),
            (r#"result="forbidden""#, s(|x| &x.forbidden)),
            (r#"result="unavailable""#, s(|x| &x.unavailable)),
        ],
    );
    write_metric(
        out,
        "corecast_gateway_refused_total",
        "counter",
        "Gateway upgrades refused: for the endpoint's roles (403), or otherwise (rate, origin, token, identity).",
        &[
            (r#"reason="role""#, s(|x| &x.refused_role)),
            (r#"reason="other""#, s(|x| &x.refused)),
        ],
    );
    write_metric(
        out,
        "corecast_gateway_offline_total",
        "counter",
        "Events whose owner had no device on this node, with store_offline and the relay: stored in the owner's inbox, left to another node (stored there, or the owner is connected there), failed (Redis did not answer), pushed out of a full inbox; and stored events handed to a device that opened.",
        &[
            (r#"result="stored""#, s(|x| &x.stored)),
            (r#"result="elsewhere""#, s(|x| &x.stored_elsewhere)),
            (r#"result="failed""#, s(|x| &x.store_failed)),
            (r#"result="dropped""#, s(|x| &x.store_dropped)),
            (r#"result="replayed""#, s(|x| &x.replayed)),
        ],
    );
    write_metric(
        out,
        "corecast_gateway_lifecycle_total",
        "counter",
        "Lifecycle events (gateway.connected, gateway.disconnected) handed to the broker.",
        &[("", s(|x| &x.lifecycle))],
    );
}
