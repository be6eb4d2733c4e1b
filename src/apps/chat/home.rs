//! What a worker keeps as the *home* of rooms and users hashed to it: a room's order (`seq`),
//! history ring and membership counts (users, and connections per worker: who must receive
//! its messages); a user's connections per worker (where private messages and notifications
//! go). Every change to these goes through the home, one message at a time, so a room has one
//! order and one count.
//!
//! Owns this bookkeeping only; sending is done by the chat service with what these methods
//! return. No sockets, no frames, no clock reads (times come in).

use std::collections::HashMap;
use std::sync::Arc;

use super::history::History;
use crate::reactor::Millis;

/// A room homed on this worker. It exists from its first join until it has been empty for
/// the room TTL (`general` never expires), so a rejoin within the TTL continues its seq.
#[derive(Debug)]
pub struct HomeRoom {
    /// Last seq given out (0: none yet). Seqs are 1, 2, 3, … per room.
    pub seq: u64,
    /// The newest messages.
    pub history: History,
    /// Connections in the room per user (all workers).
    users: HashMap<Arc<str>, u32>,
    /// Connections in the room per worker (index = worker id).
    per_worker: Vec<u32>,
    /// Connections in the room, all workers.
    conns: u32,
    /// When the last member left; `None` while it has members.
    pub empty_since: Option<Millis>,
}

impl HomeRoom {
    fn new(history: usize, workers: usize, now: Millis) -> Self {
        Self {
            seq: 0,
            history: History::new(history),
            users: HashMap::new(),
            per_worker: vec![0; workers],
            conns: 0,
            empty_since: Some(now),
        }
    }

    /// A connection of `user` on `worker` joined. True if it is the user's first in the room.
    pub fn add(&mut self, user: &Arc<str>, worker: usize) -> bool {
        self.conns += 1;
        if let Some(n) = self.per_worker.get_mut(worker) {
            *n += 1;
        }
        self.empty_since = None;
        let n = self.users.entry(user.clone()).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// A connection of `user` on `worker` left. True if it was the user's last in the room.
    /// A leave for a connection that was never counted changes nothing.
    pub fn remove(&mut self, user: &str, worker: usize, now: Millis) -> bool {
        let Some(n) = self.users.get_mut(user) else {
            return false;
        };
        *n -= 1;
        let gone = *n == 0;
        if gone {
            self.users.remove(user);
        }
        if let Some(w) = self.per_worker.get_mut(worker) {
            *w = w.saturating_sub(1);
        }
        self.conns = self.conns.saturating_sub(1);
        if self.conns == 0 {
            self.empty_since = Some(now);
        }
        gone
    }

    /// Members, counted in users.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Member connections, all workers.
    pub fn conn_count(&self) -> u32 {
        self.conns
    }

    /// The members' ids, sorted.
    pub fn users_sorted(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.users.keys().map(|u| &**u).collect();
        v.sort_unstable();
        v
    }

    /// Workers that hold members.
    pub fn workers(&self) -> impl Iterator<Item = usize> + '_ {
        self.per_worker
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(w, _)| w)
    }

    /// Takes the next seq.
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

/// The rooms homed on one worker.
#[derive(Debug)]
pub struct HomeRooms {
    rooms: HashMap<Arc<str>, HomeRoom>,
    history: usize,
    workers: usize,
}

impl HomeRooms {
    /// No rooms yet; each keeps `history` messages.
    pub fn new(history: usize, workers: usize) -> Self {
        Self {
            rooms: HashMap::new(),
            history,
            workers,
        }
    }

    /// The room, created if it does not exist.
    pub fn get_or_create(&mut self, name: &Arc<str>, now: Millis) -> &mut HomeRoom {
        let (history, workers) = (self.history, self.workers);
        self.rooms
            .entry(name.clone())
            .or_insert_with(|| HomeRoom::new(history, workers, now))
    }

    /// The room, if it exists (has members, or had them within the TTL).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut HomeRoom> {
        self.rooms.get_mut(name)
    }

    /// The room, if it exists.
    pub fn get(&self, name: &str) -> Option<&HomeRoom> {
        self.rooms.get(name)
    }

    /// Every room, with its name.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &HomeRoom)> {
        self.rooms.iter()
    }

    /// (name, users) of every room that has members.
    pub fn with_members(&self) -> Vec<(Arc<str>, u32)> {
        self.rooms
            .iter()
            .filter(|(_, r)| r.conns > 0)
            .map(|(n, r)| (n.clone(), r.users.len() as u32))
            .collect()
    }

    /// Removes rooms empty for at least `ttl` (never `keep`). Returns how many.
    pub fn expire(&mut self, now: Millis, ttl: Millis, keep: &str) -> usize {
        let before = self.rooms.len();
        self.rooms.retain(|name, r| {
            &**name == keep || r.empty_since.is_none_or(|t| now.wrapping_sub(t) < ttl)
        });
        before - self.rooms.len()
    }
}

/// Where a user is connected: (worker, connections) pairs. One place inline (the common case:
/// one device, or all devices on one worker), more on the heap.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Places {
    One(u32, u32),
    Many(Vec<(usize, u32)>),
}

