//! Counters a worker keeps about itself, readable from any thread.
//!
//! Each worker is the only writer of its own counters (a relaxed load + store, no locked
//! instruction); readers sum all workers. `/metrics` (the side door) exports them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One worker's counters.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Open connections (any phase).
    pub connections: AtomicU64,
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Upgrades completed.
    pub handshakes: AtomicU64,
    /// Requests the reactor refused with an HTTP error (malformed, not a valid upgrade).
    pub rejected: AtomicU64,
    /// Data messages received.
    pub messages_in: AtomicU64,
    /// Data messages queued to connections (one per recipient).
    pub messages_out: AtomicU64,
    /// Bytes read from sockets.
    pub bytes_in: AtomicU64,
    /// Bytes written to sockets.
    pub bytes_out: AtomicU64,
    /// Connections failed for a protocol violation.
    pub protocol_errors: AtomicU64,
    /// Connections evicted as slow consumers.
    pub slow_consumers: AtomicU64,
    /// Connections closed by a timeout (handshake, idle, close, write stall).
    pub timeouts: AtomicU64,
    /// accept(2) failures for lack of resources (EMFILE, ENFILE, ...).
    pub accept_errors: AtomicU64,
    /// Connections refused at the connection limit.
    pub over_limit: AtomicU64,
}

/// Adds `n` to a counter this thread alone writes.
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

/// Subtracts 1 from a counter this thread alone writes.
pub(crate) fn dec(c: &AtomicU64) {
    c.store(c.load(Relaxed).wrapping_sub(1), Relaxed);
}

/// Sum of the counters of all workers, at one moment per counter.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// See [`WorkerStats`].
    pub connections: u64,
    /// See [`WorkerStats`].
    pub accepted: u64,
    /// See [`WorkerStats`].
    pub handshakes: u64,
    /// See [`WorkerStats`].
    pub rejected: u64,
    /// See [`WorkerStats`].
    pub messages_in: u64,
    /// See [`WorkerStats`].
    pub messages_out: u64,
    /// See [`WorkerStats`].
    pub bytes_in: u64,
    /// See [`WorkerStats`].
    pub bytes_out: u64,
    /// See [`WorkerStats`].
    pub protocol_errors: u64,
    /// See [`WorkerStats`].
    pub slow_consumers: u64,
    /// See [`WorkerStats`].
    pub timeouts: u64,
    /// See [`WorkerStats`].
    pub accept_errors: u64,
    /// See [`WorkerStats`].
    pub over_limit: u64,
}

impl StatsSnapshot {
    /// Sums the given workers' counters.
    pub fn sum<'a>(workers: impl IntoIterator<Item = &'a WorkerStats>) -> Self {
        let mut s = Self::default();
        for w in workers {
            s.connections += w.connections.load(Relaxed);
            s.accepted += w.accepted.load(Relaxed);
            s.handshakes += w.handshakes.load(Relaxed);
            s.rejected += w.rejected.load(Relaxed);
            s.messages_in += w.messages_in.load(Relaxed);
            s.messages_out += w.messages_out.load(Relaxed);
            s.bytes_in += w.bytes_in.load(Relaxed);
            s.bytes_out += w.bytes_out.load(Relaxed);
            s.protocol_errors += w.protocol_errors.load(Relaxed);
            s.slow_consumers += w.slow_consumers.load(Relaxed);
            s.timeouts += w.timeouts.load(Relaxed);
            s.accept_errors += w.accept_errors.load(Relaxed);
            s.over_limit += w.over_limit.load(Relaxed);
        }
        s
    }
}
