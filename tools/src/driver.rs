//! The worker's event loop: one mio `Poll` owning every socket of this worker, a slab of
//! connections, the connection ramp (rate and in-flight bounds, source-address spreading) and
//! the phases of a run: ramp -> ready (wait for GO) -> run (warm-up, then the measured
//! window) -> drain -> close. Traffic patterns live in `Workload` implementations (modes/);
//! the driver knows none of them.

use crate::cli::WorkerSlot;
use crate::conn::{client_limits, Conn, ConnIo, ConnKey, Fault, Input, ReadEnd, State};
use crate::conns::Conns;
use crate::report::{new_hist, record_ns, WorkerReport};
use crate::spawn::{Down, Progress, Up};
use crate::sys::{self, monotonic_ns};
use crate::workload::Workload;
use anyhow::{Context, Result};
use corecast::ws::MessageLimits;
use hdrhistogram::Histogram;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Duration;

/// Size of the worker's shared read buffer, in bytes.
const READ_BUF: usize = 64 * 1024;
/// A connection that is not connected, or not upgraded, after this long fails.
const PER_CONN_CONNECT_TIMEOUT_NS: u64 = 10_000_000_000;
/// A close handshake that takes longer than this (during the run) is abandoned.
const CLOSE_WAIT_NS: u64 = 5_000_000_000;
const SWEEP_EVERY_NS: u64 = 250_000_000;
const PROGRESS_EVERY_NS: u64 = 1_000_000_000;
const NS: f64 = 1e9;

/// What this worker does, derived from the command line and its worker slot.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub targets: Vec<SocketAddr>,
    pub path: String,
    pub slot: WorkerSlot,
    /// Connections this worker holds (or keeps in flight, when churning).
    pub conns: u64,
    /// New connections per second for this worker (0 = unbounded).
    pub rate: f64,
    /// Connection attempts in progress at once in this worker. Always >= 1.
    pub connect_inflight: u64,
    pub source_ips: u8,
    /// Ramp time allowed beyond conns / rate.
    pub connect_timeout: Duration,
    /// Sending before the measured window (chat). Default: zero.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    pub drain: Duration,
    pub close_timeout: Duration,
    /// Largest server frame (and message) accepted, in bytes.
    pub max_frame: u64,
}

impl DriverConfig {
    /// How long the ramp may take.
    pub fn ramp_budget(&self) -> Duration {
        let ramp = if self.rate > 0.0 {
            Duration::from_secs_f64(self.conns as f64 / self.rate)
        } else {
            Duration::ZERO
        };
        ramp + self.connect_timeout
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ramp,
    Ready,
    Run,
    Drain,
    Close,
}

/// Event loop state of one worker.
struct Driver<'a> {
    cfg: &'a DriverConfig,
    hosts: Vec<String>,
    poll: Poll,
    conns: Conns,
    scratch: Vec<u8>,
    /// Receive rules of every connection (client role).
    limits: MessageLimits,
    /// Connection attempts started (the k-th attempt has global index slot.index + k * count).
    started: u64,
    /// Successful upgrades.
    opened: u64,
    peak_open: u64,
    faults: BTreeMap<&'static str, u64>,
    /// Refused upgrades by HTTP status.
    statuses: BTreeMap<u16, u64>,
    /// The first fault of each kind, spelled out for the summary.
    first_fault: BTreeMap<&'static str, String>,
    /// The run is over: connections failing to close cleanly are no longer errors.
    closing: bool,
    unclean_at_end: u64,
    server_closed: u64,
    clean_closes: u64,
    connect_us: Histogram<u64>,
    /// Rate tokens count from here.
    rate_origin_ns: u64,
}

