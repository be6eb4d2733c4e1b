//! The coordinating process: decides how many workers a run needs (open-file limit), starts
//! them, samples the server around the measured phase, prints progress once per second,
//! merges the workers' reports and prints the summary (stderr) and the one JSON line (stdout).

use crate::cli::{resolve_targets, Cli, ModeArgs};
use crate::modes;
use crate::procstat::{self, ProcSample};
use crate::report::{self, errors_json, Merged, RunContext, ServerFigures, WorkerReport};
use crate::spawn::{Down, Progress, Up, Workers};
use crate::sys;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::ffi::OsString;
use std::time::{Duration, Instant};

/// File descriptors kept free in every process (epoll, pipes, /proc reads, stdio).
const FD_RESERVE: u64 = 512;

/// Counters that are failures from the client's point of view.
pub const ERROR_COUNTERS: &[&str] = &[
    "connect_refused",
    "connect_no_address",
    "connect_failed",
    "connect_timeout",
    "bad_request",
    "handshake_rejected",
    "handshake_timeout",
    "protocol_error",
    "io_error",
    "unexpected_eof",
    "close_timeout",
    "server_closed",
];

/// Seconds a whole run may take before the watchdog ends the process.
pub fn hard_deadline(args: &ModeArgs, processes: usize) -> Duration {
    let c = args.common();
    let ramp = if c.rate > 0.0 {
        args.connections() as f64 / c.rate
    } else {
        0.0
    };
    // Spawning and connecting workers adds a little per process.
    let secs = ramp
        + c.connect_timeout
        + args.warmup_secs()
        + c.duration
        + args.tail_secs()
        + 30.0
        + processes as f64;
    Duration::from_secs_f64(secs)
}

/// Ends the process at `after`, whatever the event loops are doing (a server that stops
/// answering cannot keep a run alive).
pub fn start_watchdog(after: Duration, what: &'static str) {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        eprintln!("corecast-load: {what} hit its global deadline of {after:?}; exiting");
        std::process::exit(3);
    });
}

