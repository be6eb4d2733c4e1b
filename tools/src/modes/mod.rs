//! The traffic patterns. Each mode is one module with a `Workload` (the worker side: what to
//! send, what to measure) and a `summarize` (the coordinator side: merged figures to JSON and
//! prose). Adding a mode (e.g. a JSON `chat` mode with many rooms) means one module here, one
//! `ModeArgs` variant in cli.rs and one arm in each match below.

pub mod broadcast;
pub mod connect;
pub mod echo;
pub mod idle;

use crate::cli::{close_timeout, ModeArgs, WorkerSlot};
use crate::driver::{self, DriverConfig};
use crate::report::{Merged, WorkerReport};
use crate::spawn::{Down, Up};
use anyhow::Result;
use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// What the coordinator measured around the workers.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub processes: usize,
    /// Number of server addresses.
    pub targets: usize,
    /// Server figures, when `--server-pid` was given.
    pub server: Option<ServerFigures>,
}

/// The server process(es) between GO and the end of the measured phase (summed over pids).
#[derive(Debug, Clone)]
pub struct ServerFigures {
    pub pids: Vec<u32>,
    /// CPU seconds the server used during the measured phase.
    pub cpu_secs: f64,
    /// Seconds between the two CPU samples.
    pub wall_secs: f64,
    /// RSS before any connection was opened, in KiB.
    pub rss_before_kib: u64,
    /// RSS when the measured phase started (all connections open), in KiB.
    pub rss_start_kib: u64,
    /// RSS at the end of the measured phase (connections still open), in KiB.
    pub rss_end_kib: u64,
}

impl ServerFigures {
    /// `x` per server CPU-second (None without CPU time).
    pub fn per_cpu_sec(&self, x: u64) -> Option<f64> {
        (self.cpu_secs > 0.0).then(|| x as f64 / self.cpu_secs)
    }
}

/// A mode's part of the result: JSON fields and human lines. `ok` is false when the run
/// measured nothing useful (no connection, zero throughput) or saw errors.
pub struct Summary {
    pub fields: Map<String, Value>,
    pub lines: Vec<String>,
    pub ok: bool,
}

/// Connections of `total` that worker `slot` owns (global indices w, w+N, w+2N, ...).
pub fn share(total: u64, slot: WorkerSlot) -> u64 {
    let (w, n) = (slot.index as u64, slot.count as u64);
    (total + n - 1 - w) / n
}

/// `total` spread over `slot.count` workers as a fractional share (rates).
fn share_f(total: f64, slot: WorkerSlot) -> f64 {
    total / slot.count as f64
}

/// The driver settings for this worker.
pub fn driver_config(args: &ModeArgs, targets: &[SocketAddr], slot: WorkerSlot) -> DriverConfig {
    let c = args.common();
    let drain = match args {
        ModeArgs::Broadcast(a) => Duration::from_secs_f64(a.drain),
        ModeArgs::Echo(_) => Duration::from_secs(1),
        _ => Duration::ZERO,
    };
    let conns = share(args.connections() as u64, slot);
    DriverConfig {
        targets: targets.to_vec(),
        path: args.path(),
        slot,
        conns,
        rate: share_f(c.rate, slot),
        connect_inflight: (c.connect_inflight as u64)
            .div_ceil(slot.count as u64)
            .max(1),
        source_ips: c.source_ips,
        connect_timeout: Duration::from_secs_f64(c.connect_timeout),
        duration: Duration::from_secs_f64(c.duration),
        drain,
        close_timeout: close_timeout(conns),
        max_frame: c.max_frame,
    }
}

/// Runs this worker's share of the test.
pub fn run_worker(
    args: &ModeArgs,
    targets: &[SocketAddr],
    slot: WorkerSlot,
    up: &dyn Fn(Up),
    down: &Receiver<Down>,
) -> Result<WorkerReport> {
    let cfg = driver_config(args, targets, slot);
    let mut report = match args {
        ModeArgs::Echo(a) => driver::run(&cfg, &mut echo::Echo::new(a), up, down)?,
        ModeArgs::Broadcast(a) => {
            driver::run(&cfg, &mut broadcast::Broadcast::new(a, &cfg), up, down)?
        }
        ModeArgs::Idle(_) => driver::run(&cfg, &mut idle::Idle::default(), up, down)?,
        ModeArgs::Connect(_) => driver::run(&cfg, &mut connect::Connect::default(), up, down)?,
    };
    report.cpu_secs = crate::procstat::self_cpu_secs();
    Ok(report)
}

/// The mode's figures from the merged reports.
pub fn summarize(args: &ModeArgs, m: &Merged, ctx: &RunContext) -> Summary {
    match args {
        ModeArgs::Echo(a) => echo::summarize(a, m, ctx),
        ModeArgs::Broadcast(a) => broadcast::summarize(a, m, ctx),
        ModeArgs::Idle(a) => idle::summarize(a, m, ctx),
        ModeArgs::Connect(a) => connect::summarize(a, m, ctx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_connection_once() {
        for total in [1u64, 7, 100, 19_001] {
            for n in 1..6 {
                let sum: u64 = (0..n)
                    .map(|index| share(total, WorkerSlot { index, count: n }))
                    .sum();
                assert_eq!(sum, total, "total {total} over {n}");
            }
        }
    }
}
