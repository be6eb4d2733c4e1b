//! Ordering of numbered deliveries as one receiver sees them: in order (possibly after a gap),
//! late (an earlier number seen for the first time after a later one) or duplicated. Used by
//! the broadcast mode (per receiver and sender) and the chat mode (per receiver and room).
//! Pure bookkeeping: no IO, no clock.

/// Verdict on one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Higher than anything seen so far; `skipped` numbers between the previous highest and
    /// this one have not arrived (yet: they may still come, late).
    InOrder { skipped: u64 },
    /// Lower than the highest seen, and new.
    Late,
    /// Seen before.
    Duplicate,
}

/// The highest number seen plus which of the 64 below it arrived (16 bytes).
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqWindow {
    /// Next number expected (one past the highest seen).
    next: u64,
    /// Bit i set: number `next - 1 - i` was received.
    seen: u64,
}

impl SeqWindow {
    /// A window that expects `first` next (nothing before it is expected).
    pub fn starting_at(first: u64) -> Self {
        SeqWindow {
            next: first,
            seen: 0,
        }
    }

    pub fn observe(&mut self, seq: u64) -> Seen {
        if seq >= self.next {
            let skipped = seq - self.next;
            let shift = skipped + 1;
            self.seen = if shift >= 64 {
                1
            } else {
                (self.seen << shift) | 1
            };
            self.next = seq + 1;
            return Seen::InOrder { skipped };
        }
        let back = self.next - 1 - seq;
        if back >= 64 {
            return Seen::Late; // outside the window: counted late, cannot tell duplicates
        }
        let bit = 1u64 << back;
        if self.seen & bit != 0 {
            Seen::Duplicate
        } else {
            self.seen |= bit;
            Seen::Late
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_deliveries() {
        let ok = |skipped| Seen::InOrder { skipped };
        let mut s = SeqWindow::default();
        assert_eq!(s.observe(0), ok(0));
        assert_eq!(s.observe(1), ok(0));
        assert_eq!(s.observe(1), Seen::Duplicate);
        assert_eq!(s.observe(4), ok(2)); // 2 and 3 missing so far
        assert_eq!(s.observe(3), Seen::Late);
        assert_eq!(s.observe(3), Seen::Duplicate);
        assert_eq!(s.observe(2), Seen::Late);
        assert_eq!(s.observe(5), ok(0));
        assert_eq!(s.observe(1000), ok(994));
        assert_eq!(s.observe(5), Seen::Late); // beyond the window
        assert_eq!(s.observe(999), Seen::Late);
        assert_eq!(s.observe(999), Seen::Duplicate);
    }

    #[test]
    fn a_window_can_start_anywhere() {
        let mut s = SeqWindow::starting_at(42);
        assert_eq!(s.observe(42), Seen::InOrder { skipped: 0 });
        assert_eq!(s.observe(41), Seen::Late);
        assert_eq!(s.observe(44), Seen::InOrder { skipped: 1 });
    }
}