/// Runs the whole test; returns whether it measured something (the exit status).
pub fn run(cli: &Cli) -> Result<bool> {
    let args = &cli.mode;
    let c = args.common();
    modes::validate(args)?;
    let targets = resolve_targets(&c.target)?;
    let nofile = sys::raise_nofile_limit().unwrap_or(1024);
    let per_process = c
        .conns_per_process
        .map(|n| n as u64)
        .unwrap_or_else(|| nofile.saturating_sub(FD_RESERVE))
        .max(1);
    let conns = args.connections() as u64;
    let processes = c
        .processes
        .unwrap_or_else(|| conns.div_ceil(per_process) as usize)
        .max(1);
    if conns.div_ceil(processes as u64) > nofile.saturating_sub(FD_RESERVE) {
        bail!(
            "{conns} connections over {processes} processes exceed the open-file limit \
             ({nofile} per process); use more --processes"
        );
    }
    start_watchdog(hard_deadline(args, processes), "the run");

    let pids = &c.server_pid;
    let sample = || procstat::sample_all(pids);
    let before = if pids.is_empty() {
        None
    } else {
        Some(sample().context("--server-pid")?)
    };

    let started = Instant::now();
    let mut workers = if processes == 1 {
        let (a, t) = (args.clone(), targets.clone());
        Workers::start_thread(move |up, down| {
            let slot = crate::cli::WorkerSlot { index: 0, count: 1 };
            match modes::run_worker(&a, &t, slot, up, down) {
                Ok(r) => up(Up::Done(Box::new(r))),
                Err(e) => up(Up::Failed {
                    error: format!("{e:#}"),
                }),
            }
        })?
    } else {
        let raw: Vec<OsString> = std::env::args_os().skip(1).collect();
        Workers::spawn_processes(processes, &raw)?
    };
    let mut progress = ProgressBoard::new(workers.len(), c.quiet, started);

    // Ramp: wait until every worker reports ready.
    let ramp_limit = Duration::from_secs_f64(
        args.connections() as f64 / c.rate.max(1e-9) * f64::from(u8::from(c.rate > 0.0))
            + c.connect_timeout
            + 10.0
            + processes as f64,
    );
    let mut ready = 0;
    let mut reports: Vec<Option<WorkerReport>> = vec![None; workers.len()];
    let mut failures = Vec::new();
    while ready + progress.failed_workers < workers.len() {
        if started.elapsed() > ramp_limit {
            failures.push("workers did not finish the ramp in time".to_string());
            break;
        }
        match workers.recv_timeout(Duration::from_millis(100)) {
            Some((_, Up::Ready { open, .. })) => {
                ready += 1;
                progress.ready_open += open;
            }
            Some((w, up)) => progress.handle(w, up, &mut reports, &mut failures),
            None => {}
        }
        progress.tick("ramp");
    }

    // Measured phase.
    let mut at_start = None;
    let mut at_end = None;
    let mut wall = 0.0;
    let open_at_ready: u64 = progress.ready_open;
    if open_at_ready == 0 && !matches!(args, ModeArgs::Connect(_)) && failures.is_empty() {
        failures.push("no connection could be opened".to_string());
    }
    if failures.is_empty() {
        at_start = before.and_then(|_| sample().ok());
        workers.send_all(Down::Go);
        // With a warm-up, the server is sampled again when the measured window starts.
        let warmup = Duration::from_secs_f64(args.warmup_secs());
        let go = Instant::now();
        while go.elapsed() < warmup && failures.is_empty() {
            let left = warmup.saturating_sub(go.elapsed());
            if let Some((w, up)) = workers.recv_timeout(left.min(Duration::from_millis(100))) {
                progress.handle(w, up, &mut reports, &mut failures);
            }
            progress.tick("warm");
        }
        if !warmup.is_zero() {
            at_start = before.and_then(|_| sample().ok());
        }
        let measured = Instant::now();
        let duration = Duration::from_secs_f64(c.duration);
        while measured.elapsed() < duration && failures.is_empty() {
            let left = duration.saturating_sub(measured.elapsed());
            if let Some((w, up)) = workers.recv_timeout(left.min(Duration::from_millis(100))) {
                progress.handle(w, up, &mut reports, &mut failures);
            }
            progress.tick("run");
        }
        at_end = before.and_then(|_| sample().ok());
        wall = measured.elapsed().as_secs_f64();
    } else {
        workers.send_all(Down::Stop);
    }

    // Results.
    let collect_limit = Instant::now() + Duration::from_secs_f64(args.tail_secs() + 15.0);
    while reports.iter().filter(|r| r.is_some()).count() + progress.failed_workers < workers.len() {
        if Instant::now() > collect_limit {
            failures.push("some workers sent no result in time".to_string());
            break;
        }
        if let Some((w, up)) = workers.recv_timeout(Duration::from_millis(100)) {
            progress.handle(w, up, &mut reports, &mut failures);
        }
        progress.tick("drain");
    }
    workers.finish();
    for f in &failures {
        eprintln!("corecast-load: {f}");
    }
    let reports: Vec<WorkerReport> = reports.into_iter().flatten().collect();
    if reports.is_empty() {
        bail!("no worker produced a result");
    }
    let merged = Merged::new(&reports);
    let server = match (before, at_start, at_end) {
        (Some(b), Some(s), Some(e)) => Some(server_figures(pids.clone(), b, s, e, wall)),
        _ => None,
    };
    let ctx = RunContext {
        processes,
        targets: targets.len(),
        server: server.clone(),
    };
    let summary = modes::summarize(args, &merged, &ctx);
    let (errors, error_total) = errors_json(&merged, ERROR_COUNTERS);

    let mut out = serde_json::Map::new();
    out.insert("tool".into(), json!("corecast-load"));
    out.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    out.insert("mode".into(), json!(args.name()));
    out.insert(
        "targets".into(),
        json!(targets.iter().map(|t| t.to_string()).collect::<Vec<_>>()),
    );
    out.insert("path".into(), json!(args.path()));
    out.insert("processes".into(), json!(processes));
    out.insert("duration_s".into(), json!(c.duration));
    out.insert("measured_s".into(), json!(round3(merged.run_secs)));
    out.insert(
        "connections".into(),
        json!({
            "requested": conns,
            "attempts": merged.get("attempts"),
            "opened": merged.get("opened"),
            "open_at_start": merged.get("open_at_ready"),
            "open_at_end": merged.get("open_at_end"),
            "peak_open": merged.get("peak_open"),
            "clean_closes": merged.get("clean_closes"),
            "unclean_closes_at_end": merged.get("unclean_close_at_end"),
            "ramp_s": round3(merged.ramp_secs),
        }),
    );
    out.insert("errors".into(), errors);
    out.insert(
        "server".into(),
        server.as_ref().map_or(Value::Null, server_json),
    );
    out.insert(
        "client".into(),
        json!({
            "cpu_s": round3(merged.client_cpu_secs),
            "rss_kib": merged.client_rss_kib,
            "rss_per_conn_bytes": (merged.get("open_at_end") > 0)
                .then(|| (merged.client_rss_kib * 1024) / merged.get("open_at_end")),
            "source_ips": c.source_ips,
        }),
    );
    out.extend(summary.fields);
    let ok = summary.ok && failures.is_empty() && !(c.fail_on_errors && error_total > 0);
    out.insert("ok".into(), json!(ok));
    if !failures.is_empty() {
        out.insert("failures".into(), json!(failures));
    }

    eprintln!(
        "--- corecast-load {} ({} process{}) -> {}{}",
        args.name(),
        processes,
        if processes == 1 { "" } else { "es" },
        targets
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(","),
        args.path()
    );
    eprintln!(
        "connections: {} opened of {} requested, {} open at start, {} at end; errors {}",
        merged.get("opened"),
        conns,
        merged.get("open_at_ready"),
        merged.get("open_at_end"),
        error_total
    );
    for l in &summary.lines {
        eprintln!("{l}");
    }
    for (kind, first) in &merged.notes {
        eprintln!("first {kind}: {first}");
    }
    if let Some(s) = &server {
        eprintln!(
            "server pid {:?}: {:.2} CPU-s in {:.1} s ({:.0}% of a core), RSS {} -> {} KiB",
            s.pids,
            s.cpu_secs,
            s.wall_secs,
            100.0 * s.cpu_secs / s.wall_secs.max(1e-9),
            s.rss_before_kib,
            s.rss_end_kib
        );
    }
    eprintln!(
        "client: {:.2} CPU-s, RSS {} KiB",
        merged.client_cpu_secs, merged.client_rss_kib
    );
    println!("{}", Value::Object(out));
    Ok(ok)
}

