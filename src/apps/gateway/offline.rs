//! The gateway's Redis side (`store_offline = true` with `--redis-url`): events for owners
//! connected to no node are kept in their gateway inbox and handed to their next device.
//!
//! - Each user's home worker keeps the node's device count of the user in Redis
//!   (`PREFIX:gwconns`, per node `PREFIX:node:NODE:gwconns`, with the chat's `conn.lua`:
//!   absolute counts, sent again after every reconnect; a dead node's counts are taken out by
//!   the chat's heartbeat like its chat connections).
//! - A delivery whose owner has no device on this node runs `lua/store.lua`: if the owner has
//!   devices on another node nothing happens (that node delivers its own copy); otherwise the
//!   first node to get there stores the frame (a mark per event, `PREFIX:gwseen:ID`, with the
//!   AMQP message id or a SHA-1 of routing key, owner and data, keeps the other nodes' copies
//!   out). The delivery is acknowledged once Redis answered.
//! - A device that opens takes its user's inbox (`inbox.lua`: read and delete at once) and
//!   gets each stored frame, oldest first.
//!
//! Commands go to the relay as client [`super::msg::RELAY_CLIENT`], by which the relay's sink
//! routes their replies to the gateway instead of the chat. Owns the keys and the
//! pending replies; the decisions (when to store, what to ack) are `mod.rs`'s.

use std::collections::HashMap;
use std::sync::Arc;

use crate::amqp::DeliveryTag;
use crate::apps::chat::cluster::Scripts;
use crate::config::Config;
use crate::reactor::ConnId;
use crate::relay::resp::{evalsha, Reply};
use crate::relay::{RelayCmd, RelayHandle, RelayState};

use super::msg::RELAY_CLIENT;

/// How long an event's mark keeps other nodes from storing their copy: longer than a node's
/// queue outlives it ([`crate::amqp::QUEUE_EXPIRES`]), so a node coming back with a backlog
/// does not store an event again.
pub const MARK_TTL_S: u64 = 3600;

/// What a reply from Redis finishes.
#[derive(Debug)]
pub enum Pending {
    /// `store.lua` for a delivery: acknowledge it.
    Store(DeliveryTag),
    /// `inbox.lua` for a device that opened: send it what was stored.
    Take(ConnId),
}

/// One worker's gateway link to Redis.
pub struct Offline {
    relay: RelayHandle,
    scripts: Arc<Scripts>,
    prefix: String,
    node: String,
    inbox_max: String,
    inbox_ttl_s: String,
    pending: HashMap<u64, Pending>,
    next_token: u64,
    wake: bool,
    cmd: Vec<u8>,
}

impl std::fmt::Debug for Offline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offline")
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl Offline {
    /// With the relay and its scripts, for `cfg`'s prefix, node id and inbox limits.
    pub fn new(relay: RelayHandle, scripts: Arc<Scripts>, cfg: &Config) -> Self {
        Self {
            relay,
            scripts,
            prefix: cfg.redis_prefix.clone(),
            node: cfg.node_id.clone(),
            inbox_max: cfg.inbox_max.to_string(),
            inbox_ttl_s: cfg.inbox_ttl.as_secs().max(1).to_string(),
            pending: HashMap::new(),
            next_token: 0,
            wake: false,
            cmd: Vec::new(),
        }
    }

    /// Redis is reachable now.
    pub fn up(&self) -> bool {
        self.relay.shared.state() == RelayState::Up
    }

    fn eval(&mut self, sha: &str, keys: &[&str], args: &[&[u8]]) -> Vec<u8> {
        evalsha(&mut self.cmd, sha, keys, args);
        std::mem::take(&mut self.cmd)
    }

    fn ask(&mut self, worker: usize, cmd: Vec<u8>, pending: Pending, backlog: bool) {
        self.next_token = self.next_token.wrapping_add(1);
        let token = self.next_token;
        self.pending.insert(token, pending);
        self.relay.send_later(RelayCmd::Command {
            cmd,
            worker,
            client: RELAY_CLIENT,
            token,
            backlog,
        });
        self.wake = true;
    }

    /// This node holds `devices` gateway devices of `user` now (absolute: may be sent again).
    pub fn devices(&mut self, user: &str, devices: u32) {
        let keys = [
            format!("{}:gwconns", self.prefix),
            format!("{}:node:{}:gwconns", self.prefix, self.node),
            format!("{}:nodes", self.prefix),
        ];
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let sha = self.scripts.conn.sha.clone();
        let node = self.node.clone();
        let cmd = self.eval(
            &sha,
            &keys,
            &[
                user.as_bytes(),
                devices.to_string().as_bytes(),
                node.as_bytes(),
            ],
        );
        self.relay
            .send_later(RelayCmd::Quiet { cmd, backlog: true });
        self.wake = true;
    }

    /// Keeps `frame_json` for `user` unless a device of the user is connected somewhere; the
    /// reply acknowledges `tag`. `mark` names the event (message id or digest).
    pub fn store(
        &mut self,
        worker: usize,
        user: &str,
        frame_json: &[u8],
        mark: &str,
        tag: DeliveryTag,
    ) {
        let keys = [
            format!("{}:gwconns", self.prefix),
            format!("{}:gwinbox:{user}", self.prefix),
            format!("{}:gwseen:{mark}", self.prefix),
        ];
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let sha = self.scripts.gateway_store.sha.clone();
        let (max, ttl) = (self.inbox_max.clone(), self.inbox_ttl_s.clone());
        let cmd = self.eval(
            &sha,
            &keys,
            &[
                user.as_bytes(),
                frame_json,
                max.as_bytes(),
                ttl.as_bytes(),
                MARK_TTL_S.to_string().as_bytes(),
            ],
        );
        self.ask(worker, cmd, Pending::Store(tag), true);
    }

    /// Takes `user`'s stored events for the device `conn` that just opened.
    pub fn take(&mut self, worker: usize, user: &str, conn: ConnId) {
        let key = format!("{}:gwinbox:{user}", self.prefix);
        let sha = self.scripts.inbox.sha.clone();
        let cmd = self.eval(&sha, &[&key], &[]);
        self.ask(worker, cmd, Pending::Take(conn), false);
    }

    /// What the reply with `token` finishes.
    pub fn finish(&mut self, token: u64) -> Option<Pending> {
        self.pending.remove(&token)
    }

    /// Wakes the relay once for what this batch queued.
    pub fn wake(&mut self) {
        if std::mem::take(&mut self.wake) {
            self.relay.wake();
        }
    }
}

