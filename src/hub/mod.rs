//! Per-worker delivery groups: who on this worker receives a published frame.
//!
//! Owns membership (connection keys of this worker, never sockets) and the frames published
//! during one event-loop iteration. A frame is encoded once by the publisher into shared bytes;
//! the reactor hands the same `Arc` to the other workers' inboxes and queues it to every local
//! member. The hub must not touch sockets, mio or the wire protocol; rooms and users of the
//! chat service grow here.

/// A complete, encoded server frame shared by every recipient (cloning is a refcount bump).
pub type SharedFrame = bytes::Bytes;

/// Slot of a member in its group, kept by the connection for O(1) removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(pub u32);

/// What one worker sends another.
#[derive(Debug)]
pub enum WorkerMsg {
    /// Deliver this frame to every local `/broadcast` member.
    Broadcast(SharedFrame),
    /// Stop accepting, send 1001 to everyone, drain, exit.
    Shutdown,
}

/// A set of local connections with O(1) join and leave.
///
/// Invariant: `members[s]` is the key of the connection whose stored slot is `s`.
#[derive(Debug, Default)]
pub struct Group {
    members: Vec<usize>,
}

impl Group {
    /// Adds a connection; returns its slot.
    pub fn join(&mut self, key: usize) -> Slot {
        self.members.push(key);
        Slot((self.members.len() - 1) as u32)
    }

    /// Removes the member at `slot`. Returns the key of the member that moved into `slot`
    /// (its stored slot must be updated), if any.
    pub fn leave(&mut self, slot: Slot) -> Option<usize> {
        let s = slot.0 as usize;
        if s >= self.members.len() {
            return None;
        }
        self.members.swap_remove(s);
        self.members.get(s).copied()
    }

    /// Member keys, in no particular order.
    pub fn members(&self) -> &[usize] {
        &self.members
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// No members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// One worker's routing state.
#[derive(Debug, Default)]
pub struct Hub {
    /// Connections on `/broadcast`.
    pub broadcast: Group,
    /// Frames published by local connections during this iteration, not yet fanned out.
    published: Vec<SharedFrame>,
}

impl Hub {
    /// Publishes a frame to every `/broadcast` member of every worker.
    pub fn publish(&mut self, frame: SharedFrame) {
        self.published.push(frame);
    }

    /// Frames published since the last call, for fan-out.
    pub fn take_published(&mut self, into: &mut Vec<SharedFrame>) {
        into.append(&mut self.published);
    }

    /// True when nothing waits for fan-out.
    pub fn has_published(&self) -> bool {
        !self.published.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_leave_keeps_slots_consistent() {
        let mut g = Group::default();
        let a = g.join(10);
        let b = g.join(20);
        let c = g.join(30);
        assert_eq!((a, b, c), (Slot(0), Slot(1), Slot(2)));
        // Removing the first moves the last into slot 0.
        assert_eq!(g.leave(a), Some(30));
        assert_eq!(g.members(), &[30, 20]);
        // Removing the last moves nothing.
        assert_eq!(g.leave(Slot(1)), None);
        assert_eq!(g.members(), &[30]);
        assert_eq!(g.leave(Slot(5)), None);
    }
}
