//! Broadcast mode: R receivers and K senders on an endpoint that relays every message to every
//! client (sender included). Each text payload starts with the sender id, a per-sender sequence
//! number and the send time (CLOCK_MONOTONIC ns, comparable across worker processes), all in
//! fixed-width hex, so every client measures fan-out latency and counts deliveries that are
//! duplicated or out of order; lost deliveries follow from the merged totals. A sender keeps at
//! most `window` messages in flight, a message leaving the window once every client of its
//! server in this worker process has received it (exact in a single-process run; with several
//! processes, the sender's process stands for the rest). So the window bounds what the server
//! has queued, however it schedules its clients. `--send-rate` also paces sends. With several targets (servers), each server relays only
//! among its own clients, so expected deliveries are summed per target.

use crate::cli::BroadcastArgs;
use crate::conn::{ConnIo, ConnKey};
use crate::conns::Conns;

use crate::driver::DriverConfig;
use crate::order::{Seen, SeqWindow};
use crate::report::{
    self, latency_json, latency_line, new_hist, record_ns, Merged, RunContext, Summary,
    WorkerReport,
};
use crate::stamp::{self, Stamp};
use crate::sys::monotonic_ns;
use crate::workload::Workload;
use anyhow::{bail, Result};
use corecast::ws::DataKind;
use hdrhistogram::Histogram;
use serde_json::json;

/// Every payload starts with a stamp (sender id, sequence, send time).
pub const MIN_PAYLOAD: usize = stamp::LEN;
/// A sender whose window has been full this long writes off its unacknowledged messages
/// (a server may drop messages for slow clients), in ns.
const WINDOW_STALL_NS: u64 = 1_000_000_000;
/// The drain ends this long after the last delivery once all own messages are back, in ns.
const QUIET_NS: u64 = 500_000_000;
/// Most (connection x sender) ordering states tracked per worker (16 bytes each).
const MAX_PAIR_STATES: usize = 64 << 20;
/// A sender skips a send while this many bytes wait in its outbound queue.
const MAX_QUEUED_BYTES: usize = 1 << 20;
/// Tick period for pacing and stall checks, in ns.
const TICK_NS: u64 = 1_000_000;

/// The mode's own limits.
pub fn validate(a: &BroadcastArgs) -> Result<()> {
    if a.senders == 0 || a.senders > 4096 {
        bail!("--senders must be in 1..=4096");
    }
    if a.size < MIN_PAYLOAD || a.size > 1 << 20 {
        bail!("--size must be in {MIN_PAYLOAD}..=1048576 for broadcast");
    }
    if a.window == 0 {
        bail!("--window must be at least 1");
    }
    if !(a.send_rate >= 0.0 && a.send_rate.is_finite()) {
        bail!("--send-rate must be >= 0");
    }
    if !(0.0..=600.0).contains(&a.drain) {
        bail!("--drain must be in [0, 600] seconds");
    }
    Ok(())
}

/// A sending connection. Invariant: `acked <= seq <= acked + window`.
#[derive(Debug, Clone)]
struct Sender {
    key: ConnKey,
    id: u32,
    /// Target index of its server.
    target: usize,
    /// Next sequence number to send.
    seq: u64,
    /// Messages below this were delivered to every local client (or written off).
    acked: u64,
    /// Local deliveries of message `s` (acked <= s < seq) at `s % window`.
    delivered: Vec<u32>,
    /// Last time the window moved (ns).
    moved_ns: u64,
}

impl Sender {
    /// Moves `acked` past messages that every one of `clients` local clients has received.
    fn advance(&mut self, clients: u64, now_ns: u64) {
        let w = self.delivered.len() as u64;
        while self.acked < self.seq
            && u64::from(self.delivered[(self.acked % w) as usize]) >= clients
        {
            self.acked += 1;
            self.moved_ns = now_ns;
        }
    }
}

