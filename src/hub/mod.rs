//! Per-worker delivery groups: which local connections receive something published to a
//! group (the `/broadcast` endpoint's members, a chat room's members on one worker).
//!
//! Owns membership only, as plain ids (the reactor's `ConnId`); no sockets, no frames, no
//! wire protocol. Applications keep one [`Group`] per audience and hand each member the same
//! encoded frame through the reactor.

/// Slot of a member in its group, kept by the member for O(1) removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(pub u32);

/// A set of members with O(1) join and leave and a dense slice to iterate for delivery.
///
/// Invariant: `members[s]` is the member whose stored slot is `s`.
#[derive(Debug, Clone)]
pub struct Group<T> {
    members: Vec<T>,
}

impl<T> Default for Group<T> {
    fn default() -> Self {
        Self {
            members: Vec::new(),
        }
    }
}

impl<T: Copy> Group<T> {
    /// Adds a member; returns its slot.
    pub fn join(&mut self, member: T) -> Slot {
        self.members.push(member);
        Slot((self.members.len() - 1) as u32)
    }

    /// Removes the member at `slot`. Returns the member that moved into `slot` (its stored
    /// slot must be updated), if any.
    pub fn leave(&mut self, slot: Slot) -> Option<T> {
        let s = slot.0 as usize;
        if s >= self.members.len() {
            return None;
        }
        self.members.swap_remove(s);
        self.members.get(s).copied()
    }

    /// Members, in no particular order.
    pub fn members(&self) -> &[T] {
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
