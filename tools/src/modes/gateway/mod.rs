//! Gateway mode: N owners connected to an event gateway endpoint (one device each) and a
//! publisher on the broker, the way a microservice system uses corecast's RabbitMQ gateway:
//! services publish `{"ownerId":…,"data":…}` to a topic exchange, every device of the owner
//! gets `{"type":"<routing key>","data":<data>}`.
//!
//! Worker side: every connection is an owner (`?userID=owner-N`, N its global index); worker
//! process 0 also runs the publisher thread (`publisher`), started with the run. Each frame an
//! owner receives is checked byte for byte against the event it must be (`body::Expect`), and
//! that the event was addressed to this owner; its number goes into this process's bitmap of
//! events seen (duplicates), the owner's last number (order: one queue and one home worker
//! keep an owner's events in publish order) and, if it was published in the measured window,
//! its publish → socket latency into the histogram. `summarize` compares the distinct events
//! received, over all processes, with what the broker confirmed.

mod body;
mod publisher;

use self::body::Expect;
use self::publisher::{Plan, Publisher, Window, WindowCpu};
use crate::cli::{Addressing, GatewayArgs};
use crate::conn::{ConnIo, ConnKey};
use crate::conns::Conns;
use crate::driver::DriverConfig;
use crate::report::{
    self, latency_json, latency_line, new_hist, record_ns, Merged, RunContext, Summary,
    WorkerReport,
};
use crate::sys::monotonic_ns;
use crate::workload::Workload;
use anyhow::{bail, Result};
use corecast::ws::DataKind;
use hdrhistogram::Histogram;
use serde_json::json;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Most events one run may publish (each process keeps a bitmap of them: 25 MB at most).
pub const MAX_EVENTS: f64 = 200e6;
/// The drain ends this long after the last delivery once the publisher is done, in ns.
const QUIET_NS: u64 = 500_000_000;
/// Longest malformed frame quoted in the report.
const QUOTE_MAX: usize = 200;

/// The mode's own limits.
pub fn validate(a: &GatewayArgs) -> Result<()> {
    for (flag, v) in [
        ("--param", &a.param),
        ("--owner-prefix", &a.owner_prefix),
        ("--exchange", &a.exchange),
        ("--routing-key", &a.routing_key),
        ("--owner-field", &a.owner_field),
    ] {
        if !body::is_plain(v) {
            bail!("{flag} must be 1-128 of A-Z a-z 0-9 - _ .");
        }
    }
    if a.owners > u32::MAX as usize {
        bail!("--owners must fit the stamp's 32 bits");
    }
    if !(a.publish_rate > 0.0 && a.publish_rate <= 1e6) {
        bail!("--publish-rate must be in (0, 1000000] events per second");
    }
    if !(body::DATA_MIN..=body::DATA_MAX).contains(&a.size) {
        bail!(
            "--size must be in {}..={} bytes for gateway",
            body::DATA_MIN,
            body::DATA_MAX
        );
    }
    if !(0.0..=3600.0).contains(&a.warmup) {
        bail!("--warmup must be in [0, 3600] seconds");
    }
    if !(0.0..=600.0).contains(&a.drain) {
        bail!("--drain must be in [0, 600] seconds");
    }
    if a.max_in_flight == 0 || a.max_in_flight > 10_000_000 {
        bail!("--max-in-flight must be in 1..=10000000");
    }
    if max_events(a) > MAX_EVENTS {
        bail!("--publish-rate x (--warmup + --duration) must stay under {MAX_EVENTS} events");
    }
    publisher::check_loopback(&a.amqp_url)?;
    Ok(())
}

/// Events the run may publish at most (the rate over the whole run, plus a step's worth).
fn max_events(a: &GatewayArgs) -> f64 {
    (a.publish_rate * (a.warmup + a.common.duration)).ceil() + a.publish_rate / 100.0 + 16.0
}

