//! Echo mode: every connection keeps D messages of S bytes in flight against an endpoint that
//! echoes each message (closed loop: an echo releases the next send). Measures messages per
//! second and round-trip time; a message's send time waits in a per-connection FIFO (echoes
//! come back in order), so payloads carry no timestamp and any size works.

use crate::cli::EchoArgs;
use crate::conn::{ConnIo, ConnKey};
use crate::conns::Conns;
use crate::report::{
    self, latency_json, latency_line, new_hist, record_ns, Merged, RunContext, Summary,
    WorkerReport,
};
use crate::workload::Workload;
use anyhow::{bail, Result};
use corecast::ws::DataKind;
use hdrhistogram::Histogram;
use serde_json::json;
use std::collections::VecDeque;

/// The mode's own limits.
pub fn validate(a: &EchoArgs) -> Result<()> {
    if a.inflight == 0 || a.inflight > 1 << 16 {
        bail!("--inflight must be in 1..=65536");
    }
    if a.size > 64 << 20 {
        bail!("--size must be at most 64 MiB");
    }
    Ok(())
}

pub struct Echo {
    payload: Vec<u8>,
    kind: DataKind,
    /// Messages in flight per connection. Always >= 1.
    depth: usize,
    /// Send times (monotonic ns) of messages in flight, per connection key, oldest first.
    sent_at: Vec<VecDeque<u64>>,
    running: bool,
    end_ns: u64,
    outstanding: u64,
    sent: u64,
    /// Echoes received before the end of the measured phase.
    received: u64,
    received_total: u64,
    /// Echoes whose length differs from what was sent.
    wrong_size: u64,
    /// Messages that arrived with nothing in flight.
    unexpected: u64,
    rtt: Histogram<u64>,
}

impl Echo {
    pub fn new(a: &EchoArgs) -> Self {
        // Printable bytes, so the same payload is valid as text.
        let payload = (0..a.size).map(|i| b'a' + (i % 26) as u8).collect();
        Echo {
            payload,
            kind: if a.text {
                DataKind::Text
            } else {
                DataKind::Binary
            },
            depth: a.inflight,
            sent_at: Vec::new(),
            running: false,
            end_ns: 0,
            outstanding: 0,
            sent: 0,
            received: 0,
            received_total: 0,
            wrong_size: 0,
            unexpected: 0,
            rtt: new_hist(),
        }
    }

    fn send_one(&mut self, io: &mut ConnIo<'_>, now_ns: u64) {
        io.send(self.kind, &self.payload);
        self.sent_at[io.key.0].push_back(now_ns);
        self.outstanding += 1;
        self.sent += 1;
    }
}

impl Workload for Echo {
    fn on_open(&mut self, io: &mut ConnIo<'_>, _now_ns: u64) {
        let k = io.key.0;
        if self.sent_at.len() <= k {
            self.sent_at.resize_with(k + 1, VecDeque::new);
        }
        self.sent_at[k].clear();
        self.sent_at[k].reserve(self.depth);
    }

    fn on_message(&mut self, io: &mut ConnIo<'_>, _kind: DataKind, payload: &[u8], now_ns: u64) {
        let Some(in_flight) = self.sent_at.get_mut(io.key.0) else {
            return;
        };
        if payload.len() != self.payload.len() {
            self.wrong_size += 1;
        }
        let Some(t) = in_flight.pop_front() else {
            self.unexpected += 1;
            return;
        };
        self.outstanding -= 1;
        self.received_total += 1;
        if now_ns <= self.end_ns {
            self.received += 1;
            record_ns(&mut self.rtt, now_ns.saturating_sub(t));
        }
        if self.running && !io.is_closing() {
            self.send_one(io, now_ns);
        }
    }

    fn on_closed(&mut self, key: ConnKey, _global: u64, _clean: bool, _now_ns: u64) {
        if let Some(q) = self.sent_at.get_mut(key.0) {
            self.outstanding -= q.len() as u64;
            q.clear();
        }
    }

    fn on_start(&mut self, conns: &mut Conns, now_ns: u64, end_ns: u64) {
        self.running = true;
        self.end_ns = end_ns;
        for key in conns.open_keys() {
            for _ in 0..self.depth {
                if let Some(mut io) = conns.io(key) {
                    self.send_one(&mut io, now_ns);
                }
            }
        }
    }

    fn on_stop(&mut self, _now_ns: u64) {
        self.running = false;
    }

    fn is_drained(&self) -> bool {
        self.outstanding == 0
    }

    fn progress_count(&self) -> u64 {
        self.received_total
    }

    fn report(&self, out: &mut WorkerReport) {
        out.add("sent", self.sent);
        out.add("received", self.received);
        out.add("received_total", self.received_total);
        out.add("wrong_size", self.wrong_size);
        out.add("unexpected", self.unexpected);
        out.add("lost_in_flight", self.outstanding);
        out.put_hist("rtt_us", &self.rtt);
    }
}

pub fn summarize(a: &EchoArgs, m: &Merged, ctx: &RunContext) -> Summary {
    let secs = m.run_secs;
    let received = m.get("received");
    let rate = report::per_sec(received, secs);
    let rtt = m.hist("rtt_us");
    let per_cpu = ctx.server.as_ref().and_then(|s| s.per_cpu_sec(received));
    let mut fields = serde_json::Map::new();
    fields.insert(
        "echo".into(),
        json!({
            "connections": a.connections,
            "inflight_per_conn": a.inflight,
            "payload_bytes": a.size,
            "frame": if a.text { "text" } else { "binary" },
            "sent": m.get("sent"),
            "received": received,
            "msgs_per_s": report::round1(rate),
            "bytes_per_s": report::round1(rate * a.size as f64),
            "msgs_per_server_cpu_s": per_cpu.map(report::round1),
            "wrong_size": m.get("wrong_size"),
            "unexpected": m.get("unexpected"),
        }),
    );
    fields.insert("rtt_us".into(), latency_json(&rtt));
    let mut lines = vec![
        format!(
            "echo: {} msgs/s ({} conns x {} in flight x {} B) over {secs:.1} s",
            report::fmt_si(rate),
            a.connections,
            a.inflight,
            a.size
        ),
        format!("rtt: {}", latency_line(&rtt)),
    ];
    if let Some(p) = per_cpu {
        lines.push(format!("per server CPU-second: {} msgs", report::fmt_si(p)));
    }
    let bad = m.get("wrong_size") + m.get("unexpected");
    Summary {
        fields,
        lines,
        ok: received > 0 && bad == 0,
    }
}
