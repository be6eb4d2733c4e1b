//! What a node's links to outside services (the Redis relay, the AMQP bridge) share: their
//! state as `/health` shows it, the atomic cell a link's thread writes and everyone reads, and
//! the [`WorkerSink`] through which the thread hands events to the workers.
//!
//! Owns only these shapes; what "up" means, and which worker gets which event, is each link's
//! business.

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// A link's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LinkState {
    /// Not configured.
    Off = 0,
    /// Connected (and, for the bridge, topology declared and consuming).
    Up = 1,
    /// Configured, not connected (yet or any more).
    Down = 2,
}

impl LinkState {
    /// `off`, `up`, `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// The state of a configured link, written by its thread: `Up` or `Down`, `Down` at first.
#[derive(Debug)]
pub struct StateCell(AtomicU8);

impl Default for StateCell {
    fn default() -> Self {
        Self(AtomicU8::new(LinkState::Down as u8))
    }
}

impl StateCell {
    /// `Up` or `Down` (a link that has a cell is configured).
    pub fn get(&self) -> LinkState {
        match self.0.load(Relaxed) {
            1 => LinkState::Up,
            _ => LinkState::Down,
        }
    }

    /// Sets it.
    pub fn set(&self, s: LinkState) {
        self.0.store(s as u8, Relaxed);
    }
}

/// How a link's thread reaches the workers (it never touches a worker's state).
///
/// `deliver` must not block (an unbounded inbox) and does not wake the worker; `wake` is
/// called once per worker per iteration of the link's thread, after its events were
/// delivered; `route(key)` (< `workers`) is the worker for events that belong to a key (a
/// channel, an owner).
pub struct WorkerSink<E, K: ?Sized> {
    /// Hands an event to a worker (into its inbox, without waking it).
    pub deliver: Box<dyn Fn(usize, E) + Send>,
    /// Wakes a worker.
    pub wake: Box<dyn Fn(usize) + Send>,
    /// The worker for a key's events.
    pub route: Box<dyn Fn(&K) -> usize + Send>,
    /// Number of workers.
    pub workers: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell() {
        let c = StateCell::default();
        assert_eq!(c.get(), LinkState::Down);
        c.set(LinkState::Up);
        assert_eq!(c.get().as_str(), "up");
        c.set(LinkState::Off); // a configured link reads as down, never off
        assert_eq!(c.get(), LinkState::Down);
        assert_eq!(LinkState::Off.as_str(), "off");
    }
}
