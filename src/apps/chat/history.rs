//! A room's history ring: the newest messages with their seq, as the exact JSON objects that
//! were delivered (shared bytes: keeping one costs a refcount, not a copy).
//!
//! Owns which messages are kept and what a `since` or `limit` request gets back, including
//! whether that answer is `complete`.

use std::collections::VecDeque;

use bytes::Bytes;

/// The newest `capacity` messages of one room.
///
/// Invariant: seqs are consecutive and increasing from front to back.
#[derive(Debug)]
pub struct History {
    entries: VecDeque<(u64, Bytes)>,
    capacity: usize,
}

impl History {
    /// An empty ring keeping at most `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            capacity,
        }
    }

    /// Appends message `seq` (the room's seq right after the previous one).
    pub fn push(&mut self, seq: u64, json: Bytes) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() == self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back((seq, json));
    }

    /// Messages kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Nothing kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every kept message with seq > `since`, oldest first, and whether that is every message
    /// after `since`. `last` is the room's last seq. A `since` beyond `last` means the client
    /// saw an earlier room of the same name (removed after its TTL and created again): it
    /// gets every kept message of this one, with `complete` false.
    pub fn since(&self, since: u64, last: u64) -> (impl Iterator<Item = &Bytes>, bool) {
        let (skip, complete) = if since > last {
            (0, false)
        } else {
            let first = self.entries.front().map_or(last + 1, |(s, _)| *s);
            // Missing: seqs since+1 .. first-1 were dropped from the ring.
            let complete = first <= since + 1;
            (
                since.saturating_sub(first - 1).min(self.len() as u64) as usize,
                complete,
            )
        };
        (self.entries.iter().skip(skip).map(|(_, j)| j), complete)
    }

    /// The newest `limit` messages, oldest first, and whether nothing older was lost (the
    /// answer reaches back to the room's first message or holds `limit` messages).
    pub fn newest(&self, limit: usize) -> (impl Iterator<Item = &Bytes>, bool) {
        let skip = self.len().saturating_sub(limit);
        let complete = skip > 0
            || limit == 0
            || self.entries.front().is_none_or(|(s, _)| *s == 1)
            || self.len() >= limit;
        (self.entries.iter().skip(skip).map(|(_, j)| j), complete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(cap: usize, upto: u64) -> History {
        let mut h = History::new(cap);
        for s in 1..=upto {
            h.push(s, Bytes::from(s.to_string()));
        }
        h
    }

    fn seqs<'a>(it: impl Iterator<Item = &'a Bytes>) -> Vec<u64> {
        it.map(|b| std::str::from_utf8(b).unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn since_within_the_ring_is_complete() {
        let h = ring(5, 10); // keeps 6..=10
        let (m, c) = h.since(7, 10);
        assert_eq!((seqs(m), c), (vec![8, 9, 10], true));
        let (m, c) = h.since(5, 10);
        assert_eq!((seqs(m), c), (vec![6, 7, 8, 9, 10], true));
        let (m, c) = h.since(10, 10);
        assert_eq!((seqs(m), c), (vec![], true));
    }

    #[test]
    fn since_before_the_ring_is_incomplete() {
        let h = ring(5, 10);
        let (m, c) = h.since(4, 10);
        assert_eq!((seqs(m), c), (vec![6, 7, 8, 9, 10], false));
        let (m, c) = h.since(0, 10);
        assert_eq!((seqs(m), c), (vec![6, 7, 8, 9, 10], false));
        // Nothing lost yet: since 0 is complete.
        let h = ring(5, 3);
        let (m, c) = h.since(0, 3);
        assert_eq!((seqs(m), c), (vec![1, 2, 3], true));
    }

    #[test]
    fn since_beyond_the_last_seq_means_a_new_room() {
        let h = ring(5, 3);
        let (m, c) = h.since(41, 3);
        assert_eq!((seqs(m), c), (vec![1, 2, 3], false));
    }

    #[test]
    fn empty_ring() {
        let h = ring(0, 0);
        let (m, c) = h.since(0, 0);
        assert_eq!((seqs(m), c), (vec![], true));
        // Capacity 0 keeps nothing: anything after `since` is lost.
        let h = ring(0, 4);
        let (m, c) = h.since(2, 4);
        assert_eq!((seqs(m), c), (vec![], false));
        let (m, c) = h.since(4, 4);
        assert_eq!((seqs(m), c), (vec![], true));
    }

    #[test]
    fn newest() {
        let h = ring(5, 10);
        let (m, c) = h.newest(3);
        assert_eq!((seqs(m), c), (vec![8, 9, 10], true));
        // Asking for more than is kept, with older messages lost.
        let (m, c) = h.newest(50);
        assert_eq!((seqs(m), c), (vec![6, 7, 8, 9, 10], false));
        let h = ring(5, 2);
        let (m, c) = h.newest(50);
        assert_eq!((seqs(m), c), (vec![1, 2], true));
    }
}