pub struct Broadcast {
    senders_total: u64,
    window: u64,
    /// This worker's share of the total send rate (msgs/s); 0 = window only.
    rate: f64,
    payload: Vec<u8>,
    senders: Vec<Sender>,
    /// Index into `senders` by connection key (usize::MAX: not a sender).
    sender_of: Vec<usize>,
    /// Index into `senders` by sender id (usize::MAX: not in this worker).
    local_sender: Vec<usize>,
    /// Ordering state per connection key: `senders_total` entries each (empty: not tracked).
    pairs: Vec<Vec<SeqWindow>>,
    track_order: bool,
    running: bool,
    start_ns: u64,
    end_ns: u64,
    next_sender: usize,
    sent: u64,
    deliveries: u64,
    deliveries_total: u64,
    unique: u64,
    duplicates: u64,
    late: u64,
    foreign: u64,
    window_resets: u64,
    /// Sends skipped because the sender's queue was full.
    backpressured: u64,
    receivers_at_start: u64,
    /// Open connections per target (index = global % targets).
    open_per_target: Vec<u64>,
    /// `open_per_target` when the measured phase started.
    clients_at_start: Vec<u64>,
    /// Messages sent per target.
    sent_per_target: Vec<u64>,
    last_delivery_ns: u64,
    latency: Histogram<u64>,
}

impl Broadcast {
    pub fn new(a: &BroadcastArgs, cfg: &DriverConfig) -> Self {
        let mut payload = vec![b'x'; a.size.max(MIN_PAYLOAD)];
        payload[..MIN_PAYLOAD].fill(b'0');
        let k = a.senders as u64;
        // This worker's senders: global indices below K that it owns.
        let mine = cfg.slot.share(k);
        Broadcast {
            senders_total: k,
            window: a.window as u64,
            rate: if k > 0 {
                a.send_rate * mine as f64 / k as f64
            } else {
                0.0
            },
            payload,
            senders: Vec::new(),
            sender_of: Vec::new(),
            local_sender: vec![usize::MAX; a.senders],
            pairs: Vec::new(),
            track_order: (cfg.conns as usize).saturating_mul(a.senders) <= MAX_PAIR_STATES,
            running: false,
            start_ns: 0,
            end_ns: 0,
            next_sender: 0,
            sent: 0,
            deliveries: 0,
            deliveries_total: 0,
            unique: 0,
            duplicates: 0,
            late: 0,
            foreign: 0,
            window_resets: 0,
            backpressured: 0,
            receivers_at_start: 0,
            open_per_target: vec![0; cfg.targets.len()],
            clients_at_start: vec![0; cfg.targets.len()],
            sent_per_target: vec![0; cfg.targets.len()],
            last_delivery_ns: 0,
            latency: new_hist(),
        }
    }

    fn can_send(&self, s: &Sender) -> bool {
        s.seq - s.acked < self.window
    }

    /// Whether the connection can take another message now (else counts a skipped send).
    fn has_room(&mut self, io: &ConnIo<'_>) -> bool {
        let room = io.queued() < MAX_QUEUED_BYTES && !io.is_closing();
        self.backpressured += u64::from(!room);
        room
    }

    /// Sends the next message of sender `i` on `io`.
    fn send(&mut self, i: usize, io: &mut ConnIo<'_>, now_ns: u64) {
        let s = &mut self.senders[i];
        Stamp {
            sender: s.id,
            counter: s.seq,
            sent_ns: now_ns,
        }
        .write(&mut self.payload);
        let w = s.delivered.len() as u64;
        s.delivered[(s.seq % w) as usize] = 0;
        s.seq += 1;
        io.send(DataKind::Text, &self.payload);
        self.sent += 1;
        let t = (io.global % self.sent_per_target.len() as u64) as usize;
        self.sent_per_target[t] += 1;
    }
}

impl Workload for Broadcast {
    fn on_open(&mut self, io: &mut ConnIo<'_>, now_ns: u64) {
        let k = io.key.0;
        if self.sender_of.len() <= k {
            self.sender_of.resize(k + 1, usize::MAX);
            self.pairs.resize_with(k + 1, Vec::new);
        }
        if self.track_order {
            self.pairs[k] = vec![SeqWindow::default(); self.senders_total as usize];
        }
        let t = (io.global % self.open_per_target.len() as u64) as usize;
        self.open_per_target[t] += 1;
        if io.global < self.senders_total {
            self.sender_of[k] = self.senders.len();
            self.local_sender[io.global as usize] = self.senders.len();
            self.senders.push(Sender {
                key: io.key,
                id: io.global as u32,
                target: t,
                seq: 0,
                acked: 0,
                delivered: vec![0; self.window as usize],
                moved_ns: now_ns,
            });
        }
    }

