//! Results: what one worker reports (named counters and latency histograms), how reports from
//! several workers merge, and the helpers that turn them into the JSON line and the human
//! summary. Histograms travel between processes as raw (value, count) pairs, which merge
//! exactly. No IO here besides formatting.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Highest latency a histogram tracks: one hour, in microseconds. Larger values saturate.
pub const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds, 3 significant figures.
pub fn new_hist() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low, sigfig 3).
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
}

/// Records a duration given in nanoseconds.
pub fn record_ns(h: &mut Histogram<u64>, ns: u64) {
    h.saturating_record((ns / 1000).max(1));
}

/// A histogram as (value, count) pairs: exact to merge, compact for sparse data.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HistData(pub Vec<[u64; 2]>);

impl HistData {
    pub fn from_hist(h: &Histogram<u64>) -> Self {
        HistData(
            h.iter_recorded()
                .map(|v| [v.value_iterated_to(), v.count_at_value()])
                .collect(),
        )
    }

    pub fn add_to(&self, h: &mut Histogram<u64>) {
        for &[value, count] in &self.0 {
            // Values come from a histogram with the same bounds; clamp in case they do not.
            let _ = h.record_n(value.clamp(1, MAX_LATENCY_US), count);
        }
    }
}

/// What one worker measured. Counters are summed over workers; `*_secs` take the maximum.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerReport {
    pub counters: BTreeMap<String, u64>,
    pub hists: BTreeMap<String, HistData>,
    /// The first error of each kind, spelled out (first worker wins when merged).
    pub notes: BTreeMap<String, String>,
    /// Seconds from start to the end of the ramp (all connections resolved).
    pub ramp_secs: f64,
    /// Seconds the measured phase actually lasted.
    pub run_secs: f64,
    /// CPU seconds this worker's process used (user + system).
    pub cpu_secs: f64,
    /// This worker process's RSS at the end of the measured phase, in KiB.
    pub rss_kib: u64,
}

impl WorkerReport {
    pub fn add(&mut self, name: &str, v: u64) {
        *self.counters.entry(name.to_string()).or_default() += v;
    }

    pub fn put_hist(&mut self, name: &str, h: &Histogram<u64>) {
        self.hists.insert(name.to_string(), HistData::from_hist(h));
    }
}

/// Reports of all workers, merged.
#[derive(Debug)]
pub struct Merged {
    pub counters: BTreeMap<String, u64>,
    pub hists: BTreeMap<String, Histogram<u64>>,
    pub notes: BTreeMap<String, String>,
    pub ramp_secs: f64,
    pub run_secs: f64,
    /// Sum over worker processes.
    pub client_cpu_secs: f64,
    /// Sum over worker processes, in KiB.
    pub client_rss_kib: u64,
}

impl Merged {
    pub fn new(reports: &[WorkerReport]) -> Self {
        let mut m = Merged {
            counters: BTreeMap::new(),
            hists: BTreeMap::new(),
            notes: BTreeMap::new(),
            ramp_secs: 0.0,
            run_secs: 0.0,
            client_cpu_secs: 0.0,
            client_rss_kib: 0,
        };
        for r in reports {
            for (k, v) in &r.counters {
                *m.counters.entry(k.clone()).or_default() += v;
            }
            for (k, d) in &r.hists {
                d.add_to(m.hists.entry(k.clone()).or_insert_with(new_hist));
            }
            for (k, v) in &r.notes {
                m.notes.entry(k.clone()).or_insert_with(|| v.clone());
            }
            m.ramp_secs = m.ramp_secs.max(r.ramp_secs);
            m.run_secs = m.run_secs.max(r.run_secs);
            m.client_cpu_secs += r.cpu_secs;
            m.client_rss_kib += r.rss_kib;
        }
        m
    }

    pub fn get(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    pub fn hist(&self, name: &str) -> Histogram<u64> {
        self.hists.get(name).cloned().unwrap_or_else(new_hist)
    }
}

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
    /// Of those, user-space seconds (the rest is kernel time).
    pub user_secs: f64,
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

/// Percentiles of a latency histogram, in microseconds.
pub fn latency_json(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({ "count": 0 });
    }
    json!({
        "count": h.len(),
        "min": h.min(),
        "mean": (h.mean() * 10.0).round() / 10.0,
        "p50": h.value_at_quantile(0.50),
        "p90": h.value_at_quantile(0.90),
        "p99": h.value_at_quantile(0.99),
        "p99_9": h.value_at_quantile(0.999),
        "max": h.max(),
    })
}

/// "p50 1.2 ms  p90 ...", for the human summary.
pub fn latency_line(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        fmt_us(h.value_at_quantile(0.50)),
        fmt_us(h.value_at_quantile(0.90)),
        fmt_us(h.value_at_quantile(0.99)),
        fmt_us(h.value_at_quantile(0.999)),
        fmt_us(h.max())
    )
}

/// Microseconds with a readable unit.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us} us")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

/// 1234567.0 -> "1.23M".
pub fn fmt_si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// Rounds to 1 decimal for the JSON line (rates do not need more).
pub fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// `x / secs`, 0 when there is no time.
pub fn per_sec(x: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        x as f64 / secs
    } else {
        0.0
    }
}

/// All counters whose name is one of the error kinds, plus their total, and the refused
/// upgrades by HTTP status (`handshake_status`, from the `status@CODE` counters; they are
/// already in `handshake_rejected`).
pub fn errors_json(m: &Merged, names: &[&str]) -> (Value, u64) {
    let mut map = Map::new();
    let mut total = 0;
    let mut statuses = Map::new();
    for (k, v) in &m.counters {
        if names.contains(&k.as_str()) && *v > 0 {
            map.insert(k.clone(), json!(v));
            total += v;
        } else if let Some(code) = k.strip_prefix("status@") {
            statuses.insert(code.to_string(), json!(v));
        }
    }
    map.insert("total".into(), json!(total));
    if !statuses.is_empty() {
        map.insert("handshake_status".into(), Value::Object(statuses));
    }
    if !m.notes.is_empty() {
        map.insert("first".into(), json!(m.notes));
    }
    (Value::Object(map), total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_merge_exactly_through_hist_data() {
        let mut a = new_hist();
        let mut b = new_hist();
        for v in 1..=1000u64 {
            a.record(v).ok();
            b.record(v * 1000).ok();
        }
        let mut ra = WorkerReport::default();
        ra.put_hist("x", &a);
        ra.add("n", 3);
        let mut rb = WorkerReport::default();
        rb.put_hist("x", &b);
        rb.add("n", 4);
        let json = serde_json::to_string(&rb).expect("serializes");
        let rb: WorkerReport = serde_json::from_str(&json).expect("parses");
        let m = Merged::new(&[ra, rb]);
        let h = m.hist("x");
        let mut direct = a.clone();
        direct.add(&b).ok();
        assert_eq!(h.len(), 2000);
        assert_eq!(h.max(), direct.max());
        assert_eq!(h.value_at_quantile(0.5), direct.value_at_quantile(0.5));
        assert_eq!(h.value_at_quantile(0.99), direct.value_at_quantile(0.99));
        assert_eq!(m.get("n"), 7);
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_us(12), "12 us");
        assert_eq!(fmt_us(1500), "1.50 ms");
        assert_eq!(fmt_si(1_234_567.0), "1.23M");
        assert_eq!(fmt_si(45_600.0), "45.6k");
    }
}