/// `store.lua`'s answer: (stored, dropped from a full inbox).
pub fn stored(reply: &Result<Reply, ()>) -> Option<(bool, u64)> {
    let items = reply.as_ref().ok()?.as_array()?;
    let n = |i: usize| items.get(i).and_then(Reply::as_i64).unwrap_or(0);
    Some((n(0) == 1, n(1).max(0) as u64))
}

/// `inbox.lua`'s answer: the stored frames' JSON, oldest first.
pub fn taken(reply: &Result<Reply, ()>) -> Vec<&[u8]> {
    reply
        .as_ref()
        .ok()
        .and_then(Reply::as_array)
        .unwrap_or(&[])
        .iter()
        .filter_map(Reply::as_bytes)
        .collect()
}

/// The mark of an event: its AMQP message id when the publisher set one (hex-escaped so any
/// bytes make a key), else the SHA-1 of routing key, owner and data.
pub fn mark(message_id: Option<&str>, routing_key: &str, owner: &str, data: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    match message_id {
        Some(id) if !id.is_empty() => {
            let mut s = String::from("id:");
            for b in id.bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                    s.push(char::from(b));
                } else {
                    s.push_str(&format!("%{b:02X}"));
                }
            }
            s
        }
        _ => {
            let mut h = Sha1::new();
            for part in [routing_key.as_bytes(), owner.as_bytes(), data] {
                h.update((part.len() as u64).to_be_bytes());
                h.update(part);
            }
            let d = h.finalize();
            let mut s = String::from("sha1:");
            for b in d {
                s.push_str(&format!("{b:02x}"));
            }
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks() {
        assert_eq!(mark(Some("m-1.a_b"), "k", "o", b"1"), "id:m-1.a_b");
        assert_eq!(mark(Some("a b:c"), "k", "o", b"1"), "id:a%20b%3Ac");
        let a = mark(None, "k", "o", b"1");
        assert!(a.starts_with("sha1:") && a.len() == 45, "{a}");
        assert_eq!(a, mark(Some(""), "k", "o", b"1"));
        // Length-prefixed parts: moving a byte between parts changes the mark.
        assert_ne!(mark(None, "ko", "", b"1"), mark(None, "k", "o", b"1"));
    }

    #[test]
    fn replies() {
        let r = Ok(Reply::Array(Some(vec![
            Reply::Integer(1),
            Reply::Integer(2),
            Reply::Integer(0),
        ])));
        assert_eq!(stored(&r), Some((true, 2)));
        assert_eq!(stored(&Err(())), None);
        let t = Ok(Reply::Array(Some(vec![
            Reply::Bulk(Some(b"{\"a\":1}".to_vec())),
            Reply::Bulk(Some(b"{}".to_vec())),
        ])));
        assert_eq!(taken(&t), [&b"{\"a\":1}"[..], b"{}"]);
        assert!(taken(&Err(())).is_empty());
    }
}
