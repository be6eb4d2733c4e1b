//! The slab of one worker's connections plus what they share: the mask-key generator, the
//! list of connections with queued bytes, and a count of connections per state. Workloads
//! reach open connections through [`Conns::io`]; the slab management (insert, take, state
//! moves, deferred key reuse) is the driver's. No sockets are read or written here.

use crate::conn::{Conn, ConnIo, ConnKey, State};
use crate::rng::XorShift;

/// Keys are freed only after the event batch that closed them, so a stale event never
/// reaches a new connection in the same slot. Invariant: `counts[state_index(s)]` is the
/// number of live connections in state `s`.
pub struct Conns {
    slots: Vec<Option<Conn>>,
    free: Vec<usize>,
    to_free: Vec<usize>,
    dirty: Vec<usize>,
    pub rng: XorShift,
    /// Live connections per state, indexed by `state_index`.
    counts: [u64; 4],
}

fn state_index(s: State) -> usize {
    match s {
        State::Connecting => 0,
        State::Handshaking => 1,
        State::Open => 2,
        State::Closing => 3,
    }
}

impl Conns {
    pub fn new(seed: u64) -> Self {
        Conns {
            slots: Vec::new(),
            free: Vec::new(),
            to_free: Vec::new(),
            dirty: Vec::new(),
            rng: XorShift::new(seed),
            counts: [0; 4],
        }
    }

    /// A handle to send on an open connection; its queue is flushed after the callback.
    pub fn io(&mut self, key: ConnKey) -> Option<ConnIo<'_>> {
        let conn = self.slots.get_mut(key.0)?.as_mut()?;
        if conn.state != State::Open {
            return None;
        }
        if !conn.tx.dirty {
            conn.tx.dirty = true;
            self.dirty.push(key.0);
        }
        Some(conn.io(&mut self.rng))
    }

    /// Keys of all open connections.
    pub fn open_keys(&self) -> Vec<ConnKey> {
        self.slots
            .iter()
            .flatten()
            .filter(|c| c.state == State::Open)
            .map(|c| c.key)
            .collect()
    }

    pub fn open(&self) -> u64 {
        self.counts[2]
    }

    /// Connecting or upgrading.
    pub fn pending(&self) -> u64 {
        self.counts[0] + self.counts[1]
    }

    pub fn alive(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The key the next [`insert`](Self::insert) will use.
    pub(crate) fn next_key(&self) -> ConnKey {
        ConnKey(self.free.last().copied().unwrap_or(self.slots.len()))
    }

    /// Number of slots (live or free); keys are below it.
    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// The live connection in slot `idx` and the shared mask-key generator.
    pub(crate) fn get_mut(&mut self, idx: usize) -> Option<(&mut Conn, &mut XorShift)> {
        let conn = self.slots.get_mut(idx)?.as_mut()?;
        Some((conn, &mut self.rng))
    }

    pub(crate) fn contains(&self, idx: usize) -> bool {
        matches!(self.slots.get(idx), Some(Some(_)))
    }

    /// Every live connection.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Conn> {
        self.slots.iter().flatten()
    }

    /// The connections with queued bytes (the list is emptied; hand it back with
    /// [`return_dirty`](Self::return_dirty) to keep its capacity).
    pub(crate) fn take_dirty(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.dirty)
    }

    pub(crate) fn return_dirty(&mut self, mut list: Vec<usize>) {
        if self.dirty.is_empty() {
            list.clear();
            self.dirty = list;
        }
    }

    pub(crate) fn insert(&mut self, make: impl FnOnce(ConnKey) -> Conn) -> ConnKey {
        let idx = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let conn = make(ConnKey(idx));
        self.counts[state_index(conn.state)] += 1;
        self.slots[idx] = Some(conn);
        ConnKey(idx)
    }

    pub(crate) fn take(&mut self, idx: usize) -> Option<Conn> {
        let conn = self.slots.get_mut(idx)?.take()?;
        self.counts[state_index(conn.state)] -= 1;
        self.to_free.push(idx);
        Some(conn)
    }

    /// Records that a live connection moved from one state to another.
    pub(crate) fn moved(&mut self, from: State, to: State) {
        if from != to {
            self.counts[state_index(from)] -= 1;
            self.counts[state_index(to)] += 1;
        }
    }

    /// Makes the keys of connections taken since the last call reusable.
    pub(crate) fn release_closed(&mut self) {
        self.free.append(&mut self.to_free);
    }
}
