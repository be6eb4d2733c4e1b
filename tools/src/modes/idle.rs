//! Idle mode: open C connections (ramped at `--rate`), hold them for the duration without
//! traffic (pings are answered), then close. The figures are the connect rate and, from the
//! coordinator's /proc samples, the server's memory per held connection.

use crate::cli::IdleArgs;
use crate::conn::ConnIo;
use crate::report::{self, latency_json, latency_line, Merged, RunContext, Summary, WorkerReport};
use crate::workload::Workload;
use corecast::ws::DataKind;
use serde_json::json;

/// Holds connections; counts any data the server sends anyway.
#[derive(Debug, Default)]
pub struct Idle {
    unexpected: u64,
}

impl Workload for Idle {
    fn on_open(&mut self, _io: &mut ConnIo<'_>, _now_ns: u64) {}

    fn on_message(&mut self, _io: &mut ConnIo<'_>, _kind: DataKind, _p: &[u8], _now: u64) {
        self.unexpected += 1;
    }

    fn progress_count(&self) -> u64 {
        0
    }

    fn report(&self, out: &mut WorkerReport) {
        out.add("unexpected", self.unexpected);
    }
}

pub fn summarize(a: &IdleArgs, m: &Merged, ctx: &RunContext) -> Summary {
    let opened = m.get("open_at_ready");
    let held = m.get("open_at_end");
    let connect_rate = report::per_sec(m.get("opened"), m.ramp_secs);
    let connect = m.hist("connect_us");
    let mut idle = json!({
        "requested": a.connections,
        "opened": opened,
        "held_to_end": held,
        "ramp_s": (m.ramp_secs * 1000.0).round() / 1000.0,
        "connects_per_s": report::round1(connect_rate),
        "hold_s": (m.run_secs * 1000.0).round() / 1000.0,
        "unexpected_messages": m.get("unexpected"),
    });
    let mut lines = vec![
        format!(
            "idle: {held} of {} connections held for {:.1} s; ramp {:.2} s ({} connects/s)",
            a.connections,
            m.run_secs,
            m.ramp_secs,
            report::fmt_si(connect_rate)
        ),
        format!("connect + upgrade: {}", latency_line(&connect)),
    ];
    if let Some(s) = &ctx.server {
        let grown_kib = s.rss_end_kib.saturating_sub(s.rss_before_kib);
        let per_conn = if held > 0 {
            Some((grown_kib * 1024) as f64 / held as f64)
        } else {
            None
        };
        idle["server_rss_per_conn_bytes"] = json!(per_conn.map(|v| v.round()));
        lines.push(format!(
            "server RSS: {} KiB before, {} KiB holding {held}: {} per connection",
            s.rss_before_kib,
            s.rss_end_kib,
            per_conn.map_or("n/a".into(), |b| format!("{b:.0} B"))
        ));
    }
    let mut fields = serde_json::Map::new();
    fields.insert("idle".into(), idle);
    fields.insert("connect_latency_us".into(), latency_json(&connect));
    Summary {
        fields,
        lines,
        ok: held > 0,
    }
}