/// Where each user homed on this worker has connections.
#[derive(Debug, Default)]
pub struct Directory {
    users: HashMap<Arc<str>, Places>,
}

impl Directory {
    /// A connection of `user` opened on `worker`.
    pub fn up(&mut self, user: Arc<str>, worker: usize) {
        match self.users.get_mut(&user) {
            None => {
                self.users.insert(user, Places::One(worker as u32, 1));
            }
            Some(Places::One(w, n)) if *w as usize == worker => *n += 1,
            Some(p @ Places::One(..)) => {
                if let Places::One(w, n) = *p {
                    *p = Places::Many(vec![(w as usize, n), (worker, 1)]);
                }
            }
            Some(Places::Many(v)) => match v.iter_mut().find(|(w, _)| *w == worker) {
                Some((_, n)) => *n += 1,
                None => v.push((worker, 1)),
            },
        }
    }

    /// A connection of `user` on `worker` closed.
    pub fn down(&mut self, user: &str, worker: usize) {
        let Some(p) = self.users.get_mut(user) else {
            return;
        };
        let empty = match p {
            Places::One(w, n) if *w as usize == worker => {
                *n -= 1;
                *n == 0
            }
            Places::One(..) => false,
            Places::Many(v) => {
                if let Some(i) = v.iter().position(|(w, _)| *w == worker) {
                    v[i].1 -= 1;
                    if v[i].1 == 0 {
                        v.swap_remove(i);
                    }
                }
                if let [(w, n)] = v.as_slice() {
                    *p = Places::One(*w as u32, *n);
                }
                matches!(p, Places::Many(v) if v.is_empty())
            }
        };
        if empty {
            self.users.remove(user);
        }
    }

    /// (worker, connections) where `user` is connected; empty if nowhere.
    pub fn places(&self, user: &str) -> Vec<(usize, u32)> {
        match self.users.get(user) {
            None => Vec::new(),
            Some(Places::One(w, n)) => vec![(*w as usize, *n)],
            Some(Places::Many(v)) => v.clone(),
        }
    }

    /// Every user homed here with their connections on this node.
    pub fn users(&self) -> Vec<(Arc<str>, u64)> {
        self.users
            .iter()
            .map(|(u, p)| {
                let n = match p {
                    Places::One(_, n) => u64::from(*n),
                    Places::Many(v) => v.iter().map(|&(_, n)| u64::from(n)).sum(),
                };
                (u.clone(), n)
            })
            .collect()
    }

    /// Connections of `user`, all workers.
    pub fn devices(&self, user: &str) -> u64 {
        match self.users.get(user) {
            None => 0,
            Some(Places::One(_, n)) => u64::from(*n),
            Some(Places::Many(v)) => v.iter().map(|&(_, n)| u64::from(n)).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_counts_users_and_workers() {
        let mut rooms = HomeRooms::new(10, 2);
        let (ali, vali): (Arc<str>, Arc<str>) = ("ali".into(), "vali".into());
        let r = rooms.get_or_create(&"backend".into(), 0);
        assert!(r.add(&ali, 0));
        assert!(!r.add(&ali, 1)); // second device
        assert!(r.add(&vali, 1));
        assert_eq!(r.user_count(), 2);
        assert_eq!(r.conn_count(), 3);
        assert_eq!(r.workers().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(r.users_sorted(), vec!["ali", "vali"]);
        assert!(!r.remove("ali", 0, 5));
        assert_eq!(r.workers().collect::<Vec<_>>(), vec![1]);
        assert!(r.remove("ali", 1, 5));
        assert!(r.remove("vali", 1, 7));
        assert_eq!(r.empty_since, Some(7));
        // A leave that was never a join changes nothing.
        assert!(!r.remove("nobody", 0, 8));
        assert_eq!(r.conn_count(), 0);
    }

    #[test]
    fn empty_rooms_expire_after_the_ttl_but_general_stays() {
        let mut rooms = HomeRooms::new(10, 1);
        let u: Arc<str> = "u".into();
        for name in ["general", "a", "b"] {
            let r = rooms.get_or_create(&name.into(), 0);
            r.add(&u, 0);
            r.next_seq();
            r.remove("u", 0, 100);
        }
        rooms.get_or_create(&"b".into(), 0).add(&u, 0);
        assert_eq!(rooms.expire(599, 500, "general"), 0);
        assert_eq!(rooms.expire(600, 500, "general"), 1);
        assert!(rooms.get("a").is_none());
        assert!(rooms.get("b").is_some());
        assert_eq!(rooms.get("general").map(|r| r.seq), Some(1));
        assert_eq!(rooms.with_members(), vec![("b".into(), 1)]);
    }

    #[test]
    fn directory_counts_devices() {
        let mut d = Directory::default();
        d.up("ali".into(), 0);
        d.up("ali".into(), 1);
        d.up("ali".into(), 1);
        assert_eq!(d.devices("ali"), 3);
        d.down("ali", 1);
        d.down("ali", 0);
        assert_eq!(d.places("ali"), vec![(1, 1)]);
        assert_eq!(d.users.get("ali"), Some(&Places::One(1, 1)));
        d.down("ali", 1);
        assert_eq!(d.devices("ali"), 0);
        assert!(d.users.is_empty());
        d.down("ghost", 0);
    }
}