fn server_figures(
    pids: Vec<u32>,
    before: ProcSample,
    start: ProcSample,
    end: ProcSample,
    wall_secs: f64,
) -> ServerFigures {
    ServerFigures {
        pids,
        cpu_secs: (end.cpu_secs - start.cpu_secs).max(0.0),
        user_secs: (end.user_secs - start.user_secs).max(0.0),
        wall_secs,
        rss_before_kib: before.rss_kib,
        rss_start_kib: start.rss_kib,
        rss_end_kib: end.rss_kib,
    }
}

fn server_json(s: &ServerFigures) -> Value {
    json!({
        "pids": s.pids,
        "cpu_s": round3(s.cpu_secs),
        "user_s": round3(s.user_secs),
        "cpu_util": round3(s.cpu_secs / s.wall_secs.max(1e-9)),
        "rss_before_kib": s.rss_before_kib,
        "rss_start_kib": s.rss_start_kib,
        "rss_end_kib": s.rss_end_kib,
    })
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Latest progress of every worker and the once-per-second stderr line.
struct ProgressBoard {
    latest: Vec<Progress>,
    quiet: bool,
    started: Instant,
    next: Instant,
    last_messages: u64,
    last_at: Instant,
    /// Connections open over all workers when they reported ready.
    ready_open: u64,
    /// Workers that reported a failure instead of a result.
    failed_workers: usize,
}

impl ProgressBoard {
    fn new(n: usize, quiet: bool, started: Instant) -> Self {
        ProgressBoard {
            latest: vec![Progress::default(); n],
            quiet,
            started,
            next: started + Duration::from_secs(1),
            last_messages: 0,
            last_at: started,
            ready_open: 0,
            failed_workers: 0,
        }
    }

    fn handle(
        &mut self,
        w: usize,
        up: Up,
        reports: &mut [Option<WorkerReport>],
        failures: &mut Vec<String>,
    ) {
        match up {
            Up::Progress(p) => {
                if let Some(slot) = self.latest.get_mut(w) {
                    *slot = p;
                }
            }
            Up::Done(r) => {
                if let Some(slot) = reports.get_mut(w) {
                    *slot = Some(*r);
                }
            }
            Up::Failed { error } => {
                self.failed_workers += 1;
                failures.push(format!("worker {w}: {error}"));
            }
            Up::Ready { .. } => {}
        }
    }

    fn tick(&mut self, phase: &str) {
        let now = Instant::now();
        if self.quiet || now < self.next {
            return;
        }
        self.next += Duration::from_secs(1);
        let sum = |f: fn(&Progress) -> u64| self.latest.iter().map(f).sum::<u64>();
        let messages = sum(|p| p.messages);
        let dt = now.duration_since(self.last_at).as_secs_f64();
        let rate = (messages.saturating_sub(self.last_messages)) as f64 / dt.max(1e-9);
        self.last_messages = messages;
        self.last_at = now;
        eprintln!(
            "[{:6.1}s] {phase:<5} open {} pending {} opened {} msgs {} ({}/s) errors {}",
            self.started.elapsed().as_secs_f64(),
            sum(|p| p.open),
            sum(|p| p.pending),
            sum(|p| p.opened),
            messages,
            report::fmt_si(rate),
            sum(|p| p.errors)
        );
    }
}
