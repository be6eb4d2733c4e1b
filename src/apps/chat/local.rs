//! What one worker keeps about its own chat connections: the users they belong to (a user may
//! have several devices) and, per room, the local members a room's frames are queued to.
//!
//! Owns local membership only; a room's order, history and global counts live at its home
//! (`home.rs`). No sockets, no frames.

use std::collections::HashMap;
use std::sync::Arc;

use slab::Slab;

use crate::hub::{Group, Slot};
use crate::reactor::ConnId;

/// A member of a room on this worker: the connection and its user (a key of [`Local`]'s
/// users, so "everyone but this user" is an integer comparison).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The connection.
    pub conn: ConnId,
    /// Its user's local key.
    pub user: u32,
}

/// A user with connections on this worker.
#[derive(Debug)]
pub struct LocalUser {
    /// The user's id.
    pub id: Arc<str>,
    /// Its connections here.
    pub conns: Vec<ConnId>,
}

/// One worker's users and room members.
#[derive(Debug, Default)]
pub struct Local {
    users: Slab<LocalUser>,
    by_id: HashMap<Arc<str>, usize>,
    rooms: HashMap<Arc<str>, Group<Member>>,
}

impl Local {
    /// Registers a connection of user `id`; returns the user's local key and its shared id.
    pub fn attach(&mut self, id: &str, conn: ConnId) -> (u32, Arc<str>) {
        let key = match self.by_id.get(id) {
            Some(&k) => k,
            None => {
                let id: Arc<str> = id.into();
                let k = self.users.insert(LocalUser {
                    id: id.clone(),
                    conns: Vec::new(),
                });
                self.by_id.insert(id, k);
                k
            }
        };
        let u = &mut self.users[key];
        u.conns.push(conn);
        (key as u32, u.id.clone())
    }

    /// A connection of local user `user` is gone.
    pub fn detach(&mut self, user: u32, conn: ConnId) {
        let key = user as usize;
        let Some(u) = self.users.get_mut(key) else {
            return;
        };
        u.conns.retain(|&c| c != conn);
        if u.conns.is_empty() {
            let u = self.users.remove(key);
            self.by_id.remove(&u.id);
        }
    }

    /// The local user with this id.
    pub fn user_by_id(&self, id: &str) -> Option<(u32, &LocalUser)> {
        let &k = self.by_id.get(id)?;
        Some((k as u32, &self.users[k]))
    }

    /// Local users.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Adds a local member to `room`.
    pub fn join(&mut self, room: &Arc<str>, member: Member) -> Slot {
        self.rooms.entry(room.clone()).or_default().join(member)
    }

    /// Removes the local member at `slot` of `room`; returns the member moved into `slot`.
    /// A room's group goes when its last local member does.
    pub fn leave(&mut self, room: &str, slot: Slot) -> Option<Member> {
        let group = self.rooms.get_mut(room)?;
        let moved = group.leave(slot);
        if group.is_empty() {
            self.rooms.remove(room);
        }
        moved
    }

    /// The local members of `room`.
    pub fn members(&self, room: &str) -> Option<&Group<Member>> {
        self.rooms.get(room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(key: u32) -> ConnId {
        ConnId::for_tests(key, 1)
    }

    #[test]
    fn users_are_shared_by_their_connections() {
        let mut l = Local::default();
        let (a, _) = l.attach("ali", id(1));
        let (b, _) = l.attach("ali", id(2));
        assert_eq!(a, b);
        let (v, _) = l.attach("vali", id(3));
        assert_ne!(a, v);
        l.detach(a, id(1));
        assert_eq!(
            l.user_by_id("ali").map(|(_, u)| u.conns.clone()),
            Some(vec![id(2)])
        );
        l.detach(a, id(2));
        assert!(l.user_by_id("ali").is_none());
        assert_eq!(l.user_count(), 1);
    }

    #[test]
    fn room_groups_come_and_go() {
        let mut l = Local::default();
        let room: Arc<str> = "r".into();
        let m1 = Member {
            conn: id(1),
            user: 0,
        };
        let m2 = Member {
            conn: id(2),
            user: 0,
        };
        let s1 = l.join(&room, m1);
        l.join(&room, m2);
        assert_eq!(l.leave("r", s1), Some(m2));
        assert_eq!(l.members("r").map(|g| g.len()), Some(1));
        assert_eq!(l.leave("r", s1), None);
        assert!(l.members("r").is_none());
    }
}
