//! The worker's coarse clock: milliseconds since the worker started, as a wrapping `u32`.
//!
//! Read once per event-loop iteration and passed down, so per-connection timestamps cost 4
//! bytes and no code below the reactor reads the system clock. Comparisons wrap correctly
//! for intervals under 24 days ([`crate::config::Config::validate`] enforces that).

use std::time::{Duration, Instant};

/// Milliseconds on the worker clock.
pub type Millis = u32;

/// The worker's time source.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    /// Now, in wrapping milliseconds.
    pub(crate) fn now(&self) -> Millis {
        self.now64() as u32
    }

    /// Now, in milliseconds since the worker started (never wraps).
    pub(crate) fn now64(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
}

/// `d` in milliseconds (validated configs keep it far below `u32::MAX / 2`).
pub(crate) fn millis(d: Duration) -> Millis {
    d.as_millis().min(u128::from(u32::MAX / 2)) as u32
}

/// Milliseconds elapsed from `since` to `now`, across wrap-around.
pub(crate) fn elapsed(now: Millis, since: Millis) -> Millis {
    now.wrapping_sub(since)
}

/// True once `now` is at or past `deadline`.
pub(crate) fn reached(now: Millis, deadline: Millis) -> bool {
    (now.wrapping_sub(deadline) as i32) >= 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps() {
        assert!(reached(5, u32::MAX - 5));
        assert!(!reached(u32::MAX - 5, 5));
        assert_eq!(elapsed(5, u32::MAX - 5), 11);
        assert!(reached(100, 100));
    }
}