/// Runs one worker to completion: ramp, report `Up::Ready`, wait for `Down::Go`, run, drain,
/// close, and return the report (the caller sends it up).
pub fn run<W: Workload>(
    cfg: &DriverConfig,
    w: &mut W,
    up: &dyn Fn(Up),
    down: &Receiver<Down>,
) -> Result<WorkerReport> {
    let t0 = monotonic_ns();
    let mut d = Driver {
        cfg,
        hosts: cfg.targets.iter().map(|a| a.to_string()).collect(),
        poll: Poll::new().context("creating the event loop")?,
        conns: Conns::new(t0 ^ (cfg.slot.index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        scratch: vec![0; READ_BUF],
        limits: client_limits(cfg.max_frame),
        started: 0,
        opened: 0,
        peak_open: 0,
        faults: BTreeMap::new(),
        statuses: BTreeMap::new(),
        first_fault: BTreeMap::new(),
        closing: false,
        unclean_at_end: 0,
        server_closed: 0,
        clean_closes: 0,
        connect_us: new_hist(),
        rate_origin_ns: t0,
    };
    let mut events = Events::with_capacity(1024);
    let churn = w.churns();
    let mut phase = if churn { Phase::Ready } else { Phase::Ramp };
    let ramp_deadline = t0 + cfg.ramp_budget().as_nanos() as u64;
    let mut ramp_end = t0;
    let mut open_at_ready = 0;
    let mut run_start = 0;
    let mut run_end = u64::MAX;
    let mut phase_deadline = u64::MAX;
    let mut next_sweep = t0 + SWEEP_EVERY_NS;
    let mut next_progress = t0 + PROGRESS_EVERY_NS;
    let mut open_at_end = 0;
    let mut rss_at_end = 0;
    if churn {
        up(Up::Ready { open: 0, failed: 0 });
    }

    loop {
        let now = monotonic_ns();
        // Start connections.
        match phase {
            Phase::Ramp => d.open_more(now, cfg.conns),
            Phase::Run if churn => d.open_more(now, u64::MAX),
            _ => {}
        }

        // Wait for events.
        let mut timeout_ns: u64 = match phase {
            Phase::Ramp if cfg.rate > 0.0 => 1_000_000,
            Phase::Ready => 2_000_000,
            _ => 10_000_000,
        };
        if phase == Phase::Run {
            if let Some(t) = w.tick_ns() {
                timeout_ns = timeout_ns.min(t);
            }
            timeout_ns = timeout_ns.min(run_end.saturating_sub(now));
        }
        match d
            .poll
            .poll(&mut events, Some(Duration::from_nanos(timeout_ns)))
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("epoll_wait"),
        }
        for ev in events.iter() {
            let hangup = ev.is_read_closed() || ev.is_error();
            d.handle_event(ev.token().0, ev.is_readable() || hangup, hangup, w);
        }
        let now = monotonic_ns();
        if phase == Phase::Run {
            w.on_tick(&mut d.conns, now);
        }
        d.flush_dirty(w);
        d.conns.release_closed();
        d.peak_open = d.peak_open.max(d.conns.open());

        if now >= next_sweep {
            next_sweep = now + SWEEP_EVERY_NS;
            d.sweep(now, phase, w);
        }
        if now >= next_progress {
            next_progress = now + PROGRESS_EVERY_NS;
            up(Up::Progress(Progress {
                open: d.conns.open(),
                pending: d.conns.pending(),
                opened: d.opened,
                messages: w.progress_count(),
                errors: d.faults.values().sum(),
            }));
        }

        // Control messages from the coordinator.
        let mut stop = false;
        match down.try_recv() {
            Ok(Down::Go) if phase == Phase::Ready => {
                phase = Phase::Run;
                run_start = monotonic_ns();
                run_end = run_start + (cfg.warmup + cfg.duration).as_nanos() as u64;
                d.rate_origin_ns = run_start;
                w.on_start(&mut d.conns, run_start, run_end);
                d.flush_dirty(w);
            }
            Ok(Down::Go) | Err(TryRecvError::Empty) => {}
            Ok(Down::Stop) | Err(TryRecvError::Disconnected) => stop = true,
        }

        // Phase transitions.
        let now = monotonic_ns();
        match phase {
            Phase::Ramp => {
                let resolved = d.started >= cfg.conns && d.conns.pending() == 0 && w.is_ready();
                if resolved || now >= ramp_deadline {
                    ramp_end = now;
                    open_at_ready = d.conns.open();
                    phase = Phase::Ready;
                    up(Up::Ready {
                        open: open_at_ready,
                        failed: d.faults.values().sum(),
                    });
                }
            }
            Phase::Ready => {}
            Phase::Run => {
                if now >= run_end {
                    open_at_end = d.conns.open();
                    rss_at_end = crate::procstat::sample("self").map_or(0, |s| s.rss_kib);
                    w.on_stop(now);
                    phase = Phase::Drain;
                    phase_deadline = now + cfg.drain.as_nanos() as u64;
                }
            }
            Phase::Drain => {
                if w.is_drained() || now >= phase_deadline {
                    phase = Phase::Close;
                    phase_deadline = now + cfg.close_timeout.as_nanos() as u64;
                    d.close_all(now, w);
                }
            }
            Phase::Close => {
                if d.conns.alive() == 0 || now >= phase_deadline {
                    d.abandon_all(now, w);
                    break;
                }
            }
        }
        if stop && phase != Phase::Close {
            if phase == Phase::Run {
                open_at_end = d.conns.open();
                w.on_stop(now);
            }
            if phase == Phase::Ramp {
                ramp_end = now;
            }
            phase = Phase::Close;
            phase_deadline = now + cfg.close_timeout.as_nanos() as u64;
            d.close_all(now, w);
        }
    }

    let mut report = WorkerReport {
        ramp_secs: (ramp_end.saturating_sub(t0)) as f64 / NS,
        run_secs: if run_start > 0 {
            let measured_from = run_start + cfg.warmup.as_nanos() as u64;
            (run_end.min(monotonic_ns()).saturating_sub(measured_from)) as f64 / NS
        } else {
            0.0
        },
        rss_kib: rss_at_end,
        ..WorkerReport::default()
    };
    report.add("attempts", d.started);
    report.add("opened", d.opened);
    report.add("open_at_ready", open_at_ready);
    report.add("open_at_end", open_at_end);
    report.add("peak_open", d.peak_open);
    report.add("server_closed", d.server_closed);
    report.add("clean_closes", d.clean_closes);
    report.add("unclean_close_at_end", d.unclean_at_end);
    for (k, v) in &d.faults {
        report.add(k, *v);
    }
    for (status, n) in &d.statuses {
        report.add(&format!("status@{status}"), *n);
    }
    for (k, v) in d.first_fault {
        report.notes.insert(k.to_string(), v);
    }
    report.put_hist("connect_us", &d.connect_us);
    w.report(&mut report);
    Ok(report)
}

impl Driver<'_> {
    /// Starts connections while the rate, the in-flight bound and `limit` allow.
    fn open_more(&mut self, now: u64, limit: u64) {
        let cfg = self.cfg;
        let by_rate = if cfg.rate > 0.0 {
            ((now.saturating_sub(self.rate_origin_ns)) as f64 / NS * cfg.rate) as u64 + 1
        } else {
            u64::MAX
        };
        let churn = limit == u64::MAX;
        loop {
            let more = if churn {
                self.conns.alive() < cfg.conns
            } else {
                self.started < limit
            };
            if !more || self.conns.pending() >= cfg.connect_inflight {
                break;
            }
            if self.started >= by_rate {
                break;
            }
            let global = cfg.slot.index as u64 + self.started * cfg.slot.count as u64;
            self.started += 1;
            if let Err(f) = self.connect(global, now) {
                self.fault(&f);
            }
        }
    }

    /// Opens one non-blocking socket from 127.0.0.x toward the target chosen by `global`.
    fn connect(&mut self, global: u64, now: u64) -> Result<ConnKey, Fault> {
        let cfg = self.cfg;
        let nt = cfg.targets.len() as u64;
        let target = cfg.targets[(global % nt) as usize];
        // SOCK_NONBLOCK at creation saves two fcntl calls per connection.
        let sock = Socket::new(
            Domain::for_address(target),
            Type::STREAM.nonblocking(),
            Some(Protocol::TCP),
        )
        .map_err(|e| Fault::Connect(e.kind()))?;
        let setup = || -> io::Result<()> {
            sock.set_nodelay(true)?;
            if target.ip().is_ipv4() {
                let host = 1 + ((global / nt) % u64::from(cfg.source_ips)) as u8;
                let src = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, host)), 0);
                // Without it bind(ip, 0) reserves a port for all destinations.
                let _ = sys::set_bind_address_no_port(&sock);
                sock.bind(&src.into())?;
            }
            Ok(())
        };
        setup().map_err(|e| Fault::Connect(e.kind()))?;
        match sock.connect(&target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(Fault::Connect(e.kind())),
        }
        let mut stream = mio::net::TcpStream::from_std(std::net::TcpStream::from(sock));
        let key = self.conns.next_key();
        self.poll
            .registry()
            .register(
                &mut stream,
                Token(key.0),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| Fault::Connect(e.kind()))?;
        let inserted = self.conns.insert(|k| Conn::new(stream, k, global, now));
        debug_assert_eq!(inserted, key);
        Ok(key)
    }

    fn handle_event<W: Workload>(&mut self, idx: usize, readable: bool, hangup: bool, w: &mut W) {
        let now = monotonic_ns();
        let Some((conn, rng)) = self.conns.get_mut(idx) else {
            return; // closed earlier in this batch
        };
        let before = conn.state;
        let sent_close_before = conn.tx.sent_close;
        let mut result: Result<Option<bool>, Fault> = Ok(None);
        if before == State::Connecting {
            match conn.check_connected(readable) {
                Ok(true) => {
                    let host = &self.hosts[(conn.global % self.hosts.len() as u64) as usize];
                    let target = w.request_target(&self.cfg.path, conn.global);
                    if let Err(f) = conn.start_handshake(host, &target, rng, now) {
                        result = Err(f);
                    }
                }
                Ok(false) => return,
                Err(f) => result = Err(f),
            }
        }
        if result.is_ok() && readable && conn.state != State::Connecting {
            let mut on = |io: &mut ConnIo<'_>, input: Input<'_>, now_ns| match input {
                Input::Open => w.on_open(io, now_ns),
                Input::Message { kind, payload } => w.on_message(io, kind, payload, now_ns),
            };
            result =
                match conn.handle_readable(&mut self.scratch, rng, &self.limits, hangup, &mut on) {
                    Ok(ReadEnd::Drained) => Ok(None),
                    Ok(ReadEnd::Eof) => Ok(Some(conn.got_close)),
                    Err(f) => Err(f),
                };
        }
        if result.is_ok() && conn.tx.sent_close && conn.state == State::Open {
            conn.state = State::Closing;
            conn.since_ns = now;
        }
        if result.is_ok() {
            if let Err(e) = conn.tx.flush(&mut conn.sock) {
                result = Err(Fault::Io(e.kind()));
            }
        }
        let after = conn.state;
        let upgraded =
            before == State::Handshaking && matches!(after, State::Open | State::Closing);
        let started_ns = conn.started_ns;
        if !sent_close_before && conn.got_close {
            self.server_closed += 1; // the server started the close; we only answered
        }
        if upgraded {
            self.opened += 1;
            record_ns(&mut self.connect_us, now.saturating_sub(started_ns));
        }
        self.conns.moved(before, after);
        match result {
            Ok(None) => {}
            Ok(Some(true)) => self.end(idx, None, now, w),
            Ok(Some(false)) => self.end(idx, Some(Fault::UnexpectedEof), now, w),
            Err(f) => self.end(idx, Some(f), now, w),
        }
    }

    fn fault(&mut self, f: &Fault) {
        if self.closing && matches!(f, Fault::UnexpectedEof | Fault::CloseTimeout | Fault::Io(_)) {
            self.unclean_at_end += 1;
            return;
        }
        *self.faults.entry(f.counter()).or_default() += 1;
        if let Fault::Handshake(e) = f {
            if let Some(status) = e.status() {
                *self.statuses.entry(status).or_default() += 1;
            }
        }
        self.first_fault
            .entry(f.counter())
            .or_insert_with(|| f.to_string());
    }

    /// Removes a connection; `fault` is `None` for a completed close handshake.
    fn end<W: Workload>(&mut self, idx: usize, fault: Option<Fault>, now: u64, w: &mut W) {
        let Some(conn) = self.conns.take(idx) else {
            return;
        };
        match &fault {
            None => self.clean_closes += 1,
            Some(f) => self.fault(f),
        }
        if matches!(conn.state, State::Open | State::Closing) {
            w.on_closed(conn.key, conn.global, fault.is_none(), now);
        }
        // Dropping `conn` closes the socket, which also removes it from epoll.
    }

    /// Writes out connections that workload callbacks queued bytes on.
    fn flush_dirty<W: Workload>(&mut self, w: &mut W) {
        let now = monotonic_ns();
        let dirty = self.conns.take_dirty();
        for &idx in &dirty {
            let Some((conn, _)) = self.conns.get_mut(idx) else {
                continue;
            };
            conn.tx.dirty = false;
            let closing = conn.tx.sent_close && conn.state == State::Open;
            if closing {
                conn.state = State::Closing;
                conn.since_ns = now;
            }
            let flushed = conn.tx.flush(&mut conn.sock);
            if closing {
                self.conns.moved(State::Open, State::Closing);
            }
            if let Err(e) = flushed {
                self.end(idx, Some(Fault::Io(e.kind())), now, w);
            }
        }
        self.conns.return_dirty(dirty); // keeps the capacity
    }

    /// Fails connections stuck in connect, upgrade or close.
    fn sweep<W: Workload>(&mut self, now: u64, phase: Phase, w: &mut W) {
        let mut expired = Vec::new();
        for conn in self.conns.iter() {
            let age = now.saturating_sub(conn.since_ns);
            let fault = match conn.state {
                State::Connecting if age > PER_CONN_CONNECT_TIMEOUT_NS => Fault::ConnectTimeout,
                State::Handshaking if age > PER_CONN_CONNECT_TIMEOUT_NS => Fault::HandshakeTimeout,
                State::Closing if age > CLOSE_WAIT_NS && phase != Phase::Close => {
                    Fault::CloseTimeout
                }
                _ => continue,
            };
            expired.push((conn.key.0, fault));
        }
        for (idx, f) in expired {
            self.end(idx, Some(f), now, w);
        }
    }

    /// Starts the close handshake on every open connection; drops unfinished attempts.
    fn close_all<W: Workload>(&mut self, now: u64, w: &mut W) {
        self.closing = true;
        for idx in 0..self.conns.slot_count() {
            let Some((conn, rng)) = self.conns.get_mut(idx) else {
                continue;
            };
            match conn.state {
                State::Connecting | State::Handshaking => {
                    self.conns.take(idx);
                }
                State::Open => {
                    conn.io(rng).close();
                    conn.state = State::Closing;
                    conn.since_ns = now;
                    let flushed = conn.tx.flush(&mut conn.sock);
                    self.conns.moved(State::Open, State::Closing);
                    if let Err(e) = flushed {
                        self.end(idx, Some(Fault::Io(e.kind())), now, w);
                    }
                }
                State::Closing => {}
            }
        }
        self.conns.release_closed();
    }

    /// Drops whatever is left when the close timeout expires.
    fn abandon_all<W: Workload>(&mut self, now: u64, w: &mut W) {
        for idx in 0..self.conns.slot_count() {
            if self.conns.contains(idx) {
                self.end(idx, Some(Fault::CloseTimeout), now, w);
            }
        }
        self.conns.release_closed();
    }
}
