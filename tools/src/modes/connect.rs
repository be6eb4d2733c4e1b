//! Connect mode: each of N slots loops through TCP connect, upgrade, close handshake (our
//! close, the server's close, the server's FIN), then starts over. Measures completed cycles
//! (handshakes) per second and the upgrade latency.

use crate::cli::ConnectArgs;
use crate::conn::{ConnIo, ConnKey};
use crate::conns::Conns;
use crate::report::{
    self, latency_json, latency_line, new_hist, record_ns, Merged, RunContext, Summary,
    WorkerReport,
};
use crate::workload::Workload;
use corecast::ws::DataKind;
use hdrhistogram::Histogram;
use serde_json::json;

pub struct Connect {
    end_ns: u64,
    /// Cycles completed (clean close) before the end of the measured phase.
    cycles: u64,
    cycles_total: u64,
    /// Connections that ended without a clean close.
    unclean: u64,
    handshake: Histogram<u64>,
}

impl Default for Connect {
    fn default() -> Self {
        Connect {
            end_ns: u64::MAX,
            cycles: 0,
            cycles_total: 0,
            unclean: 0,
            handshake: new_hist(),
        }
    }
}

impl Workload for Connect {
    fn on_open(&mut self, io: &mut ConnIo<'_>, now_ns: u64) {
        record_ns(&mut self.handshake, now_ns.saturating_sub(io.started_ns));
        io.close();
    }

    fn on_message(&mut self, _io: &mut ConnIo<'_>, _kind: DataKind, _p: &[u8], _now: u64) {}

    fn on_closed(&mut self, _key: ConnKey, _global: u64, clean: bool, now_ns: u64) {
        if !clean {
            self.unclean += 1;
            return;
        }
        self.cycles_total += 1;
        if now_ns <= self.end_ns {
            self.cycles += 1;
        }
    }

    fn on_start(&mut self, _conns: &mut Conns, _now_ns: u64, end_ns: u64) {
        self.end_ns = end_ns;
    }

    fn churns(&self) -> bool {
        true
    }

    fn progress_count(&self) -> u64 {
        self.cycles_total
    }

    fn report(&self, out: &mut WorkerReport) {
        out.add("cycles", self.cycles);
        out.add("cycles_total", self.cycles_total);
        out.add("unclean", self.unclean);
        out.put_hist("handshake_us", &self.handshake);
    }
}

pub fn summarize(a: &ConnectArgs, m: &Merged, ctx: &RunContext) -> Summary {
    let secs = m.run_secs;
    let cycles = m.get("cycles");
    let rate = report::per_sec(cycles, secs);
    let per_cpu = ctx.server.as_ref().and_then(|s| s.per_cpu_sec(cycles));
    let hs = m.hist("handshake_us");
    let mut fields = serde_json::Map::new();
    fields.insert(
        "connect".into(),
        json!({
            "inflight": a.inflight,
            "handshakes": cycles,
            "handshakes_per_s": report::round1(rate),
            "handshakes_per_server_cpu_s": per_cpu.map(report::round1),
            "unclean_closes": m.get("unclean"),
        }),
    );
    fields.insert("handshake_latency_us".into(), latency_json(&hs));
    let mut lines = vec![
        format!(
            "connect: {} handshakes/s (connect + upgrade + close, {} in flight) over {secs:.1} s",
            report::fmt_si(rate),
            a.inflight
        ),
        format!("connect + upgrade: {}", latency_line(&hs)),
    ];
    if let Some(p) = per_cpu {
        lines.push(format!(
            "per server CPU-second: {} handshakes",
            report::fmt_si(p)
        ));
    }
    Summary {
        fields,
        lines,
        ok: cycles > 0,
    }
}
