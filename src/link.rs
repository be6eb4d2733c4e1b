//! The state of a node's link to an outside service (the Redis relay, the AMQP bridge), as
//! `/health` shows it, and the atomic cell its thread writes and everyone reads.
//!
//! Owns only the three states and their names; what "up" means is each link's business.

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