/// The owner of event `n` among `owners`: every process computes the same one.
pub fn owner_of(n: u64, owners: u64, addressing: Addressing) -> u64 {
    let owners = owners.max(1);
    match addressing {
        Addressing::RoundRobin => n % owners,
        Addressing::Random => splitmix64(n) % owners,
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One owner's connection.
#[derive(Debug, Clone, Copy)]
struct Member {
    owner: u64,
    /// Open when the run started: its events are expected.
    counted: bool,
    /// One past the highest event number it got (0: none yet).
    next: u64,
}

/// Plain counters of one worker.
#[derive(Debug, Default)]
struct Counters {
    /// Event frames received in the measured window (by receive time).
    deliveries: u64,
    deliveries_total: u64,
    /// Distinct events received.
    unique: u64,
    duplicates: u64,
    out_of_order: u64,
    /// An event for another owner.
    misrouted: u64,
    /// A frame that is not exactly an event of this run (or a binary one).
    malformed: u64,
    /// An event number beyond what the run can publish.
    out_of_range: u64,
    owners_open_at_start: u64,
}

pub struct Gateway {
    param: String,
    prefix: String,
    owners: u64,
    addressing: Addressing,
    single_process: bool,
    warmup_ns: u64,
    expect: Expect,
    members: Vec<Option<Member>>,
    /// Bit n: event n was received by this process.
    seen: Vec<u64>,
    max_events: u64,
    publisher: Option<Publisher>,
    running: bool,
    measure_from_ns: u64,
    end_ns: u64,
    last_delivery_ns: u64,
    c: Counters,
    first_malformed: Option<String>,
    latency: Histogram<u64>,
}

impl Gateway {
    /// This worker's owners; worker 0 also starts the publisher (it connects at once).
    pub fn new(a: &GatewayArgs, cfg: &DriverConfig) -> Result<Self> {
        let publisher = if cfg.slot.index == 0 {
            Some(Publisher::spawn(Plan {
                url: a.amqp_url.clone(),
                exchange: a.exchange.clone(),
                routing_key: a.routing_key.clone(),
                owner_field: a.owner_field.clone(),
                owner_prefix: a.owner_prefix.clone(),
                owners: a.owners as u64,
                addressing: a.addressing,
                rate: a.publish_rate,
                size: a.size,
                confirm: !a.no_confirm,
                persistent: a.persistent,
                max_in_flight: a.max_in_flight as u64,
                server_pids: a.common.server_pid.clone(),
                broker_pids: a.broker_pid.clone(),
            })?)
        } else {
            None
        };
        Ok(Self::with_publisher(a, cfg, publisher))
    }

    fn with_publisher(a: &GatewayArgs, cfg: &DriverConfig, publisher: Option<Publisher>) -> Self {
        Gateway {
            param: a.param.clone(),
            prefix: a.owner_prefix.clone(),
            owners: a.owners as u64,
            addressing: a.addressing,
            single_process: cfg.slot.count == 1,
            warmup_ns: cfg.warmup.as_nanos() as u64,
            expect: Expect::new(&a.routing_key, a.size),
            members: Vec::new(),
            seen: Vec::new(),
            max_events: max_events(a) as u64,
            publisher,
            running: false,
            measure_from_ns: u64::MAX,
            end_ns: 0,
            last_delivery_ns: 0,
            c: Counters::default(),
            first_malformed: None,
            latency: new_hist(),
        }
    }

    fn in_window(&self, t_ns: u64) -> bool {
        t_ns >= self.measure_from_ns && t_ns <= self.end_ns
    }

    /// Marks event `n` seen; false if it was already.
    fn mark(&mut self, n: u64) -> Option<bool> {
        if n >= self.max_events {
            return None;
        }
        let (word, bit) = ((n / 64) as usize, 1u64 << (n % 64));
        if self.seen.len() <= word {
            self.seen.resize((word + 1).next_power_of_two(), 0);
        }
        let fresh = self.seen[word] & bit == 0;
        self.seen[word] |= bit;
        Some(fresh)
    }

    fn malformed(&mut self, payload: &[u8]) {
        self.c.malformed += 1;
        if self.first_malformed.is_none() {
            let cut = &payload[..payload.len().min(QUOTE_MAX)];
            self.first_malformed = Some(String::from_utf8_lossy(cut).into_owned());
        }
    }

    /// What the publisher (worker 0 only) reached.
    fn publisher_state(&self) -> Option<u8> {
        self.publisher.as_ref().map(|p| p.shared.state())
    }
}

impl Workload for Gateway {
    fn request_target<'p>(&self, path: &'p str, global: u64) -> Cow<'p, str> {
        let sep = if path.contains('?') { '&' } else { '?' };
        Cow::Owned(format!("{path}{sep}{}={}{global}", self.param, self.prefix))
    }

    fn on_open(&mut self, io: &mut ConnIo<'_>, _now_ns: u64) {
        let k = io.key.0;
        if self.members.len() <= k {
            self.members.resize(k + 1, None);
        }
        self.members[k] = Some(Member {
            owner: io.global,
            counted: false,
            next: 0,
        });
    }

    fn on_message(&mut self, io: &mut ConnIo<'_>, kind: DataKind, payload: &[u8], now_ns: u64) {
        let st = match (kind, self.expect.check(payload)) {
            (DataKind::Text, Some(st)) => st,
            _ => return self.malformed(payload),
        };
        let Some(Some(m)) = self.members.get(io.key.0).copied() else {
            return;
        };
        let n = st.counter;
        if u64::from(st.sender) != m.owner || owner_of(n, self.owners, self.addressing) != m.owner {
            self.c.misrouted += 1;
            return;
        }
        self.c.deliveries_total += 1;
        self.last_delivery_ns = now_ns;
        if self.in_window(now_ns) {
            self.c.deliveries += 1;
        }
        match self.mark(n) {
            None => {
                self.c.out_of_range += 1;
                return;
            }
            Some(false) => {
                self.c.duplicates += 1;
                return;
            }
            Some(true) => self.c.unique += 1,
        }
        if let Some(Some(m)) = self.members.get_mut(io.key.0) {
            if n < m.next {
                self.c.out_of_order += 1;
            } else {
                m.next = n + 1;
            }
        }
        if self.in_window(st.sent_ns) {
            record_ns(&mut self.latency, now_ns.saturating_sub(st.sent_ns));
        }
    }

    fn on_closed(&mut self, key: ConnKey, _global: u64, _clean: bool, _now_ns: u64) {
        // The member stays (a gateway run opens no connection after the ramp, so its key is
        // not reused); its events count as lost if they did not arrive.
        let _ = key;
    }

    fn is_ready(&self) -> bool {
        self.publisher_state() != Some(publisher::CONNECTING)
    }

    fn on_start(&mut self, _conns: &mut Conns, now_ns: u64, end_ns: u64) {
        self.running = true;
        self.measure_from_ns = now_ns + self.warmup_ns;
        self.end_ns = end_ns;
        for m in self.members.iter_mut().flatten() {
            m.counted = true;
            self.c.owners_open_at_start += 1;
        }
        let w = Window {
            start_ns: now_ns,
            measure_from_ns: self.measure_from_ns,
            end_ns,
        };
        if let Some(p) = self.publisher.as_mut() {
            p.start(w);
        }
    }

    fn on_stop(&mut self, _now_ns: u64) {
        self.running = false;
        if let Some(p) = &self.publisher {
            p.stop();
        }
    }

    fn is_drained(&self) -> bool {
        let quiet = monotonic_ns().saturating_sub(self.last_delivery_ns) > QUIET_NS;
        match &self.publisher {
            None => quiet,
            Some(p) => {
                let s = &p.shared;
                let state = s.state();
                if state == publisher::CONNECTING || state == publisher::READY {
                    return false; // still publishing, or waiting for confirms
                }
                let expected = expected_events(
                    s.published.load(Relaxed),
                    s.confirmed.load(Relaxed),
                    s.failed.load(Relaxed),
                    self.publisher_confirms(),
                );
                (self.single_process && self.c.unique >= expected) || quiet
            }
        }
    }

    fn progress_count(&self) -> u64 {
        self.c.deliveries_total
    }

    fn report(&self, out: &mut WorkerReport) {
        let c = &self.c;
        let counted = self.members.iter().flatten().filter(|m| m.counted).count() as u64;
        for (name, v) in [
            ("deliveries", c.deliveries),
            ("deliveries_total", c.deliveries_total),
            ("unique", c.unique),
            ("duplicates", c.duplicates),
            ("out_of_order", c.out_of_order),
            ("misrouted", c.misrouted),
            ("malformed", c.malformed),
            ("out_of_range", c.out_of_range),
            ("owners_open_at_start", c.owners_open_at_start.max(counted)),
        ] {
            out.add(name, v);
        }
        if let Some(q) = &self.first_malformed {
            out.notes.insert("first_malformed_frame".into(), q.clone());
        }
        out.put_hist("delivery_us", &self.latency);
        let Some(p) = &self.publisher else { return };
        let s = &p.shared;
        let get = |a: &AtomicU64| a.load(Relaxed);
        for (name, v) in [
            ("pub_published", get(&s.published)),
            ("pub_published_measured", get(&s.published_measured)),
            ("pub_confirmed", get(&s.confirmed)),
            ("pub_returned", get(&s.returned)),
            ("pub_nacked", get(&s.nacked)),
            ("pub_failed", get(&s.failed)),
            ("pub_in_flight_at_end", get(&s.in_flight)),
            ("pub_held_back_steps", get(&s.held_back_steps)),
            ("pub_max_behind", get(&s.max_behind)),
            ("pub_confirms", u64::from(self.publisher_confirms())),
            (
                "publisher_failed",
                u64::from(s.state() == publisher::FAILED),
            ),
        ] {
            out.add(name, v);
        }
        if let Ok(Some(h)) = s.confirm_us.lock().map(|h| h.clone()) {
            out.put_hist("confirm_us", &h);
        }
        if let Ok(Some(e)) = s.error.lock().map(|e| e.clone()) {
            out.notes.insert("publisher".into(), e);
        }
        if let Ok(Some(w)) = s.window_cpu.lock().map(|w| *w) {
            let WindowCpu {
                wall_secs,
                server_cpu_secs,
                broker_cpu_secs,
            } = w;
            out.add("cpu_window_us", (wall_secs * 1e6) as u64);
            out.add("server_cpu_us", (server_cpu_secs * 1e6) as u64);
            out.add("broker_cpu_us", (broker_cpu_secs * 1e6) as u64);
        }
    }
}