    fn on_message(&mut self, io: &mut ConnIo<'_>, _kind: DataKind, payload: &[u8], now_ns: u64) {
        let Some(Stamp {
            sender: id,
            counter: seq,
            sent_ns: ts,
        }) = Stamp::read(payload)
        else {
            self.foreign += 1;
            return;
        };
        self.deliveries_total += 1;
        self.last_delivery_ns = now_ns;
        if now_ns <= self.end_ns {
            self.deliveries += 1;
        }
        record_ns(&mut self.latency, now_ns.saturating_sub(ts));
        let k = io.key.0;
        match self
            .pairs
            .get_mut(k)
            .and_then(|p| p.get_mut(id as usize))
            .map(|p| p.observe(seq))
        {
            Some(Seen::InOrder { .. }) | None => self.unique += 1,
            Some(Seen::Late) => {
                self.unique += 1;
                self.late += 1;
            }
            Some(Seen::Duplicate) => self.duplicates += 1,
        }
        // A message of a sender in this worker: its window may move (sends follow in on_tick,
        // after this batch of events).
        let i = self
            .local_sender
            .get(id as usize)
            .copied()
            .unwrap_or(usize::MAX);
        if let Some(s) = self.senders.get_mut(i) {
            if seq >= s.acked && seq < s.seq {
                let w = s.delivered.len() as u64;
                s.delivered[(seq % w) as usize] += 1;
                s.advance(self.open_per_target[s.target], now_ns);
            }
        }
    }

    fn on_closed(&mut self, key: ConnKey, global: u64, _clean: bool, _now_ns: u64) {
        let t = (global % self.open_per_target.len() as u64) as usize;
        self.open_per_target[t] = self.open_per_target[t].saturating_sub(1);
        if let Some(&i) = self.sender_of.get(key.0) {
            if i < self.senders.len() {
                // A closed sender stops sending; keep it out of the drain condition.
                let s = &mut self.senders[i];
                s.acked = s.seq;
            }
        }
    }

    fn on_start(&mut self, conns: &mut Conns, now_ns: u64, end_ns: u64) {
        self.running = true;
        self.start_ns = now_ns;
        self.end_ns = end_ns;
        self.receivers_at_start = conns.open();
        self.clients_at_start.clone_from(&self.open_per_target);
        for s in &mut self.senders {
            s.moved_ns = now_ns;
        }
        self.on_tick(conns, now_ns);
    }

    fn tick_ns(&self) -> Option<u64> {
        Some(TICK_NS)
    }

    fn on_tick(&mut self, conns: &mut Conns, now_ns: u64) {
        if !self.running || self.senders.is_empty() {
            return;
        }
        for s in &mut self.senders {
            s.advance(self.open_per_target[s.target], now_ns); // clients may have closed
            if s.seq - s.acked >= self.window && now_ns.saturating_sub(s.moved_ns) > WINDOW_STALL_NS
            {
                s.acked = s.seq;
                s.moved_ns = now_ns;
                self.window_resets += 1;
            }
        }
        let n = self.senders.len();
        if self.rate > 0.0 {
            let due = ((now_ns - self.start_ns) as f64 / 1e9 * self.rate) as u64 + 1;
            let mut idle_rounds = 0;
            while self.sent < due && idle_rounds < n {
                let i = self.next_sender % n;
                self.next_sender = self.next_sender.wrapping_add(1);
                let key = self.senders[i].key;
                if !self.can_send(&self.senders[i]) {
                    idle_rounds += 1;
                    continue;
                }
                let Some(mut io) = conns.io(key) else {
                    idle_rounds += 1;
                    continue;
                };
                if !self.has_room(&io) {
                    idle_rounds += 1;
                    continue;
                }
                idle_rounds = 0;
                self.send(i, &mut io, now_ns);
            }
        } else {
            for i in 0..n {
                let key = self.senders[i].key;
                if !self.can_send(&self.senders[i]) {
                    continue;
                }
                let Some(mut io) = conns.io(key) else {
                    continue;
                };
                while self.can_send(&self.senders[i]) && self.has_room(&io) {
                    self.send(i, &mut io, now_ns);
                }
            }
        }
    }

