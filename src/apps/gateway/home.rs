//! A home worker's directory of its gateway users: on which workers each one has devices and
//! how many per endpoint (the lifecycle events are per user and endpoint: the first device
//! connecting, the last one leaving).
//!
//! Plain data, no IO: the gateway asks it and acts on the answers.

use std::collections::HashMap;
use std::sync::Arc;

/// Where one user's devices are.
#[derive(Debug, Default)]
struct Devices {
    /// (worker, devices there).
    workers: Vec<(u32, u32)>,
    /// (endpoint, devices on it).
    endpoints: Vec<(u16, u32)>,
}

/// The users whose home is this worker.
#[derive(Debug, Default)]
pub struct Directory {
    users: HashMap<Arc<str>, Devices>,
}

impl Directory {
    /// A device of `user` opened on `worker`, endpoint `endpoint`: the user's devices on that
    /// endpoint now.
    pub fn up(&mut self, user: Arc<str>, worker: usize, endpoint: u16) -> u32 {
        let d = self.users.entry(user).or_default();
        bump(&mut d.workers, worker as u32);
        bump(&mut d.endpoints, endpoint)
    }

    /// A device of `user` on `worker`, endpoint `endpoint`, closed: the user's devices left on
    /// that endpoint, `None` if it was not known.
    pub fn down(&mut self, user: &str, worker: usize, endpoint: u16) -> Option<u32> {
        let d = self.users.get_mut(user)?;
        drop_one(&mut d.workers, worker as u32)?;
        let left = drop_one(&mut d.endpoints, endpoint);
        if d.workers.is_empty() {
            self.users.remove(user);
        }
        left
    }

    /// The workers holding devices of `user` (empty: none on this node).
    pub fn workers(&self, user: &str) -> impl Iterator<Item = usize> + '_ {
        self.users
            .get(user)
            .into_iter()
            .flat_map(|d| d.workers.iter().map(|(w, _)| *w as usize))
    }

    /// The directory's key for `user` (shared, so a message naming the user costs no
    /// allocation), if it has devices.
    pub fn key(&self, user: &str) -> Option<Arc<str>> {
        self.users.get_key_value(user).map(|(k, _)| k.clone())
    }

    /// The devices of `user` on this node.
    pub fn devices(&self, user: &str) -> u32 {
        self.users
            .get(user)
            .map_or(0, |d| d.workers.iter().map(|(_, n)| n).sum())
    }

    /// Every user and their devices on this node.
    pub fn users(&self) -> impl Iterator<Item = (&Arc<str>, u32)> + '_ {
        self.users
            .iter()
            .map(|(u, d)| (u, d.workers.iter().map(|(_, n)| n).sum()))
    }

    /// Users with a device on this node whose home is this worker.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// No users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

fn bump<K: PartialEq + Copy>(v: &mut Vec<(K, u32)>, k: K) -> u32 {
    match v.iter_mut().find(|(x, _)| *x == k) {
        Some((_, n)) => {
            *n += 1;
            *n
        }
        None => {
            v.push((k, 1));
            1
        }
    }
}

fn drop_one<K: PartialEq + Copy>(v: &mut Vec<(K, u32)>, k: K) -> Option<u32> {
    let i = v.iter().position(|(x, _)| *x == k)?;
    v[i].1 -= 1;
    let left = v[i].1;
    if left == 0 {
        v.swap_remove(i);
    }
    Some(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_worker_and_endpoint() {
        let mut d = Directory::default();
        let u: Arc<str> = "rider-1".into();
        assert_eq!(d.up(u.clone(), 0, 1), 1);
        assert_eq!(d.up(u.clone(), 1, 1), 2);
        assert_eq!(d.up(u.clone(), 1, 0), 1);
        let mut w: Vec<usize> = d.workers("rider-1").collect();
        w.sort_unstable();
        assert_eq!(w, [0, 1]);
        assert_eq!(d.devices("rider-1"), 3);
        assert_eq!(d.users().count(), 1);
        // The key handed out is the stored one, not a copy.
        assert!(d.key("rider-1").is_some_and(|k| Arc::ptr_eq(&k, &u)));
        assert!(d.key("nobody").is_none());
        assert_eq!(d.down("rider-1", 1, 1), Some(1));
        assert_eq!(d.down("rider-1", 0, 1), Some(0));
        assert_eq!(d.workers("rider-1").collect::<Vec<_>>(), [1]);
        assert_eq!(d.down("rider-1", 1, 0), Some(0));
        assert!(d.is_empty());
        assert_eq!(d.down("rider-1", 1, 0), None);
        assert_eq!(d.workers("nobody").count(), 0);
    }
}