impl Gateway {
    fn publisher_confirms(&self) -> bool {
        self.publisher.as_ref().is_some_and(|p| p.confirms())
    }
}

/// Events that must arrive: those the broker confirmed (with confirms), else those written
/// without an error.
fn expected_events(published: u64, confirmed: u64, failed: u64, confirms: bool) -> u64 {
    if confirms {
        confirmed
    } else {
        published.saturating_sub(failed)
    }
}

pub fn summarize(a: &GatewayArgs, m: &Merged, ctx: &RunContext) -> Summary {
    let secs = m.run_secs;
    let deliveries = m.get("deliveries");
    let rate = report::per_sec(deliveries, secs);
    let confirms = m.get("pub_confirms") > 0;
    let published = m.get("pub_published");
    let expected = expected_events(
        published,
        m.get("pub_confirmed"),
        m.get("pub_failed"),
        confirms,
    );
    let unique = m.get("unique");
    let lost = expected.saturating_sub(unique);
    let lat = m.hist("delivery_us");
    // CPU over the measured window, sampled by the publisher at its edges.
    let window = m.get("cpu_window_us") as f64 / 1e6;
    let cpu = |name: &str| (window > 0.0).then(|| m.get(name) as f64 / 1e6);
    let (server_cpu, broker_cpu) = (
        cpu("server_cpu_us").filter(|_| !a.common.server_pid.is_empty()),
        cpu("broker_cpu_us").filter(|_| !a.broker_pid.is_empty()),
    );
    let per_event = |c: Option<f64>| {
        c.filter(|_| deliveries > 0)
            .map(|c| c * 1e6 / deliveries as f64)
    };
    let (server_us, broker_us) = (per_event(server_cpu), per_event(broker_cpu));
    let ratio = match (server_us, broker_us) {
        (Some(s), Some(b)) if b > 0.0 => Some(s / b),
        _ => None,
    };
    let util = |c: Option<f64>| c.map(|c| report::round1(100.0 * c / window.max(1e-9)) / 100.0);
    let bad = [
        "duplicates",
        "out_of_order",
        "misrouted",
        "malformed",
        "out_of_range",
        "pub_returned",
        "pub_nacked",
        "pub_failed",
        "publisher_failed",
    ];
    let bad_total: u64 = bad.iter().map(|k| m.get(k)).sum();
    let round3 = |v: f64| (v * 1000.0).round() / 1000.0;
    let mut fields = serde_json::Map::new();
    fields.insert(
        "gateway".into(),
        json!({
            "owners": a.owners,
            "owners_open_at_start": m.get("owners_open_at_start"),
            "addressing": format!("{:?}", a.addressing),
            "routing_key": a.routing_key,
            "data_bytes": a.size,
            "publish_rate_target": a.publish_rate,
            "confirms": confirms,
            "persistent": a.persistent,
            "published": published,
            "published_measured": m.get("pub_published_measured"),
            "published_per_s": report::round1(report::per_sec(m.get("pub_published_measured"), secs)),
            "confirmed": m.get("pub_confirmed"),
            "returned": m.get("pub_returned"),
            "nacked": m.get("pub_nacked"),
            "publish_failed": m.get("pub_failed"),
            "in_flight_at_end": m.get("pub_in_flight_at_end"),
            "held_back_steps": m.get("pub_held_back_steps"),
            "max_behind": m.get("pub_max_behind"),
            "deliveries": deliveries,
            "deliveries_total": m.get("deliveries_total"),
            "events_per_s": report::round1(rate),
            "expected": expected,
            "unique": unique,
            "lost": lost,
            "duplicates": m.get("duplicates"),
            "out_of_order": m.get("out_of_order"),
            "misrouted": m.get("misrouted"),
            "malformed": m.get("malformed"),
            "out_of_range": m.get("out_of_range"),
            "cpu_window_s": round3(window),
            "server_cpu_s": server_cpu.map(round3),
            "broker_cpu_s": broker_cpu.map(round3),
            "server_cpu_util": util(server_cpu),
            "broker_cpu_util": util(broker_cpu),
            "server_cpu_us_per_event": server_us.map(round3),
            "broker_cpu_us_per_event": broker_us.map(round3),
            "server_to_broker_cpu_ratio": ratio.map(round3),
            "server_pids": a.common.server_pid,
            "broker_pids": a.broker_pid,
        }),
    );
    fields.insert("delivery_latency_us".into(), latency_json(&lat));
    let confirm = m.hist("confirm_us");
    fields.insert("confirm_latency_us".into(), latency_json(&confirm));
    let mut lines = vec![
        format!(
            "gateway: {} events/s delivered to {} owners ({} published/s, {} offered) over {secs:.1} s",
            report::fmt_si(rate),
            m.get("owners_open_at_start"),
            report::fmt_si(report::per_sec(m.get("pub_published_measured"), secs)),
            report::fmt_si(a.publish_rate),
        ),
        format!("publish -> socket: {}", latency_line(&lat)),
        format!(
            "publish -> {}: {}",
            if confirms { "confirm" } else { "written" },
            latency_line(&confirm)
        ),
        format!(
            "lost {lost} of {expected}, duplicated {}, out of order {}, misrouted {}, malformed {}",
            m.get("duplicates"),
            m.get("out_of_order"),
            m.get("misrouted"),
            m.get("malformed"),
        ),
        format!(
            "publisher: {published} published, {} confirmed, {} returned, {} nacked, {} failed; held back in {} steps, at most {} behind",
            m.get("pub_confirmed"),
            m.get("pub_returned"),
            m.get("pub_nacked"),
            m.get("pub_failed"),
            m.get("pub_held_back_steps"),
            m.get("pub_max_behind"),
        ),
    ];
    if let (Some(s), Some(b)) = (server_us, broker_us) {
        lines.push(format!(
            "CPU per delivered event: gateway {s:.2} us ({:.0}% of a core), broker {b:.2} us ({:.0}%), ratio {:.3}",
            100.0 * server_cpu.unwrap_or(0.0) / window.max(1e-9),
            100.0 * broker_cpu.unwrap_or(0.0) / window.max(1e-9),
            ratio.unwrap_or(0.0),
        ));
    }
    if m.get("publisher_failed") > 0 {
        lines.push("the publisher failed (see `errors.first.publisher`)".into());
    }
    let _ = ctx;
    Summary {
        fields,
        lines,
        ok: deliveries > 0 && lost == 0 && bad_total == 0,
    }
}

#[cfg(test)]
mod tests;
