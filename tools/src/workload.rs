//! The seam between the event loop and the traffic patterns: the `Workload` trait that each
//! mode implements. Callbacks run on the worker's thread between socket reads; they queue
//! frames through `ConnIo` / `Conns` and never block. Knows no mode and no socket.

use crate::conn::{ConnIo, ConnKey};
use crate::conns::Conns;
use crate::report::WorkerReport;
use corecast::ws::DataKind;
use std::borrow::Cow;

/// A traffic pattern.
pub trait Workload {
    /// The request target (path and query) for connection `global`; default: `path`.
    fn request_target<'p>(&self, path: &'p str, _global: u64) -> Cow<'p, str> {
        Cow::Borrowed(path)
    }
    /// A connection finished its upgrade.
    fn on_open(&mut self, io: &mut ConnIo<'_>, now_ns: u64);
    /// One complete data message arrived (any phase).
    fn on_message(&mut self, io: &mut ConnIo<'_>, kind: DataKind, payload: &[u8], now_ns: u64);
    /// A connection ended; `clean` when the close handshake completed.
    fn on_closed(&mut self, _key: ConnKey, _global: u64, _clean: bool, _now_ns: u64) {}
    /// Every open connection finished the workload's own setup (e.g. joining a room); the
    /// ramp waits for it (within the connect timeout).
    fn is_ready(&self) -> bool {
        true
    }
    /// The run starts now and ends at `end_ns`; the measured window is its last `--duration`
    /// (it starts after the warm-up, if the mode has one).
    fn on_start(&mut self, _conns: &mut Conns, _now_ns: u64, _end_ns: u64) {}
    /// Called after every batch of events during the run (writes it queues are flushed with
    /// the batch's), and at least every `tick_ns()`.
    fn on_tick(&mut self, _conns: &mut Conns, _now_ns: u64) {}
    /// Longest wait between `on_tick` calls in ns, if the workload paces itself.
    fn tick_ns(&self) -> Option<u64> {
        None
    }
    /// The run is over: stop sending.
    fn on_stop(&mut self, _now_ns: u64) {}
    /// Nothing is in flight any more (the drain phase may end early).
    fn is_drained(&self) -> bool {
        true
    }
    /// Connections are replaced as soon as they end during the run (connect mode).
    fn churns(&self) -> bool {
        false
    }
    /// Messages handled so far (for the progress line).
    fn progress_count(&self) -> u64;
    /// Adds this workload's counters and histograms to the worker report.
    fn report(&self, out: &mut WorkerReport);
}