    fn on_stop(&mut self, _now_ns: u64) {
        self.running = false;
    }

    fn is_drained(&self) -> bool {
        let acked = self.senders.iter().all(|s| s.acked >= s.seq);
        acked && monotonic_ns().saturating_sub(self.last_delivery_ns) > QUIET_NS
    }

    fn progress_count(&self) -> u64 {
        self.deliveries_total
    }

    fn report(&self, out: &mut WorkerReport) {
        out.add("sent", self.sent);
        out.add("deliveries", self.deliveries);
        out.add("deliveries_total", self.deliveries_total);
        out.add("unique", self.unique);
        out.add("duplicates", self.duplicates);
        out.add("out_of_order", self.late);
        out.add("foreign", self.foreign);
        out.add("window_resets", self.window_resets);
        out.add("backpressured", self.backpressured);
        out.add("receivers_at_start", self.receivers_at_start);
        out.add("order_tracked", u64::from(self.track_order));
        for (t, (sent, clients)) in self
            .sent_per_target
            .iter()
            .zip(&self.clients_at_start)
            .enumerate()
        {
            out.add(&format!("sent@{t}"), *sent);
            out.add(&format!("clients@{t}"), *clients);
        }
        out.put_hist("fanout_us", &self.latency);
    }
}

pub fn summarize(a: &BroadcastArgs, m: &Merged, ctx: &RunContext) -> Summary {
    let secs = m.run_secs;
    let deliveries = m.get("deliveries");
    let rate = report::per_sec(deliveries, secs);
    let sent = m.get("sent");
    let clients = m.get("receivers_at_start");
    // Every message reaches every client of the server it was sent to.
    let expected: u64 = (0..ctx.targets)
        .map(|t| {
            m.get(&format!("sent@{t}"))
                .saturating_mul(m.get(&format!("clients@{t}")))
        })
        .sum();
    let unique = m.get("unique");
    let lost = expected.saturating_sub(unique);
    let tracked = m.get("order_tracked") as usize == ctx.processes;
    let lat = m.hist("fanout_us");
    let per_cpu = ctx.server.as_ref().and_then(|s| s.per_cpu_sec(deliveries));
    let mut fields = serde_json::Map::new();
    fields.insert(
        "broadcast".into(),
        json!({
            "receivers": a.receivers,
            "senders": a.senders,
            "clients_at_start": clients,
            "payload_bytes": a.size,
            "window": a.window,
            "send_rate_target": a.send_rate,
            "sent": sent,
            "msgs_sent_per_s": report::round1(report::per_sec(sent, secs)),
            "deliveries": deliveries,
            "deliveries_per_s": report::round1(rate),
            "deliveries_per_server_cpu_s": per_cpu.map(report::round1),
            "expected_deliveries": expected,
            "unique_deliveries": unique,
            "lost": lost,
            "duplicates": tracked.then(|| m.get("duplicates")),
            "out_of_order": tracked.then(|| m.get("out_of_order")),
            "foreign": m.get("foreign"),
            "window_resets": m.get("window_resets"),
            "sends_skipped_backpressure": m.get("backpressured"),
        }),
    );
    fields.insert("fanout_latency_us".into(), latency_json(&lat));
    let mut lines = vec![
        format!(
            "broadcast: {} deliveries/s to {} clients ({} msgs/s from {} senders) over {secs:.1} s",
            report::fmt_si(rate),
            clients,
            report::fmt_si(report::per_sec(sent, secs)),
            a.senders
        ),
        format!("fan-out latency: {}", latency_line(&lat)),
        format!(
            "lost {lost} of {expected}, duplicated {}, out of order {}, window resets {}",
            m.get("duplicates"),
            m.get("out_of_order"),
            m.get("window_resets")
        ),
    ];
    if let Some(p) = per_cpu {
        lines.push(format!(
            "per server CPU-second: {} deliveries",
            report::fmt_si(p)
        ));
    }
    Summary {
        fields,
        lines,
        ok: deliveries > 0 && m.get("foreign") == 0,
    }
}
