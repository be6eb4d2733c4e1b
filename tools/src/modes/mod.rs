//! The traffic patterns. Each mode is one module with a `validate` (its own limits), a
//! `Workload` (the worker side: what to send, what to measure) and a `summarize` (the
//! coordinator side: merged figures to JSON and prose). Adding a mode means one module here,
//! one `ModeArgs` variant in cli.rs and one arm in each match below. Modes import cli, never
//! the other way round.

pub mod broadcast;
pub mod chat;
pub mod connect;
pub mod echo;
pub mod gateway;
pub mod idle;

use crate::cli::{close_timeout, ModeArgs, WorkerSlot};
use crate::driver::{self, DriverConfig};
use crate::report::{Merged, RunContext, Summary, WorkerReport};
use crate::spawn::{Down, Up};
use anyhow::Result;
use std::net::SocketAddr;
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// Checks the command line before any socket is opened: what every mode shares, then the
/// mode's own limits.
pub fn validate(args: &ModeArgs) -> Result<()> {
    args.validate_common()?;
    match args {
        ModeArgs::Echo(a) => echo::validate(a),
        ModeArgs::Broadcast(a) => broadcast::validate(a),
        ModeArgs::Chat(a) => chat::validate(a),
        ModeArgs::Gateway(a) => gateway::validate(a),
        ModeArgs::Idle(_) | ModeArgs::Connect(_) => Ok(()),
    }
}

/// The driver settings for this worker.
pub fn driver_config(args: &ModeArgs, targets: &[SocketAddr], slot: WorkerSlot) -> DriverConfig {
    let c = args.common();
    let drain = match args {
        ModeArgs::Broadcast(a) => Duration::from_secs_f64(a.drain),
        ModeArgs::Chat(a) => Duration::from_secs_f64(a.drain),
        ModeArgs::Gateway(a) => Duration::from_secs_f64(a.drain),
        ModeArgs::Echo(_) => Duration::from_secs(1),
        _ => Duration::ZERO,
    };
    let conns = slot.share(args.connections() as u64);
    DriverConfig {
        targets: targets.to_vec(),
        path: args.path(),
        slot,
        conns,
        rate: c.rate / slot.count as f64,
        connect_inflight: (c.connect_inflight as u64)
            .div_ceil(slot.count as u64)
            .max(1),
        source_ips: c.source_ips,
        connect_timeout: Duration::from_secs_f64(c.connect_timeout),
        warmup: Duration::from_secs_f64(args.warmup_secs()),
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
        ModeArgs::Chat(a) => driver::run(&cfg, &mut chat::Chat::new(a, &cfg), up, down)?,
        ModeArgs::Gateway(a) => driver::run(&cfg, &mut gateway::Gateway::new(a, &cfg)?, up, down)?,
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
        ModeArgs::Chat(a) => chat::summarize(a, m, ctx),
        ModeArgs::Gateway(a) => gateway::summarize(a, m, ctx),
    }
}
